"""The database engine, sessions and migrations.

SQLite goes through aiosqlite, PostgreSQL through asyncpg. ``bot.sqlite_fast`` is the SQLite
fast path (statements without a thread trip, checkpoints off the event loop), on by default;
``create_engine(url, fast_path=False)`` is plain aiosqlite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import sqlite_fast
from models.writes import TrackedSession

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)
T = TypeVar("T")


#: how long a SQLite statement waits for another connection's write lock (the busy timeout)
BUSY_TIMEOUT_S = 30.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_before_savepoint(conn: Connection, _name: str) -> None:
    """SQLite: open the transaction before a SAVEPOINT that would otherwise open it.

    sqlite3 (pysqlite) sends BEGIN only before an INSERT, UPDATE or DELETE, so a
    ``session.begin_nested()`` before the session's first write would send SAVEPOINT outside a
    transaction; SQLite then makes the savepoint the transaction, and its RELEASE commits it,
    out of the reach of the outer rollback. IMMEDIATE: a savepoint is there for a write, and a
    transaction that starts as a reader cannot always become a writer later (SQLite refuses at
    once, without waiting, when another connection has written meanwhile).
    """
    driver = conn.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for PostgreSQL and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database or "").expanduser()
    return None


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder a SQLite file lives in (``./data/`` by default)."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


# --- PostgreSQL: a ping only for a connection that has been idle -----------------------------
#
# SQLAlchemy's pool_pre_ping pings the server at every checkout, and a session checks a
# connection out again after each commit: a round trip on every update or two (benchmarks/
# RESULTS.md has the figures). What it protects against (a server
# restart, an idle timeout, a dropped TCP connection) strikes connections that have sat in the
# pool, so only those are pinged: a connection back in the pool for PING_AFTER_IDLE_S or more is
# pinged at checkout, and if the ping fails every pooled connection is replaced before the
# update goes on. A connection that broke while the bot was busy fails its statement instead;
# SQLAlchemy then replaces the whole pool, so it costs that one update.

#: seconds a pooled connection may sit unused before its next checkout pings the server
PING_AFTER_IDLE_S = 10.0
_IDLE_SINCE = "subaccount_bot.idle_since"


def _now() -> float:
    return time.monotonic()


def _returned(_dbapi_connection: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = _now()


def _pinger(dialect: Any) -> Callable[[Any, Any, Any], None]:
    """The pool's ``checkout`` listener: ping a connection that has been idle, replace the pool
    when the server does not answer."""

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or _now() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            log.info("database connection idle %.0fs did not answer a ping (%s); reconnecting",
                     _now() - idle_since, type(exc).__name__)
            raise InvalidatePoolError() from exc

    return ping_if_idle


def create_engine(url: str, *, echo: bool = False, fast_path: bool = True) -> AsyncEngine:
    """An async engine: aiosqlite (WAL, foreign keys on, savepoints inside the transaction;
    with ``fast_path``, ``bot.sqlite_fast`` under it) or asyncpg (a pool whose connections are
    pinged after being idle)."""
    ensure_sqlite_dir(url)
    if make_url(url).get_backend_name() != "sqlite":
        engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20)
        event.listen(engine.sync_engine, "checkin", _returned)
        event.listen(engine.sync_engine, "checkout", _pinger(engine.dialect))
        return engine
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    event.listen(engine.sync_engine, "savepoint", _begin_before_savepoint)
    if fast_path:
        sqlite_fast.install(engine, sqlite_path(url), timeout_s=BUSY_TIMEOUT_S)
    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit and note whether a transaction
    has written (``models.writes``: one that only read is not committed mid-update)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False,
                              sync_session_class=TrackedSession)


async def in_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``work(session)`` on an engine of its own, disposed after (commands and scripts)."""
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            return await work(session)
    finally:
        await engine.dispose()


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
