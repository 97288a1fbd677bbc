"""Benchmarks: cost per update against bare python-telegram-bot; the scheduler at 100k codes.

    .venv/bin/python -m benchmarks [--flows N] [--codes N (0 skips the scheduler part)] [--no-postgres]
                                   [--sqlite-driver fast|plain|both [--rounds N]]

Everything runs offline: the real Application over the fake Bot API of the tests
(``bot.localapi.LocalRequest``), a SQLite file in WAL mode migrated with Alembic, and PostgreSQL
too when ``TEST_DATABASE_URL`` is set (a database of our own beside it, dropped at the end).
``--sqlite-driver`` picks the SQLite driver of the flow benchmark: the fast path
(``bot.sqlite_fast``, the default, as in production) or plain aiosqlite; ``both`` adds a part
that runs the two side by side, interleaved, and prints the ratio. The last line sums the run
up for comparison from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy
import telegram
from sqlalchemy.exc import DBAPIError

from benchmarks.common import median, quiet_logging
from benchmarks.flows import (
    STEPS,
    FlowResult,
    run_bare,
    run_ours,
    run_replay,
    step_table,
)
from benchmarks.scheduler import (
    ISSUE_TTL,
    expiry_lateness,
    issue_pending,
    nth_deadline,
    reconcile_in_subprocess,
)
from bot import db
from tests.support import db as scratch_db

TARGET_RATIO, TARGET_P99_MS = 0.5, 10.0
TARGET_RECONCILE_S, TARGET_RSS_MB, TARGET_LATE_P99_MS = 3.0, 300, 1000.0


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_flows(title: str, ours: FlowResult, bare_rate: float, *, steps: bool,
                floor: FlowResult | None = None) -> None:
    ratio = ours.rate / bare_rate
    print(f"  {title}: {ours.flows} flows × {len(STEPS)} updates = {ours.updates} updates "
          f"in {ours.seconds:.2f} s ({ours.wall:.2f} s wall)")
    print(f"    ours:            {ours.rate:8.1f} updates/s   p50 {ours.p50_ms:6.2f} ms   "
          f"p99 {ours.p99_ms:6.2f} ms   max {max(ours.times) * 1000:6.1f} ms")
    wall, cpu, step = ours.slowest
    print(f"    slowest update:  {wall * 1000:6.1f} ms at \"{step}\"; the process used {cpu * 1000:.1f} ms of CPU"
          " meanwhile (all its threads)"
          + ("; mostly waiting, not computing" if cpu < wall / 2 else ""))
    print(f"    queries/update:  {ours.statements / ours.updates:8.2f}   "
          f"commits/update {ours.commits / ours.updates:.2f}   CPU/update {ours.cpu_ms:.2f} ms")
    print(f"    ratio ours/bare: {ratio:8.3f}   (target ≥ {TARGET_RATIO}: {mark(ratio >= TARGET_RATIO)};"
          f" p99 target ≤ {TARGET_P99_MS:g} ms: {mark(ours.p99_ms <= TARGET_P99_MS)})")
    if floor is not None:
        calls = sum(len(made) for _payload, made in ours.script) / ours.updates
        print(f"    same calls, no logic: {floor.rate:8.1f} updates/s   p50 {floor.p50_ms:6.2f} ms   "
              f"p99 {floor.p99_ms:6.2f} ms   ratio to bare {floor.rate / bare_rate:.3f}")
        print(f"      (bare PTB replaying ours' {calls:.2f} Bot API calls per update — the same texts,"
              f" keyboards, edits and answers — with no database and no logic: the most ours could")
        print(f"      reach with this conversation; ours spends {(ours.seconds - floor.seconds) / ours.updates * 1000:.2f}"
              f" ms per update above it on the database and its own code)")
    if steps:
        print("    per update of the flow:")
        for line in step_table(ours):
            print(line)


async def flows_sqlite(workdir: Path, flows: int, bare_runs: int, trace: bool,
                       fast_path: bool) -> tuple[FlowResult, float]:
    url = f"sqlite+aiosqlite:///{workdir / 'flows.db'}"
    await db.migrate(url)
    total = flows * len(STEPS)
    bare: list[FlowResult] = [await run_bare(total)]
    ours = await run_ours(url, flows, trace=trace, fast_path=fast_path)
    floor = await run_replay(ours)
    for _ in range(bare_runs - 1):
        bare.append(await run_bare(total))
    rates = [b.rate for b in bare]
    bare_rate = median(rates)
    middle = min(bare, key=lambda b: abs(b.rate - bare_rate))
    print(f"1. Flow throughput — SQLite file, WAL, migrated with Alembic (bot.db.migrate), {ours.driver};")
    print("   production settings except rate_limit=False; every update of onboarding (owner and holder), /newshop,")
    print("   /roles → new role → preset → name → skip description → done, /newaccount → role → phone →")
    print("   code (read from the holder's chat) → nickname → IM → confirm; 3 warm-up flows untimed.")
    print("   Timed per update: Update.de_json + application.process_update, for both bots.")
    print(f"    bare PTB echo:   {bare_rate:8.1f} updates/s   p50 {middle.p50_ms:6.2f} ms   "
          f"p99 {middle.p99_ms:6.2f} ms   CPU/update {middle.cpu_ms:.2f} ms   (median of {len(bare)} runs of {total} updates: "
          + ", ".join(f"{r:.0f}" for r in rates) + ")")
    print_flows("SQLite", ours, bare_rate, steps=True, floor=floor)
    if trace:
        print("    statements of the last flow:")
        for statement in ours.trace:
            print(f"      {statement}")
    return ours, bare_rate


DRIVERS = {True: "fast path", False: "plain aiosqlite"}


async def side_by_side(workdir: Path, flows: int, rounds: int) -> float:
    """The flow benchmark on the SQLite fast path and on plain aiosqlite, ``rounds`` times each,
    interleaved (fast first in odd rounds, plain first in even ones), each run on a fresh copy
    of one migrated file. Returns the ratio of the median rates, fast / plain."""
    template = workdir / "side-by-side.db"
    await db.migrate(f"sqlite+aiosqlite:///{template}")
    print()
    print(f"1b. SQLite side by side — the fast path (bot.sqlite_fast) against plain aiosqlite "
          f"(create_engine(url, fast_path=False)): {rounds} rounds × {flows} flows each, "
          "interleaved, a fresh database per run")
    results: dict[bool, list[FlowResult]] = {True: [], False: []}
    for round_ in range(rounds):
        for fast in (True, False) if round_ % 2 == 0 else (False, True):
            target = workdir / f"side-by-side-{round_}-{int(fast)}.db"
            shutil.copy(template, target)
            result = await run_ours(f"sqlite+aiosqlite:///{target}", flows, fast_path=fast)
            if result.driver != DRIVERS[fast]:
                raise RuntimeError(f"asked for the {DRIVERS[fast]}, ran on {result.driver}")
            results[fast].append(result)
            print(f"    round {round_ + 1}  {result.driver:<16} {result.rate:8.1f} updates/s   "
                  f"p50 {result.p50_ms:6.2f} ms   p99 {result.p99_ms:6.2f} ms   "
                  f"{result.statements / result.updates:5.2f} statements/update   "
                  f"CPU/update {result.cpu_ms:.2f} ms")
    print("    median of the rounds:")
    for fast in (True, False):
        runs = results[fast]
        rates = [r.rate for r in runs]
        print(f"      {DRIVERS[fast]:<16} {median(rates):8.1f} updates/s   "
              f"p50 {median([r.p50_ms for r in runs]):6.2f} ms   "
              f"p99 {median([r.p99_ms for r in runs]):6.2f} ms   "
              f"{median([r.statements / r.updates for r in runs]):5.2f} statements/update   "
              f"CPU/update {median([r.cpu_ms for r in runs]):.2f} ms   "
              f"(rates {min(rates):.0f}–{max(rates):.0f})")
    ratio = median([r.rate for r in results[True]]) / median([r.rate for r in results[False]])
    per_round = [f.rate / p.rate for f, p in zip(results[True], results[False], strict=True)]
    print(f"    fast path / plain aiosqlite: {ratio:.2f}× the updates/s (per round: "
          + ", ".join(f"{r:.2f}" for r in per_round) + ")")
    return ratio


async def flows_postgres(base_url: str, flows: int, bare_rate: float) -> FlowResult | None:
    base = scratch_db.server_url(base_url)
    name = scratch_db.scratch_name("bench")

    async def admin(statement: str) -> None:
        await scratch_db.admin(base, statement)

    print()
    print(f"3. Flow throughput — PostgreSQL (database {name} beside {base.database}, dropped after)")
    try:
        await admin(f"CREATE DATABASE {name}")
    except DBAPIError as exc:
        print(f"    skipped: cannot create a database ({str(exc).splitlines()[0]})")
        return None
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        await db.migrate(url)
        ours = await run_ours(url, flows)
        print_flows("PostgreSQL", ours, bare_rate, steps=True)
        return ours
    finally:
        await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def scheduler_scale(workdir: Path, total: int, late_codes: int, catch_up: int) -> dict[str, float]:
    url = f"sqlite+aiosqlite:///{workdir / 'codes.db'}"
    await db.migrate(url)
    print()
    print(f"2. Scheduler scale — SQLite file, WAL; {total:,} pending codes")
    issued = await issue_pending(url, total)
    print(f"    issued:     {issued.codes:,} codes through models.codes.issue_code, {issued.batch:,} per "
          f"transaction, by {issued.shops} shops, distinct phones, TTL {ISSUE_TTL} s, no caps biting:"
          f" {issued.seconds:.1f} s ({issued.codes / issued.seconds:,.0f} codes/s)")
    fresh = reconcile_in_subprocess(url)
    print(f"    reconcile:  {fresh['reconcile_s'] * 1000:.1f} ms — new Application, post_init "
          f"(setMyCommands ×2 + bot.scheduler.reconcile) in a fresh process; nothing due, "
          f"{fresh['jobs']:.0f} expiry job planned at {fresh['planned']}")
    print(f"    peak RSS:   {fresh['rss_peak_mb']:.0f} MB (that process, of which "
          f"{fresh['rss_before_mb']:.0f} MB before post_init: imports + Application)")
    ok = fresh["reconcile_s"] < TARGET_RECONCILE_S and fresh["rss_peak_mb"] < TARGET_RSS_MB
    print(f"                targets < {TARGET_RECONCILE_S:g} s and < {TARGET_RSS_MB} MB: {mark(ok)}")
    late = await expiry_lateness(url, late_codes)
    print(f"    lateness:   {late.codes} codes issued one by one as /newaccount does (issue, commit, "
          f"schedule_expiry), TTLs spread over 1–5 s, real SystemClock and running JobQueue, "
          f"{late.pending_meanwhile:,} other codes pending")
    print(f"                owner's \"expired\" notice − expires_at: p50 {late.p50_ms:.0f} ms, "
          f"p99 {late.p99_ms:.0f} ms, max {late.max_ms:.0f} ms ({late.notices}/{late.codes} "
          f"notices; target p99 < {TARGET_LATE_P99_MS:.0f} ms: "
          f"{mark(late.notices == late.codes and late.p99_ms < TARGET_LATE_P99_MS)})")
    catch_up = min(catch_up, total)
    if catch_up:
        deadline = await nth_deadline(url, catch_up)
        later = reconcile_in_subprocess(url, deadline)
        print(f"    catch-up:   restart on a clock at the {catch_up:,}th deadline (as after a "
              f"downtime): {later['notices']:.0f} owners told, codes expired, in "
              f"{later['reconcile_s']:.2f} s ({later['notices'] / later['reconcile_s']:,.0f}/s), "
              f"peak RSS {later['rss_peak_mb']:.0f} MB")
    return {"reconcile_s": fresh["reconcile_s"], "rss_mb": fresh["rss_peak_mb"],
            "late_p99_ms": late.p99_ms}


async def main(args: argparse.Namespace) -> int:
    quiet_logging()
    load = os.getloadavg()
    print(f"subaccount-bot benchmarks — Python {platform.python_version()}, python-telegram-bot "
          f"{telegram.__version__}, SQLAlchemy {sqlalchemy.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="subaccount-bench-"))
    try:
        ours, bare_rate = await flows_sqlite(workdir, args.flows, args.bare_runs, args.trace_sql,
                                             fast_path=args.sqlite_driver != "plain")
        if args.sqlite_driver == "both":
            await side_by_side(workdir, args.flows, args.rounds)
        sched = {"reconcile_s": float("nan"), "rss_mb": float("nan")}
        if args.codes > 0:
            sched = await scheduler_scale(workdir, args.codes, args.late_codes, args.catch_up)
        pg_url = os.environ.get("TEST_DATABASE_URL", "")
        if pg_url and not args.no_postgres:
            await flows_postgres(pg_url, args.flows, bare_rate)
        elif not args.no_postgres:
            print()
            print("3. PostgreSQL: skipped (set TEST_DATABASE_URL, e.g. "
                  "postgresql://postgres@127.0.0.1:5432/test)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"done in {time.perf_counter() - started:.0f} s")
    rss = sched["rss_mb"]
    print(f"ratio_vs_bare={ours.rate / bare_rate:.3f} p99_ms={ours.p99_ms:.2f} "
          f"reconcile_100k_s={sched['reconcile_s']:.3f} "
          f"rss_mb={int(rss) if rss == rss else -1}")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=100, help="timed provisioning flows (default 100)")
    parser.add_argument("--codes", type=int, default=100_000,
                        help="pending codes for the scheduler part (default 100000; 0 skips it)")
    parser.add_argument("--late-codes", type=int, default=200,
                        help="codes of the expiry-lateness sample (default 200)")
    parser.add_argument("--catch-up", type=int, default=5000,
                        help="codes overdue at the simulated late restart (default 5000; 0 skips)")
    parser.add_argument("--bare-runs", type=int, default=3, help="runs of the bare echo bot (median)")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--trace-sql", action="store_true", help="print the last flow's statements")
    parser.add_argument("--sqlite-driver", choices=("fast", "plain", "both"), default="fast",
                        help="the flow benchmark's SQLite driver: the fast path (bot.sqlite_fast, "
                             "default), plain aiosqlite, or both side by side (part 1b)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the side-by-side part, each driver once per round (default 3)")
    args = parser.parse_args(argv)
    if args.flows < 1:
        parser.error("--flows must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run(argv: list[str] | None = None) -> int:
    return asyncio.run(main(parse(argv)))


if __name__ == "__main__":
    sys.exit(run())
