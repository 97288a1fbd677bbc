"""Conversations: open or resume, route, transfer (转接), end, rate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, bindparam, exists, func, insert, update
from sqlalchemy import select as sa_select  # sqlmodel's select takes at most four entities
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.service.entries import hash_token
from models.service.groups import get_group
from models.service.handouts import hand_out, hand_out_after_end_pg
from models.service.policy import ServicePolicy
from models.service.results import Ended, Placement, Transferred, Via
from models.service.routing import (
    ASSIGNED,
    CONVERSATIONS,
    QUEUED,
    C,
    assign,
    load_conversation,
    mirror,
    on_postgres,
    pick_in_group,
    route_locked,
    sticky_candidate,
    unassign,
)
from models.service.settings import lock_shop, lock_shop_of, lock_shop_of_entry
from models.service.tables import (
    OPEN_STATES,
    Agent,
    AgentStatus,
    Conversation,
    ConversationState,
    Entry,
    Rating,
    ServiceSettings,
)
from models.tables import Shop

CLOSED = ConversationState.CLOSED.value


class EndedBy:
    CUSTOMER = "customer"
    AGENT = "agent"
    OWNER = "owner"
    IDLE = "idle"


@dataclass(frozen=True)
class Opened:
    """The customer's conversation with the shop; ``placement`` when it was just made (and
    routed), ``None`` when an open one was resumed."""

    conversation: Conversation
    shop: Shop
    created: bool
    placement: Placement | None


async def open_conversation_of(
    session: AsyncSession, *, customer_id: int, shop_id: int
) -> Conversation | None:
    """The customer's open conversation with the shop, if any."""
    return (await session.exec(
        select(Conversation).where(col(Conversation.customer_id) == customer_id,
                                   col(Conversation.shop_id) == shop_id,
                                   col(Conversation.state).in_(OPEN_STATES))
        .execution_options(populate_existing=True))).first()


async def open_conversations_of(session: AsyncSession, *, customer_id: int) -> list[Conversation]:
    """Every open conversation of a customer (one per shop), newest activity first."""
    rows = await session.exec(
        select(Conversation).where(col(Conversation.customer_id) == customer_id,
                                   col(Conversation.state).in_(OPEN_STATES))
        .order_by(col(Conversation.last_activity_at).desc()))
    return list(rows.all())


#: the customer's latest conversation with the entry's shop: open (resumed) or ended (sticky)
_LATEST = CONVERSATIONS.alias("latest")
_LATEST_ID = (
    select(_LATEST.c.id)
    .where(_LATEST.c.customer_id == bindparam("customer"), _LATEST.c.shop_id == Entry.shop_id)
    .order_by(_LATEST.c.id.desc()).limit(1).scalar_subquery()
)
#: the entry, its shop, whether the customer is the shop's staff, and the latest conversation
_ENTRY = (
    sa_select(col(Entry.id), col(Entry.group_id), Shop, exists().where(
        col(Agent.shop_id) == Entry.shop_id, col(Agent.user_id) == bindparam("customer"),
        col(Agent.active).is_(True)), Conversation)
    .join(Shop, col(Shop.id) == Entry.shop_id)
    .outerjoin(Conversation, col(Conversation.id) == _LATEST_ID)
    .where(col(Entry.token_hash) == bindparam("token_hash"))
    .execution_options(populate_existing=True)
)


EntryRow = Row[int, int | None, Shop, bool, Conversation | None]


async def _entry_row(session: AsyncSession, params: dict[str, object]) -> EntryRow | None:
    """``_ENTRY``'s row (a SQLAlchemy select: sqlmodel's takes at most four entities)."""
    found = await session.exec(_ENTRY, params=params)  # type: ignore[call-overload]
    row: EntryRow | None = found.first()
    return row


_INSERTED = ("shop_id", "customer_id", "entry_id", "group_id", "state", "created_at",
             "waiting_since", "last_activity_at", "idle_at")
_INSERT = insert(CONVERSATIONS).returning(C.id)


