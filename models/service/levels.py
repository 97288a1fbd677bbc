"""Service levels and idle ends: deadlines stored on the conversation, claimed exactly once.

A claim is a conditional UPDATE … RETURNING that clears the deadline it claims, so two
processes never get the same item: nudges are claimed with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (a second process takes other rows instead of waiting); owner alerts and idle ends
change routing, so they are claimed per shop under the shop's routing lock (shops in id order,
the same lock order as every other rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.service.conversations import EndedBy, end_locked
from models.service.handouts import can_take_now
from models.service.messages import awaiting_answer
from models.service.policy import ServicePolicy
from models.service.results import Ended, Placement
from models.service.routing import (
    ASSIGNED,
    load_conversation,
    route_locked,
    unassign,
)
from models.service.settings import lock_shop
from models.service.tables import OPEN_STATES, Agent, Conversation
from models.tables import Shop


@dataclass(frozen=True)
class Nudge:
    """Tell the agent a customer waits (first answer or a reply)."""

    conversation_id: int
    shop_id: int
    customer_id: int
    agent_id: int
    agent_user_id: int
    first_response: bool


@dataclass(frozen=True)
class Alert:
    """Tell the owner a customer has waited twice the time; ``moved`` when the shop re-routes
    on a breach and a colleague could take the chat (with what the old agent's slot took)."""

    conversation_id: int
    shop_id: int
    owner_id: int
    customer_id: int
    agent_id: int | None
    agent_user_id: int | None
    moved: Placement | None = None


@dataclass(frozen=True)
class Due:
    nudges: list[Nudge]
    alerts: list[Alert]


async def _due_by_shop(
    session: AsyncSession, column: Any, now: datetime, limit: int
) -> dict[int, list[int]]:
    rows = await session.exec(
        select(Conversation.shop_id, Conversation.id)
        .where(column <= now, col(Conversation.state).in_(OPEN_STATES))
        .order_by(column).limit(limit))
    found: dict[int, list[int]] = {}
    for shop_id, conversation_id in rows.all():
        found.setdefault(shop_id, []).append(conversation_id or 0)
    return dict(sorted(found.items()))


async def _claim(
    session: AsyncSession, column: Any, ids: list[int], now: datetime
) -> list[int]:
    """Clear ``column`` on those of ``ids`` still due; the ids this transaction got."""
    result = await session.exec(
        update(Conversation)
        .where(col(Conversation.id).in_(ids), column <= now)
        .values({column: None})
        .returning(col(Conversation.id))
        .execution_options(synchronize_session=False))
    return sorted(int(row[0]) for row in result.all())


async def _alerts(session: AsyncSession, policy: ServicePolicy, now: datetime) -> list[Alert]:
    alerts: list[Alert] = []
    for shop_id, ids in (await _due_by_shop(session, col(Conversation.alert_at), now,
                                            policy.claim_batch)).items():
        settings = await lock_shop(session, policy, shop_id=shop_id, now=now)
        shop = await session.get(Shop, shop_id)
        for conversation_id in await _claim(session, col(Conversation.alert_at), ids, now):
            conversation = await load_conversation(session, conversation_id)
            agent = await session.get(Agent, conversation.agent_id or 0)
            moved: Placement | None = None
            if (settings.reroute_on_breach and agent is not None and agent.id is not None
                    and await can_take_now(session, settings, conversation, agent.id)):
                previous = await unassign(session, conversation, now=now)
                moved = await route_locked(session, settings, conversation, now=now,
                                           exclude=agent.id, previous=previous, sticky=False)
            audit.record(session, now=now, shop_id=shop_id, actor_id=None,
                         action="service.breach", object_type="conversation",
                         object_id=conversation_id, agent=agent.id if agent else None,
                         rerouted=moved is not None)
            alerts.append(Alert(
                conversation_id=conversation_id, shop_id=shop_id,
                owner_id=shop.owner_id if shop else 0, customer_id=conversation.customer_id,
                agent_id=agent.id if agent else None,
                agent_user_id=agent.user_id if agent else None, moved=moved))
    return alerts


async def _nudges(session: AsyncSession, policy: ServicePolicy, now: datetime) -> list[Nudge]:
    due = (select(Conversation.id)
           .where(col(Conversation.nudge_at) <= now, col(Conversation.state) == ASSIGNED)
           .order_by(col(Conversation.nudge_at)).limit(policy.claim_batch)
           .with_for_update(skip_locked=True))
    result = await session.exec(
        update(Conversation)
        .where(col(Conversation.id).in_(due.scalar_subquery()))
        .values(nudge_at=None)
        .returning(col(Conversation.id), col(Conversation.shop_id),
                   col(Conversation.customer_id), col(Conversation.agent_id),
                   col(Conversation.first_response_at))
        .execution_options(synchronize_session=False))
    rows = sorted(result.all(), key=lambda row: row[0])
    users = dict((await session.exec(
        select(Agent.id, Agent.user_id)
        .where(col(Agent.id).in_({row[3] for row in rows})))).all()) if rows else {}
    return [Nudge(conversation_id=row[0], shop_id=row[1], customer_id=row[2], agent_id=row[3],
                  agent_user_id=users.get(row[3], 0), first_response=row[4] is None)
            for row in rows]


async def due_service_levels(
    session: AsyncSession, policy: ServicePolicy, *, now: datetime
) -> Due:
    """The service-level duties due at ``now``, each returned once: owner alerts (twice the
    time; re-routed if the shop says so and a colleague can take it) and agent nudges (an
    unassigned chat's nudge waits until someone has it). Marked done in this transaction."""
    alerts = await _alerts(session, policy, now)
    nudges = await _nudges(session, policy, now)
    return Due(nudges=nudges, alerts=alerts)


async def close_idle(
    session: AsyncSession, policy: ServicePolicy, *, now: datetime
) -> list[Ended]:
    """End the conversations that had no message for their shop's ``idle_close_hours``
    (``idle_at`` passed); each freed slot takes the oldest waiting chat. One whose customer
    is still waiting for an answer is never closed silently: it keeps its alerts and is
    looked at again after another ``idle_close_hours``."""
    ended: list[Ended] = []
    for shop_id, ids in (await _due_by_shop(session, col(Conversation.idle_at), now,
                                            policy.claim_batch)).items():
        settings = await lock_shop(session, policy, shop_id=shop_id, now=now)
        rows = await session.exec(
            select(Conversation).where(col(Conversation.id).in_(ids),
                                       col(Conversation.idle_at) <= now,
                                       col(Conversation.state).in_(OPEN_STATES))
            .order_by(col(Conversation.id)).execution_options(populate_existing=True))
        for conversation in list(rows.all()):
            if awaiting_answer(conversation):
                conversation.idle_at = now + timedelta(hours=settings.idle_close_hours)
                session.add(conversation)
                continue
            ended.append(await end_locked(session, settings, conversation, by=EndedBy.IDLE,
                                          actor_id=None, now=now))
    return ended


async def next_deadline(session: AsyncSession) -> datetime | None:
    """The earliest nudge, alert or idle end still to come (to schedule the next run)."""
    open_ = col(Conversation.state).in_(OPEN_STATES)
    times = [
        (await session.exec(select(func.min(column)).where(open_))).one()
        for column in (col(Conversation.nudge_at), col(Conversation.alert_at),
                       col(Conversation.idle_at))
    ]
    found = [t for t in times if t is not None]
    return min(found) if found else None

