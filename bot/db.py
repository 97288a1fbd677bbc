"""The database engine, sessions and migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder a SQLite file lives in (``./data/`` by default)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine: aiosqlite (WAL, foreign keys on) or asyncpg."""
    ensure_sqlite_dir(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if make_url(url).get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    """An Alembic configuration pointing at our migrations and ``url``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _upgrade(url: str) -> None:
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), "head")


async def migrate(url: str) -> None:
    """Run Alembic to head (in a worker thread: Alembic's env runs its own event loop)."""
    await asyncio.to_thread(_upgrade, url)


def migrate_sync(url: str) -> None:
    """Run Alembic to head from synchronous code."""
    _upgrade(url)