async def open_or_resume(
    session: AsyncSession, policy: ServicePolicy, *, customer_id: int, token: str,
    now: datetime,
) -> Opened:
    """A customer opened an entry link: their open conversation with that shop, or a new one
    routed at once (docs/service.md). An unknown or regenerated token is ``service_entry_link_invalid``;
    the shop's own staff cannot be its customers.

    The new conversation is inserted under the shop's routing lock, after looking for an open
    one, so two openings never race; the partial unique index (one open conversation per
    customer and shop) is the database's guarantee behind that.
    """
    token_hash = hash_token(token)
    # the lock first (one statement with the entry's look-up), so that what is read after it
    # (the latest conversation) cannot change before the commit
    settings = await lock_shop_of_entry(session, token_hash=token_hash)
    params = {"customer": customer_id, "token_hash": token_hash}
    row = await _entry_row(session, params)
    if row is None:
        raise DomainError("service_entry_link_invalid")
    entry_id, group_id, shop, staff, latest = row
    if shop.owner_id == customer_id or staff:
        raise DomainError("service_staff_not_customer")
    shop_id = shop.id or 0
    if settings is None:  # the shop's first customer: its settings made, the lock taken
        settings = await lock_shop(session, policy, shop_id=shop_id, now=now)
        latest = (await _entry_row(session, params) or row)[4]
    if latest is not None and latest.state in OPEN_STATES:
        return Opened(latest, shop, False, None)
    hint = sticky_candidate(latest, settings, now)
    conversation = Conversation(
        shop_id=shop_id, customer_id=customer_id, entry_id=entry_id, group_id=group_id,
        state=QUEUED, created_at=now, waiting_since=now, last_activity_at=now,
        idle_at=now + timedelta(hours=settings.idle_close_hours),
    )
    # a Core INSERT, the row then put in the session as loaded (no flush of a pending object)
    conversation.id = (await session.exec(_INSERT, params={
        name: getattr(conversation, name) for name in _INSERTED})).scalar_one()
    make_transient_to_detached(conversation)
    session.add(conversation)
    audit.record(session, now=now, shop_id=shop_id, actor_id=customer_id,
                 action="service.opened", object_type="conversation",
                 object_id=conversation.id, entry=entry_id)
    with session.no_autoflush:  # the audit rows go in one INSERT at the commit
        placement = await route_locked(session, settings, conversation, now=now,
                                       sticky_hint=hint)
    return Opened(conversation, shop, True, placement)


async def route(
    session: AsyncSession, policy: ServicePolicy, *, conversation_id: int, now: datetime
) -> Placement:
    """Route a waiting (queued or offline) conversation again, in the routing order of docs/service.md; an
    assigned one is returned where it is."""
    settings = await lock_shop_of(session, policy, conversation_id=conversation_id, now=now)
    conversation = await load_conversation(session, conversation_id)
    if conversation.state == CLOSED:
        raise DomainError("service_conversation_closed")
    if conversation.state == ASSIGNED:
        agent = await session.get(Agent, conversation.agent_id or 0)
        return Placement(conversation_id=conversation_id, shop_id=conversation.shop_id,
                         customer_id=conversation.customer_id, entry_id=conversation.entry_id,
                         state=ASSIGNED, via=Via.GROUP, agent_id=conversation.agent_id,
                         agent_user_id=agent.user_id if agent else None)
    return await route_locked(session, settings, conversation, now=now)


async def _check_staff(
    session: AsyncSession, conversation: Conversation, actor_id: int,
    loaded: tuple[Agent | None] | None = None,
) -> Agent | None:
    """The actor is the conversation's agent (its last one, once ended) or the shop's owner
    (forged buttons refused). Returns that agent (the session only keeps what is held).
    ``loaded``: that agent as just read with the conversation (``_WITH_AGENT``)."""
    agent = loaded[0] if loaded is not None else await session.get(
        Agent, conversation.agent_id or conversation.served_by or 0, populate_existing=True)
    if agent is not None and agent.user_id == actor_id:
        return agent
    shop = await session.get(Shop, conversation.shop_id)
    if shop is None or shop.owner_id != actor_id:
        raise DomainError("service_not_your_conversation")
    return agent


async def transfer(
    session: AsyncSession, policy: ServicePolicy, *, conversation_id: int, actor_id: int,
    now: datetime, to_agent_id: int | None = None, to_group_id: int | None = None,
) -> Transferred:
    """转接: hand an assigned conversation to an agent (online or on break, under their cap)
    or to a group (its available agents by mode, then its overflow). Refused, and left where
    it is, when nobody can take it now. The freed slot takes the oldest waiting chat."""
    if (to_agent_id is None) == (to_group_id is None):
        raise DomainError("service_transfer_target")
    settings = await lock_shop_of(session, policy, conversation_id=conversation_id, now=now)
    conversation = await load_conversation(session, conversation_id)
    if conversation.state != ASSIGNED:
        raise DomainError("service_conversation_closed" if conversation.state == CLOSED
                          else "service_conversation_not_assigned")
    await _check_staff(session, conversation, actor_id)
    current = conversation.agent_id or 0
    if to_agent_id is not None:
        target = await session.get(Agent, to_agent_id, populate_existing=True)
        if target is None or target.shop_id != conversation.shop_id:
            raise DomainError("service_agent_not_found")
        if target.id == current:
            raise DomainError("service_transfer_same_agent")
        if not target.active or target.status == AgentStatus.OFFLINE.value:
            raise DomainError("service_transfer_agent_unavailable")
        cap = target.cap if target.cap is not None else settings.default_cap
        if target.open_chats >= cap:
            raise DomainError("service_transfer_agent_full", cap=cap)
        choice: tuple[int, int] = (target.id or 0, target.user_id)
        via = Via.TRANSFER
    else:
        group = await get_group(session, shop_id=conversation.shop_id, group_id=to_group_id or 0)
        picked, via = await pick_in_group(session, settings, group.id or 0, current), Via.GROUP
        if picked is None and group.overflow_group_id is not None:
            picked, via = await pick_in_group(session, settings, group.overflow_group_id,
                                              current), Via.OVERFLOW
        if picked is None:
            raise DomainError("service_transfer_nobody", group=group.name)
        choice = picked
        conversation.group_id = group.id
        session.add(conversation)
        await session.flush()
    previous = await unassign(session, conversation, now=now)
    placement = await assign(session, settings, conversation, agent_id=choice[0],
                             agent_user_id=choice[1], via=via, now=now, previous=previous,
                             actor_id=actor_id)
    audit.record(session, now=now, shop_id=conversation.shop_id, actor_id=actor_id,
                 action="service.transferred", object_type="conversation",
                 object_id=conversation_id, before=previous[0], after=choice[0],
                 group=to_group_id)
    handouts = await hand_out(session, settings, agent_id=previous[0], now=now,
                              skip=conversation_id)
    return Transferred(placement, handouts)


