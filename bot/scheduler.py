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

Several processes on one PostgreSQL database (SPEC §10): a process plans only the deadlines it
has seen, so each also looks in the database every ``scheduler.poll_seconds`` (the duty poll):
it expires what is due, plans its expiry job for the next deadline whoever issued the code, and
sends codes a dead process committed but never sent. Each due item is claimed in the database
(``models.codes.expire_due`` and ``claim_undelivered``: ``FOR UPDATE SKIP LOCKED`` and a
conditional update), so it is handled by one process only, and by a survivor within a poll
interval when the process that planned it died. The retention job runs in every process: its
deletes are idempotent, and a second run finds nothing left to delete. The notices a duty owes
go through the outbox (``models.outbox``, ``handlers.outbox``): the expiry run and the
service-level pass first send those a stopped process left behind.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url
from telegram import Bot
from telegram.ext import Application, ContextTypes, JobQueue

from bot.config import RetentionSettings, Settings
from handlers.access_screens import run_access, schedule_access
from handlers.context import Deps, deps_of
from handlers.expiry import deliver_undelivered, expire_and_notify, schedule_expiry
from handlers.review import run_reviews, schedule_reviews
from handlers.service_levels import run_service_levels, schedule_service_levels
from handlers.transfer_expiry import expire_transfers, schedule_transfer_expiry
from models.clock import as_aware
from models.retention import Purged, purge_expired

log = logging.getLogger(__name__)

RETENTION_JOB = "retention"
RETENTION_EVERY = timedelta(days=1)
POLL_JOB = "duty-poll"


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
    transfer_next = await reconcile_transfers(application.bot, deps, application.job_queue)
    log.info("owner transfers reconciled; next expiry at %s", transfer_next or "— (none pending)")
    await run_access_and_reviews(application.bot, deps, application.bot_data,
                                 application.job_queue)
    return upcoming


async def run_access_and_reviews(bot: Bot, deps: Deps, bot_data: dict[Any, Any],
                                 job_queue: JobQueue | None) -> None:  # type: ignore[type-arg]
    """Time-limited access and access reviews (docs/lifecycle.md): what fell due while the bot
    was down (or what another process planned) now, the rest planned at its time."""
    access_next = await run_access(bot, deps, bot_data)
    schedule_access(job_queue, access_next)
    log.info("access reconciled; next deadline at %s", access_next or "— (none)")
    review_next = await run_reviews(bot, deps, bot_data)
    schedule_reviews(job_queue, review_next, deps.clock.now())
    log.info("access reviews reconciled; next deadline at %s", review_next or "— (none)")


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


async def run_retention(bot_data: dict,  # type: ignore[type-arg]
                        job_queue: JobQueue | None) -> Purged:  # type: ignore[type-arg]
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


def plan_duty_poll(application: Application, settings: Settings) -> bool:  # type: ignore[type-arg]
    """On PostgreSQL, look for due duties every ``scheduler.poll_seconds`` (``True`` if
    planned). SQLite is one process, which plans every deadline itself."""
    every = settings.scheduler.poll_seconds
    postgres = make_url(settings.database.url).get_backend_name() == "postgresql"
    if not postgres or not every or application.job_queue is None:
        return False
    application.job_queue.run_repeating(
        duty_poll, interval=every, first=every, name=POLL_JOB,
        job_kwargs={"coalesce": True, "max_instances": 1},
    )
    return True


async def duty_poll(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Codes another process committed and never sent, codes due whoever issued them, and the
    expiry job planned for the next deadline."""
    deps = deps_of(context)
    resent = await deliver_undelivered(context.bot, deps)
    if resent:
        log.info("%s code(s) committed by a stopped process were sent", resent)
    upcoming = await expire_and_notify(context.bot, deps)
    if upcoming is not None:
        schedule_expiry(context.job_queue, upcoming)
    await reconcile_transfers(context.bot, deps, context.job_queue)
    await run_access_and_reviews(context.bot, deps, context.application.bot_data,
                                 context.job_queue)


# --- owner transfers (主账号更换) ------------------------------------------------------------


async def reconcile_transfers(bot: Bot, deps: Deps,
                              job_queue: JobQueue | None,  # type: ignore[type-arg]
                              ) -> datetime | None:
    """Owner transfers: expire those past their deadline (both people told, each transfer once,
    whichever process gets there first) and plan the job for the next deadline. Run at start-up
    and at every duty poll, so a restart past a deadline, or a deadline set by another process,
    is still handled."""
    upcoming = await expire_transfers(bot, deps)
    if upcoming is not None:
        schedule_transfer_expiry(job_queue, upcoming)
    return upcoming
