"""Relay throughput and latency (issue 14), printed, not a test.

``python -m benchmarks.relay [--customers N] [--rounds R] [--agents A]``: N customers open an
entry link of one shop with A agents online; then, R rounds, every customer sends a text and
their agent answers it by replying to the relayed copy — all through the real Application
offline (the local Bot API in memory, SQLite in a temporary folder). Timed: only
``process_update`` of each relayed message (customer → agent and agent → customer). Against it,
in the same run, a bare python-telegram-bot relay bot (one handler copying each message to a
fixed chat) driven the same way. Prints messages/s of both, the ratio, p50/p99 per relayed
message, against the targets ratio >= 0.5 and p99 <= 5 ms.

Then the floor: the same bare bot, its handler also committing one row through the bot's own
session and engine (the least a relay that keeps each message for reply routing and the
history can write). Its ratio to the bare bot is the most any such relay can reach here.

The flood limit (20 messages a minute per customer) is kept: the manual clock moves 3.5 s a
round, so no message is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from benchmarks.common import (
    TOKEN,
    QueryCounter,
    percentile,
    production_settings,
    quiet_logging,
)
from bot import db
from bot.app import build_application, freeze_startup_heap
from bot.localapi import LocalBotApi, LocalRequest
from handlers.service_relay import NAMES_FOR
from models.clock import ManualClock
from tests.harness import Harness, Person
from tests.service_chat_world import add_entry
from tests.support.domain import add_sub_account
from tests.support.flows import make_owner, onboard
from tests.support.people import OWNER

SINK = 999_000_001
NAMES_FOR_S = NAMES_FOR.total_seconds()


class Timed(Harness):
    """The harness, timing ``process_update`` of the updates fed while ``recording``."""

    def __init__(self, app: Application, api: LocalBotApi, clock: ManualClock) -> None:  # type: ignore[type-arg]
        super().__init__(app, api, clock)
        self.recording = False
        self.times: list[float] = []
        self.cpu: list[float] = []  # this process's CPU time for the same updates

    async def feed(self, payload: dict[str, Any]) -> list[Any]:
        payload = {"update_id": next(self._update_ids), **payload}
        update = Update.de_json(payload, self.app.bot)
        start, cpu = time.perf_counter(), time.process_time()
        await self.app.process_update(update)
        if self.recording:
            self.times.append(time.perf_counter() - start)
            self.cpu.append(time.process_time() - cpu)
        return []


def figures(name: str, times: list[float], wall: float, cpu: list[float]
            ) -> tuple[float, float, float]:
    rate = len(times) / wall if wall else 0.0
    p50, p99 = percentile(times, 50) * 1000, percentile(times, 99) * 1000
    print(f"  {name:<11} {len(times):>6} messages  {rate:>8.0f} msg/s  "
          f"p50 {p50:.2f} ms  p99 {p99:.2f} ms   CPU p50 {percentile(cpu, 50) * 1000:.2f} / "
          f"p99 {percentile(cpu, 99) * 1000:.2f} ms")
    return rate, p50, p99


async def run_ours(customers: int, rounds: int, agents: int
                   ) -> tuple[list[float], float, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="relay_bench_"))
    url = f"sqlite+aiosqlite:///{folder / 'bot.db'}"
    await db.migrate(url)
    api, clock = LocalBotApi(), ManualClock()
    engine = db.create_engine(url)
    app = build_application(production_settings(url), engine=engine, clock=clock,
                            request=LocalRequest(api), get_updates_request=LocalRequest(api),
                            rate_limit=False, code_secret="bench")
    await app.initialize()
    await app.start()
    h = Timed(app, api, clock)
    try:
        await make_owner(h)
        staff = [Person(40_000_000 + i, f"Agent{i}") for i in range(agents)]
        for i, who in enumerate(staff):
            await onboard(h, who, f"+861390000{i:04d}")
            await add_sub_account(h, holder=who, phone=f"+861390000{i:04d}", role="Service",
                                  modules=("home", "customer_service"), im=True)
        async with app.bot_data["deps"].sessions() as session:
            from models.shops import owned_shop

            shop = await owned_shop(session, OWNER.id)
        assert shop is not None and shop.id is not None
        from tests.service_chat_world import Shop

        world = Shop(shop.id)
        from handlers.service_relay import service_policy
        from models.service.settings import update_settings

        async with app.bot_data["deps"].sessions() as session:
            await update_settings(session, service_policy(app.bot_data["deps"]),
                                  shop_id=shop.id, actor_id=OWNER.id, now=clock.now(),
                                  default_cap=100)
            await session.commit()
        for who in staff:
            await h.command(who, "/online")
        token = await add_entry(h, world, "Website")
        people = [Person(50_000_000 + i, f"Customer{i}") for i in range(customers)]
        for who in people:
            await h.command(who, f"/start {token}")
        agent_of = {}
        for who in people:
            from models.service.tables import Agent
            from tests.service_chat_world import conversation_of

            conversation = await conversation_of(h, who)
            async with app.bot_data["deps"].sessions() as session:
                agent = await session.get(Agent, conversation.agent_id or 0)
            assert agent is not None
            agent_of[who.id] = next(s for s in staff if s.id == agent.user_id)
        freeze_startup_heap()
        wall = 0.0
        counter = QueryCounter().attach(engine)  # statements of both sides, counted apart
        asked = answered = 0
        for n in range(rounds):
            clock.advance(3.5)
            for who in people:
                h.recording = True
                start = time.perf_counter()
                before = counter.statements
                await h.text(who, f"question {n}")
                asked += counter.statements - before
                agent = agent_of[who.id]
                copied = api.chat(agent.id)[-1]["message_id"]
                before = counter.statements
                await h.send(agent, text=f"answer {n}", reply_to=copied)
                answered += counter.statements - before
                wall += time.perf_counter() - start
                h.recording = False
        commits = counter.commits
        counter.detach()
        pairs = rounds * customers
        print(f"  statements per customer message {asked / pairs:.1f}, per agent reply "
              f"{answered / pairs:.1f}, COMMITs per message {commits / (2 * pairs):.2f} (a header's "
              f"names are read again once a minute: {NAMES_FOR_S:.0f} s)")
        relayed = sum(1 for c in api.methods("copyMessage"))
        if relayed < 2 * rounds * customers:
            raise RuntimeError(f"only {relayed} messages were relayed")
        return h.times, wall, h.cpu
    finally:
        await app.stop()
        await app.shutdown()
        await engine.dispose()


async def _copy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None
    await context.bot.copy_message(SINK, message.chat_id, message.message_id)


def _copy_and_commit(sessions: Any) -> Any:
    """The bare relay's handler, also committing one row per message (the floor)."""
    insert = text("INSERT INTO relayed (chat_id, message_id) VALUES (:chat, :message)")

    async def copy_and_commit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        async with sessions() as session:
            await session.exec(insert, params={"chat": message.chat_id,  # type: ignore[call-overload]
                                               "message": message.message_id})
            await session.commit()
        await context.bot.copy_message(SINK, message.chat_id, message.message_id)

    return copy_and_commit


