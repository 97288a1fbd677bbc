"""The SQLite fast path: statements that cannot wait run without a thread trip, and the WAL is
checkpointed on a thread of its own.

``bot.db.create_engine`` puts it under every SQLite engine unless asked not to
(``fast_path=False`` gives plain aiosqlite); ``benchmarks/RESULTS.md`` has the two side by side.

Why: aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter
makes four such calls per statement (open a cursor, execute, fetch, close), plus a COMMIT and a
ROLLBACK (the pool's reset) per transaction even when SQLite has nothing open. Each call is a
wake-up of that thread and then of the event loop, which costs far more than the statements the
bot runs (primary-key look-ups on a file in the page cache).

How: a SQLite statement only ever *waits* for one thing, another connection's lock (in WAL mode
readers never wait; a writer waits for the write lock). So each statement first runs right here,
on the event loop's thread, with SQLite's busy timeout at 0: it either finishes at once or fails
with SQLITE_BUSY before changing anything. Only then is it sent to aiosqlite's thread, which
waits for the lock with the full busy timeout while the event loop goes on (so two sessions of
this process can never deadlock each other, and a lock held by another process never blocks the
bot). Rows are fetched eagerly in the same call; COMMIT and ROLLBACK are skipped when SQLite says
no transaction is open (exactly when sqlite3's own commit() and rollback() do nothing).

A checkpoint (copying the WAL back into the database file) syncs the file; inside a COMMIT it
would run on the event loop's thread and stall it, so automatic checkpoints are off and
``_Checkpointer`` runs a PASSIVE one every ``CHECKPOINT_EVERY`` commits on a thread of its own.

This builds on aiosqlite's private internals (``Connection(connector, iter_chunk_size)``,
``_conn``, ``_execute``, ``_thread``), hence the pin in pyproject.toml. ``aiosqlite_mismatches``
lists what the installed aiosqlite lacks: ``tests/test_db.py`` fails on it, and ``install`` then
leaves the engine on plain aiosqlite (with a warning) rather than break it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sqlite3
import threading
import weakref
from collections import deque
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

#: sqlite3's own default busy timeout, for a connection opened without ``timeout``
_SQLITE3_DEFAULT_TIMEOUT_S = 5.0

#: commits between two checkpoints (SQLite's automatic one comes every 1000 pages of WAL; ours
#: come somewhat sooner than that, so that each has less to copy)
CHECKPOINT_EVERY = 100


# --- what the fast path needs of aiosqlite ---------------------------------------------------


def _no_connection() -> sqlite3.Connection:
    raise RuntimeError("a probe: never connected")


@functools.cache
def aiosqlite_mismatches() -> tuple[str, ...]:
    """The aiosqlite internals this module uses that the installed aiosqlite lacks or has
    changed (empty when everything is as expected)."""
    found: list[str] = []
    version = getattr(aiosqlite, "__version__", "?")
    connection = aiosqlite.Connection
    try:
        params = list(inspect.signature(connection.__init__).parameters)[1:3]
    except (TypeError, ValueError):
        params = []
    if params != ["connector", "iter_chunk_size"]:
        found.append(f"aiosqlite.Connection.__init__(self, connector, iter_chunk_size, ...) takes "
                     f"{params} first in aiosqlite {version}")
    if not isinstance(inspect.getattr_static(connection, "_conn", None), property):
        found.append(f"aiosqlite.Connection._conn (a property: the sqlite3.Connection) is missing "
                     f"or not a property in aiosqlite {version}")
    execute = inspect.getattr_static(connection, "_execute", None)
    if not inspect.iscoroutinefunction(execute) or [
        (p.name, p.kind) for p in inspect.signature(execute).parameters.values()
    ] != [("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
          ("fn", inspect.Parameter.POSITIONAL_OR_KEYWORD),
          ("args", inspect.Parameter.VAR_POSITIONAL),
          ("kwargs", inspect.Parameter.VAR_KEYWORD)]:
        found.append(f"aiosqlite.Connection._execute(self, fn, *args, **kwargs) (a coroutine "
                     f"running fn on the connection's thread) is missing or changed in aiosqlite "
                     f"{version}")
    if not isinstance(inspect.getattr_static(connection, "in_transaction", None), property):
        found.append(f"aiosqlite.Connection.in_transaction (a property) is missing in aiosqlite "
                     f"{version}")
    if not found:
        probe = connection(_no_connection, 64)  # never awaited: its thread is not started
        if not isinstance(getattr(probe, "_thread", None), threading.Thread):
            found.append(f"aiosqlite.Connection()._thread (the connection's threading.Thread) is "
                         f"missing in aiosqlite {version}")
    return tuple(found)


# --- one statement, one call -----------------------------------------------------------------


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


def _waiting(conn: sqlite3.Connection, busy_timeout_ms: int, call: Any, *args: Any) -> Any:
    """On the connection's thread: ``call`` with the full busy timeout, then back to 0."""
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
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


