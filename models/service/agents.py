"""Agents: who may answer customers, their status (在线 / 小休 / 离线) and cap (接待上限)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.service.handouts import hand_out
from models.service.policy import CAP_RANGE, ServicePolicy
from models.service.results import Placement, StatusChange
from models.service.routing import route_locked, unassign
from models.service.settings import lock_shop
from models.service.tables import (
    Agent,
    AgentKind,
    AgentStatus,
    Conversation,
    ConversationState,
    ServiceSettings,
)
from models.tables import AccountStatus, Shop, SubAccount


async def agent_for(session: AsyncSession, *, shop_id: int, user_id: int) -> Agent | None:
    """The user's agent row in the shop, if they ever were one."""
    return (await session.exec(
        select(Agent).where(col(Agent.shop_id) == shop_id, col(Agent.user_id) == user_id)
    )).first()


_AGENT_OF_MEMBER = (
    select(Agent)
    .join(SubAccount, and_(col(SubAccount.shop_id) == Agent.shop_id,
                           col(SubAccount.holder_id) == Agent.user_id))
    .where(col(Agent.user_id) == bindparam("user"))
)


async def agent_of_member(session: AsyncSession, *, user_id: int) -> Agent | None:
    """The user's agent row in the shop of their sub-account, if they ever were one there
    (``agent_for`` with the membership's shop, in one statement)."""
    return (await session.exec(_AGENT_OF_MEMBER, params={"user": user_id})).first()


async def agents_of(session: AsyncSession, *, shop_id: int) -> list[Agent]:
    """The shop's agents (active first), oldest first."""
    rows = await session.exec(
        select(Agent).where(col(Agent.shop_id) == shop_id)
        .order_by(col(Agent.active).desc(), col(Agent.id))
    )
    return list(rows.all())


async def _eligibility(
    session: AsyncSession, shop_id: int, user_id: int
) -> tuple[str, int | None] | None:
    """``(kind, account id)`` if the user may be the shop's agent now: its owner, or an
    authorized, not suspended sub-account with IM on."""
    shop = await session.get(Shop, shop_id)
    if shop is None:
        raise DomainError("service_shop_not_found")
    if shop.owner_id == user_id:
        return AgentKind.OWNER.value, None
    account = (await session.exec(
        select(SubAccount).where(col(SubAccount.shop_id) == shop_id,
                                 col(SubAccount.holder_id) == user_id))).first()
    if account is None or not account.im_enabled:
        return None
    if account.status != AccountStatus.AUTHORIZED.value:
        return None
    return AgentKind.SUB.value, account.id


async def enroll_agent(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int, user_id: int,
    actor_id: int, now: datetime,
) -> Agent:
    """Make the user an agent of the shop (status offline): the owner opting in, or an IM
    sub-account. Refused for anyone else (``service_not_agent``)."""
    await lock_shop(session, policy, shop_id=shop_id, now=now)
    found = await _eligibility(session, shop_id, user_id)
    if found is None:
        raise DomainError("service_not_agent")
    kind, account_id = found
    agent = await agent_for(session, shop_id=shop_id, user_id=user_id)
    if agent is not None and agent.active:
        return agent
    if agent is None:
        agent = Agent(shop_id=shop_id, user_id=user_id, kind=kind, account_id=account_id,
                      status_changed_at=now, created_at=now)
    agent.kind, agent.account_id, agent.active = kind, account_id, True
    agent.status, agent.status_changed_at = AgentStatus.OFFLINE.value, now
    session.add(agent)
    await session.flush()
    audit.record(session, now=now, shop_id=shop_id, actor_id=actor_id,
                 action="service.agent_enrolled", object_type="agent", object_id=agent.id,
                 user=user_id, kind=kind)
    return agent


async def _locked_agent(
    session: AsyncSession, policy: ServicePolicy, shop_id: int, agent_id: int, now: datetime
) -> tuple[ServiceSettings, Agent]:
    settings = await lock_shop(session, policy, shop_id=shop_id, now=now)
    agent = await session.get(Agent, agent_id, populate_existing=True)
    if agent is None or agent.shop_id != shop_id:
        raise DomainError("service_agent_not_found")
    return settings, agent


async def _reroute_all(
    session: AsyncSession, settings: ServiceSettings, agent: Agent, now: datetime,
    actor_id: int | None,
) -> list[Placement]:
    """Every open chat of the agent back to routing (never to them), oldest first."""
    rows = await session.exec(
        select(Conversation)
        .where(col(Conversation.agent_id) == agent.id)
        .order_by(col(Conversation.id))
        .execution_options(populate_existing=True)
    )
    moved: list[Placement] = []
    for conversation in list(rows.all()):
        previous = await unassign(session, conversation, now=now)
        placement = await route_locked(session, settings, conversation, now=now,
                                       exclude=agent.id, previous=previous, actor_id=actor_id)
        assert placement is not None
        moved.append(placement)
    return moved


