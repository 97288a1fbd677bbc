"""What the customer relay's notices in the outbox need when they are sent, by whichever
process sends them (not a conversation): their kinds (topics), the check that what a header or
a customer's notice announces still holds, and the history copied after a hand-out header.
``handlers.outbox.KINDS`` names them; ``service_relay`` writes the notices.

A topic carries the ids the sender needs (no personal data):
``service.handout:<conversation>:<agent>:<last message link>:<agent's locale>`` (the agent's
header; rows written before the locale was added have none),
``service.placed:<conversation>:<state>:<agent or 0>`` (the customer's notice),
``service.ended:<conversation>:customer|agent``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup, ReplyParameters
from telegram.error import BadRequest, Forbidden, TelegramError

from handlers.i18n import FALLBACK, t
from handlers.telegram_io import send_safely, with_retry
from models.outbox import OutboxNotice
from models.service.agents import agent_for
from models.service.messages import history, link_copy
from models.service.tables import (
    Agent,
    AgentKind,
    Conversation,
    ConversationState,
    MessageDirection,
    MessageLink,
)
from models.tables import SubAccount, User

log = logging.getLogger(__name__)

HANDOUT, PLACED, ENDED = "service.handout", "service.placed", "service.ended"
#: the most messages a taken-over chat's history sends (copies and the labels before each
#: run of one author's messages): the latest ones, after a note of how many are not shown.
#: Telegram lets a bot send a private chat short bursts only (the rate limiter retries a
#: 429 after the time Telegram asks), and an agent reads the last exchanges first
HISTORY_SENDS = 25


async def copy(bot: Bot, to_chat: int, from_chat: int, message_id: int,
               markup: InlineKeyboardMarkup | None = None, *,
               reply_to: int | None = None) -> int | None:
    """Copy a message (retried like a send); its id in ``to_chat``, or ``None`` when that
    person blocked the bot or the original is gone. ``reply_to``: a message of ``to_chat``
    the copy answers (shown threaded under it; sent anyway if it is gone)."""
    threaded = (ReplyParameters(reply_to, allow_sending_without_reply=True)
                if reply_to is not None else None)
    try:
        sent = await with_retry(lambda: bot.copy_message(
            to_chat, from_chat, message_id, reply_markup=markup, reply_parameters=threaded))
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


async def agent_nickname(session: AsyncSession, agent: Agent, locale: str) -> str:
    """What others see of an agent: the sub-account's nickname, never Telegram's name."""
    if agent.kind == AgentKind.SUB.value and agent.account_id is not None:
        account = await session.get(SubAccount, agent.account_id)
        if account is not None:
            return account.nickname
    return t(locale, "cs.owner_nickname")


def _author(link: MessageLink) -> int:
    """Who wrote a message, by its first link: 0 for the customer, else the agent's user id
    (an agent's answer is first recorded in the chat of the agent who wrote it)."""
    if link.direction == MessageDirection.FROM_CUSTOMER.value:
        return 0
    return link.agent_chat_id or -1


def bounded(links: list[MessageLink], labelled: bool, limit: int = HISTORY_SENDS
            ) -> list[MessageLink]:
    """The latest of ``links`` that fit ``limit`` sends, counting a label before each run of
    one author's messages when ``labelled``."""
    used, kept, later = 0, 0, None
    for link in reversed(links):
        author = _author(link)
        cost = 1 + (1 if labelled and author != later else 0)
        if used + cost > limit:
            break
        used, kept, later = used + cost, kept + 1, author
    return links[len(links) - kept:]


async def _labels(session: AsyncSession, conversation: Conversation, authors: set[int],
                  agent_user_id: int, locale: str) -> dict[int, str]:
    """The label before each author's run: the customer's first name, a colleague's nickname
    (the recipient's own messages are theirs)."""
    customer = await session.get(User, conversation.customer_id)
    name = customer.first_name if customer is not None and customer.first_name else "—"
    labels = {0: t(locale, "ag.history_customer", customer=name)}
    for author in authors - {0}:
        agent = await agent_for(session, shop_id=conversation.shop_id, user_id=author)
        nickname = await agent_nickname(session, agent, locale) if agent is not None else "—"
        key = "ag.history_you" if author == agent_user_id else "ag.history_agent"
        labels[author] = t(locale, key, agent=nickname)
    return labels


async def copy_history(bot: Bot, session: AsyncSession, row: OutboxNotice,
                       now: datetime) -> None:
    """After a hand-out header: the chat's messages up to the hand-out copied from the
    customer's chat (by id; the copies mapped so the agent's replies to them resolve), except
    those the relay brought to this agent since (while the header was owed). When colleagues
    wrote in it, a label before each run of one author's messages says who ("👤 Ann:",
    "🎧 Hank:"); only the latest ``HISTORY_SENDS`` are sent, after a note of how many not."""
    parts = _ids(row)
    conversation_id, last, agent_user_id = int(parts[0]), int(parts[2]), row.chat_id
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        return
    links = await history(session, conversation_id=conversation_id)
    # a message copied to an earlier agent is listed once per copy, its first link first
    seen = {link.customer_message_id for link in links
            if (link.id or 0) > last and link.agent_chat_id == agent_user_id}
    wanted: list[MessageLink] = []
    for link in links:
        if link.customer_message_id not in seen:
            seen.add(link.customer_message_id)
            wanted.append(link)
    authors = {_author(link) for link in wanted}
    labelled = authors != {0}
    shown = bounded(wanted, labelled)
    if len(parts) > 3:
        locale = parts[3]
    else:
        user = await session.get(User, agent_user_id)
        locale = (user.locale if user is not None else None) or FALLBACK
    labels = (await _labels(session, conversation, {_author(link) for link in shown},
                            agent_user_id, locale) if labelled else {})
    try:
        if len(shown) < len(wanted) and await send_safely(bot, agent_user_id, t(
                locale, "ag.history_more", count=len(wanted) - len(shown))) is None:
            return
        previous: int | None = None
        for link in shown:
            author = _author(link)
            if labelled and author != previous:
                if await send_safely(bot, agent_user_id, labels[author]) is None:
                    return
                previous = author
            copied = await copy(bot, agent_user_id, conversation.customer_id,
                                link.customer_message_id)
            if copied is not None and link.id is not None:
                await link_copy(session, link_id=link.id, agent_chat_id=agent_user_id,
                                agent_message_id=copied, now=now)
    except TelegramError as exc:
        log.warning("history of conversation %s not copied in full (%s)", conversation_id,
                    type(exc).__name__)
