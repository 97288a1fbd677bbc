"""What the customer relay's notices in the outbox need when they are sent, by whichever
process sends them (not a conversation): their kinds (topics), the check that what a header or
a customer's notice announces still holds, and the history copied after a hand-out header.
``handlers.outbox.KINDS`` names them; ``service_relay`` writes the notices.

A topic carries the ids the sender needs (no personal data):
``service.handout:<conversation>:<agent>:<last message link>`` (the agent's header),
``service.placed:<conversation>:<state>:<agent or 0>`` (the customer's notice),
``service.ended:<conversation>:customer|agent``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, TelegramError

from handlers.telegram_io import with_retry
from models.outbox import OutboxNotice
from models.service.messages import history, link_copy
from models.service.tables import Conversation, ConversationState

log = logging.getLogger(__name__)

HANDOUT, PLACED, ENDED = "service.handout", "service.placed", "service.ended"


async def copy(bot: Bot, to_chat: int, from_chat: int, message_id: int,
               markup: InlineKeyboardMarkup | None = None) -> int | None:
    """Copy a message (retried like a send); its id in ``to_chat``, or ``None`` when that
    person blocked the bot or the original is gone."""
    try:
        sent = await with_retry(lambda: bot.copy_message(
            to_chat, from_chat, message_id, reply_markup=markup))
    except (Forbidden, BadRequest) as exc:
        log.info("could not copy a message to %s (%s)", to_chat, type(exc).__name__)
        return None
    return sent.message_id


def _ids(row: OutboxNotice) -> list[str]:
    return row.topic.split(":")[1:]


async def placement_holds(session: AsyncSession, row: OutboxNotice) -> bool:
    """A header or a customer's notice is sent only while the conversation is still where it
    announces (one that moved or ended meanwhile has its own, newer notices)."""
    parts = _ids(row)
    conversation = await session.get(Conversation, int(parts[0]), populate_existing=True)
    if conversation is None:
        return False
    if row.topic.startswith(HANDOUT + ":"):
        return (conversation.state == ConversationState.ASSIGNED.value
                and conversation.agent_id == int(parts[1]))
    return conversation.state == parts[1] and (conversation.agent_id or 0) == int(parts[2])


async def copy_history(bot: Bot, session: AsyncSession, row: OutboxNotice,
                       now: datetime) -> None:
    """After a hand-out header: every message of the chat up to the hand-out copied from the
    customer's chat (by id; the copies mapped so the agent's replies to them resolve), except
    those the relay brought to this agent since (while the header was owed)."""
    parts = _ids(row)
    conversation_id, last, agent_user_id = int(parts[0]), int(parts[2]), row.chat_id
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        return
    links = await history(session, conversation_id=conversation_id)
    # a message copied to an earlier agent is listed once per copy
    seen = {link.customer_message_id for link in links
            if (link.id or 0) > last and link.agent_chat_id == agent_user_id}
    try:
        for link in links:
            if link.customer_message_id in seen:
                continue
            seen.add(link.customer_message_id)
            copied = await copy(bot, agent_user_id, conversation.customer_id,
                                link.customer_message_id)
            if copied is not None and link.id is not None:
                await link_copy(session, link_id=link.id, agent_chat_id=agent_user_id,
                                agent_message_id=copied, now=now)
    except TelegramError as exc:
        log.warning("history of conversation %s not copied in full (%s)", conversation_id,
                    type(exc).__name__)
