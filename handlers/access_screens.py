"""Time-limited access (访问期限), what more than one flow needs (not a conversation): how an end
is written, the choice of an end, the Extend buttons, and the access job.

``handlers.access`` (the owner's Access end card, from /accounts) and the end date at
/newaccount's summary both show the choices and plan the job here. The job (pattern:
``handlers.expiry``) runs at the earliest reminder or end in the database: it reminds owners
before an end (with Extend buttons, answered by ``handlers.access``), and at the end suspends
the account (shown as expired), re-routes its open customer chats and tells the holder and the
owner. The deadlines are the database's, so ``bot.scheduler`` runs it at start-up and in the
duty poll too; each reminder and expiry is claimed once (``models.lifecycle.access``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import ContextTypes, JobQueue

from handlers.context import Deps, deps_of
from handlers.deadlines import run_by
from handlers.i18n import label, plural_key, t
from handlers.keyboards import button, keyboard
from handlers.outbox import notice as outbox_notice
from handlers.outbox import send_overdue, send_owed
from handlers.router import cb
from handlers.service_relay import owe_announcements, relay_state, service_policy
from handlers.times import local
from handlers.times import zone_name as zone_name_of
from models import outbox
from models.lifecycle.access import (
    NO_END,
    TERMS,
    AccessNotice,
    AccountState,
    account_state,
    due_access_reminders,
    expire_due_access,
    next_access_deadline,
    zone,
)
from models.outbox import Notice
from models.service.agents import release_agent
from models.service.results import Placement
from models.tables import Shop, SubAccount, User

log = logging.getLogger(__name__)

#: the callback namespace of the access flow (``handlers.access``)
NS = "ax"
ACCESS_JOB = "access"
#: the Extend buttons of a reminder, in days
EXTEND_DAYS = (7, 30)
#: the choices of an end, in the order shown (``models.lifecycle.access`` keys)
CHOICES = (*TERMS, NO_END)
_BATCH = 200


# --- how an end is written ---------------------------------------------------------------------


def _local(until: datetime, time_zone: str) -> datetime:
    return local(until, zone(time_zone))


def end_short(until: datetime, time_zone: str) -> str:
    """An end in few characters (a button): the last day ``2027-03-31`` when the access ends
    at the end of a day in the shop's time zone, else ``2027-03-02 12:00``."""
    shown = _local(until, time_zone)
    if (shown.hour, shown.minute, shown.second) == (0, 0, 0):
        return (shown - timedelta(days=1)).strftime("%Y-%m-%d")
    return shown.strftime("%Y-%m-%d %H:%M")


def end_text(locale: str, until: datetime, time_zone: str) -> str:
    """An end in a sentence, ``time_zone`` the shop's (``handlers.times.zone_name``): "at the
    end of 2027-03-31 (UTC)", "on 2027-03-02 at 12:00 (UTC)"."""
    shown = _local(until, time_zone)
    if (shown.hour, shown.minute, shown.second) == (0, 0, 0):
        day = (shown - timedelta(days=1)).strftime("%Y-%m-%d")
        return t(locale, "access.at_day_end", date=day, zone=time_zone)
    return t(locale, "access.at_time", date=shown.strftime("%Y-%m-%d"),
             time=shown.strftime("%H:%M"), zone=time_zone)


def current_text(locale: str, account: SubAccount, time_zone: str) -> str:
    """The account's end as it is now: none, when it ends, or when it expired."""
    if account.access_until is None:
        return t(locale, "access.current_none")
    end = end_text(locale, account.access_until, time_zone)
    if account_state(account) == AccountState.EXPIRED:
        return t(locale, "access.current_expired", end=end)
    return t(locale, "access.current_until", end=end)


def access_button(locale: str, account: SubAccount, time_zone: str) -> InlineKeyboardButton:
    """The account screen's "⏳ Access end: none / until <date>" (opens the access flow)."""
    if account.access_until is None:
        end = label(locale, "access.button_none")
    else:
        end = label(locale, "access.button_until",
                    date=end_short(account.access_until, time_zone))
    return button(label(locale, "access.button", end=end), cb(NS, "op", account.id))


def choice_rows(locale: str, data: Any) -> list[list[InlineKeyboardButton]]:
    """The choices of an end — 1 day / 7 days / 30 days, no end — each ``data(key)``."""
    terms = [button(label(locale, f"access.choice_{key}"), data(key)) for key in TERMS]
    return [terms, [button(label(locale, "access.choice_none"), data(NO_END))]]


