"""Service levels (SPEC §8), the handler side: one pass claims what is due
(``models.service.levels``) — agents nudged, owners told at twice the time (and the chat
re-routed when the shop says so), idle chats closed with the customer told — and returns the
next deadline for the scheduler (bot/scheduler.py). The deadlines live in the database, so a
restart or another process loses none; a pass repeated by two processes claims each item once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from telegram import Bot
from telegram.ext import ContextTypes, JobQueue

from handlers.context import Deps, deps_of
from handlers.deadlines import run_by
from handlers.i18n import t
from handlers.outbox import notice, send_overdue, send_owed
from handlers.service_relay import (
    agent_nickname,
    customer_name,
    names_of,
    owe_announcements,
    owe_end,
    relay_state,
    service_policy,
)
from models import outbox
from models.outbox import Notice
from models.service.levels import close_idle, due_service_levels, next_deadline
from models.service.tables import Agent
from models.tables import User

log = logging.getLogger(__name__)


async def run_service_levels(bot: Bot, deps: Deps, bot_data: dict[Any, Any]) -> datetime | None:
    """One pass: everything due by the injected clock, then the next deadline."""
    await send_overdue(bot, deps)  # what a stopped process owed (every 5 s, on any database)
    policy, now = service_policy(deps), deps.clock.now()
    state = relay_state(bot_data)
    async with deps.sessions() as session:
        due = await due_service_levels(session, policy, now=now)
        ended = await close_idle(session, policy, now=now)
        # the nudges and alerts go through the outbox (handlers/outbox.py): written with the
        # claim, sent after its commit, sent by another process if this one dies in between
        owed: list[Notice] = []
        for nudge in due.nudges:
            names = await names_of(session, nudge.conversation_id)
            agent_user = await session.get(User, nudge.agent_user_id)
            if names is None:
                continue
            locale = deps.locale_of(agent_user)
            owed.append(notice(f"service.nudge:{nudge.conversation_id}", nudge.agent_user_id, t(
                locale, "ag.nudge_first" if nudge.first_response else "ag.nudge",
                customer=customer_name(names), shop=names.shop.name)))
        moved = []
        for alert in due.alerts:
            names = await names_of(session, alert.conversation_id)
            owner = await session.get(User, alert.owner_id)
            if names is None or owner is None:
                continue
            locale = deps.locale_of(owner)
            agent = await session.get(Agent, alert.agent_id or 0)
            nickname = await agent_nickname(session, agent, locale) if agent else "—"
            owed.append(notice(f"service.alert:{alert.conversation_id}", alert.owner_id, t(
                locale, "ag.alert_moved" if alert.moved else "ag.alert",
                customer=customer_name(names), agent=nickname, shop=names.shop.name)))
            if alert.moved is not None:
                if alert.agent_user_id is not None and alert.agent_user_id != alert.owner_id:
                    agent_user = await session.get(User, alert.agent_user_id)
                    owed.append(notice(
                        f"service.rerouted:{alert.conversation_id}", alert.agent_user_id, t(
                            deps.locale_of(agent_user), "ag.rerouted",
                            customer=customer_name(names), shop=names.shop.name)))
                moved.append(alert.moved)
        rows = outbox.enqueue(session, owed, now=now)
        # so do a re-routed chat's and an idle end's (with the hand-outs of the freed seats)
        placed = await owe_announcements(deps, session, moved, now=now)
        for one in ended:
            placed.extend(await owe_end(deps, session, one, now=now))
        await session.commit()
        await send_owed(bot, session, rows)
        await placed.send(bot, session, now=now, state=state)
        upcoming = await next_deadline(session)
    if due.nudges or due.alerts or ended:
        log.info("service levels: %s nudge(s), %s alert(s), %s idle end(s)",
                 len(due.nudges), len(due.alerts), len(ended))
    return upcoming


SERVICE_JOB = "service_levels"
SERVICE_POLL = "service_levels_poll"
#: how often every process looks anyway (deadlines set by another process, or after a restart)
POLL_SECONDS = 5.0


def schedule_service_levels(job_queue: JobQueue | None, deadline: datetime | None) -> None:  # type: ignore[type-arg]
    """Make sure the service-level pass runs no later than ``deadline``; keep the poll."""
    if job_queue is None:
        return
    if not job_queue.get_jobs_by_name(SERVICE_POLL):
        job_queue.run_repeating(service_levels_job, interval=POLL_SECONDS, first=POLL_SECONDS,
                                name=SERVICE_POLL)
    if deadline is not None:
        run_by(job_queue, service_levels_job, SERVICE_JOB, deadline)


def plan_for(job_queue: JobQueue | None, *moments: datetime | None) -> None:  # type: ignore[type-arg]
    """A conversation got new deadlines (a message, an opening): make sure a pass runs by the
    earliest (the poll would find it too, a few seconds later)."""
    found = [m for m in moments if m is not None]
    if found:
        schedule_service_levels(job_queue, min(found))


async def service_levels_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's job: one pass, then the next run planned."""
    upcoming = await run_service_levels(context.bot, deps_of(context), context.application.bot_data)
    schedule_service_levels(context.job_queue, upcoming)
