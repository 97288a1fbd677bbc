"""The owner's live view and a day's figures; who could take a waiting chat, and whether a customer
has chats at several shops (what the customer is told)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.service.policy import ServicePolicy
from models.service.routing import ASSIGNED, OFFLINE, QUEUED
from models.service.settings import get_settings
from models.service.tables import (
    OPEN_STATES,
    Agent,
    AgentStatus,
    Conversation,
    GroupMember,
    Rating,
    ServiceGroup,
)


@dataclass(frozen=True)
class AgentLoad:
    agent_id: int
    user_id: int
    status: str
    open_chats: int
    cap: int


@dataclass(frozen=True)
class LiveView:
    online: int
    on_break: int
    agents: list[AgentLoad]
    queued: int
    offline_waiting: int
    longest_wait_seconds: int | None


async def live_view(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int, now: datetime
) -> LiveView:
    """Who is online, open chats per agent, queue length and the longest wait now."""
    settings = await get_settings(session, policy, shop_id=shop_id)
    rows = await session.exec(
        select(Agent).where(col(Agent.shop_id) == shop_id, col(Agent.active).is_(True))
        .order_by(col(Agent.id)))
    agents = [AgentLoad(a.id or 0, a.user_id, a.status, a.open_chats,
                        a.cap if a.cap is not None else settings.default_cap)
              for a in rows.all()]
    waiting = dict((await session.exec(
        select(Conversation.state, func.count())
        .where(col(Conversation.shop_id) == shop_id,
               col(Conversation.state).in_((QUEUED, OFFLINE)))
        .group_by(col(Conversation.state)))).all())
    oldest = (await session.exec(
        select(func.min(Conversation.waiting_since))
        .where(col(Conversation.shop_id) == shop_id,
               col(Conversation.state).in_((QUEUED, OFFLINE))))).one()
    return LiveView(
        online=sum(a.status == AgentStatus.ONLINE.value for a in agents),
        on_break=sum(a.status == AgentStatus.BREAK.value for a in agents),
        agents=agents, queued=int(waiting.get(QUEUED, 0)),
        offline_waiting=int(waiting.get(OFFLINE, 0)),
        longest_wait_seconds=int((now - oldest).total_seconds()) if oldest else None,
    )


def nearest_rank(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0–1) of ``values``; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


@dataclass(frozen=True)
class DayFigures:
    chats: int
    answered: int
    first_response_p50: float | None
    first_response_p90: float | None
    rating_average: float | None
    ratings: int
    open_now: int


async def day_figures(
    session: AsyncSession, *, shop_id: int, start: datetime, end: datetime
) -> DayFigures:
    """Figures of the conversations that began in ``[start, end)`` (the caller picks the day):
    how many, first response p50/p90 in seconds (from the customer's first message to the
    first answer), their ratings' average and count, and how many are still open."""
    rows = (await session.exec(
        select(Conversation.first_customer_at, Conversation.first_response_at,
               Conversation.state)
        .where(col(Conversation.shop_id) == shop_id, col(Conversation.created_at) >= start,
               col(Conversation.created_at) < end))).all()
    waits = [(answered - asked).total_seconds() for asked, answered, _ in rows
             if asked is not None and answered is not None]
    average, count = (await session.exec(
        select(func.avg(Rating.score), func.count())
        .join(Conversation, col(Conversation.id) == Rating.conversation_id)
        .where(col(Rating.shop_id) == shop_id, col(Conversation.created_at) >= start,
               col(Conversation.created_at) < end))).one()
    return DayFigures(
        chats=len(rows), answered=len(waits),
        first_response_p50=nearest_rank(waits, 0.5), first_response_p90=nearest_rank(waits, 0.9),
        rating_average=round(float(average), 2) if average is not None else None,
        ratings=int(count),
        open_now=sum(state in (QUEUED, OFFLINE, ASSIGNED) for _, _, state in rows),
    )


@dataclass(frozen=True)
class Agents:
    """How many of the agents who could take a chat there are, and how many are online / on a
    break."""

    total: int
    online: int
    on_break: int


async def several_shops(session: AsyncSession, customer_id: int) -> bool:
    """Whether the customer has open chats with more than one shop."""
    count = await session.exec(
        select(func.count(func.distinct(col(Conversation.shop_id))))
        .where(col(Conversation.customer_id) == customer_id,
               col(Conversation.state).in_(OPEN_STATES)))
    return int(count.one()) > 1


async def agents_for(session: AsyncSession, conversation: Conversation) -> Agents:
    """The active agents who could take ``conversation``: its group's and its overflow group's
    members, or the shop's agents when it has no group."""
    query = select(Agent.status, func.count(func.distinct(col(Agent.id)))).where(
        col(Agent.shop_id) == conversation.shop_id, col(Agent.active).is_(True))
    if conversation.group_id is not None:
        overflow = (select(ServiceGroup.overflow_group_id)
                    .where(col(ServiceGroup.id) == conversation.group_id).scalar_subquery())
        query = query.join(GroupMember, col(GroupMember.agent_id) == col(Agent.id)).where(
            or_(col(GroupMember.group_id) == conversation.group_id,
                col(GroupMember.group_id) == overflow))
    counts = {status: int(n) for status, n in
              (await session.exec(query.group_by(col(Agent.status)))).all()}
    return Agents(total=sum(counts.values()), online=counts.get(AgentStatus.ONLINE.value, 0),
                  on_break=counts.get(AgentStatus.BREAK.value, 0))
