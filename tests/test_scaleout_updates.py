"""Concurrent updates, one user at a time (SPEC §10): ``bot.updates.PerUserUpdateProcessor``.

Handlers are made slow with events, never with sleeps: an update "runs" until the test lets
it finish, so overlap and order are facts, not timings.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes, TypeHandler

from bot import db
from bot.app import build_application
from bot.config import load_settings
from bot.localapi import LocalBotApi, LocalRequest
from bot.updates import BACKLOG, PerUserUpdateProcessor, PgUserLocks, flood_limiter
from models.claims import lock_key
from models.clock import ManualClock
from tests.support.db import requires_pg

ALICE, BOB, CAROL = 501, 502, 503


def update(update_id: int, user_id: int) -> Update:
    return Update.de_json({"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_700_000_000, "text": f"#{update_id}",
        "chat": {"id": user_id, "type": "private", "first_name": "U"},
        "from": {"id": user_id, "is_bot": False, "first_name": "U"},
    }}, None)


class Script:
    """Handlers that record when they start and end and wait for the test's word to end."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.gates: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def handler(self, update_id: int) -> Callable[[], Awaitable[None]]:
        self.gates[update_id].clear()  # made now, so that the test can open it before it runs

        async def run() -> None:
            self.log.append(("start", update_id))
            self.started[update_id].set()
            await self.gates[update_id].wait()
            self.log.append(("end", update_id))

        return run

    def running(self) -> set[int]:
        started = {u for kind, u in self.log if kind == "start"}
        return started - {u for kind, u in self.log if kind == "end"}


async def feed(processor: PerUserUpdateProcessor, script: Script,
               items: list[tuple[int, int]]) -> list[asyncio.Task[None]]:
    """Hand the updates to the processor in this order, one task each (as PTB does)."""
    tasks = [asyncio.create_task(processor.process_update(update(uid, user), script.handler(uid)()))
             for uid, user in items]
    await asyncio.sleep(0)  # let every task reach its turn or its handler
    return tasks


async def test_one_users_updates_run_in_arrival_order_while_others_overlap() -> None:
    processor = PerUserUpdateProcessor(8)
    script = Script()
    tasks = await feed(processor, script, [(1, ALICE), (2, BOB), (3, ALICE), (4, ALICE),
                                           (5, CAROL)])
    await asyncio.gather(*(script.started[u].wait() for u in (1, 2, 5)))
    assert script.running() == {1, 2, 5}  # Alice's first, Bob's and Carol's at the same time
    assert processor.waiting_users == 3
    # Alice's later updates wait even when released first
    script.gates[4].set()
    script.gates[3].set()
    await asyncio.sleep(0)
    assert script.running() == {1, 2, 5}
    script.gates[1].set()
    await asyncio.gather(*tasks[2:4])
    alice = [entry for entry in script.log if entry[1] in (1, 3, 4)]
    assert alice == [("start", 1), ("end", 1), ("start", 3), ("end", 3), ("start", 4), ("end", 4)]
    script.gates[2].set()
    script.gates[5].set()
    await asyncio.gather(*tasks)
    assert processor.waiting_users == 0  # turns are dropped when idle


async def test_the_bound_holds_and_a_busy_user_takes_one_slot_only() -> None:
    processor = PerUserUpdateProcessor(2)
    assert processor.max_concurrent_updates == 2
    script = Script()
    # ten updates of Alice first: they must not keep Bob out of the second slot
    items = [(i, ALICE) for i in range(1, 11)] + [(11, BOB), (12, CAROL)]
    tasks = await feed(processor, script, items)
    await asyncio.gather(script.started[1].wait(), script.started[11].wait())
    assert script.running() == {1, 11}  # Carol waits for a slot, not for Alice
    script.gates[11].set()
    await script.started[12].wait()
    assert script.running() == {1, 12}
    for gate in script.gates.values():
        gate.set()
    await asyncio.gather(*tasks)
    assert [u for kind, u in script.log if kind == "start" and u <= 10] == list(range(1, 11))
    assert processor.waiting_users == 0


async def test_an_update_cancelled_before_its_turn_is_closed_not_leaked() -> None:
    processor = PerUserUpdateProcessor(4)
    script = Script()
    tasks = await feed(processor, script, [(1, ALICE), (2, ALICE)])
    await script.started[1].wait()
    tasks[1].cancel()  # shutdown while it waits for Alice's turn
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    script.gates[1].set()
    await tasks[0]
    assert ("start", 2) not in script.log
    assert processor.waiting_users == 0  # and no "coroutine was never awaited" warning


