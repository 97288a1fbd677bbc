"""Messages of a conversation: which id is which (never content), service-level deadlines,
and where an agent's message goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Update, and_, bindparam, insert, update
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.errors import DomainError
from models.service.policy import ServicePolicy
from models.service.routing import ASSIGNED, load_conversation, mirror, table_of
from models.service.settings import get_settings
from models.service.tables import (
    OPEN_STATES,
    Agent,
    Conversation,
    MessageDirection,
    MessageLink,
    ServiceSettings,
)
from models.tables import Draft

#: a conversation with its agent and its shop's settings, in one statement (a relayed message
#: needs all three); the agent and the settings land in the session's identity map
_CHAT = (
    select(Conversation, Agent, ServiceSettings)
    .outerjoin(Agent, col(Agent.id) == Conversation.agent_id)
    .outerjoin(ServiceSettings, col(ServiceSettings.shop_id) == Conversation.shop_id)
    .where(col(Conversation.id) == bindparam("conversation"))
    .execution_options(populate_existing=True)
)


@dataclass(frozen=True)
class Chat:
    """A conversation as the database has it now, its agent (``None`` unless assigned) and
    its shop's settings (``None`` before the shop's first use), for ``record_*_message``."""

    conversation: Conversation
    agent: Agent | None
    settings: ServiceSettings | None
    #: whether the customer had a conversation draft (``None``: not read)
    customer_has_draft: bool | None = None


async def load_chat(session: AsyncSession, *, conversation_id: int) -> Chat | None:
    """The conversation, its agent and its shop's settings, in one statement."""
    row = (await session.exec(_CHAT, params={"conversation": conversation_id})).first()
    return Chat(row[0], row[1], row[2]) if row is not None else None


_LINK_COLUMNS = ("conversation_id", "direction", "customer_message_id", "agent_chat_id",
                 "agent_message_id", "created_at")
_INSERT_LINK = insert(table_of(MessageLink)).returning(table_of(MessageLink).c.id)


async def _insert_link(session: AsyncSession, link: MessageLink) -> MessageLink:
    """Insert a message-map row by a Core statement (a relayed message's hot path: no unit of
    work at the commit) and put it in the session as loaded."""
    link.id = (await session.exec(_INSERT_LINK, params={
        name: getattr(link, name) for name in _LINK_COLUMNS})).scalar_one()
    make_transient_to_detached(link)
    session.add(link)
    return link


_TOUCHES: dict[tuple[str, ...], Update] = {}


async def _touch(session: AsyncSession, conversation_id: int, values: dict[str, object]) -> None:
    """``UPDATE service_conversation SET <values>`` by a statement built once per set of
    columns (a relayed message's hot path: building a statement costs more than running it)."""
    names = tuple(values)
    statement = _TOUCHES.get(names)
    if statement is None:
        conversations = table_of(Conversation)
        statement = (update(conversations)
                     .where(conversations.c.id == bindparam("conversation"))
                     .values({name: bindparam(f"v_{name}") for name in names}))
        _TOUCHES[names] = statement
    await session.exec(statement, params={
        "conversation": conversation_id, **{f"v_{name}": value for name, value in values.items()}})


async def _chat_of(
    session: AsyncSession, policy: ServicePolicy, conversation_id: int, chat: Chat | None
) -> tuple[Conversation, ServiceSettings]:
    if chat is not None and chat.conversation.id == conversation_id:
        conversation, settings = chat.conversation, chat.settings
    else:
        conversation, settings = await load_conversation(session, conversation_id), None
    if settings is None:
        settings = await get_settings(session, policy, shop_id=conversation.shop_id)
    return conversation, settings


def awaiting_answer(conversation: Conversation) -> bool:
    """Whether a customer message is still unanswered."""
    last_in, last_out = conversation.last_customer_at, conversation.last_agent_at
    return last_in is not None and (last_out is None or last_out < last_in)


async def record_customer_message(
    session: AsyncSession, policy: ServicePolicy, *, conversation_id: int,
    customer_message_id: int, now: datetime, agent_chat_id: int | None = None,
    agent_message_id: int | None = None, chat: Chat | None = None,
) -> MessageLink:
    """A customer's message (and its copy in the agent's chat, if it was delivered).

    The first unanswered message starts the clock: ``first_response_seconds`` until the first
    answer of the conversation, ``reply_seconds`` for any later one; the agent is nudged at
    that time and the owner told at twice it (``nudge_at`` / ``alert_at``).

    ``chat``: the conversation and settings as the caller read them in this transaction
    (``load_chat``), so that they are not read again.
    """
    conversation, settings = await _chat_of(session, policy, conversation_id, chat)
    if conversation.state not in OPEN_STATES:
        raise DomainError("service_conversation_closed")
    values: dict[str, object] = {
        "last_customer_at": now, "last_activity_at": now,
        "idle_at": now + timedelta(hours=settings.idle_close_hours),
    }
    if conversation.first_customer_at is None:
        values["first_customer_at"] = now
    if not awaiting_answer(conversation):
        limit = (settings.first_response_seconds if conversation.first_response_at is None
                 else settings.reply_seconds)
        values["nudge_at"] = now + timedelta(seconds=limit)
        values["alert_at"] = now + timedelta(seconds=2 * limit)
    await _touch(session, conversation_id, values)
    mirror(conversation, **values)
    return await _insert_link(session, MessageLink(
        conversation_id=conversation_id, direction=MessageDirection.FROM_CUSTOMER.value,
        customer_message_id=customer_message_id, agent_chat_id=agent_chat_id,
        agent_message_id=agent_message_id, created_at=now))


