"""Hand-outs: an agent with a free seat takes the oldest waiting chat they may take (docs/service.md
steps 4 and 5), under the shop's routing lock like the rest of routing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, or_, union_all, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.service.results import Placement, Via
from models.service.routing import (
    AGENTS,
    AVAILABLE,
    AVAILABLE_MEMBER,
    CAP,
    NOBODY,
    OFFLINE,
    OVERFLOW_OF,
    QUEUED,
    A,
    C,
    G,
    M,
    assign,
    free_slot,
    params_of,
)
from models.service.tables import Agent, AgentStatus, Conversation, ServiceSettings

_CAN_TAKE_IN_GROUPS = select(exists().where(
    M.group_id.in_([bindparam("group"), bindparam("overflow")]), A.id == M.agent_id,
    AVAILABLE_MEMBER))
_CAN_TAKE_IN_SHOP = select(exists().where(AVAILABLE))


async def can_take_now(
    session: AsyncSession, settings: ServiceSettings, conversation: Conversation, exclude: int
) -> bool:
    """Whether someone other than ``exclude`` in the conversation's group (or its overflow,
    or the shop when it has no group) could take it right now."""
    group = conversation.group_id
    if group is None:
        return bool((await session.exec(_CAN_TAKE_IN_SHOP,
                                        params=params_of(settings, exclude))).one())
    overflow = (await session.exec(OVERFLOW_OF, params={"group": group})).first()
    return bool((await session.exec(_CAN_TAKE_IN_GROUPS, params=params_of(
        settings, exclude, group=group, overflow=overflow or NOBODY))).one())


_MY_GROUPS = select(M.group_id).where(M.agent_id == bindparam("agent"))
#: conversations this agent may take from the queue: of a group they are in, of a group whose
#: overflow group they are in, or of no group
_TAKES_FROM = or_(
    C.group_id.is_(None), C.group_id.in_(_MY_GROUPS),
    C.group_id.in_(
        select(G.id).where(G.overflow_group_id.in_(_MY_GROUPS))))


def _oldest(state: str) -> Any:
    """The id of the oldest conversation in ``state`` the agent may take (an index range)."""
    return (select(C.id).where(C.shop_id == bindparam("shop"), C.state == state, _TAKES_FROM,
                               C.id != bindparam("skip"))
            .order_by(C.waiting_since, C.id).limit(1).subquery())


_OLDEST_QUEUED, _OLDEST_OFFLINE = _oldest(QUEUED), _oldest(OFFLINE)
#: the next chat for the agent: the oldest queued one, else the oldest offline message — one
#: statement for both (each an index range), where there were two when nothing waits
_NEXT_WAITING = (
    select(Conversation)
    .where(C.id.in_(union_all(select(_OLDEST_QUEUED.c.id), select(_OLDEST_OFFLINE.c.id))))
    .order_by(case((C.state == QUEUED, 0), else_=1))
    .limit(1)
    .execution_options(populate_existing=True)
)
_FREE_SEATS = select(A.user_id, CAP - A.open_chats).where(
    A.id == bindparam("agent"), AVAILABLE)


def seats_after_end(settings: ServiceSettings, agent: Agent) -> int:
    """The chats an agent (loaded under the lock) may take once one of theirs has ended."""
    if not agent.active or agent.status != AgentStatus.ONLINE.value:
        return 0
    cap = agent.cap if agent.cap is not None else settings.default_cap
    return cap - agent.open_chats + 1


#: PostgreSQL: an ended chat's close, its agent's next waiting chat (when they have a seat)
#: and, when there is none, the seat given back — one round trip for what ``hand_out`` does in
#: three (data-modifying CTEs; SQLite has none, and there a statement costs no round trip).
#: The close does not change what the look-up sees: the closed chat was not waiting.
_NEXT_IF_SEAT = (
    select(C.id)
    .where(C.id.in_(union_all(select(_OLDEST_QUEUED.c.id), select(_OLDEST_OFFLINE.c.id))),
           bindparam("seats") > 0)
    .order_by(case((C.state == QUEUED, 0), else_=1))
    .limit(1)
    .cte("next_waiting")
)
_GIVE_BACK = (
    update(AGENTS)
    .where(A.id == bindparam("agent"), ~exists(select(_NEXT_IF_SEAT.c.id)))
    .values(open_chats=A.open_chats - 1)
    .returning(A.id)
    .cte("given_back")
)


def close_and_next_pg(close: Any) -> Any:
    """The statement above for ``close`` (the conversation's ``UPDATE``), loading the next
    waiting chat (none when the agent has no seat or nothing waits for them)."""
    return (select(Conversation)
            .add_cte(close.returning(C.id).cte("closed"), _GIVE_BACK)
            .where(C.id.in_(select(_NEXT_IF_SEAT.c.id)))
            .execution_options(populate_existing=True))


async def hand_out_after_end_pg(
    session: AsyncSession, settings: ServiceSettings, close: Any, params: dict[str, Any], *,
    agent: Agent, now: datetime,
) -> list[Placement]:
    """PostgreSQL: close an ended chat (``close`` with ``params``) and give its agent's seat
    to their next waiting chat, or back — as ``hand_out(..., ended=agent)`` after the close."""
    seats = seats_after_end(settings, agent)
    agent_id = agent.id or 0
    found = (await session.exec(close_and_next_pg(close), params={
        **params, "shop": settings.shop_id, "agent": agent_id, "skip": NOBODY,
        "seats": seats})).first()
    if found is None:
        return []
    handouts = [await assign(session, settings, found, agent_id=agent_id,
                             agent_user_id=agent.user_id, via=Via.HANDOUT, now=now,
                             seat_kept=True)]
    if seats > 1:
        handouts += await hand_out(session, settings, agent_id=agent_id, now=now)
    return handouts


async def hand_out(
    session: AsyncSession, settings: ServiceSettings, *, agent_id: int, now: datetime,
    skip: int | None = None, ended: Agent | None = None,
) -> list[Placement]:
    """While the agent is available, give them the oldest queued conversation, then the
    oldest offline message, that they may take (docs/service.md, steps 4 and 5); ``skip`` is one
    conversation not to take back (it was just transferred away).

    ``ended``: the agent (loaded under the lock) one of whose chats just ended without giving
    its seat back; the first hand-out takes that seat, and without one it is given back.
    """
    handouts: list[Placement] = []
    kept = ended is not None
    if ended is not None:
        free, user_id = seats_after_end(settings, ended), ended.user_id
    else:
        agent = (await session.exec(_FREE_SEATS,
                                    params=params_of(settings, agent=agent_id))).first()
        if agent is None:
            return handouts
        user_id, free = agent[0], int(agent[1])
    while free > 0:
        conversation = (await session.exec(_NEXT_WAITING, params={
            "shop": settings.shop_id, "agent": agent_id, "skip": skip or NOBODY})).first()
        if conversation is None:
            break
        handouts.append(await assign(session, settings, conversation, agent_id=agent_id,
                                     agent_user_id=user_id, via=Via.HANDOUT, now=now,
                                     seat_kept=kept))
        kept, free = False, free - 1
    if kept:
        await free_slot(session, agent_id)
    return handouts
