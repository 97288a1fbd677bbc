"""Routing (docs/service.md): sticky agent, the entry's group by mode, overflow, queue, offline.

Every function here runs under the shop's routing lock (``settings.lock_shop``), taken by the
public rule that calls it. Assignment is also guarded row by row: a conversation is assigned
only while it has no agent (``agent_id IS NULL``), and an agent's ``open_chats`` only grows
while it is under the cap, so a bug elsewhere shows as a refusal, never as a broken rule.

The statements are built once, with bound parameters (building a SQLAlchemy statement costs
more than running it; a routing decision runs a dozen of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    text,
    update,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel, select
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
#: ``exclude`` when no agent is excluded (ids start at 1)
NOBODY = 0


def table_of(model: type[SQLModel]) -> Table:
    """The model's Core table: statements on it skip the ORM's per-statement work (half the
    cost of a routing decision's statements when they went through the ORM)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


AGENTS, CONVERSATIONS = table_of(Agent), table_of(Conversation)
MEMBERS, GROUPS = table_of(GroupMember), table_of(ServiceGroup)
A, C, M, G = AGENTS.c, CONVERSATIONS.c, MEMBERS.c, GROUPS.c


def mirror(row: object, **values: object) -> None:
    """Tell a loaded row what an UPDATE statement just wrote (without marking it changed)."""
    for name, value in values.items():
        set_committed_value(row, name, value)


#: the agent's cap (接待上限) as SQL: their override, else the shop's default
CAP = func.coalesce(A.cap, bindparam("default_cap"))
#: takes a new chat now: online, active, under cap, not the excluded one. Through a group's
#: members the shop is implied (a group has one shop's agents), and without the shop the
#: planner walks the group's members (an index range) instead of the shop's online agents.
AVAILABLE_MEMBER = and_(
    A.status == AgentStatus.ONLINE.value,
    A.active.is_(True),
    A.open_chats < CAP,
    A.id != bindparam("exclude"),
)
AVAILABLE = and_(A.shop_id == bindparam("shop"), AVAILABLE_MEMBER)


def params_of(settings: ServiceSettings, exclude: int | None = None, **more: Any) -> dict[str, Any]:
    return {"shop": settings.shop_id, "default_cap": settings.default_cap,
            "exclude": exclude or NOBODY, **more}


async def load_conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    """The conversation as the database has it now."""
    conversation = await session.get(Conversation, conversation_id, populate_existing=True)
    if conversation is None:
        raise DomainError("service_conversation_not_found")
    return conversation


_STICKY = (
    select(A.id, A.user_id)
    .where(A.id == (
        select(C.served_by)
        .where(C.customer_id == bindparam("customer"),
               C.shop_id == bindparam("shop"),
               C.served_by.is_not(None),
               C.last_activity_at >= bindparam("cutoff"))
        .order_by(C.id.desc())
        .limit(1)
        .scalar_subquery()), AVAILABLE)
)


_AVAILABLE_AGENT = select(A.id, A.user_id).where(A.id == bindparam("agent"), AVAILABLE)


class Sticky:
    """What the caller already knows of the customer's last conversation with the shop."""

    UNKNOWN = -1  # look it up
    NONE = 0  # no agent to stick to


def sticky_candidate(last: Conversation | None, settings: ServiceSettings, now: datetime
                     ) -> int:
    """From the customer's latest (ended) conversation with the shop: the agent to try, or
    ``Sticky.NONE``; ``Sticky.UNKNOWN`` when only a look-up can tell (it had no agent)."""
    if last is None or settings.sticky_days <= 0:
        return Sticky.NONE
    if last.served_by is None:
        return Sticky.UNKNOWN
    if last.last_activity_at < now - timedelta(days=settings.sticky_days):
        return Sticky.NONE  # the older ones are older still
    return last.served_by


async def _sticky(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation,
    now: datetime, exclude: int | None, hint: int,
) -> tuple[int, int] | None:
    """The agent who served this customer last within ``sticky_days``, if available."""
    if settings.sticky_days <= 0 or hint == Sticky.NONE:
        return None
    if hint != Sticky.UNKNOWN:
        row = (await session.exec(_AVAILABLE_AGENT,
                                  params=params_of(settings, exclude, agent=hint))).first()
    else:
        cutoff = now - timedelta(days=settings.sticky_days)
        row = (await session.exec(_STICKY, params=params_of(
            settings, exclude, customer=conversation.customer_id, cutoff=cutoff))).first()
    return (row[0] or 0, row[1]) if row else None


_WEIGHTED_PICK = (
    select(M.id, A.id, A.user_id, func.sum(M.weight).over())
    .join(AGENTS, A.id == M.agent_id)
    .where(M.group_id == bindparam("group"), AVAILABLE_MEMBER)
    .order_by((M.current_weight + M.weight).desc(),
              M.id)
    .limit(1)
)
_WEIGHTED_STEP = (
    update(MEMBERS)
    .where(M.group_id == bindparam("group"),
           M.agent_id.in_(select(A.id).where(A.id == M.agent_id, AVAILABLE_MEMBER)
                          .scalar_subquery()))
    .values(current_weight=M.current_weight + M.weight
            - case((M.id == bindparam("chosen"), bindparam("total")), else_=0))

)


#: PostgreSQL: the pick and the step in one round trip (a data-modifying CTE; SQLite has none,
#: and there a statement costs no round trip). The same members, order and arithmetic as
#: ``_WEIGHTED_PICK`` + ``_WEIGHTED_STEP``; the step joins the members picked once instead of
#: looking up every member's agent again.
_WEIGHTED_PG = text(f"""
WITH avail AS (
    SELECT m.id, m.weight, m.current_weight, a.id AS agent_id, a.user_id
    FROM service_group_member AS m JOIN service_agent AS a ON a.id = m.agent_id
    WHERE m.group_id = :group AND a.status = '{AgentStatus.ONLINE.value}' AND a.active IS true
      AND a.open_chats < coalesce(a.cap, :default_cap) AND a.id != :exclude
), chosen AS (
    SELECT id, agent_id, user_id, (SELECT sum(weight) FROM avail) AS total
    FROM avail ORDER BY current_weight + weight DESC, id LIMIT 1
), step AS (
    UPDATE service_group_member AS m
    SET current_weight = m.current_weight + m.weight
        - CASE WHEN m.id = chosen.id THEN chosen.total ELSE 0 END
    FROM avail, chosen WHERE m.id = avail.id
)
SELECT c.id, c.agent_id, c.user_id, c.total, g.overflow_group_id
FROM service_group AS g LEFT JOIN chosen AS c ON true WHERE g.id = :group
""").bindparams(bindparam("group", type_=Integer), bindparam("default_cap", type_=Integer),
                bindparam("exclude", type_=Integer))


def on_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


#: ``Picked.overflow`` when the pick did not read the group's overflow group
UNREAD = -1


@dataclass(frozen=True)
class Picked:
    """An agent picked in a group, as ``(agent id, user id)``, or ``None``; and, when the
    statement read it too, the group's overflow group (``UNREAD`` when it did not)."""

    choice: tuple[int, int] | None
    overflow: int | None = UNREAD


async def _weighted(
    session: AsyncSession, settings: ServiceSettings, group_id: int, exclude: int | None
) -> Picked:
    """nginx's smooth weighted round-robin over the group's available members: every one's
    current weight grows by its weight, the largest (first member on a tie) is chosen and
    loses the total. Persisted, so it is deterministic across restarts and processes."""
    params = params_of(settings, exclude, group=group_id)
    if on_postgres(session):
        found = (await session.exec(_WEIGHTED_PG, params=params)).first()  # type: ignore[call-overload]
        if found is None:  # the group is gone
            return Picked(None, None)
        return Picked((found[1], found[2]) if found[0] is not None else None, found[4])
    row = (await session.exec(_WEIGHTED_PICK, params=params)).first()
    if row is None:
        return Picked(None)
    member_id, agent_id, user_id, total = row
    await session.exec(_WEIGHTED_STEP, params={**params, "chosen": member_id,
                                               "total": int(total)})
    return Picked((agent_id or 0, user_id))


_LEAST_BUSY_IN_GROUP = (
    select(A.id, A.user_id)
    .join(MEMBERS, M.agent_id == A.id)
    .where(M.group_id == bindparam("group"), AVAILABLE_MEMBER)
    .order_by(A.open_chats, M.weight.desc(), M.id)
    .limit(1)
)
_LEAST_BUSY_IN_SHOP = (
    select(A.id, A.user_id).where(AVAILABLE)
    .order_by(A.open_chats, A.id).limit(1)
)


async def _least_busy(
    session: AsyncSession, settings: ServiceSettings, group_id: int | None, exclude: int | None
) -> tuple[int, int] | None:
    """Fewest open chats; ties by weight (heavier first), then the older member/agent."""
    if group_id is None:
        row = (await session.exec(_LEAST_BUSY_IN_SHOP, params=params_of(settings, exclude))).first()
    else:
        row = (await session.exec(_LEAST_BUSY_IN_GROUP,
                                  params=params_of(settings, exclude, group=group_id))).first()
    return (row[0] or 0, row[1]) if row else None


async def pick(
    session: AsyncSession, settings: ServiceSettings, group_id: int, exclude: int | None
) -> Picked:
    """An available agent of the group by the shop's mode (on PostgreSQL, by weight, with the
    group's overflow group read in the same statement)."""
    if settings.mode == RoutingMode.LEAST_BUSY.value:
        return Picked(await _least_busy(session, settings, group_id, exclude))
    return await _weighted(session, settings, group_id, exclude)


async def pick_in_group(
    session: AsyncSession, settings: ServiceSettings, group_id: int, exclude: int | None
) -> tuple[int, int] | None:
    """An available agent of the group by the shop's mode, as ``(agent id, user id)``."""
    return (await pick(session, settings, group_id, exclude)).choice


_TAKE = (
    update(CONVERSATIONS)
    .where(C.id == bindparam("conversation"),
           C.agent_id.is_(None), C.state.in_(WAITING))
    .values(agent_id=bindparam("agent"), served_by=bindparam("agent"), state=ASSIGNED,
            assigned_at=bindparam("now"), waiting_since=None)

)
_SEAT = (
    update(AGENTS)
    .where(A.id == bindparam("agent"), A.open_chats < CAP)
    .values(open_chats=A.open_chats + 1)

)
#: PostgreSQL: the take and the seat in one round trip, each done only if both guards hold
_TAKE_AND_SEAT_PG = text(f"""
WITH can_take AS (
    SELECT 1 FROM service_conversation
    WHERE id = :conversation AND agent_id IS NULL AND state IN ('{QUEUED}', '{OFFLINE}')
), can_seat AS (
    SELECT 1 FROM service_agent WHERE id = :agent AND open_chats < coalesce(cap, :default_cap)
), take AS (
    UPDATE service_conversation
    SET agent_id = :agent, served_by = :agent, state = '{ASSIGNED}', assigned_at = :now,
        waiting_since = NULL
    WHERE id = :conversation AND agent_id IS NULL AND state IN ('{QUEUED}', '{OFFLINE}')
      AND EXISTS (SELECT 1 FROM can_seat)
    RETURNING id
), seat AS (
    UPDATE service_agent SET open_chats = open_chats + 1
    WHERE id = :agent AND open_chats < coalesce(cap, :default_cap)
      AND EXISTS (SELECT 1 FROM can_take)
    RETURNING id
)
SELECT (SELECT count(*) FROM take), (SELECT count(*) FROM seat)
""").bindparams(bindparam("conversation", type_=Integer), bindparam("agent", type_=Integer),
                bindparam("default_cap", type_=Integer), bindparam("now", type_=DateTime))
_FREE = (
    update(AGENTS).where(A.id == bindparam("agent"))
    .values(open_chats=A.open_chats - 1)

)
_SET_WAITING = (
    update(CONVERSATIONS).where(C.id == bindparam("conversation"))
    .values(agent_id=None, state=bindparam("state"), waiting_since=bindparam("since"))

)


async def assign(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation, *,
    agent_id: int, agent_user_id: int, via: Via, now: datetime,
    previous: tuple[int, int] | None = None, actor_id: int | None = None,
    seat_kept: bool = False,
) -> Placement:
    """Give a waiting conversation to an agent under their cap (both guarded in SQL).
    ``seat_kept``: it takes the seat of a chat of theirs that just ended (and was not given
    back), so their count does not change."""
    if not seat_kept and on_postgres(session):
        took, seated = (await session.exec(_TAKE_AND_SEAT_PG, params={  # type: ignore[call-overload]
            "conversation": conversation.id, "agent": agent_id, "now": now,
            "default_cap": settings.default_cap})).one()
        if took != 1:
            raise DomainError("service_conversation_taken")
        if seated != 1:
            raise DomainError("service_agent_full")
    else:
        taken = await session.exec(_TAKE, params={"conversation": conversation.id,
                                                  "agent": agent_id, "now": now})
        if taken.rowcount != 1:
            raise DomainError("service_conversation_taken")
    if not seat_kept and not on_postgres(session):
        seat = await session.exec(_SEAT, params={"agent": agent_id,
                                                 "default_cap": settings.default_cap})
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


async def free_slot(session: AsyncSession, agent_id: int) -> None:
    await session.exec(_FREE, params={"agent": agent_id})


async def unassign(
    session: AsyncSession, conversation: Conversation, *, now: datetime
) -> tuple[int, int]:
    """Take an assigned conversation from its agent (it waits again, from now); the agent's
    ``(id, user id)``."""
    agent = await session.get(Agent, conversation.agent_id or 0)
    if conversation.state != ASSIGNED or agent is None:
        raise DomainError("service_conversation_not_assigned")
    await session.exec(_SET_WAITING, params={"conversation": conversation.id, "state": QUEUED,
                                             "since": now})
    await free_slot(session, agent.id or 0)
    mirror(conversation, agent_id=None, state=QUEUED, waiting_since=now)
    return agent.id or 0, agent.user_id


_PLACE = (
    select(func.count()).select_from(CONVERSATIONS)
    .where(C.shop_id == bindparam("shop"), C.state == QUEUED,
           or_(C.waiting_since < bindparam("since"),
               and_(C.waiting_since == bindparam("since"),
                    C.id < bindparam("conversation"))))
)


async def queue_place(session: AsyncSession, conversation: Conversation) -> int:
    """The 1-based place of a queued conversation in its shop's queue (FIFO)."""
    ahead = await session.exec(_PLACE, params={
        "shop": conversation.shop_id, "since": conversation.waiting_since,
        "conversation": conversation.id})
    return int(ahead.one()) + 1


_ONLINE_MEMBER = and_(A.active.is_(True), A.status == AgentStatus.ONLINE.value,
                      A.id != bindparam("exclude"))
_ONLINE_IN_GROUPS = select(exists().where(
    M.group_id.in_([bindparam("group"), bindparam("overflow")]), A.id == M.agent_id,
    _ONLINE_MEMBER))
_ONLINE_IN_SHOP = select(exists().where(A.shop_id == bindparam("shop"), _ONLINE_MEMBER))
#: whether anyone of those groups (or the shop) is online, and how many wait ahead in the
#: shop's queue: one statement for the end of the routing order
_WAITING_IN_GROUPS = select(_ONLINE_IN_GROUPS.scalar_subquery(), _PLACE.scalar_subquery())
_WAITING_IN_SHOP = select(_ONLINE_IN_SHOP.scalar_subquery(), _PLACE.scalar_subquery())
OVERFLOW_OF = select(G.overflow_group_id).where(
    G.id == bindparam("group"))


async def route_locked(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation, *,
    now: datetime, exclude: int | None = None, previous: tuple[int, int] | None = None,
    sticky: bool = True, actor_id: int | None = None, sticky_hint: int = Sticky.UNKNOWN,
) -> Placement:
    """Route a waiting conversation in the order of docs/service.md; ``exclude`` is an agent it must not go to.

    1. sticky, 2. the group by mode, 3. its overflow group, 4. all full: queued (FIFO, with
    the customer's place), 5. nobody online there: an offline message (离线留言). A conversation
    without a group (its group was deleted) goes to the least busy agent of the shop.
    ``sticky_hint`` is ``sticky_candidate`` when the caller has the last conversation.
    """
    choice = (await _sticky(session, settings, conversation, now, exclude, sticky_hint)
              if sticky else None)
    via = Via.STICKY
    group, overflow = conversation.group_id, None
    if choice is None and group is not None:
        picked, via = await pick(session, settings, group, exclude), Via.GROUP
        choice = picked.choice
        if choice is None:
            overflow = picked.overflow
            if overflow == UNREAD:
                overflow = (await session.exec(OVERFLOW_OF, params={"group": group})).first()
            if overflow is not None:
                choice = await pick_in_group(session, settings, overflow, exclude)
                via = Via.OVERFLOW
    elif choice is None:
        choice, via = await _least_busy(session, settings, None, exclude), Via.SHOP
    if choice is not None:
        return await assign(session, settings, conversation, agent_id=choice[0],
                            agent_user_id=choice[1], via=via, now=now, previous=previous,
                            actor_id=actor_id)
    since = conversation.waiting_since or now
    params = params_of(settings, exclude, group=group, overflow=overflow or NOBODY,
                       since=since, conversation=conversation.id)
    anyone, ahead = (await session.exec(
        _WAITING_IN_SHOP if group is None else _WAITING_IN_GROUPS, params=params)).one()
    online = bool(anyone)
    state = QUEUED if online else OFFLINE
    if (conversation.state, conversation.waiting_since) != (state, since):
        await session.exec(_SET_WAITING, params={"conversation": conversation.id,
                                                 "state": state, "since": since})
        mirror(conversation, state=state, waiting_since=since)
    place = int(ahead) + 1 if online else None
    return Placement(
        conversation_id=conversation.id or 0, shop_id=settings.shop_id,
        customer_id=conversation.customer_id, entry_id=conversation.entry_id, state=state,
        via=Via.QUEUED if online else Via.OFFLINE, place=place,
        previous_agent_id=previous[0] if previous else None,
        previous_agent_user_id=previous[1] if previous else None,
    )