_CLOSE = (
    update(CONVERSATIONS).where(C.id == bindparam("conversation"))
    .values(state=CLOSED, agent_id=None, closed_at=bindparam("now"), closed_by=bindparam("by"),
            waiting_since=None, nudge_at=None, alert_at=None)
)


async def end_locked(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation, *,
    by: str, actor_id: int | None, now: datetime, agent: Agent | None = None,
) -> Ended:
    """End an open conversation loaded under the shop's lock (``settings``); ``agent`` is
    its agent when the caller has loaded it under the lock."""
    if agent is None or agent.id != conversation.agent_id:
        agent = await session.get(Agent, conversation.agent_id or 0, populate_existing=True)
    params = {"conversation": conversation.id, "now": now, "by": by}
    audit.record(session, now=now, shop_id=conversation.shop_id, actor_id=actor_id,
                 action="service.ended", object_type="conversation", object_id=conversation.id,
                 by=by)
    # the agent's seat goes to the oldest waiting chat they may take, or back (in hand_out)
    handouts: list[Placement] = []
    if agent is not None and on_postgres(session):
        handouts = await hand_out_after_end_pg(session, settings, _CLOSE, params, agent=agent,
                                               now=now)
    else:
        await session.exec(_CLOSE, params=params)
        if agent is not None:
            handouts = await hand_out(session, settings, agent_id=agent.id or 0, now=now,
                                      ended=agent)
    mirror(conversation, state=CLOSED, agent_id=None, closed_at=now, closed_by=by,
           waiting_since=None, nudge_at=None, alert_at=None)
    return Ended(conversation_id=conversation.id or 0, shop_id=conversation.shop_id,
                 customer_id=conversation.customer_id,
                 agent_id=agent.id if agent else None,
                 agent_user_id=agent.user_id if agent else None, by=by, handouts=handouts)


#: a conversation and its agent (its last one, once ended), as the database has them now
_WITH_AGENT = (
    select(Conversation, Agent)
    .outerjoin(Agent, col(Agent.id) == func.coalesce(col(Conversation.agent_id),
                                                      col(Conversation.served_by)))
    .where(col(Conversation.id) == bindparam("conversation"))
    .execution_options(populate_existing=True)
)


async def end(
    session: AsyncSession, policy: ServicePolicy, *, conversation_id: int, by: str,
    actor_id: int, now: datetime,
) -> Ended:
    """End a conversation, by its customer, its agent or the shop's owner. The agent's freed
    slot takes the oldest waiting chat (in ``handouts``)."""
    if by not in (EndedBy.CUSTOMER, EndedBy.AGENT, EndedBy.OWNER):
        raise DomainError("service_end_invalid")
    settings = await lock_shop_of(session, policy, conversation_id=conversation_id, now=now)
    row = (await session.exec(_WITH_AGENT, params={"conversation": conversation_id})).first()
    if row is None:
        raise DomainError("service_conversation_not_found")
    conversation, loaded = row
    agent: Agent | None = loaded
    if by == EndedBy.CUSTOMER:
        if conversation.customer_id != actor_id:
            raise DomainError("service_not_your_conversation")
    else:
        agent = await _check_staff(session, conversation, actor_id, (loaded,))
    if conversation.state == CLOSED:
        raise DomainError("service_conversation_closed")
    with session.no_autoflush:  # the audit rows go in one INSERT at the commit
        return await end_locked(session, settings, conversation, by=by, actor_id=actor_id,
                                now=now, agent=agent)


async def rate(
    session: AsyncSession, *, conversation_id: int, customer_id: int, score: int,
    now: datetime,
) -> Rating:
    """The customer's 1–5 rating, only after the end and only once."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise DomainError("service_rating_invalid")
    conversation = await load_conversation(session, conversation_id)
    if conversation.customer_id != customer_id:
        raise DomainError("service_not_your_conversation")
    if conversation.state != CLOSED:
        raise DomainError("service_rate_not_ended")
    if await session.get(Rating, conversation_id) is not None:
        raise DomainError("service_already_rated")
    rating = Rating(conversation_id=conversation_id, shop_id=conversation.shop_id,
                    agent_id=conversation.served_by, score=score, created_at=now)
    try:
        async with session.begin_nested():
            session.add(rating)
    except IntegrityError as exc:
        raise DomainError("service_already_rated") from exc
    audit.record(session, now=now, shop_id=conversation.shop_id, actor_id=customer_id,
                 action="service.rated", object_type="conversation", object_id=conversation_id,
                 score=score)
    return rating

