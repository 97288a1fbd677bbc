"""Scheduler wiring: the code-expiry job, the daily clean-up, and reconciliation at start-up.

One expiry job, not one per code: it runs at the earliest pending deadline, expires every code
that is due (owners told, holders' code messages edited) and plans itself for the next deadline.
The deadlines live in the database, so after a restart — even a ``kill -9`` — reconciliation
expires what fell due while the bot was down and plans the rest with their original deadlines.

The retention job deletes what is kept only for a while (``models.retention``; docs/product.md,
"Retention and /forget"): once at start-up and then every ``RETENTION_EVERY`` by the injected
clock, planning its own next run (as the expiry job does). Deleting is idempotent, so a run
repeated by a restart or by a second process does no harm.

Reconciliation also sends the codes that were committed but never sent (the process died in
between), or tells their owners that they could not be sent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from telegram.ext import Application, ContextTypes, JobQueue

from bot.config import RetentionSettings
from handlers.context import Deps
from handlers.expiry import deliver_undelivered, expire_and_notify, schedule_expiry
from handlers.service_levels import run_service_levels, schedule_service_levels
from models.clock import as_aware
from models.retention import Purged, purge_expired

log = logging.getLogger(__name__)

RETENTION_JOB = "retention"
RETENTION_EVERY = timedelta(days=1)


async def reconcile(application: Application) -> datetime | None:  # type: ignore[type-arg]
    """Send the codes never sent, expire past-due ones and schedule the job for the next
    deadline (returned); run the clean-up once and plan its daily runs."""
    deps = application.bot_data["deps"]
    assert isinstance(deps, Deps)
    resent = await deliver_undelivered(application.bot, deps)
    if resent:
        log.info("%s code(s) issued but never sent were handled at start-up", resent)
    upcoming = await expire_and_notify(application.bot, deps)
    if upcoming is not None:
        schedule_expiry(application.job_queue, upcoming)
    log.info("codes reconciled; next expiry at %s", upcoming or "— (none pending)")
    await run_retention(application.bot_data, application.job_queue)
    # customer-service deadlines: what fell due while down now, the rest at their time
    service_next = await run_service_levels(application.bot, deps, application.bot_data)
    schedule_service_levels(application.job_queue, service_next)
    log.info("service levels reconciled; next deadline at %s", service_next or "— (none)")
    return upcoming


async def purge(deps: Deps, retention: RetentionSettings) -> Purged:
    """Delete everything past its retention, one short transaction per batch."""
    total = Purged()
    while True:
        async with deps.sessions() as session:
            purged = await purge_expired(
                session, now=deps.clock.now(), retention_days=retention.retention_days,
                audit_retention_days=retention.audit_retention_days,
            )
            await session.commit()
        total = total + purged
        if not purged.more:
            return total


async def run_retention(bot_data: dict, job_queue: JobQueue | None) -> Purged:  # type: ignore[type-arg]
    """One clean-up run (counts logged, nothing personal), then the next one planned."""
    deps = bot_data["deps"]
    retention = bot_data["retention"]
    assert isinstance(deps, Deps) and isinstance(retention, RetentionSettings)
    purged = await purge(deps, retention)
    counts = purged.counts()
    log.info("retention: deleted %s", ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    if job_queue is not None:
        for job in job_queue.get_jobs_by_name(RETENTION_JOB):
            job.schedule_removal()
        job_queue.run_once(retention_job, when=as_aware(deps.clock.now() + RETENTION_EVERY),
                           name=RETENTION_JOB)
    return purged


async def retention_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's daily job."""
    await run_retention(context.application.bot_data, context.job_queue)