def extend_keyboard(locale: str, account_id: int) -> InlineKeyboardMarkup:
    """+7 days / +30 days / Choose… under a reminder or an expiry (answered by the access
    flow, which asks to confirm)."""
    return keyboard(
        [button(label(locale, f"access.extend_{days}"), cb(NS, "ex", account_id, days))
         for days in EXTEND_DAYS]
        + [button(label(locale, "access.extend_choose"), cb(NS, "op", account_id))],
    )


def plural(locale: str, key: str, n: int, /, **params: Any) -> str:
    """``<key>_one`` or ``<key>_other`` by English's plural category of ``n`` (with ``n`` and
    ``count``; Chinese has the same text in both)."""
    return t(locale, plural_key(key, n), n=n, count=n, **params)


# --- the job -----------------------------------------------------------------------------------


def schedule_access(job_queue: JobQueue | None,  # type: ignore[type-arg]
                    deadline: datetime | None) -> None:
    """Make sure the access job runs no later than ``deadline`` (a reminder or an end)."""
    if deadline is not None:
        run_by(job_queue, access_job, ACCESS_JOB, deadline)


def plan_for(job_queue: JobQueue | None, account: SubAccount) -> None:  # type: ignore[type-arg]
    """An account got a new end: plan the job for its reminder (or its end)."""
    schedule_access(job_queue, account.access_remind_at or account.access_until)


async def _owner_notice(session: AsyncSession, deps: Deps, notice: AccessNotice, key: str,
                        topic: str, moved: int = 0) -> list[Notice]:
    """What the owner is told of a reminder or an expiry, with the Extend buttons."""
    owner = await session.get(User, notice.owner_id)
    shop = await session.get(Shop, notice.shop_id)
    if owner is None or shop is None:
        return []
    locale = deps.locale_of(owner)
    text = t(locale, key, nickname=notice.nickname, phone=notice.masked_phone, shop=shop.name,
             end=end_text(locale, notice.until, zone_name_of(shop, deps.default_time_zone)))
    if moved:
        text += "\n" + plural(locale, "access.expired_moved", moved)
    return [outbox_notice(f"{topic}:{notice.account_id}", owner.id, text,
                          extend_keyboard(locale, notice.account_id))]


async def _holder_notice(session: AsyncSession, deps: Deps, notice: AccessNotice
                         ) -> list[Notice]:
    holder = await session.get(User, notice.holder_id)
    shop = await session.get(Shop, notice.shop_id)
    if holder is None or shop is None:
        return []
    return [outbox_notice(f"access.expired_holder:{notice.account_id}", holder.id,
                          t(deps.locale_of(holder), "access.expired_holder", shop=shop.name))]


async def run_access(bot: Bot, deps: Deps, bot_data: dict[Any, Any]) -> datetime | None:
    """Remind owners of the ends that are near and expire the ends that have come (chats
    re-routed, holder and owner told); the next deadline.

    The notices go through the outbox (``models.outbox``): written in the transaction that
    claims the reminders and expires the accounts, sent after its commit; those a stopped
    process owed are sent first (``send_overdue``)."""
    await send_overdue(bot, deps)
    while True:
        now = deps.clock.now()
        async with deps.sessions() as session:
            reminders = await due_access_reminders(session, now=now, limit=_BATCH)
            expired = await expire_due_access(session, now=now, limit=_BATCH)
            owed: list[Notice] = []
            for notice in reminders:
                owed += await _owner_notice(session, deps, notice, "access.reminder",
                                            "access.reminder")
            moved: list[Placement] = []
            for notice in expired:
                released = await release_agent(
                    session, service_policy(deps), shop_id=notice.shop_id,
                    user_id=notice.holder_id, reason="expired", actor_id=None, now=now)
                moved += released
                owed += await _holder_notice(session, deps, notice)
                owed += await _owner_notice(session, deps, notice, "access.expired_owner",
                                            "access.expired", len(released))
            rows = outbox.enqueue(session, owed, now=now)
            relayed = await owe_announcements(deps, session, moved, now=now)
            await session.commit()  # the expiries, the re-routes and every notice they owe
            await send_owed(bot, session, rows)
            await relayed.send(bot, session, now=now, state=relay_state(bot_data))
        if reminders or expired:
            log.info("access: %s reminder(s), %s expired", len(reminders), len(expired))
        if len(reminders) < _BATCH and len(expired) < _BATCH:
            break
    async with deps.sessions() as session:
        return await next_access_deadline(session)


async def access_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's job: reminders and expiries due, then the next run planned."""
    upcoming = await run_access(context.bot, deps_of(context), context.application.bot_data)
    schedule_access(context.job_queue, upcoming)
