"""Run in a fresh process: a NEW Application over a database, its start-up path timed.

``python -m benchmarks.reconcile_child DATABASE_URL [--now ISO]`` prints one JSON line:
seconds spent in ``application.post_init(application)`` (which runs ``bot.scheduler.reconcile``),
the peak RSS before and after it, how many codes it expired and owners it told, and when the
expiry job is planned. ``--now`` runs it on a manual clock set to that (naive UTC) time, as if
the bot came back after a downtime; without it the real clock is used, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime

from benchmarks.common import TimedApi, production_settings, quiet_logging, rss_mb
from bot.app import build_application
from bot.localapi import LocalRequest as FakeRequest
from handlers.expiry import EXPIRY_JOB
from models.clock import ManualClock


async def main(database_url: str, now: datetime | None) -> dict[str, object]:
    settings = production_settings(database_url)
    api = TimedApi()
    app = build_application(
        settings, request=FakeRequest(api), get_updates_request=FakeRequest(api), rate_limit=False,
        clock=ManualClock(now) if now is not None else None,
    )
    await app.initialize()
    rss_before = rss_mb()
    assert app.post_init is not None
    start = time.perf_counter()
    await app.post_init(app)  # setMyCommands ×2, then bot.scheduler.reconcile
    seconds = time.perf_counter() - start
    rss_peak = rss_mb()
    notices = sum(1 for c in api.calls if c.method == "sendMessage")
    await app.start()  # the job queue starts: the planned job gets its run time
    assert app.job_queue is not None
    jobs = app.job_queue.get_jobs_by_name(EXPIRY_JOB)
    planned = jobs[0].next_t.isoformat() if jobs and jobs[0].next_t else None
    await app.stop()
    await app.shutdown()
    if app.post_shutdown is not None:
        await app.post_shutdown(app)
    return {"reconcile_s": seconds, "rss_before_mb": rss_before, "rss_peak_mb": rss_peak,
            "notices": notices, "jobs": len(jobs), "planned": planned}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--now", type=datetime.fromisoformat, default=None)
    args = parser.parse_args()
    quiet_logging()
    print(json.dumps(asyncio.run(main(args.database_url, args.now))))
