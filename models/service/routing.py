"""Routing (SPEC §8): sticky agent, the entry's group by mode, overflow, queue, offline.

Every function here runs under the shop's routing lock (``settings.lock_shop``), taken by the
public rule that calls it. Assignment is also guarded row by row: a conversation is assigned
only while it has no agent (``agent_id IS NULL``), and an agent's ``open_chats`` only grows
while it is under the cap, so a bug elsewhere shows as a refusal, never as a broken rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.service.results import Placement, Via
from models.service.tables import (
    Agent,
    AgentStatus,
    Conversation,
    ConversationState,
    GroupMember,
    RoutingMode,
    ServiceGroup,
    ServiceSettings,
)

QUEUED = ConversationState.QUEUED.value
OFFLINE = ConversationState.OFFLINE.value
ASSIGNED = ConversationState.ASSIGNED.value
WAITING = (QUEUED, OFFLINE)


def mirror(row: object, **values: object) -> None:
    """Tell a loaded row what an UPDATE statement just wrote (without marking it changed)."""
    for name, value in values.items():
        set_committed_value(row, name, value)


def cap_of(settings: ServiceSettings) -> Any:
    """The agent's cap (接待上限) as SQL: their override, else the shop's default."""
    return func.coalesce(col(Agent.cap), settings.default_cap)


def available(settings: ServiceSettings, exclude: int | None = None) -> list[Any]:
    """Conditions on ``Agent``: takes a new chat now (online, active, under cap)."""
    where = [
        col(Agent.shop_id) == settings.shop_id,
        col(Agent.status) == AgentStatus.ONLINE.value,
        col(Agent.active).is_(True),
        col(Agent.open_chats) < cap_of(settings),
    ]
    if exclude is not None:
        where.append(col(Agent.id) != exclude)
    return where


async def load_conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    """The conversation as the database has it now."""
    conversation = await session.get(Conversation, conversation_id, populate_existing=True)
    if conversation is None:
        raise DomainError("service_conversation_not_found")
    return conversation


async def _sticky(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation,
    now: datetime, exclude: int | None,
) -> tuple[int, int] | None:
    if settings.sticky_days <= 0:
        return None
    cutoff = now - timedelta(days=settings.sticky_days)
    last = (await session.exec(
        select(Conversation.served_by)
        .where(col(Conversation.customer_id) == conversation.customer_id,
               col(Conversation.shop_id) == settings.shop_id,
               col(Conversation.served_by).is_not(None),
               col(Conversation.last_activity_at) >= cutoff)
        .order_by(col(Conversation.id).desc())
        .limit(1)
    )).first()
    if last is None:
        return None
    row = (await session.exec(
        select(Agent.id, Agent.user_id).where(col(Agent.id) == last, *available(settings, exclude))
    )).first()
    return (row[0] or 0, row[1]) if row else None


async def _weighted(
    session: AsyncSession, settings: ServiceSettings, group_id: int, exclude: int | None
) -> tuple[int, int] | None:
    """nginx's smooth weighted round-robin over the group's available members: every one's
    current weight grows by its weight, the largest (first member on a tie) is chosen and
    loses the total. Persisted, so it is deterministic across restarts and processes."""
    where = [col(GroupMember.group_id) == group_id, *available(settings, exclude)]
    row = (await session.exec(
        select(GroupMember.id, Agent.id, Agent.user_id, func.sum(GroupMember.weight).over())
        .join(Agent, col(Agent.id) == GroupMember.agent_id)
        .where(*where)
        .order_by((col(GroupMember.current_weight) + col(GroupMember.weight)).desc(),
                  col(GroupMember.id))
        .limit(1)
    )).first()
    if row is None:
        return None
    member_id, agent_id, user_id, total = row
    members = select(Agent.id).where(*available(settings, exclude)).scalar_subquery()
    await session.exec(
        update(GroupMember)
        .where(col(GroupMember.group_id) == group_id, col(GroupMember.agent_id).in_(members))
        .values(current_weight=col(GroupMember.current_weight) + col(GroupMember.weight)
                - case((col(GroupMember.id) == member_id, int(total)), else_=0))
        .execution_options(synchronize_session=False)
    )
    return agent_id or 0, user_id


async def _least_busy(
    session: AsyncSession, settings: ServiceSettings, group_id: int | None, exclude: int | None
) -> tuple[int, int] | None:
    """Fewest open chats; ties by weight (heavier first), then the older member/agent."""
    if group_id is None:
        stmt = (select(Agent.id, Agent.user_id).where(*available(settings, exclude))
                .order_by(col(Agent.open_chats), col(Agent.id)))
    else:
        stmt = (select(Agent.id, Agent.user_id)
                .join(GroupMember, col(GroupMember.agent_id) == Agent.id)
                .where(col(GroupMember.group_id) == group_id, *available(settings, exclude))
                .order_by(col(Agent.open_chats), col(GroupMember.weight).desc(),
                          col(GroupMember.id)))
    row = (await session.exec(stmt.limit(1))).first()
    return (row[0] or 0, row[1]) if row else None


async def pick_in_group(
    session: AsyncSession, settings: ServiceSettings, group_id: int, exclude: int | None
) -> tuple[int, int] | None:
    """An available agent of the group by the shop's mode, as ``(agent id, user id)``."""
    if settings.mode == RoutingMode.LEAST_BUSY.value:
        return await _least_busy(session, settings, group_id, exclude)
    return await _weighted(session, settings, group_id, exclude)