class _Checkpointer:
    """Copies the WAL back into the database file now and then, on a thread of its own.

    A PASSIVE checkpoint (what SQLite's automatic one is) takes no lock that a reader or a
    writer waits for; run on its own short-lived connection and thread, it never holds up the
    event loop or an update, however long the file sync takes.
    """

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s
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
            connection = sqlite3.connect(self.path, timeout=self.timeout_s)
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
    busy_timeout_ms = int(_SQLITE3_DEFAULT_TIMEOUT_S * 1000)

    async def call(self, function: Any, *args: Any) -> Any:
        """``function(sqlite3_connection, *args)``: inline, or on the thread if a lock is held."""
        conn = self._conn
        try:
            return function(conn, *args)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        return await self._execute(  # type: ignore[no-untyped-call]
            _waiting, conn, self.busy_timeout_ms, function, conn, *args
        )

    def cursor(self) -> _OneTripCursor:  # type: ignore[override]
        return _OneTripCursor(self)

    async def commit(self) -> None:
        if self.in_transaction:
            await self.call(sqlite3.Connection.commit)
            if self.checkpointer is not None:
                self.checkpointer.committed()

    async def rollback(self) -> None:
        if self.in_transaction:
            await self.call(sqlite3.Connection.rollback)


def _open_one_trip(
    database: str, *, checkpointer: _Checkpointer | None = None, iter_chunk_size: int = 64,
    **kwargs: Any,
) -> _OneTripConnection:
    """``aiosqlite.connect``, with our connection class."""

    def connector() -> sqlite3.Connection:
        # made on aiosqlite's thread, used from the event loop's too (one at a time: the
        # adapter awaits each call before the next)
        connection: sqlite3.Connection = sqlite3.connect(
            database, **{**kwargs, "check_same_thread": False}
        )
        return connection

    connection = _OneTripConnection(connector, iter_chunk_size)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    connection.checkpointer = checkpointer
    connection.busy_timeout_ms = int(kwargs.get("timeout", _SQLITE3_DEFAULT_TIMEOUT_S) * 1000)
    return connection


def _one_trip_connector(checkpointer: _Checkpointer | None) -> Any:
    """The ``do_connect`` listener: the URL's arguments, through SQLAlchemy's adapter, to our
    connection class (with the engine's checkpointer)."""

    def do_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        return dialect.dbapi.connect(
            *cargs, async_creator_fn=_open_one_trip, checkpointer=checkpointer, **cparams
        )

    return do_connect


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # first of all the connection's pragmas: from here on a statement run on the event loop's
    # thread never waits for a lock
    cursor.execute("PRAGMA busy_timeout=0")
    # no checkpoint inside a COMMIT (that runs on the event loop's thread); _Checkpointer
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


# --- an engine on the fast path --------------------------------------------------------------


class _FastPath:
    def __init__(self, checkpointer: _Checkpointer | None) -> None:
        self.checkpointer = checkpointer


_ENGINES: weakref.WeakKeyDictionary[Engine, _FastPath] = weakref.WeakKeyDictionary()


def install(engine: AsyncEngine, path: Path | None, *, timeout_s: float) -> bool:
    """Put a new SQLite engine (not yet connected) on the fast path; ``path`` is its file
    (``None`` in memory: no checkpoints), ``timeout_s`` its busy timeout. ``False``, with a
    warning, when the installed aiosqlite lacks what the fast path needs (plain aiosqlite)."""
    missing = aiosqlite_mismatches()
    if missing:
        log.warning("SQLite fast path off, plain aiosqlite instead: %s", "; ".join(missing))
        return False
    checkpointer = _Checkpointer(str(path), timeout_s) if path is not None else None
    _ENGINES[engine.sync_engine] = _FastPath(checkpointer)
    event.listen(engine.sync_engine, "do_connect", _one_trip_connector(checkpointer))
    event.listen(engine.sync_engine, "connect", _pragmas, insert=True)
    return True


def installed(engine: AsyncEngine) -> bool:
    """Whether ``engine`` runs on the fast path."""
    return engine.sync_engine in _ENGINES


def checkpointer_of(engine: AsyncEngine) -> _Checkpointer | None:
    """The engine's WAL checkpointer (SQLite files on the fast path only)."""
    fast = _ENGINES.get(engine.sync_engine)
    return fast.checkpointer if fast is not None else None
