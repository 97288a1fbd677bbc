"""Several processes (SPEC §10): the onboarding flow on PostgreSQL with 1 process handling
updates one at a time, 1 process handling them concurrently, and 2 processes behind a
round-robin poster — updates/s and p99 side by side in one run.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m benchmarks.scaleout [--users N]

Each run is real ``subaccount-bot run`` processes in webhook mode against the local Bot API
(``bot.localapi``) on a database of its own. ``--users`` people (default 40) each go through
/start → share contact → /newshop → shop name, all people at once, each waiting for the bot's
answer before the next step (as a person would). Latency: from posting an update to the bot's
first message in that chat after it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot import db
from bot.localapi import LocalBotApiServer
from tests.fake_server import free_port, running_bot, wait_listening
from tests.support import db as scratch_db

SECRET = "benchmark-secret"
CODE_SECRET = "benchmark-code-secret-0123456789"


@dataclass(frozen=True)
class Person:
    id: int
    first_name: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": False, "first_name": self.first_name,
                "language_code": "en"}


def _config(port: int, url: str, concurrent: int, processes: int) -> dict[str, Any]:
    return {
        "telegram": {"mode": "webhook", "processes": processes, "rate_limit": False,
                     "concurrent_updates": concurrent, "webhook": {
                         "listen": "127.0.0.1", "port": port, "url": f"http://127.0.0.1:{port}",
                         "path": "hook", "secret_token": SECRET}},
        "database": {"url": url},
        "verification": {"code_secret": CODE_SECRET},
        "logging": {"level": "WARNING"},
    }


@contextlib.asynccontextmanager
async def _database(base_url: str) -> AsyncIterator[str]:
    base = scratch_db.server_url(base_url)
    name = scratch_db.scratch_name("subaccount_bench_scaleout")
    await scratch_db.admin(base, f"CREATE DATABASE {name}")
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        await db.migrate(url)
        yield url
    finally:
        await scratch_db.admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _person(server: LocalBotApiServer, client: httpx.AsyncClient, ports: list[int],
                  turn: list[int], who: Person, latencies: list[float]) -> None:
    steps: list[dict[str, Any]] = [
        {"text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]},
        {"contact": {"phone_number": f"+86138{who.id:08d}", "first_name": who.first_name,
                     "user_id": who.id}},
        {"text": "/newshop", "entities": [{"type": "bot_command", "offset": 0, "length": 8}]},
        {"text": f"Shop {who.id}"},
    ]
    for extra in steps:
        body = server.message(who, **extra)
        body["update_id"] = 1_000_000 + turn[0]
        port = ports[turn[0] % len(ports)]
        turn[0] += 1
        mark = server.mark()
        started = time.perf_counter()
        answer = await client.post(f"http://127.0.0.1:{port}/hook", json=body,
                                   headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert answer.status_code == 200
        await server.wait_for(lambda calls, m=mark: any(
            c.method == "sendMessage" and c.params.get("chat_id") == who.id
            for c in calls[m:]), within=60)
        latencies.append(time.perf_counter() - started)


async def _one(base_url: str, users: int, concurrent: int, processes: int) -> tuple[float, float]:
    async with _database(base_url) as url, LocalBotApiServer() as server:
        tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
        ports = [free_port() for _ in range(processes)]
        async with contextlib.AsyncExitStack() as stack:
            for index, port in enumerate(ports):
                await stack.enter_async_context(running_bot(
                    tmp / str(index), server, _config(port, url, concurrent, processes)))
                await wait_listening(port)
            latencies: list[float] = []
            turn = [0]
            people = [Person(50_000 + n, f"P{n}") for n in range(users)]
            started = time.perf_counter()
            async with httpx.AsyncClient(timeout=30) as client:
                await asyncio.gather(*(_person(server, client, ports, turn, who, latencies)
                                       for who in people))
            elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    return len(latencies) / elapsed, p99 * 1000


async def main(users: int) -> int:
    base_url = os.environ.get("TEST_DATABASE_URL", "")
    if not base_url:
        print("needs TEST_DATABASE_URL (PostgreSQL)", file=sys.stderr)
        return 2
    print(f"onboarding flow, {users} people at once, 4 updates each, PostgreSQL, webhook mode")
    print(f"{'setup':<32} {'updates/s':>10} {'p99 ms':>8}")
    results = {}
    for label, concurrent, processes in (("1 process, sequential", 1, 1),
                                         ("1 process, concurrent (32)", 32, 1),
                                         ("2 processes, concurrent (32)", 32, 2)):
        rate, p99 = await _one(base_url, users, concurrent, processes)
        results[label] = rate
        print(f"{label:<32} {rate:>10.1f} {p99:>8.0f}", flush=True)
    print("median updates/s:", round(statistics.median(results.values()), 1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--users", type=int, default=40)
    sys.exit(asyncio.run(main(parser.parse_args().users)))