async def assign(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation, *,
    agent_id: int, agent_user_id: int, via: Via, now: datetime,
    previous: tuple[int, int] | None = None, actor_id: int | None = None,
) -> Placement:
    """Give a waiting conversation to an agent under their cap (both guarded in SQL)."""
    taken = await session.exec(
        update(Conversation)
        .where(col(Conversation.id) == conversation.id, col(Conversation.agent_id).is_(None),
               col(Conversation.state).in_(WAITING))
        .values(agent_id=agent_id, served_by=agent_id, state=ASSIGNED, assigned_at=now,
                waiting_since=None)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        raise DomainError("service_conversation_taken")
    seat = await session.exec(
        update(Agent)
        .where(col(Agent.id) == agent_id, col(Agent.open_chats) < cap_of(settings))
        .values(open_chats=col(Agent.open_chats) + 1)
        .execution_options(synchronize_session=False)
    )
    if seat.rowcount != 1:
        raise DomainError("service_agent_full")
    mirror(conversation, agent_id=agent_id, served_by=agent_id, state=ASSIGNED,
           assigned_at=now, waiting_since=None)
    audit.record(session, now=now, shop_id=settings.shop_id, actor_id=actor_id,
                 action="service.assigned", object_type="conversation",
                 object_id=conversation.id, agent=agent_id, via=via.value,
                 previous=previous[0] if previous else None)
    return Placement(
        conversation_id=conversation.id or 0, shop_id=settings.shop_id,
        customer_id=conversation.customer_id, entry_id=conversation.entry_id, state=ASSIGNED,
        via=via, agent_id=agent_id, agent_user_id=agent_user_id,
        previous_agent_id=previous[0] if previous else None,
        previous_agent_user_id=previous[1] if previous else None,
    )


async def unassign(
    session: AsyncSession, conversation: Conversation, *, now: datetime
) -> tuple[int, int]:
    """Take an assigned conversation from its agent (it waits again, from now); the agent's
    ``(id, user id)``."""
    agent = await session.get(Agent, conversation.agent_id or 0)
    if conversation.state != ASSIGNED or agent is None:
        raise DomainError("service_conversation_not_assigned")
    await session.exec(
        update(Conversation).where(col(Conversation.id) == conversation.id)
        .values(agent_id=None, state=QUEUED, waiting_since=now)
        .execution_options(synchronize_session=False)
    )
    await free_slot(session, agent.id or 0)
    mirror(conversation, agent_id=None, state=QUEUED, waiting_since=now)
    return agent.id or 0, agent.user_id


async def free_slot(session: AsyncSession, agent_id: int) -> None:
    await session.exec(
        update(Agent).where(col(Agent.id) == agent_id)
        .values(open_chats=col(Agent.open_chats) - 1)
        .execution_options(synchronize_session=False)
    )


async def queue_place(session: AsyncSession, conversation: Conversation) -> int:
    """The 1-based place of a queued conversation in its shop's queue (FIFO)."""
    since = conversation.waiting_since
    ahead = await session.exec(
        select(func.count()).select_from(Conversation)
        .where(col(Conversation.shop_id) == conversation.shop_id,
               col(Conversation.state) == QUEUED,
               or_(col(Conversation.waiting_since) < since,
                   and_(col(Conversation.waiting_since) == since,
                        col(Conversation.id) < conversation.id)))
    )
    return int(ahead.one()) + 1


async def _someone_online(
    session: AsyncSession, settings: ServiceSettings, groups: list[int], exclude: int | None
) -> bool:
    where = [col(Agent.shop_id) == settings.shop_id, col(Agent.active).is_(True),
             col(Agent.status) == AgentStatus.ONLINE.value]
    if exclude is not None:
        where.append(col(Agent.id) != exclude)
    if groups:
        where.append(exists().where(col(GroupMember.agent_id) == Agent.id,
                                    col(GroupMember.group_id).in_(groups)))
    return bool((await session.exec(select(exists().where(*where)))).one())


async def route_locked(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation, *,
    now: datetime, exclude: int | None = None, previous: tuple[int, int] | None = None,
    sticky: bool = True, wait: bool = True, actor_id: int | None = None,
) -> Placement | None:
    """SPEC §8's order for a waiting conversation. ``exclude`` is an agent it must not go to;
    with ``wait=False`` a conversation nobody can take now is left as it is (``None``)."""
    choice: tuple[int, int] | None = None
    via = Via.GROUP
    if sticky:
        choice = await _sticky(session, settings, conversation, now, exclude)
        via = Via.STICKY
    groups: list[int] = []
    if choice is None and conversation.group_id is not None:
        groups.append(conversation.group_id)
        choice, via = await pick_in_group(session, settings, conversation.group_id,
                                          exclude), Via.GROUP
        overflow = (await session.exec(
            select(ServiceGroup.overflow_group_id)
            .where(col(ServiceGroup.id) == conversation.group_id))).first()
        if choice is None and overflow is not None:
            groups.append(overflow)
            choice, via = await pick_in_group(session, settings, overflow, exclude), Via.OVERFLOW
    elif choice is None:
        choice, via = await _least_busy(session, settings, None, exclude), Via.SHOP
    if choice is not None:
        return await assign(session, settings, conversation, agent_id=choice[0],
                            agent_user_id=choice[1], via=via, now=now, previous=previous,
                            actor_id=actor_id)
    if not wait:
        return None
    online = await _someone_online(session, settings, groups, exclude)
    state = QUEUED if online else OFFLINE
    since = conversation.waiting_since or now
    await session.exec(
        update(Conversation).where(col(Conversation.id) == conversation.id)
        .values(state=state, waiting_since=since)
        .execution_options(synchronize_session=False)
    )
    mirror(conversation, state=state, waiting_since=since)
    place = await queue_place(session, conversation) if online else None
    return Placement(
        conversation_id=conversation.id or 0, shop_id=settings.shop_id,
        customer_id=conversation.customer_id, entry_id=conversation.entry_id, state=state,
        via=Via.QUEUED if online else Via.OFFLINE, place=place,
        previous_agent_id=previous[0] if previous else None,
        previous_agent_user_id=previous[1] if previous else None,
    )


async def can_take_now(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation, exclude: int
) -> bool:
    """Whether someone other than ``exclude`` in the conversation's group (or its overflow,
    or the shop when it has no group) could take it right now."""
    where = available(settings, exclude)
    if conversation.group_id is not None:
        overflow = select(ServiceGroup.overflow_group_id).where(
            col(ServiceGroup.id) == conversation.group_id).scalar_subquery()
        where.append(exists().where(
            col(GroupMember.agent_id) == Agent.id,
            or_(col(GroupMember.group_id) == conversation.group_id,
                col(GroupMember.group_id) == overflow)))
    return bool((await session.exec(select(exists().where(*where)))).one())


def _takes_from(agent_id: int) -> Any:
    """Conversations this agent may take from the queue: of a group they are in, of a group
    whose overflow group they are in, or of no group."""
    mine = select(GroupMember.group_id).where(col(GroupMember.agent_id) == agent_id)
    overflowing = select(ServiceGroup.id).where(col(ServiceGroup.overflow_group_id).in_(mine))
    return or_(col(Conversation.group_id).is_(None), col(Conversation.group_id).in_(mine),
               col(Conversation.group_id).in_(overflowing))


async def hand_out(
    session: AsyncSession, settings: ServiceSettings, *, agent_id: int, now: datetime,
    skip: set[int] | None = None,
) -> list[Placement]:
    """While the agent is available, give them the oldest queued conversation, then the
    oldest offline message, that they may take (SPEC §8 steps 4 and 5)."""
    handouts: list[Placement] = []
    agent = (await session.exec(
        select(Agent.id, Agent.user_id, Agent.open_chats, cap_of(settings))
        .where(col(Agent.id) == agent_id, *available(settings)))).first()
    if agent is None:
        return handouts
    free = int(agent[3]) - int(agent[2])
    for state in WAITING:
        while free > 0:
            stmt = (select(Conversation)
                    .where(col(Conversation.shop_id) == settings.shop_id,
                           col(Conversation.state) == state, _takes_from(agent_id))
                    .order_by(col(Conversation.waiting_since), col(Conversation.id))
                    .limit(1))
            if skip:
                stmt = stmt.where(col(Conversation.id).not_in(skip))
            conversation = (await session.exec(
                stmt.execution_options(populate_existing=True))).first()
            if conversation is None:
                break
            handouts.append(await assign(session, settings, conversation, agent_id=agent_id,
                                         agent_user_id=agent[1], via=Via.HANDOUT, now=now))
            free -= 1
    return handouts
