"""The database engine, sessions and migrations."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from models.writes import TrackedSession

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)
T = TypeVar("T")


#: how long a statement waits for another connection's write lock (SQLite's busy timeout)
BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # first: a statement run on the event loop's thread never waits for a lock (see below)
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # no checkpoint inside a COMMIT (that runs on the event loop's thread, and a checkpoint
    # syncs the file: seen stalling the loop for ~170 ms); _Checkpointer does it on a thread
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


# --- SQLite: statements that cannot wait run without a thread trip ----------------------------
#
# aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
# four such calls per statement (open a cursor, execute, fetch, close), plus a COMMIT and a
# ROLLBACK (the pool's reset) per transaction even when SQLite has nothing open. Each call is a
# wake-up of that thread and then of the event loop: measured on the benchmark machine, ~240 µs
# a trip against ~11 µs for a primary-key SELECT itself.
#
# A SQLite statement only ever *waits* for one thing: another connection's lock (in WAL mode
# readers never wait; a writer waits for the write lock). So each statement first runs right
# here, on the event loop's thread, with SQLite's busy timeout at 0: it either finishes at once
# or fails with SQLITE_BUSY before changing anything. Only then is it sent to aiosqlite's thread,
# which waits for the lock with the full busy timeout while the event loop goes on (so two
# sessions of this process can never deadlock each other, and a lock held by another process
# never blocks the bot). Rows are fetched eagerly in the same call; COMMIT and ROLLBACK are
# skipped when SQLite says no transaction is open (exactly when sqlite3's own commit() and
# rollback() do nothing).


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite's "database is locked" / "database table is locked" (SQLITE_BUSY, SQLITE_LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc)


def _run_statement(
    conn: sqlite3.Connection, sql: str, parameters: Any, many: bool
) -> tuple[Any, int, int | None, list[Any]]:
    """The statement's description, row count, last id and rows, in one call."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, [] if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description is not None else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _waiting(conn: sqlite3.Connection, call: Any, *args: Any) -> Any:
    """On the connection's thread: ``call`` with the full busy timeout, then back to 0."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return call(*args)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


class _OneTripCursor:
    """What SQLAlchemy's aiosqlite adapter needs of a cursor, with the rows fetched eagerly."""

    def __init__(self, connection: _OneTripConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.arraysize = 1
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> _OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows.clear()

    async def _run(self, sql: str, parameters: Any, many: bool) -> _OneTripCursor:
        self.description, self.rowcount, self.lastrowid, rows = await self._connection.call(
            _run_statement, sql, parameters, many
        )
        self._rows = deque(rows)
        return self

    async def execute(self, sql: str, parameters: Any = None) -> _OneTripCursor:
        return await self._run(sql, parameters, False)

    async def executemany(self, sql: str, parameters: Any) -> _OneTripCursor:
        return await self._run(sql, parameters, True)

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


#: commits between two checkpoints (SQLite's automatic one comes every ~1000 pages of WAL,
#: which is some 200 of our commits)
CHECKPOINT_EVERY = 100


class _Checkpointer:
    """Copies the WAL back into the database file now and then, on a thread of its own.

    A PASSIVE checkpoint (what SQLite's automatic one is) takes no lock that a reader or a
    writer waits for; run on its own short-lived connection and thread, it never holds up the
    event loop or an update, however long the file sync takes.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.commits = 0
        self.checkpoints = 0
        self.thread: threading.Thread | None = None

    def committed(self) -> None:
        """Count a commit; every ``CHECKPOINT_EVERY``, start a checkpoint unless one is running."""
        self.commits += 1
        if self.commits < CHECKPOINT_EVERY or (self.thread is not None and self.thread.is_alive()):
            return
        self.commits = 0
        self.thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                connection.close()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            log.warning("SQLite checkpoint failed (%s); the next one will retry", exc)


class _OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs what cannot wait inline and the rest on its thread."""

    checkpointer: _Checkpointer | None = None

    async def call(self, function: Any, *args: Any) -> Any:
        """``function(sqlite3_connection, *args)``: inline, or on the thread if a lock is held."""
        conn = self._conn
        try:
            return function(conn, *args)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        return await self._execute(_waiting, conn, function, conn, *args)  # type: ignore[no-untyped-call]

    def cursor(self) -> _OneTripCursor:  # type: ignore[override]
        return _OneTripCursor(self)

    async def commit(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            await self.call(sqlite3.Connection.commit)
            if self.checkpointer is not None:
                self.checkpointer.committed()

    async def rollback(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            await self.call(sqlite3.Connection.rollback)


def _open_one_trip(
    database: str, *, checkpointer: _Checkpointer | None = None, iter_chunk_size: int = 64,
    **kwargs: Any,
) -> _OneTripConnection:
    """``aiosqlite.connect``, with our connection class."""

    def connector() -> sqlite3.Connection:
        # made on aiosqlite's thread, used from the event loop's too (one at a time: the
        # adapter awaits each call before the next)
        connection: sqlite3.Connection = sqlite3.connect(database, **{**kwargs, "check_same_thread": False})
        return connection

    connection = _OneTripConnection(connector, iter_chunk_size)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    connection.checkpointer = checkpointer
    return connection


def _one_trip_connector(checkpointer: _Checkpointer | None) -> Any:
    """The ``do_connect`` listener: the URL's arguments, through SQLAlchemy's adapter, to our
    connection class (with the engine's checkpointer)."""

    def do_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        return dialect.dbapi.connect(
            *cargs, async_creator_fn=_open_one_trip, checkpointer=checkpointer, **cparams
        )

    return do_connect


_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, _Checkpointer] = weakref.WeakKeyDictionary()


def checkpointer_of(engine: AsyncEngine) -> _Checkpointer | None:
    """The engine's WAL checkpointer (SQLite files only)."""
    return _CHECKPOINTERS.get(engine.sync_engine)


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
# connection out again after each commit: on the flow benchmark that was a round trip on every
# update or two, 13-30 % of PostgreSQL's time per update. What it protects against (a server
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


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine: aiosqlite (WAL, foreign keys on, one thread trip a statement) or asyncpg
    (a pool whose connections are pinged after being idle)."""
    ensure_sqlite_dir(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if make_url(url).get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name != "sqlite":
        event.listen(engine.sync_engine, "checkin", _returned)
        event.listen(engine.sync_engine, "checkout", _pinger(engine.dialect))
    if engine.dialect.name == "sqlite":
        path = sqlite_path(url)
        checkpointer = _Checkpointer(str(path)) if path is not None else None
        if checkpointer is not None:
            _CHECKPOINTERS[engine.sync_engine] = checkpointer
        event.listen(engine.sync_engine, "do_connect", _one_trip_connector(checkpointer))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
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
