"""The code-expiry job, and the start-up delivery of codes that were committed but never sent.

One job, not one per code: it runs at the earliest live deadline, ends every code that is due
(owners told, holders' code messages edited) and plans itself for the next deadline. The
deadlines live in the database, so after a restart ``bot.scheduler.reconcile`` runs both.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot
from telegram.ext import ContextTypes, JobQueue

from handlers.code_messages import (
    SEND_FAILED,
    back_to_code_step,
    clock_time,
    deliver,
    failure_key,
    holder_end_edit,
    owner_notice,
    tell_owner,
)
from handlers.context import Deps, deps_of
from handlers.deadlines import run_by
from handlers.outbox import notice, send_overdue, send_owed
from models import codes, outbox
from models.outbox import Notice
from models.tables import Role, Shop, User, VerificationCode

EXPIRY_JOB = "code-expiry"


def schedule_expiry(job_queue: JobQueue | None,  # type: ignore[type-arg]
                    deadline: datetime) -> None:
    """Make sure the expiry job runs no later than ``deadline``."""
    run_by(job_queue, expiry_job, EXPIRY_JOB, deadline)


async def expiry_notices(session: AsyncSession, deps: Deps,
                         code: VerificationCode) -> list[Notice]:
    """What an expiry owes: the holder's code message edited, the owner's card edited (with
Resend)."""
    owed = []
    edit = await holder_end_edit(session, deps, code, "holder_code.expired")
    if edit is not None:
        chat_id, message_id, text = edit
        owed.append(notice(f"code.expired:{code.id}:holder", chat_id, text,
                           message_id=message_id))
    # the owner's card says so (a new message only if they have no card for it)
    told = await owner_notice(session, deps, code, "newaccount.expired_notice",
                              markup_key="newaccount.resend_new")
    if told is not None:
        owed.append(notice(f"code.expired:{code.id}:owner", told.owner_id, told.text,
                           told.markup, message_id=told.card))
    return owed


async def expire_and_notify(bot: Bot, deps: Deps) -> datetime | None:
    """End every live code past its deadline (pending, or verified and not confirmed), tell
    owners and holders; the next deadline.

    The notices go through the outbox (``models.outbox``): written in the transaction that
    expires the codes, sent after its commit, each deleted once sent. Notices a dead process
    owed (their lease passed) are sent first.
    """
    await send_overdue(bot, deps)
    while True:
        async with deps.sessions() as session:
            now = deps.clock.now()
            expired = await codes.expire_due(session, now=now)
            owed: list[Notice] = []
            for code in expired:
                await back_to_code_step(session, code, now)
                owed += await expiry_notices(session, deps, code)
            rows = outbox.enqueue(session, owed, now=now)
            await session.commit()
            await send_owed(bot, session, rows)
        if len(expired) < 500:
            break
    async with deps.sessions() as session:
        return await codes.next_deadline(session)


async def deliver_undelivered(bot: Bot, deps: Deps) -> int:
    """Start-up: codes committed but never sent (the process died between the two) are sent
    now with fresh digits, and the owner is told; a holder who cannot be reached is reported to
    the owner, who can resend at once. Returns how many codes were handled."""
    async with deps.sessions() as session:
        pending = await codes.claim_undelivered(session, now=deps.clock.now())
        await session.commit()  # claimed: no other process sends them too
        for code in pending:
            holder = await session.get(User, code.holder_id or 0)
            shop = await session.get(Shop, code.shop_id)
            owner = await session.get(User, code.owner_id)
            role = await session.get(Role, code.role_id) if code.role_id else None
            if holder is None or shop is None or owner is None:
                await codes.mark_undeliverable(session, code, now=deps.clock.now(), blocked=False)
                await session.commit()
                continue
            plain = codes.rekey(deps.policy, code)
            session.add(code)
            await session.commit()
            sent = await deliver(bot, deps, code, holder, plain, shop, owner, role)
            if sent is None or sent is SEND_FAILED:
                await codes.mark_undeliverable(session, code, now=deps.clock.now(),
                                               blocked=sent is None)
                await session.commit()
                await tell_owner(session, bot, deps, code, failure_key(sent))
                continue
            assert isinstance(sent, int)
            await codes.mark_delivered(session, code, holder_id=holder.id, message_id=sent)
            await session.commit()
            await tell_owner(session, bot, deps, code, "newaccount.sent_late",
                             until=clock_time(code.expires_at, shop, deps.default_time_zone))
        return len(pending)


async def expiry_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's job: expire due codes, then plan the next run."""
    deps = deps_of(context)
    upcoming = await expire_and_notify(context.bot, deps)
    if upcoming is not None:
        schedule_expiry(context.job_queue, upcoming)