async def set_status(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int, agent_id: int, status: str,
    actor_id: int, now: datetime, hand_back: bool = False,
) -> StatusChange:
    """Online (takes new chats, and the oldest waiting ones at once), break (小休: no new chats,
    keeps the open ones, still takes transfers) or offline (only with no open chats, or with
    ``hand_back``: they go back to routing and are returned in ``moved``)."""
    if status not in {s.value for s in AgentStatus}:
        raise DomainError("service_status_invalid")
    settings, agent = await _locked_agent(session, policy, shop_id, agent_id, now)
    if status != AgentStatus.OFFLINE.value and (
            not agent.active or await _eligibility(session, shop_id, agent.user_id) is None):
        raise DomainError("service_not_agent")
    if agent.status == status:
        raise DomainError("nothing_changed")
    if status == AgentStatus.OFFLINE.value and agent.open_chats and not hand_back:
        raise DomainError("service_offline_has_chats", count=agent.open_chats)
    before = agent.status
    agent.status, agent.status_changed_at = status, now
    session.add(agent)
    await session.flush()
    audit.record(session, now=now, shop_id=shop_id, actor_id=actor_id,
                 action="service.status", object_type="agent", object_id=agent.id,
                 before=before, after=status)
    moved: list[Placement] = []
    handouts: list[Placement] = []
    if status == AgentStatus.OFFLINE.value:
        moved = await _reroute_all(session, settings, agent, now, actor_id)
    elif status == AgentStatus.ONLINE.value:
        handouts = await hand_out(session, settings, agent_id=agent_id, now=now)
    return StatusChange(agent_id=agent_id, status=status, moved=moved, handouts=handouts)


async def set_agent_cap(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int, agent_id: int,
    cap: int | None, actor_id: int, now: datetime,
) -> list[Placement]:
    """Override the agent's cap (``None``: the shop's default). A lower cap takes no chat
    away; a higher one hands out waiting chats at once (returned)."""
    low, high = CAP_RANGE
    if cap is not None and not low <= cap <= high:
        raise DomainError("service_cap_invalid", min=low, max=high)
    settings, agent = await _locked_agent(session, policy, shop_id, agent_id, now)
    if agent.cap == cap:
        raise DomainError("nothing_changed")
    before, agent.cap = agent.cap, cap
    session.add(agent)
    await session.flush()
    audit.record(session, now=now, shop_id=shop_id, actor_id=actor_id, action="service.cap",
                 object_type="agent", object_id=agent.id, before=before, after=cap)
    return await hand_out(session, settings, agent_id=agent_id, now=now)


async def release_agent(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int, user_id: int, reason: str,
    actor_id: int | None, now: datetime,
) -> list[Placement]:
    """Permissions take effect at once (IM off, suspended, unbound, left the shop, the owner
    opting out): the user gets no new chats and their open ones go back to routing. Returns
    where each went, so the handler can tell the customers and copy the history. Call it in
    the transaction of the change (before an unbind deletes the account); a user who is no
    agent moves nothing. ``actor_id`` is ``None`` when the system acts (an access that
    expired, an unanswered review)."""
    agent = await agent_for(session, shop_id=shop_id, user_id=user_id)
    if agent is None or agent.id is None:
        return []
    settings, agent = await _locked_agent(session, policy, shop_id, agent.id, now)
    was_active = agent.active
    agent.active, agent.status, agent.status_changed_at = False, AgentStatus.OFFLINE.value, now
    session.add(agent)
    await session.flush()
    moved = await _reroute_all(session, settings, agent, now, actor_id)
    if was_active or moved:
        audit.record(session, now=now, shop_id=shop_id, actor_id=actor_id,
                     action="service.agent_released", object_type="agent", object_id=agent.id,
                     reason=reason, moved=len(moved))
    return moved


async def open_chats(session: AsyncSession, *, agent_id: int) -> list[Conversation]:
    """The agent's open conversations, oldest first (to pick one to answer)."""
    rows = await session.exec(
        select(Conversation)
        .where(col(Conversation.agent_id) == agent_id,
               col(Conversation.state) == ConversationState.ASSIGNED.value)
        .order_by(col(Conversation.id))
    )
    return list(rows.all())
