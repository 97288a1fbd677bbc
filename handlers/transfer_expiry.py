"""The owner-transfer expiry job: at the earliest pending deadline it ends every transfer whose
time is up (``models.lifecycle.transfer.expire_due_transfers``), tells both people, and plans
itself for the next deadline.

The deadlines live in the database, so ``bot.scheduler`` also runs it at start-up and at every
duty poll (several processes): a restart past a deadline still expires the transfer. Each
transfer is moved to ``expired`` by a conditional update and returned only by the run whose
update did it, so each expiry is told once, whichever process or run gets there first. The
notices go through the outbox (``models.outbox``): written in the transaction that expires the
transfers, sent after its commit; a process that dies in between leaves them to another.
"""

from __future__ import annotations

import logging
from datetime import datetime

from telegram import Bot
from telegram.ext import ContextTypes, JobQueue

from handlers.context import Deps, deps_of
from handlers.deadlines import run_by
from handlers.i18n import t
from handlers.outbox import notice, send_overdue, send_owed
from handlers.transfer_screens import Parties, parties
from models import outbox
from models.lifecycle.transfer import expire_due_transfers, next_transfer_deadline
from models.outbox import Notice

log = logging.getLogger(__name__)

TRANSFER_JOB = "transfer-expiry"
#: transfers ended per transaction
BATCH = 100


def schedule_transfer_expiry(job_queue: JobQueue | None, deadline: datetime) -> None:  # type: ignore[type-arg]
    """Make sure the transfer-expiry job runs no later than ``deadline``."""
    run_by(job_queue, transfer_expiry_job, TRANSFER_JOB, deadline)


def expiry_notices(deps: Deps, found: Parties) -> list[Notice]:
    """What an expired transfer owes: both people told."""
    owed = []
    if found.owner is not None:
        owed.append(notice(f"transfer.expired:{found.transfer.id}:owner", found.owner.id, t(
            deps.locale_of(found.owner), "transfer.expired_owner", nickname=found.nickname,
            shop=found.shop_name)))
    if found.target is not None:
        owed.append(notice(f"transfer.expired:{found.transfer.id}:target", found.target.id, t(
            deps.locale_of(found.target), "transfer.expired_target", shop=found.shop_name)))
    return owed


async def expire_transfers(bot: Bot, deps: Deps) -> datetime | None:
    """End every pending transfer past its deadline and tell both people; the next deadline."""
    await send_overdue(bot, deps)
    while True:
        async with deps.sessions() as session:
            now = deps.clock.now()
            expired = await expire_due_transfers(session, now=now, limit=BATCH)
            owed: list[Notice] = []
            for transfer in expired:
                found = await parties(session, transfer, deps.default_time_zone)
                owed += expiry_notices(deps, found)
            rows = outbox.enqueue(session, owed, now=now)
            await session.commit()  # ended: no other run or process tells them again
            await send_owed(bot, session, rows)
        if expired:
            log.info("owner transfers: %s expired", len(expired))
        if len(expired) < BATCH:
            break
    async with deps.sessions() as session:
        return await next_transfer_deadline(session)


async def transfer_expiry_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's job: expire due transfers, then plan the next run."""
    upcoming = await expire_transfers(context.bot, deps_of(context))
    if upcoming is not None:
        schedule_transfer_expiry(context.job_queue, upcoming)
