"""What a customer of customer service (客服) is told while their chat waits, and whether their
notices offer "Switch shop" (not a conversation; the relay and ``service_chat`` use it). The
counts are the domain's (``models.service.views``); this module words them.

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

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.i18n import plural_key, t
from models.service.results import Placement
from models.service.tables import Conversation
from models.service.views import agents_for
from models.tables import Shop


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
