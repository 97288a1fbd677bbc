"""``models.writes``: a transaction that only read is known as such; every way of writing is
seen (a missed write would be a transaction left uncommitted), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from models.tables import User
from models.writes import may_have_written

NOW = datetime(2026, 11, 28, 12, 0)


def _user(user_id: int) -> User:
    return User(id=user_id, first_name=f"u{user_id}", locale="en", created_at=NOW)


async def _names(engine: AsyncEngine) -> dict[int, str]:
    async with db.sessionmaker(engine)() as session:
        return {u.id: u.first_name for u in (await session.exec(select(User))).all()}


async def test_reading_only_is_not_a_write_and_each_kind_of_write_is(engine: AsyncEngine) -> None:
    sessions = db.sessionmaker(engine)
    async with sessions() as session:
        await session.exec(select(func.count()).select_from(User))
        assert session.in_transaction() and not may_have_written(session)
        # an INSERT that is the transaction's first statement (it begins while it runs)
        await session.commit()
        await session.exec(insert(User).values(  # type: ignore[call-overload]
            id=1, first_name="core", locale="en", created_at=NOW))
        assert may_have_written(session)
        await session.commit()

        await session.exec(select(User))
        assert not may_have_written(session)
        session.add(_user(2))  # pending, not flushed yet
        assert may_have_written(session)
        await session.flush()  # flushed: nothing pending, but written
        assert not session.new and may_have_written(session)
        await session.commit()

        await session.get(User, 2)
        assert not may_have_written(session)
        await session.exec(  # type: ignore[call-overload]
            update(User).where(User.id == 1).values(first_name="moved"))
        assert may_have_written(session)
        await session.commit()

        await session.exec(select(User))
        await session.exec(delete(User).where(User.id == 2))  # type: ignore[call-overload]
        assert may_have_written(session)
        await session.commit()

        loaded = await session.get(User, 1)
        assert loaded is not None and not may_have_written(session)
        loaded.first_name = "dirty"  # changed in memory only
        assert may_have_written(session)
        await session.commit()
    assert await _names(engine) == {1: "dirty"}


async def test_a_session_not_made_by_bot_db_always_counts_as_written(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        await session.exec(select(User))
        assert may_have_written(session)