def test_sequential_and_concurrent_settings_reach_the_application() -> None:
    one = PerUserUpdateProcessor(1)
    assert one.max_concurrent_updates == 1  # PTB then awaits each update before the next
    assert PerUserUpdateProcessor(32).max_concurrent_updates == 32
    with pytest.raises(ValueError):
        PerUserUpdateProcessor(0)
    assert BACKLOG > 256
    settings = load_settings(environ={"BOT_TOKEN": "1:x", "DATABASE_URL": "sqlite://"})
    assert settings.telegram.concurrent_updates == 32
    app = build_application(settings, code_secret="x" * 32, rate_limit=True)
    assert isinstance(app.update_processor, PerUserUpdateProcessor)
    assert app.update_processor.max_concurrent_updates == 32


def test_each_process_gets_its_share_of_the_flood_limits() -> None:
    alone, of_four = flood_limiter(1), flood_limiter(4)
    assert alone._base_limiter is not None and of_four._base_limiter is not None
    assert alone._base_limiter.max_rate == 30
    assert of_four._base_limiter.max_rate == 7.5
    assert of_four._group_max_rate == 5


def test_lock_keys_fit_int4() -> None:
    for user_id in (1, 2**31 - 1, 2**31, 2**40 + 7, 2**52 - 1):
        assert -(2**31) <= lock_key(user_id) < 2**31
    assert lock_key(2**40 + 7) != lock_key(2**40 + 8)


# --- two Applications on one PostgreSQL database ----------------------------------------------


@pytest.fixture
async def two_apps(
    pg_migrated: str,
) -> AsyncIterator[tuple[Application, Application, Script]]:  # type: ignore[type-arg]
    settings = load_settings(environ={"BOT_TOKEN": "123456:TEST-TOKEN",
                                      "DATABASE_URL": pg_migrated})
    script = Script()
    apps = []
    for _ in range(2):
        engine = db.create_engine(settings.database.url)
        api = LocalBotApi()
        app = build_application(settings, engine=engine, clock=ManualClock(),
                                request=LocalRequest(api), get_updates_request=LocalRequest(api),
                                rate_limit=False, code_secret="k" * 32)
        app.bot_data["test_engine"] = engine

        async def slow(upd: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
            await script.handler(upd.update_id)()
            raise ApplicationHandlerStop

        app.add_handler(TypeHandler(Update, slow), group=-1)
        await app.initialize()
        await app.start()
        apps.append(app)
    yield apps[0], apps[1], script
    for gate in script.gates.values():
        gate.set()
    for app in apps:
        await app.stop()
        await app.shutdown()
        await app.bot_data["test_engine"].dispose()


async def advisory_waiters(url: str) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        count = (await conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ))).scalar()
    await engine.dispose()
    return int(count or 0)


async def until(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> None:
    """Bounded poll of a condition outside this process's control (PostgreSQL's lock table)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@requires_pg
async def test_two_applications_on_one_database_exclude_each_other_for_one_user(
    pg_migrated: str, two_apps: tuple[Application, Application, Script]  # type: ignore[type-arg]
) -> None:
    first, second, script = two_apps
    await first.update_queue.put(update(1, ALICE))
    await script.started[1].wait()
    await second.update_queue.put(update(2, ALICE))  # the same user on the other process
    await second.update_queue.put(update(3, BOB))
    await script.started[3].wait()  # another user is not held up
    await until(lambda: _equals(advisory_waiters(pg_migrated), 1))  # Alice's 2nd waits in PG
    assert script.running() == {1, 3}
    script.gates[1].set()
    await script.started[2].wait()
    assert script.log.index(("end", 1)) < script.log.index(("start", 2))
    script.gates[2].set()
    script.gates[3].set()


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


@requires_pg
async def test_a_lock_held_by_a_dead_connection_is_released(pg_migrated: str) -> None:
    """kill -9 closes the process's connections; PostgreSQL then drops their locks."""
    locks, other = PgUserLocks(pg_migrated, size=2), PgUserLocks(pg_migrated, size=2)
    try:
        async with locks.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(17001, :k)"), {"k": lock_key(ALICE)})
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            engine = create_async_engine(pg_migrated)
            async with engine.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            await engine.dispose()
            await conn.invalidate()
        async with asyncio.timeout(10), other.hold(ALICE):
            pass
    finally:
        await locks.close()
        await other.close()