async def run_bare(messages: int, *, commit: bool = False
                   ) -> tuple[list[float], float, list[float]]:
    api, clock = LocalBotApi(), ManualClock()
    app = (ApplicationBuilder().token(TOKEN).request(LocalRequest(api))
           .get_updates_request(LocalRequest(api)).build())
    engine = None
    if commit:
        folder = Path(tempfile.mkdtemp(prefix="relay_floor_"))
        engine = db.create_engine(f"sqlite+aiosqlite:///{folder / 'floor.db'}")
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE relayed (id INTEGER PRIMARY KEY, "
                                    "chat_id BIGINT NOT NULL, message_id BIGINT NOT NULL)"))
        app.add_handler(MessageHandler(filters.ALL, _copy_and_commit(db.sessionmaker(engine))))
    else:
        app.add_handler(MessageHandler(filters.ALL, _copy))
    await app.initialize()
    await app.start()
    h = Timed(app, api, clock)
    person = Person(60_000_000, "Relay")
    try:
        for n in range(100):
            await h.text(person, f"warm {n}")
        h.recording = True
        wall = time.perf_counter()
        for n in range(messages):
            await h.text(person, f"hello {n}")
        wall = time.perf_counter() - wall
    finally:
        await app.stop()
        await app.shutdown()
        if engine is not None:
            await engine.dispose()
    return h.times, wall, h.cpu


async def main(args: argparse.Namespace) -> int:
    quiet_logging()
    print(f"relay: {args.customers} customers, {args.agents} agents, {args.rounds} rounds "
          "(each a customer message and the agent's reply), SQLite")
    ours, ours_wall, ours_cpu = await run_ours(args.customers, args.rounds, args.agents)
    bare, bare_wall, bare_cpu = await run_bare(len(ours))
    floor, floor_wall, floor_cpu = await run_bare(len(ours), commit=True)
    rate, p50, p99 = figures("ours", ours, ours_wall, ours_cpu)
    bare_rate, _b50, _b99 = figures("bare PTB", bare, bare_wall, bare_cpu)
    floor_rate, _f50, _f99 = figures("bare + row", floor, floor_wall, floor_cpu)
    ratio = rate / bare_rate if bare_rate else 0.0
    bound = floor_rate / bare_rate if bare_rate else 0.0
    met = ratio >= 0.5 and p99 <= 5.0
    print(f"relay ({len(ours)} relayed messages): ours {rate:.0f} msg/s vs bare {bare_rate:.0f} "
          f"msg/s, ratio {ratio:.2f} (one commit a message alone: {bound:.2f}); p50 {p50:.2f} "
          f"/ p99 {p99:.2f} ms — targets ratio >= 0.5, p99 <= 5 ms: "
          f"{'met' if met else 'MISSED'}")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--agents", type=int, default=10)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    return asyncio.run(main(parse(argv)))


if __name__ == "__main__":
    sys.exit(run())
