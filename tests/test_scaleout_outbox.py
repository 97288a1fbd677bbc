"""Notices owed by scheduled duties are durable (models/outbox.py, SPEC §10): a process that
dies between the commit of an expiry and the sending of its notices loses none of them — once
the lease has passed, the next duty run (any process's) sends them, once; while the writer's
lease holds, no other run sends them too. On SQLite and PostgreSQL; the claim's SKIP LOCKED on
PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot import db
from handlers import outbox as outbox_handlers
from handlers.expiry import expire_and_notify
from models import outbox
from models.outbox import LEASE, Notice, OutboxNotice
from models.tables import VerificationCode
from tests.harness import Harness, rows
from tests.support.flows import standard_setup, to_code_step
from tests.support.people import HOLDER, OWNER

EXPIRED = "expired before it was entered"


class Crash(Exception):
    """The process dies here (kill -9 between the commit and the send)."""


def told(h: Harness) -> int:
    return sum(EXPIRED in m.text for m in h.messages(OWNER))


async def owed(h: Harness) -> list[OutboxNotice]:
    return await rows(h, OutboxNotice)


async def test_notices_survive_a_crash_between_the_expiry_commit_and_the_send(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    deps = h.app.bot_data["deps"]
    await standard_setup(h)
    await to_code_step(h)
    code_message = h.messages(HOLDER)[-1]
    assert "Verification code" in code_message.text
    h.clock.advance(deps.policy.code_ttl_seconds + 1)

    async def crash(*_args: Any, **_kw: Any) -> None:
        raise Crash

    monkeypatch.setattr(outbox_handlers, "send_safely", crash)
    monkeypatch.setattr(outbox_handlers, "edit_safely", crash)
    with pytest.raises(Crash):
        await expire_and_notify(h.app.bot, deps)
    monkeypatch.undo()
    # the expiry is committed, its two notices (owner, holder's code message) are owed
    assert [c.status for c in await rows(h, VerificationCode)] == ["expired"]
    assert told(h) == 0
    assert sorted(n.topic.rsplit(":", 1)[1] for n in await owed(h)) == ["holder", "owner"]

    # another run within the dead writer's lease sends nothing: no double in the normal case
    h.clock.advance(LEASE.total_seconds() - 1)
    await expire_and_notify(h.app.bot, deps)
    assert told(h) == 0 and len(await owed(h)) == 2

    # once the lease has passed, the next run (any process's duty poll) sends them, once
    h.clock.advance(2)
    await expire_and_notify(h.app.bot, deps)
    assert told(h) == 1
    assert "Verification code" not in h.message(HOLDER, code_message.message_id).text
    assert await owed(h) == []
    h.clock.advance(LEASE.total_seconds() + 1)
    await expire_and_notify(h.app.bot, deps)
    assert told(h) == 1


async def test_an_expiry_without_a_crash_is_told_once_and_leaves_nothing_owed(
    harness: Harness
) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    h.clock.advance(h.app.bot_data["deps"].policy.code_ttl_seconds + 1)
    await h.run_due_jobs()
    assert told(h) == 1 and await owed(h) == []


async def test_a_send_telegram_refuses_is_retried_after_the_lease(harness: Harness) -> None:
    from telegram.error import NetworkError

    h = harness
    deps = h.app.bot_data["deps"]
    await standard_setup(h)
    await to_code_step(h)
    h.clock.advance(deps.policy.code_ttl_seconds + 1)
    for _ in range(3):  # the sender's own retries all fail
        h.api.fail_next("sendMessage", NetworkError("down"))
    await expire_and_notify(h.app.bot, deps)
    assert told(h) == 0 and [n.attempts for n in await owed(h)] == [1]
    h.clock.advance(LEASE.total_seconds() + 1)
    await expire_and_notify(h.app.bot, deps)
    assert told(h) == 1 and await owed(h) == []


async def test_two_processes_claiming_owed_notices_take_each_once(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED: PostgreSQL (SQLite is one process)")
    engine: AsyncEngine = db.create_engine(database_url)
    try:
        make = db.sessionmaker(engine)
        now = datetime(2026, 12, 1, 12, 0)
        async with make() as session:
            outbox.enqueue(session, [Notice(topic=f"t:{n}", chat_id=n, text="x")
                                     for n in range(1, 5)], now=now - LEASE * 2)
            await session.commit()
        async with make() as first, make() as second:
            mine = await outbox.claim_due(first, now=now)  # not committed: rows locked
            theirs = await outbox.claim_due(second, now=now)
            assert len(mine) == 4 and theirs == []
            await first.commit()
            await second.commit()
        async with make() as session:
            assert await outbox.claim_due(session, now=now) == []  # leased anew
            again = await outbox.claim_due(session, now=now + LEASE)
            assert len(again) == 4 and {n.attempts for n in again} == {3}
            await outbox.done(session, [n.id or 0 for n in again])
            await session.commit()
            assert list((await session.exec(select(OutboxNotice))).all()) == []
    finally:
        await engine.dispose()


async def test_a_service_level_nudge_survives_a_crash_before_its_send(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.service_levels import run_service_levels
    from tests.service_chat_world import ANN, add_entry, setup_shop

    h = harness
    deps = h.app.bot_data["deps"]
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "Is the oolong in stock?")

    def nudged() -> int:
        return sum("still waiting for your first answer" in m.text for m in h.messages(HOLDER))

    async def crash(*_args: Any, **_kw: Any) -> None:
        raise Crash

    h.clock.advance(121)
    monkeypatch.setattr(outbox_handlers, "send_safely", crash)
    with pytest.raises(Crash):
        await run_service_levels(h.app.bot, deps, h.app.bot_data)
    monkeypatch.undo()
    assert nudged() == 0 and [n.topic.split(":")[0] for n in await owed(h)] == ["service.nudge"]
    await run_service_levels(h.app.bot, deps, h.app.bot_data)  # within the lease: not again
    assert nudged() == 0
    h.clock.advance(LEASE.total_seconds() + 1)
    await run_service_levels(h.app.bot, deps, h.app.bot_data)
    await run_service_levels(h.app.bot, deps, h.app.bot_data)
    assert nudged() == 1 and await owed(h) == []
