"""The owner-transfer expiry job: at the earliest pending deadline it ends every transfer whose
time is up (``models.lifecycle.transfer.expire_due_transfers``), tells both people, and plans
itself for the next deadline.

The deadlines live in the database, so ``bot.scheduler`` also runs it at start-up and at every
duty poll (several processes): a restart past a deadline still expires the transfer. Each
transfer is moved to ``expired`` by a conditional update and returned only by the run whose
update did it, so each expiry is told once, whichever process or run gets there first.
"""

from __future__ import annotations

import logging
from datetime import datetime

from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import ContextTypes, JobQueue

from handlers.context import Deps, deps_of
from handlers.deadlines import run_by
from handlers.i18n import t
from handlers.telegram_io import send_safely
from handlers.transfer_screens import parties
from models.lifecycle.transfer import expire_due_transfers, next_transfer_deadline

log = logging.getLogger(__name__)

TRANSFER_JOB = "transfer-expiry"
#: transfers ended per transaction
BATCH = 100


def schedule_transfer_expiry(job_queue: JobQueue | None, deadline: datetime) -> None:  # type: ignore[type-arg]
    """Make sure the transfer-expiry job runs no later than ``deadline``."""
    run_by(job_queue, transfer_expiry_job, TRANSFER_JOB, deadline)


async def _tell(bot: Bot, user_id: int, text: str) -> None:
    """One notice; a failure is logged and the others still go out."""
    try:
        await send_safely(bot, user_id, text)
    except TelegramError as exc:
        log.warning("could not tell user %s about an expired transfer (%s)", user_id,
                    type(exc).__name__)


async def expire_transfers(bot: Bot, deps: Deps) -> datetime | None:
    """End every pending transfer past its deadline and tell both people; the next deadline."""
    while True:
        async with deps.sessions() as session:
            expired = await expire_due_transfers(session, now=deps.clock.now(), limit=BATCH)
            await session.commit()  # ended: no other run or process tells them again
            notices = [await parties(session, transfer) for transfer in expired]
        for found in notices:
            if found.owner is not None:
                await _tell(bot, found.owner.id, t(
                    deps.locale_of(found.owner), "transfer.expired_owner",
                    nickname=found.nickname, shop=found.shop_name))
            if found.target is not None:
                await _tell(bot, found.target.id, t(
                    deps.locale_of(found.target), "transfer.expired_target",
                    shop=found.shop_name))
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
