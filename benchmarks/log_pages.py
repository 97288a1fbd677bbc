"""/log at scale: opening the owner's activity log of a shop with ~200,000 audit events.

    .venv/bin/python -m benchmarks.log_pages [--events N] [--repeat R] [--no-sqlite]
                                             [--no-postgres]

One shop (Tea House, built through the real Application offline: the owner onboarded, Hank added
as a sub-account with a code) then filled, in one Core ``INSERT`` per 10,000 rows, with ``N``
audit events over the last 300 days: per-chat customer-service events (about 90 %: opened,
assigned, ended, rated, some transferred or too slow), agents' status changes (about 4 %), and
the rest account changes of Hank and of 40 other sub-accounts, role changes and codes (some to
phones that never became an account). Then, through the Application (``Harness``: an update in,
the bot's reply out), each of

* ``/log``          — the command: page 1 of the log as the owner first sees it;
* ``page 50``       — the "Older ▶️" button's callback for page 50 (``lg:pg:49``);
* ``page 50 chats`` — page 50 with the per-chat events shown (``lg:v:49:0:0:3``; before they
  could be hidden, the same callback showed page 50 of everything);
* ``account Hank``  — the account filter's callback for Hank, page 1;

``R`` times in turn, then ``export all`` (📤 of every event, chats and codes included:
``lg:ex:0:0:3``) once, and reports per step the median wall time, the process's CPU time, the
statements sent, the audit rows loaded as ORM objects (the mapper's ``load`` event) and, in one
more pass under ``tracemalloc``, the peak of Python memory the step allocated. Not a test: the
figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from benchmarks.common import QueryCounter, production_settings, quiet_logging
from bot import db
from bot.localapi import LocalBotApi
from models.clock import ManualClock
from models.phones import mask_phone
from models.tables import AuditEvent, SubAccount
from tests.harness import Harness
from tests.support import db as scratch_db
from tests.support.app import start_harness, stop_harness
from tests.support.flows import setup_hank
from tests.support.people import HOLDER_PHONE, OWNER

AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
START = datetime(2027, 3, 1, 9, 0, 0)
BATCH = 10_000


@dataclass
class Step:
    name: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    statements: int = 0
    loaded: int = 0
    peak_mb: float = 0.0
    title: str = ""


def _events(shop_id: int, owner_id: int, hank_id: int, n: int) -> list[dict[str, Any]]:
    """``n`` audit rows of a busy shop, oldest first (seeded: every run the same)."""
    rng = random.Random(5)
    hank = mask_phone(HOLDER_PHONE)
    others = [(1000 + i, mask_phone(f"+861350013{i:04d}")) for i in range(40)]
    strays = [mask_phone(f"+861330013{i:04d}") for i in range(30)]
    rows: list[dict[str, Any]] = []
    moment = START - timedelta(days=300)
    step = timedelta(days=300) / n
    conversation = 0

    def add(action: str, object_type: str, object_id: object, actor: int | None,
            **detail: Any) -> None:
        rows.append({"shop_id": shop_id, "actor_id": actor, "action": action,
                     "object_type": object_type, "object_id": str(object_id),
                     "detail": detail, "created_at": moment + step * len(rows)})

    while len(rows) < n:
        roll = rng.random()
        if roll < 0.90:  # one chat: 3–6 events
            conversation += 1
            agent = rng.randrange(10)
            add("service.opened", "conversation", conversation, 900_000 + conversation,
                entry=1)
            add("service.assigned", "conversation", conversation, None, agent=agent,
                via="group", previous=None)
            if rng.random() < 0.1:
                add("service.transferred", "conversation", conversation, agent,
                    before=agent, after=(agent + 1) % 10, group=None)
            if rng.random() < 0.05:
                add("service.breach", "conversation", conversation, None, agent=agent,
                    rerouted=False)
            add("service.ended", "conversation", conversation, agent, by="agent")
            if rng.random() < 0.4:
                add("service.rated", "conversation", conversation, 900_000 + conversation,
                    score=rng.randint(1, 5))
        elif roll < 0.965:
            add("service.status", "agent", rng.randrange(10), owner_id,
                before="online", after=rng.choice(("break", "offline", "online")))
        elif roll < 0.975:
            add("account.im", "account", hank_id, owner_id, phone=hank, nickname="Hank",
                im=rng.random() < 0.5)
        elif roll < 0.99:
            account, phone = rng.choice(others)
            add("account.im", "account", account, owner_id, phone=phone,
                nickname=f"Staff {account}", im=rng.random() < 0.5)
        elif roll < 0.995:
            add("role.described", "role", rng.randrange(1, 4), owner_id, name="Operations")
        else:
            phone = rng.choice(strays)
            code = rng.randrange(10**6)
            add("code.issued", "code", code, owner_id, phone=phone, delivery="invite")
            add("code.expired", "code", code, None, phone=phone)
    return rows[:n]


async def fill(h: Harness, n: int) -> tuple[int, int]:
    """The shop and Hank through the chat, then ``n`` events in bulk; (shop id, Hank's id)."""
    hank_id = await setup_hank(h)
    sessions = h.app.bot_data["deps"].sessions
    async with sessions() as session:
        hank = await session.get(SubAccount, hank_id)
        assert hank is not None
        shop_id = hank.shop_id
        rows = _events(shop_id, OWNER.id, hank_id, n)
        conn = await session.connection()
        for start in range(0, len(rows), BATCH):
            await conn.execute(insert(AUDIT), rows[start:start + BATCH])
        await session.commit()
    return shop_id, hank_id


async def measure(url: str, events: int, repeat: int) -> list[Step]:
    await db.migrate(url)
    settings = production_settings(url)
    engine = db.create_engine(url)
    api = LocalBotApi()
    h = await start_harness(settings, engine, api, ManualClock(START))
    try:
        t0 = time.perf_counter()
        shop_id, hank_id = await fill(h, events)
        if engine.dialect.name == "postgresql":  # as autovacuum would after such a load
            async with engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
                await conn.commit()
        async with h.app.bot_data["deps"].sessions() as session:
            total = (await session.exec(select(func.count()).select_from(AuditEvent).where(
                col(AuditEvent.shop_id) == shop_id))).one()
        print(f"    built in {time.perf_counter() - t0:.1f} s: {total} audit events in the shop")
        steps: list[tuple[Step, Callable[[], Awaitable[Any]]]] = [
            (Step("/log"), lambda: h.command(OWNER, "/log")),
            (Step("page 50"), lambda: h.press(OWNER, "lg:pg:49")),
            (Step("page 50 chats"), lambda: h.press(OWNER, "lg:v:49:0:0:3")),
            (Step("account Hank"), lambda: h.press(OWNER, f"lg:v:0:{hank_id}:0:1")),
        ]
        export = (Step("export all"), lambda: h.press(OWNER, "lg:ex:0:0:3"))
        counter = QueryCounter().attach(engine)
        loaded = [0]

        def on_load(_target: Any, _context: Any) -> None:
            loaded[0] += 1

        event.listen(AuditEvent, "load", on_load)
        try:
            for n in range(repeat + 2):  # the first round warms up
                for step, run in steps if n <= repeat else [export]:
                    before, rows = counter.statements, loaded[0]
                    w0, c0 = time.perf_counter(), time.process_time()
                    await run()
                    step.walls.append(time.perf_counter() - w0)
                    step.cpus.append(time.process_time() - c0)
                    step.statements, step.loaded = counter.statements - before, loaded[0] - rows
                    shown = h.last(OWNER)
                    step.title = (_caption(h, shown.message_id) if step is export[0] else
                                  shown.text.split("\n\n")[0].replace("\n", " / "))
            steps.append(export)
            for step, run in steps:
                tracemalloc.start()
                await run()
                step.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
        finally:
            event.remove(AuditEvent, "load", on_load)
            counter.detach()
        for step, _ in steps[:-1]:
            del step.walls[0], step.cpus[0]
        return [step for step, _ in steps]
    finally:
        await stop_harness(h)
        await engine.dispose()


def _caption(h: Harness, message_id: int) -> str:
    """A document's caption, and the size of its file."""
    message = h.api.messages[OWNER.id][message_id]
    if "document" not in message:
        return "NO DOCUMENT: " + str(message.get("text", "")).replace("\n", " / ")
    size = len(h.api.files[message["document"]["file_id"]].data)
    return f"{message.get('caption', '')} ({size / 2**20:.1f} MiB)".replace("\n", " / ")


def report(steps: list[Step]) -> None:
    print(f"    {'step':<14} {'median ms':>10} {'CPU ms':>8} {'statements':>10} "
          f"{'rows loaded':>11} {'peak MiB':>9}")
    for s in steps:
        print(f"    {s.name:<14} {statistics.median(s.walls) * 1000:>10.1f} "
              f"{statistics.median(s.cpus) * 1000:>8.1f} {s.statements:>10} {s.loaded:>11} "
              f"{s.peak_mb:>9.1f}")
    for s in steps:
        print(f"    {s.name:<14} {s.title}")


async def on_postgres(base_url: str, events: int, repeat: int) -> None:
    base = scratch_db.server_url(base_url)
    name = scratch_db.scratch_name("bench_log")
    print(f"2. PostgreSQL (database {name} beside {base.database}, dropped after)")
    try:
        await scratch_db.admin(base, f"CREATE DATABASE {name}")
    except DBAPIError as exc:
        print(f"    skipped: cannot create a database ({str(exc).splitlines()[0]})")
        return
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        report(await measure(url, events, repeat))
    finally:
        await scratch_db.admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def main(args: argparse.Namespace) -> int:
    quiet_logging()
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # jobs late while a step runs
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"/log at scale — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {load}; {args.events} events, median of {args.repeat}")
    if args.no_sqlite:
        print("1. SQLite: skipped (--no-sqlite)")
    else:
        with tempfile.TemporaryDirectory(prefix="log-bench-") as workdir:
            print("1. SQLite (a file in WAL mode)")
            report(await measure(f"sqlite+aiosqlite:///{Path(workdir) / 'log.db'}",
                                 args.events, args.repeat))
    pg_url = os.environ.get("TEST_DATABASE_URL", "")
    if pg_url and not args.no_postgres:
        await on_postgres(pg_url, args.events, args.repeat)
    else:
        print("2. PostgreSQL: skipped (set TEST_DATABASE_URL, e.g. "
              "postgresql://postgres@127.0.0.1:5432/test)")
    return 0


def run() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.log_pages",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="audit events in the shop")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds of each step")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    return asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(run())
