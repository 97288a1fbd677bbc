"""Test databases: PostgreSQL when ``TEST_DATABASE_URL`` names a server, scratch databases of
one run's own beside it (so that parallel runs never share tables), emptying one, and the head
revision of the migrations.

Used by the fixtures (``tests/conftest.py``) and by the benchmarks.
"""

from __future__ import annotations

import os
import secrets

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import URL, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import models  # noqa: F401  (every table on SQLModel.metadata)
from bot import db
from bot.config import DatabaseSettings

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
PG_SKIP = ("PostgreSQL tests need TEST_DATABASE_URL"
           " (e.g. postgresql+asyncpg://postgres@127.0.0.1/test)")

#: marks a test that runs only with TEST_DATABASE_URL
requires_pg = pytest.mark.skipif(not PG_URL, reason=PG_SKIP)


def server_url(url: str) -> URL:
    """``url`` (any accepted spelling) with the async driver, as a SQLAlchemy URL."""
    return make_url(DatabaseSettings(url=url).url)


def scratch_name(prefix: str) -> str:
    """A database name no other run uses: ``<prefix>_<pid>_<random>``."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


async def admin(server: URL, statement: str) -> None:
    """Run ``statement`` outside a transaction (CREATE / DROP DATABASE); DBAPIError if refused."""
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def reset_schema(server: URL) -> None:
    """Drop every table of the database ``server`` names (when no scratch database may be made)."""
    engine = create_async_engine(server)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


async def truncate_all(url: str) -> None:
    """Empty every table of the PostgreSQL database at ``url`` (ids start at 1 again)."""
    engine = create_async_engine(url)
    names = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


def head_revision() -> str:
    """The newest revision in migrations/versions (the one an upgrade ends at)."""
    head = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
