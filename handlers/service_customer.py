"""What a customer of customer service (客服) is told while their chat waits, and whether their
notices offer "Switch shop" (not a conversation; the relay and ``service_chat`` use it).

A waiting chat is told what is true of the agents who could take it — the entry's group and
its overflow group, or every agent of the shop when the chat has no group — as routing counts
them (``models.service.routing``):

* queued (someone there is online, everyone online is at their chat limit): "all agents are
  busy" only when all of them are online; else "the agent(s) online now are busy";
* offline messages (nobody there is online): "on a short break" when one of them is on a break,
  else "offline right now";
* and, for a chat taken from its agent (they went offline, lost their IM permission, or were
  too slow), that it waits for another agent.

"Switch shop" is shown only to a customer with open chats at more than one shop: the list it
opens has nothing else to offer.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.i18n import plural_key, t
from models.service.results import Placement
from models.service.tables import (
    OPEN_STATES,
    Agent,
    AgentStatus,
    Conversation,
    GroupMember,
    ServiceGroup,
)
from models.tables import Shop


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


async def queued_text(session: AsyncSession, shop: Shop, conversation: Conversation,
                      placement: Placement, locale: str) -> str:
    """A queued chat: who is busy, the customer's place, and (moved) that it waits for another
    agent."""
    agents = await agents_for(session, conversation)
    if agents.online >= agents.total:
        busy = t(locale, "cs.busy_all", shop=shop.name)
    else:
        busy = t(locale, plural_key("cs.busy_online", max(agents.online, 1)), shop=shop.name,
                 count=agents.online)
    place = placement.place or 1
    if placement.previous_agent_id is not None:
        return t(locale, "cs.queued_moved", shop=shop.name, busy_html=busy, place=place)
    return t(locale, "cs.queued", busy_html=busy, place=place)


async def offline_head(session: AsyncSession, shop: Shop, conversation: Conversation,
                       placement: Placement, locale: str) -> str:
    """The first line of an offline-message notice: on a break, offline, or (moved) that it
    waits for another agent."""
    agents = await agents_for(session, conversation)
    key = ("cs.offline_moved" if placement.previous_agent_id is not None
           else "cs.offline_break" if agents.on_break else "cs.offline_now")
    return t(locale, key, shop=shop.name)
