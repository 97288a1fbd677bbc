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

The driver (this process) is also the local Bot API every bot process calls, so it must not be
the bottleneck: one watcher reads the new calls once per change and wakes the person whose chat
got an answer (``Answers``), instead of every waiting person scanning every new call (which
grew as waiters × calls and was the driver's main cost). Each setup also prints the CPU seconds
used by the driver, by each bot process and by the PostgreSQL backends of its database, and the
wall time, and the seconds those processes spent runnable but waiting for a CPU (the run queue,
``/proc/<pid>/schedstat``): with every process on the same two cores, these say whether there
was CPU left to gain.
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


class Answers:
    """Wakes each person when the bot's next message in their chat arrives: one pass over the
    new calls per change of the local Bot API, whatever the number of people waiting."""

    def __init__(self, server: LocalBotApiServer) -> None:
        self.server = server
        self.seen = 0
        #: chat id -> (the index of the first call that counts, the future to finish)
        self.waiting: dict[int, tuple[int, asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def _scan(self, calls: list[Any]) -> bool:
        for index in range(self.seen, len(calls)):
            call = calls[index]
            if call.method != "sendMessage":
                continue
            chat_id = int(call.params.get("chat_id") or 0)
            mark, future = self.waiting.get(chat_id, (0, None))
            if future is not None and index >= mark:
                del self.waiting[chat_id]
                if not future.done():
                    future.set_result(None)
        self.seen = len(calls)
        return False

    def expect(self, chat_id: int) -> asyncio.Future[None]:
        """A future done at the bot's next message to ``chat_id`` (ask before posting)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[chat_id] = (len(self.server.api.calls), future)
        return future

    async def __aenter__(self) -> Answers:
        async def watch() -> None:
            while True:
                with contextlib.suppress(AssertionError):
                    await self.server.wait_for(self._scan, within=3600)

        self._task = asyncio.create_task(watch())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_seconds(pid: int) -> float:
    """Time the main thread of ``pid`` spent runnable but waiting for a CPU (/proc schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def _backend_pids(url: str) -> list[int]:
    """The PostgreSQL server processes serving the database at ``url`` (same machine)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"))
            return [int(r[0]) for r in rows]
    finally:
        await engine.dispose()


async def _person(server: LocalBotApiServer, client: httpx.AsyncClient, ports: list[int],
                  turn: list[int], who: Person, latencies: list[float],
                  answers: Answers) -> None:
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
        answered = answers.expect(who.id)
        started = time.perf_counter()
        answer = await client.post(f"http://127.0.0.1:{port}/hook", json=body,
                                   headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert answer.status_code == 200
        await asyncio.wait_for(answered, 60)
        latencies.append(time.perf_counter() - started)


@dataclass(frozen=True)
class Result:
    rate: float
    p99_ms: float
    wall_s: float
    driver_cpu_s: float
    bot_cpu_s: tuple[float, ...]
    pg_cpu_s: float
    #: seconds the driver, the bot processes and the PG backends waited for a CPU, in all
    runqueue_s: float


async def _one(base_url: str, users: int, concurrent: int, processes: int) -> Result:
    async with _database(base_url) as url, LocalBotApiServer() as server:
        tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
        ports = [free_port() for _ in range(processes)]
        async with contextlib.AsyncExitStack() as stack:
            bots = []
            for index, port in enumerate(ports):
                bots.append(await stack.enter_async_context(running_bot(
                    tmp / str(index), server, _config(port, url, concurrent, processes))))
                await wait_listening(port)
            answers = await stack.enter_async_context(Answers(server))
            latencies: list[float] = []
            turn = [0]
            people = [Person(50_000 + n, f"P{n}") for n in range(users)]
            backends = await _backend_pids(url)
            before = ([_cpu_seconds(b.process.pid) for b in bots],
                      sum(_cpu_seconds(pid) for pid in backends), time.process_time())
            pids = [os.getpid(), *(b.process.pid for b in bots), *backends]
            waited = sum(_runqueue_seconds(pid) for pid in pids)
            started = time.perf_counter()
            async with httpx.AsyncClient(timeout=30) as client:
                await asyncio.gather(*(_person(server, client, ports, turn, who, latencies,
                                               answers) for who in people))
            elapsed = time.perf_counter() - started
            driver = time.process_time() - before[2]
            backends = sorted(set(backends) | set(await _backend_pids(url)))
            bot_cpu = tuple(_cpu_seconds(b.process.pid) - cpu for b, cpu in zip(bots, before[0],
                                                                                strict=True))
            pg_cpu = sum(_cpu_seconds(pid) for pid in backends) - before[1]
            waited = sum(_runqueue_seconds(pid) for pid in pids) - waited
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    return Result(len(latencies) / elapsed, p99 * 1000, elapsed, driver, bot_cpu, pg_cpu,
                  waited)


async def main(users: int) -> int:
    base_url = os.environ.get("TEST_DATABASE_URL", "")
    if not base_url:
        print("needs TEST_DATABASE_URL (PostgreSQL)", file=sys.stderr)
        return 2
    print(f"onboarding flow, {users} people at once, 4 updates each, PostgreSQL, webhook mode; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'setup':<30} {'updates/s':>9} {'p99 ms':>7} {'wall s':>7} "
          f"{'CPU s: driver':>13} {'bot(s)':>11} {'PG':>5} {'sum/wall':>8} {'run-queue s':>11}")
    results = {}
    for label, concurrent, processes in (("1 process, sequential", 1, 1),
                                         ("1 process, concurrent (32)", 32, 1),
                                         ("2 processes, concurrent (32)", 32, 2)):
        r = await _one(base_url, users, concurrent, processes)
        results[label] = r.rate
        used = r.driver_cpu_s + sum(r.bot_cpu_s) + r.pg_cpu_s
        bots = "+".join(f"{c:.1f}" for c in r.bot_cpu_s)
        print(f"{label:<30} {r.rate:>9.1f} {r.p99_ms:>7.0f} {r.wall_s:>7.1f} "
              f"{r.driver_cpu_s:>13.1f} {bots:>11} {r.pg_cpu_s:>5.1f} {used / r.wall_s:>8.2f} "
              f"{r.runqueue_s:>11.1f}",
              flush=True)
    print("median updates/s:", round(statistics.median(results.values()), 1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--users", type=int, default=40)
    sys.exit(asyncio.run(main(parser.parse_args().users)))
