"""``models.audit``: an event is kept on the session and written in one INSERT at the commit,
yet behaves as a row would: a read in the same transaction sees it, a rollback (or a
savepoint's) drops it, and a transaction that only recorded one still commits. SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from models import audit
from models.tables import AuditEvent
from models.writes import may_have_written

NOW = datetime(2026, 12, 1, 9, 0)


def _record(session: AsyncSession, action: str) -> None:
    audit.record(session, now=NOW, shop_id=None, actor_id=7, action=action, object_type="user",
                 object_id=7, note=action)


async def _actions(engine: AsyncEngine) -> list[str]:
    async with db.sessionmaker(engine)() as session:
        rows = await session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))
        return [e.action for e in rows.all()]


async def test_events_go_in_one_insert_at_the_commit(engine: AsyncEngine) -> None:
    inserts: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "audit_event" in statement:
            inserts.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.sessionmaker(engine)() as session:
            for n in range(3):
                _record(session, f"probe.{n}")
            assert inserts == []  # nothing sent before the commit
            await session.commit()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert len(inserts) == 1
    assert await _actions(engine) == ["probe.0", "probe.1", "probe.2"]
    async with db.sessionmaker(engine)() as session:
        one = (await session.exec(select(AuditEvent))).first()
    assert one is not None and one.detail == {"note": "probe.0"} and one.object_id == "7"


async def test_a_read_in_the_same_transaction_sees_the_events(session: AsyncSession) -> None:
    _record(session, "probe.seen")
    assert [e.action for e in await audit.recent(session, 0)] == []  # shop 0: none of these
    rows = await session.exec(select(AuditEvent).where(col(AuditEvent.actor_id) == 7))
    assert [e.action for e in rows.all()] == ["probe.seen"]


async def test_a_transaction_that_only_recorded_an_event_has_written(engine: AsyncEngine
                                                                     ) -> None:
    async with db.sessionmaker(engine)() as session:
        await session.exec(select(AuditEvent))  # the transaction begins as a reader
        assert not may_have_written(session)
        _record(session, "probe.only")
        assert may_have_written(session)
        await session.commit()
    assert await _actions(engine) == ["probe.only"]


async def test_a_rollback_drops_the_events(engine: AsyncEngine) -> None:
    async with db.sessionmaker(engine)() as session:
        _record(session, "probe.dropped")
        await session.exec(select(AuditEvent))
        await session.rollback()
        _record(session, "probe.kept")
        await session.commit()
    async with db.sessionmaker(engine)() as session:
        _record(session, "probe.closed")  # the session ends without a commit
    assert await _actions(engine) == ["probe.kept"]


@pytest.mark.parametrize("fails", [False, True])
async def test_a_savepoint_keeps_or_drops_only_its_own_events(engine: AsyncEngine, fails: bool
                                                              ) -> None:
    async with db.sessionmaker(engine)() as session:
        _record(session, "probe.before")
        try:
            async with session.begin_nested():
                _record(session, "probe.inside")
                if fails:
                    raise RuntimeError("refused")
        except RuntimeError:
            pass
        _record(session, "probe.after")
        await session.commit()
    inside = [] if fails else ["probe.inside"]
    assert await _actions(engine) == ["probe.before", *inside, "probe.after"]
