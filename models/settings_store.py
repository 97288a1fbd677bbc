"""Values every process of one deployment must agree on, kept once in the database (SPEC §10).

A small key/value table: ``keep(session, key, make, now)`` inserts ``make()`` only if the key is
absent (``INSERT … ON CONFLICT DO NOTHING``) and returns what the table holds, so processes
starting at the same moment all end up with the first value written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import DateTime
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession


class AppSetting(SQLModel, table=True):
    """One value shared by every process (no secret in clear: see ``bot.webhook``)."""

    __tablename__ = "app_setting"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=512)
    created_at: datetime = Field(sa_type=DateTime(), nullable=False)


async def keep(session: AsyncSession, *, key: str, make: Callable[[], str], now: datetime) -> str:
    """The value stored under ``key``; ``make()`` stored first if there is none. Commits."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.exec(
        insert(AppSetting)
        .values(key=key, value=make(), created_at=now)
        .on_conflict_do_nothing(index_elements=[col(AppSetting.key)])
    )
    await session.commit()
    value = (await session.exec(select(AppSetting.value).where(col(AppSetting.key) == key))).one()
    return str(value)
