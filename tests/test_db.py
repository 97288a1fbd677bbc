"""The database layer: locks, checkpoints, lost connections, savepoints, and the SQLite fast path.

On SQLite, ``bot.sqlite_fast`` runs each statement on the event loop's thread with SQLite's busy
timeout at 0 and sends it to aiosqlite's thread only when a lock is held (see its docstring).
The contention tests hold a write lock — in another session of the same engine, or in another
connection altogether, as another process would — and check that a second writer waits without
stopping the loop, then lands; and that readers never wait. Every SQLite test runs on the fast
path and on plain aiosqlite (``create_engine(url, fast_path=False)``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime

import aiosqlite
import pytest
from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import select

from bot import db, sqlite_fast
from models.tables import User

NOW = datetime(2026, 11, 28, 12, 0)


def _user(user_id: int) -> User:
    return User(id=user_id, first_name=f"u{user_id}", locale="en", created_at=NOW)


async def _count(engine: AsyncEngine) -> int:
    async with db.sessionmaker(engine)() as session:
        return int((await session.exec(select(func.count()).select_from(User))).one())


@pytest.fixture(params=["fast", "plain"])
async def engine(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[AsyncEngine]:
    """The engine of ``database_url``; on SQLite with the fast path and without."""
    fast = request.param == "fast"
    if not fast and not database_url.startswith("sqlite"):
        pytest.skip("plain aiosqlite or the fast path: a choice of SQLite's")
    engine = db.create_engine(database_url, fast_path=fast)
    assert sqlite_fast.installed(engine) == (fast and database_url.startswith("sqlite"))
    yield engine
    await engine.dispose()


def _fast_path_only(engine: AsyncEngine) -> None:
    if not sqlite_fast.installed(engine):
        pytest.skip("the SQLite fast path's own setting")


async def _yield_to_others(times: int = 5) -> None:
    """Let other tasks run (no timer: only the loop's ready queue)."""
    for _ in range(times):
        await asyncio.sleep(0)


async def test_second_writer_waits_off_the_loop_then_lands(engine: AsyncEngine) -> None:
    """Two sessions write at once: the second waits for the first's commit; the loop runs on."""
    sessions = db.sessionmaker(engine)
    started = time.monotonic()

    async def second_writer() -> None:
        async with sessions() as session:
            session.add(_user(2))
            await session.commit()

    async with sessions() as first:
        first.add(_user(1))
        await first.flush()  # SQLite: this session now holds the write lock
        second = asyncio.create_task(second_writer())
        await _yield_to_others()
        if engine.dialect.name == "sqlite":
            # the second INSERT met the lock and is waiting on aiosqlite's thread, not here
            assert not second.done()
        await first.commit()
    await asyncio.wait_for(second, timeout=10)
    assert await _count(engine) == 2
    assert time.monotonic() - started < 5  # nobody sat out SQLite's 30 s busy timeout


async def test_reader_does_not_wait_for_a_writer(engine: AsyncEngine) -> None:
    """While a write transaction is open, another session reads the committed state at once."""
    sessions = db.sessionmaker(engine)
    async with sessions() as setup:
        setup.add(_user(1))
        await setup.commit()
    async with sessions() as writer:
        writer.add(_user(2))
        await writer.flush()
        assert await asyncio.wait_for(_count(engine), timeout=2) == 1
        await writer.commit()
    assert await _count(engine) == 2


async def test_lock_held_by_another_connection_does_not_block_the_loop(
    engine: AsyncEngine, database_url: str
) -> None:
    """A lock held outside this engine (another process, say) is waited for off the loop."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's file lock; PostgreSQL locks rows, tested by the race tests")
    path = make_url(database_url).database
    assert path
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
        other.execute("INSERT INTO app_user (id, first_name, locale, created_at) "
                      "VALUES (9, 'other', 'en', '2026-11-28 12:00:00')")

        async def write() -> None:
            async with db.sessionmaker(engine)() as session:
                session.add(_user(1))
                await session.commit()

        task = asyncio.create_task(write())
        await _yield_to_others()
        assert not task.done()  # waiting on aiosqlite's thread; this coroutine still runs
        other.execute("COMMIT")
        await asyncio.wait_for(task, timeout=10)
    finally:
        other.close()
    assert await _count(engine) == 2


async def test_busy_timeout_is_zero_on_the_loop(engine: AsyncEngine) -> None:
    """The pragma the inline path relies on (a regression would block the loop on a lock)."""
    _fast_path_only(engine)
    async with engine.connect() as conn:
        timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
    assert (timeout, mode) == (0, "wal")


async def test_wal_is_checkpointed_off_the_loop(engine: AsyncEngine) -> None:
    """No checkpoint inside a COMMIT (it runs on the loop); one on a thread every N commits."""
    _fast_path_only(engine)
    checkpointer = sqlite_fast.checkpointer_of(engine)
    assert checkpointer is not None
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one() == 0
    sessions = db.sessionmaker(engine)
    before = checkpointer.checkpoints
    for user_id in range(1, sqlite_fast.CHECKPOINT_EVERY + 1):
        async with sessions() as session:
            session.add(_user(user_id))
            await session.commit()
    assert checkpointer.thread is not None
    checkpointer.thread.join(timeout=10)
    assert checkpointer.checkpoints == before + 1
    assert await _count(engine) == sqlite_fast.CHECKPOINT_EVERY


# --- PostgreSQL: connections lost while pooled ------------------------------------------------


async def _kill_pooled_connections(engine: AsyncEngine) -> int:
    """End every other server connection to this database, as a server restart would."""
    killer = create_async_engine(engine.url, poolclass=NullPool)
    try:
        async with killer.connect() as conn:
            result = await conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            return int(result.scalar_one())
    finally:
        await killer.dispose()


async def test_connection_lost_while_idle_is_replaced_before_use(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection idle for PING_AFTER_IDLE_S is pinged at checkout; a dead one is
    replaced, with the rest of the pool, before the update's first statement."""
    if engine.dialect.name == "sqlite":
        pytest.skip("PostgreSQL's connection pool (SQLite has no server to lose)")
    assert await _count(engine) == 0  # a connection now waits in the pool
    assert await _kill_pooled_connections(engine) >= 1
    later = time.monotonic() + db.PING_AFTER_IDLE_S + 1
    monkeypatch.setattr(db, "_now", lambda: later)  # as if it had sat unused since
    async with db.sessionmaker(engine)() as session:
        session.add(_user(1))
        await session.commit()
    assert await _count(engine) == 1


async def test_connection_lost_while_busy_costs_one_statement(engine: AsyncEngine) -> None:
    """Within the idle window there is no ping: a connection killed meanwhile fails the next
    statement, which replaces the pool, and the one after it works."""
    if engine.dialect.name == "sqlite":
        pytest.skip("PostgreSQL's connection pool (SQLite has no server to lose)")
    assert await _count(engine) == 0
    assert await _kill_pooled_connections(engine) >= 1
    with pytest.raises(DBAPIError) as lost:
        await _count(engine)
    assert lost.value.connection_invalidated
    assert await _count(engine) == 0


# --- savepoints (session.begin_nested) ----------------------------------------------------------

PHONE = "+8613800138000"


async def _users(engine: AsyncEngine) -> list[int]:
    async with db.sessionmaker(engine)() as session:
        return list((await session.exec(select(User.id).order_by(User.id))).all())


async def test_failed_flush_in_a_savepoint_keeps_the_outer_write(engine: AsyncEngine) -> None:
    """A flush that fails inside begin_nested rolls back the savepoint only: the outer
    transaction's earlier write survives and commits."""
    sessions = db.sessionmaker(engine)
    async with sessions() as setup:
        setup.add(User(id=9, first_name="u9", locale="en", phone=PHONE, created_at=NOW))
        await setup.commit()
    async with sessions() as session:
        session.add(_user(1))
        await session.flush()
        with pytest.raises(IntegrityError):
            async with session.begin_nested():
                session.add(User(id=2, first_name="u2", locale="en", phone=PHONE, created_at=NOW))
                await session.flush()  # the phone is taken: the savepoint is rolled back
        assert session.in_transaction()
        session.add(_user(3))
        await session.commit()
    assert await _users(engine) == [1, 3, 9]


async def test_savepoint_as_the_first_statement_stays_inside_the_transaction(
    engine: AsyncEngine,
) -> None:
    """begin_nested before anything was written: releasing the savepoint does not commit, so
    the outer rollback takes its writes back (pysqlite alone would have let RELEASE commit)."""
    async with db.sessionmaker(engine)() as session:
        await session.exec(select(User.id))  # a read first, as a handler does
        async with session.begin_nested():
            session.add(_user(1))
        assert await session.get(User, 1) is not None
        await session.rollback()
    assert await _users(engine) == []


async def test_failed_savepoint_as_the_first_statement_keeps_the_transaction(
    engine: AsyncEngine,
) -> None:
    """begin_nested first, its flush fails: the session's transaction goes on and commits what
    it writes afterwards."""
    sessions = db.sessionmaker(engine)
    async with sessions() as setup:
        setup.add(User(id=9, first_name="u9", locale="en", phone=PHONE, created_at=NOW))
        await setup.commit()
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            async with session.begin_nested():
                session.add(User(id=2, first_name="u2", locale="en", phone=PHONE, created_at=NOW))
        session.add(_user(1))
        await session.commit()
    assert await _users(engine) == [1, 9]


async def test_savepoint_waits_off_the_loop_for_a_lock_held_elsewhere(
    engine: AsyncEngine, database_url: str
) -> None:
    """The transaction a savepoint opens on SQLite takes the write lock: held by another
    connection, it is waited for (not refused), and the loop runs on meanwhile."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's file lock")
    path = make_url(database_url).database
    assert path
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")

        async def nested_write() -> None:
            async with db.sessionmaker(engine)() as session:
                async with session.begin_nested():
                    session.add(_user(1))
                await session.commit()

        task = asyncio.create_task(nested_write())
        await _yield_to_others()
        assert not task.done()
        other.execute("COMMIT")
        await asyncio.wait_for(task, timeout=10)
    finally:
        other.close()
    assert await _users(engine) == [1]


# --- the fast path's footing in aiosqlite ---------------------------------------------------


async def test_aiosqlite_still_has_the_internals_the_fast_path_uses(database_url: str) -> None:
    """bot/sqlite_fast.py subclasses aiosqlite.Connection and uses its private ``_conn``,
    ``_execute`` and ``_thread``: this fails, naming what changed, when an aiosqlite release
    moves them (the pin in pyproject.toml may be widened only once it passes)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("aiosqlite")
    missing = sqlite_fast.aiosqlite_mismatches()
    assert not missing, (
        f"bot/sqlite_fast.py builds on aiosqlite {aiosqlite.__version__} internals that are not "
        "as it expects: " + "; ".join(missing)
        + ". Adapt bot/sqlite_fast.py (or drop the fast path) before widening the aiosqlite pin."
    )
    engine = db.create_engine(database_url)
    try:
        assert sqlite_fast.installed(engine)
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert type(driver).__name__ == "_OneTripConnection", (
                f"SQLAlchemy's aiosqlite adapter no longer connects through bot/sqlite_fast.py's "
                f"do_connect listener (got {type(driver)!r})")
            loop_thread = threading.get_ident()
            # _conn is the sqlite3 connection; call() runs on this thread, _execute on aiosqlite's
            assert isinstance(driver._conn, sqlite3.Connection)
            assert await driver.call(lambda _conn: threading.get_ident()) == loop_thread
            assert await driver._execute(threading.get_ident) != loop_thread
            assert driver._thread.daemon and driver._thread.is_alive()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("change", ["_execute", "_conn", "__init__"])
async def test_a_changed_aiosqlite_internal_is_named_and_plain_aiosqlite_used(
    change: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What the check above reports when aiosqlite changes, and that the bot then runs on
    plain aiosqlite (with a warning) instead of breaking."""
    if not database_url.startswith("sqlite"):
        pytest.skip("aiosqlite")
    try:
        with pytest.MonkeyPatch.context() as patch:
            if change == "__init__":
                def renamed(self: object, factory: object, chunk: int = 64) -> None: ...
                patch.setattr(aiosqlite.Connection, "__init__", renamed)
            else:
                patch.delattr(aiosqlite.Connection, change)
            sqlite_fast.aiosqlite_mismatches.cache_clear()
            missing = sqlite_fast.aiosqlite_mismatches()
            assert len(missing) == 1 and f"aiosqlite.Connection.{change}" in missing[0]
            engine = db.create_engine(database_url)
        assert not sqlite_fast.installed(engine)
        assert f"SQLite fast path off, plain aiosqlite instead: {missing[0]}" in caplog.text
        async with db.sessionmaker(engine)() as session:
            session.add(_user(1))
            await session.commit()
        assert await _count(engine) == 1
        await engine.dispose()
    finally:
        sqlite_fast.aiosqlite_mismatches.cache_clear()