async def record_agent_message(
    session: AsyncSession, policy: ServicePolicy, *, conversation_id: int, agent_user_id: int,
    agent_message_id: int, customer_message_id: int, now: datetime,
    chat: Chat | None = None,
) -> MessageLink:
    """The agent's answer (in their chat) and its copy in the customer's chat. Answers the
    waiting customer: the deadlines are cleared and the first response time kept.
    ``chat``: the conversation and settings as read in this transaction (not read again)."""
    conversation, settings = await _chat_of(session, policy, conversation_id, chat)
    if conversation.state != ASSIGNED:
        raise DomainError("service_conversation_closed")
    agent = await session.get(Agent, conversation.agent_id or 0)
    if agent is None or agent.user_id != agent_user_id:
        raise DomainError("service_not_your_conversation")
    values: dict[str, object] = {
        "last_agent_at": now, "last_activity_at": now, "nudge_at": None, "alert_at": None,
        "idle_at": now + timedelta(hours=settings.idle_close_hours),
    }
    if conversation.first_response_at is None:
        values["first_response_at"] = now
    await _touch(session, conversation_id, values)
    mirror(conversation, **values)
    return await _insert_link(session, MessageLink(
        conversation_id=conversation_id, direction=MessageDirection.FROM_AGENT.value,
        customer_message_id=customer_message_id, agent_chat_id=agent_user_id,
        agent_message_id=agent_message_id, created_at=now))


async def history(session: AsyncSession, *, conversation_id: int) -> list[MessageLink]:
    """The conversation's messages in order; ``customer_message_id`` is what to copy (from
    the customer's chat) for an agent who takes over."""
    rows = await session.exec(
        select(MessageLink).where(col(MessageLink.conversation_id) == conversation_id)
        .order_by(col(MessageLink.id)))
    return list(rows.all())


async def link_copy(
    session: AsyncSession, *, link_id: int, agent_chat_id: int, agent_message_id: int,
    now: datetime,
) -> MessageLink:
    """A history message copied into a new agent's chat (so their replies to it resolve)."""
    original = await session.get(MessageLink, link_id)
    if original is None:
        raise DomainError("service_conversation_not_found")
    copy = MessageLink(conversation_id=original.conversation_id, direction=original.direction,
                       customer_message_id=original.customer_message_id,
                       agent_chat_id=agent_chat_id, agent_message_id=agent_message_id,
                       created_at=now)
    session.add(copy)
    return copy


@dataclass(frozen=True)
class ReplyTarget:
    """Where an agent's message goes: ``conversation_id``, or ``None`` with the open chats to
    ask about (several open chats and nothing replied to: never a guess)."""

    conversation_id: int | None
    choices: list[int] = field(default_factory=list)
    #: the replied-to conversation as read, with its shop's settings
    chat: Chat | None = None


_REPLIED = (
    select(Conversation, ServiceSettings, col(Draft.user_id))
    .join(MessageLink, col(MessageLink.conversation_id) == Conversation.id)
    .outerjoin(ServiceSettings, col(ServiceSettings.shop_id) == Conversation.shop_id)
    .outerjoin(Draft, col(Draft.user_id) == Conversation.customer_id)
    .where(and_(col(MessageLink.agent_chat_id) == bindparam("chat"),
                col(MessageLink.agent_message_id) == bindparam("message")))
    .order_by(col(MessageLink.id).desc()).limit(1)
    .execution_options(populate_existing=True)
)


async def resolve_reply_target(
    session: AsyncSession, *, agent_id: int, replied_to: int | None
) -> ReplyTarget:
    """The conversation an agent's message answers: the one the replied-to message belongs to
    (it must be the agent's, and open); with no reply, their only open chat."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise DomainError("service_agent_not_found")
    if replied_to is not None:
        row = (await session.exec(_REPLIED, params={"chat": agent.user_id,
                                                     "message": replied_to})).first()
        if row is None:
            raise DomainError("service_reply_unknown")
        found, settings, customer_draft = row
        if found.state != ASSIGNED:
            raise DomainError("service_conversation_closed")
        if found.agent_id != agent_id:
            raise DomainError("service_not_your_conversation")
        return ReplyTarget(found.id, chat=Chat(found, agent, settings,
                                               customer_draft is not None))
    ids = list((await session.exec(
        select(Conversation.id).where(col(Conversation.agent_id) == agent_id)
        .order_by(col(Conversation.id)))).all())
    if not ids:
        raise DomainError("service_no_open_chats")
    if len(ids) == 1:
        return ReplyTarget(ids[0])
    return ReplyTarget(None, [i for i in ids if i is not None])
