"""The customer relay's shared pieces (not a conversation): copying messages between a
customer's chat and an agent's, the header lines, telling customers and agents where a chat
went, the flood limit, and releasing an agent whose permissions changed.

Nothing a customer sends is stored: only message ids (``models.service.messages``). Every
message crosses with ``copyMessage``, so an agent's Telegram identity is never shown; the
customer sees "<nickname> · <shop>" instead. Conversation modules (``service_chat``,
``service_agent``) and the permission call sites (accounts, holder, forget) share this module.

Where a chat went and that it ended is told through the outbox (``models.outbox``): the
notices are written in the change's transaction (``owe_announcements``, ``owe_end``) and sent
after its commit (``Owed.send``), by another process if this one dies in between; a hand-out
header is followed by the chat's history, copied by whichever process sends it
(``service_notices``).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, TelegramError

from handlers.context import Ctx, Deps
from handlers.i18n import t
from handlers.keyboards import button, keyboard
from handlers.outbox import notice, send_owed
from handlers.service_customer import offline_head, queued_text
from handlers.service_notices import ENDED, HANDOUT, PLACED
from handlers.service_notices import agent_nickname as agent_nickname
from handlers.service_notices import copy as copy  # service_chat copies through the relay
from handlers.telegram_io import send_safely, with_retry
from models import outbox
from models.drafts import get_draft, save_draft
from models.outbox import Notice, OutboxNotice
from models.service.agents import release_agent
from models.service.messages import Chat, history, record_agent_message
from models.service.policy import ServicePolicy
from models.service.results import Ended, Placement
from models.service.settings import get_settings
from models.service.tables import Agent, Conversation, ConversationState, Entry, MessageLink
from models.service.views import several_shops
from models.tables import Shop, User
from models.writes import may_have_written

log = logging.getLogger(__name__)

#: the namespaces and steps of the two sides (declared by service_chat / service_agent)
CUSTOMER_NS, CUSTOMER_FLOW, CUSTOMER_STEP = "cs", "cs", "chat"
AGENT_NS, AGENT_FLOW, AGENT_STEP = "ag", "agent", "desk"
#: per-customer flood limit: messages per window (bot_data["service_flood"] overrides it)
FLOOD_LIMIT = 20
FLOOD_WINDOW = timedelta(minutes=1)
#: how long a header line (names of customer, entry, shop, agent) is reused
NAMES_FOR = timedelta(minutes=1)
#: the headers with End / Transfer remembered per agent and chat (to remove their buttons
#: when the chat leaves the agent); older ones keep theirs, and a press on one is answered
BUTTONS_KEPT = 20
#: what copyMessage carries; anything else (a poll, a dice that would roll again, a game,
#: a payment…) gets a clear answer instead
COPYABLE = ("text", "photo", "document", "voice", "video", "video_note", "audio",
            "animation", "sticker", "location", "venue", "contact")
_DEFAULT_POLICY = ServicePolicy()


def service_policy(deps: Deps) -> ServicePolicy:
    """The shops' service defaults: ``deps.service_policy`` once the [service] config is
    wired, else ServicePolicy's own defaults."""
    found = getattr(deps, "service_policy", None)
    return found if isinstance(found, ServicePolicy) else _DEFAULT_POLICY


def copyable(message: Message) -> bool:
    """Whether copyMessage can carry this message as the customer or agent sent it."""
    return any(getattr(message, kind, None) for kind in COPYABLE)


def cb(namespace: str, action: str, *args: object) -> str:
    return ":".join([namespace, action, *(str(a) for a in args)])


# --- per-process relay state ---------------------------------------------------------------
@dataclass
class RelayState:
    """What this process remembers between updates: the last header in each chat (so a run of
    messages of one conversation gets one header) and the flood windows. Losing it (restart)
    only costs an extra header."""

    limit: int = FLOOD_LIMIT
    window: timedelta = FLOOD_WINDOW
    headers: dict[int, tuple[int, int]] = field(default_factory=dict)
    recent: dict[int, deque[datetime]] = field(default_factory=dict)
    #: header lines by (chat, conversation, agent), with when they go stale: names change
    #: rarely (a rename shows within ``NAMES_FOR``), and a run of messages reads none
    cache: dict[tuple[int, int, int], tuple[int, str, str, datetime]] = field(default_factory=dict)
    #: (agent's chat, conversation) → the messages there showing the chat's End / Transfer,
    #: sent by this process (another's, or one before a restart, answer a press as stale)
    buttons: dict[tuple[int, int], deque[int]] = field(default_factory=dict)

    def remember_buttons(self, chat_id: int, conversation_id: int, message_id: int) -> None:
        self.buttons.setdefault((chat_id, conversation_id),
                                deque(maxlen=BUTTONS_KEPT)).append(message_id)

    def forget_buttons(self, chat_id: int, conversation_id: int,
                       message_id: int | None = None) -> list[int]:
        """Forget one message (``message_id``), or all of the chat's: those forgotten."""
        kept = self.buttons.get((chat_id, conversation_id), deque())
        if message_id is not None:
            if message_id in kept:
                kept.remove(message_id)
            return [message_id]
        return list(self.buttons.pop((chat_id, conversation_id), ()))

    def allow(self, customer_id: int, now: datetime) -> bool:
        """Count one message of the customer; ``False`` past the limit."""
        times = self.recent.setdefault(customer_id, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def retry_at(self, customer_id: int) -> datetime:
        times = self.recent.get(customer_id) or deque()
        return times[0] + self.window if times else datetime.min


def relay_state(bot_data: dict[Any, Any]) -> RelayState:
    state = bot_data.get("service_relay")
    if not isinstance(state, RelayState):
        limit = bot_data.get("service_flood")
        state = RelayState(limit=int(limit)) if isinstance(limit, int) else RelayState()
        bot_data["service_relay"] = state
    return state


# --- names ----------------------------------------------------------------------------------
def locale_of(deps: Deps, user: User | None) -> str:
    return deps.locale_of(user)


@dataclass(frozen=True)
class Names:
    conversation: Conversation
    shop: Shop
    customer: User | None
    entry: str


async def names_of(session: AsyncSession, conversation_id: int) -> Names | None:
    conversation = await session.get(Conversation, conversation_id, populate_existing=True)
    if conversation is None:
        return None
    shop = await session.get(Shop, conversation.shop_id)
    if shop is None:
        return None
    customer = await session.get(User, conversation.customer_id)
    entry = await session.get(Entry, conversation.entry_id) if conversation.entry_id else None
    return Names(conversation, shop, customer, entry.name if entry else "—")


def customer_name(names: Names) -> str:
    return names.customer.first_name if names.customer and names.customer.first_name else "—"


def agent_buttons(locale: str, conversation_id: int) -> InlineKeyboardMarkup:
    return keyboard([button(t(locale, "ag.end_button"), cb(AGENT_NS, "end", conversation_id)),
                     button(t(locale, "ag.transfer_button"),
                            cb(AGENT_NS, "tr", conversation_id))])


async def remove_buttons(bot: Bot, chat_id: int, message_id: int) -> None:
    """Take the buttons off a message (retried like a send); a message already without them,
    gone, or in a chat that blocked the bot is fine, and nothing else is raised: it is tidying
    up after a change that is done."""
    try:
        await with_retry(lambda: bot.edit_message_reply_markup(chat_id, message_id,
                                                               reply_markup=None))
    except (BadRequest, Forbidden):
        log.debug("buttons of message %s in %s already gone", message_id, chat_id)
    except TelegramError as exc:
        log.info("could not remove the buttons of a message in %s (%s)", chat_id,
                 type(exc).__name__)


async def replied_customer_message(session: AsyncSession, *, agent_user_id: int,
                                   message_id: int) -> int | None:
    """The message in the customer's chat that the agent's message ``message_id`` (in their
    own chat: a copy from the customer's, or their own answer) stands for."""
    found = (await session.exec(
        select(MessageLink.customer_message_id)
        .where(col(MessageLink.agent_chat_id) == agent_user_id,
               col(MessageLink.agent_message_id) == message_id)
        .order_by(col(MessageLink.id).desc()).limit(1))).first()
    return int(found) if found is not None else None


async def ensure_step(session: AsyncSession, user_id: int, flow: str, step: str,
                      data: dict[str, Any], now: datetime, *, has_draft: bool | None = None
                      ) -> None:
    """Put a person in the relay's step if they are in no conversation at all (a person busy
    with something else is not interrupted; their messages reach us once they are back).
    ``has_draft``: whether they had a draft, when read in this update already."""
    if has_draft is None:
        has_draft = await get_draft(session, user_id) is not None
    if not has_draft:
        await save_draft(session, user_id, flow, step, data, now, known_absent=True)


# --- where a conversation went (through the outbox) ----------------------------------------
@dataclass
class Owed:
    """What a change owes people, written to the outbox in the change's own transaction
    (``owe_announcements``, ``owe_end``): ``send`` it once that is committed. If this process
    dies in between, another sends it once the lease has passed (``send_overdue``)."""

    rows: list[OutboxNotice] = field(default_factory=list)
    #: agent → the conversation whose header they get (this process's header memory)
    headers: dict[int, int] = field(default_factory=dict)
    #: agents whose chat ended or came to them with its history (their next customer message
    #: gets its header line again)
    ended: list[int] = field(default_factory=list)
    #: (agent, conversation): the chat left that agent; its End / Transfer buttons go
    released: list[tuple[int, int]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing to send and nothing to tidy."""
        return not (self.rows or self.headers or self.released or self.ended)

    def extend(self, other: Owed) -> None:
        self.rows += other.rows
        self.headers.update(other.headers)
        self.ended += other.ended
        self.released += other.released

    async def send(self, bot: Bot, session: AsyncSession, *, now: datetime,
                   state: RelayState | None = None) -> None:
        """After the commit: send the notices (each hand-out header followed by the chat's
        history), remember the headers, then take the buttons off the headers of the chats
        that left their agent."""
        if session.in_transaction() and may_have_written(session):
            await session.commit()  # the change and its notices, if the caller has not yet
        handouts = {row.id: (row.chat_id, int(row.topic.split(":")[1])) for row in self.rows
                    if row.topic.startswith(HANDOUT + ":") and row.id is not None}
        sent: dict[int, int] = {}
        await send_owed(bot, session, self.rows, now=now, sent_ids=sent)
        if state is None:
            return
        for agent_user_id in self.ended:
            state.headers.pop(agent_user_id, None)
        for agent_user_id, conversation_id in self.headers.items():
            state.headers[agent_user_id] = (conversation_id, 0)
        for row_id, message_id in sent.items():
            if row_id in handouts:
                state.remember_buttons(*handouts[row_id], message_id)
        for agent_user_id, conversation_id in self.released:
            for message_id in state.forget_buttons(agent_user_id, conversation_id):
                await remove_buttons(bot, agent_user_id, message_id)


async def customer_text(deps: Deps, session: AsyncSession, names: Names, placement: Placement,
                        locale: str, *, opened: bool = False) -> str:
    """Where the customer's chat is: with whom, their queue place, or offline."""
    shop = names.shop.name
    if placement.state == ConversationState.ASSIGNED.value and placement.agent_id is not None:
        agent = await session.get(Agent, placement.agent_id)
        nickname = await agent_nickname(session, agent, locale) if agent else "—"
        key = ("cs.colleague" if placement.previous_agent_id is not None
               else "cs.assigned" if not opened else "cs.opened_assigned")
        return t(locale, key, agent=nickname, shop=shop)
    if placement.state == ConversationState.QUEUED.value:
        return await queued_text(session, names.shop, names.conversation, placement, locale)
    settings = await get_settings(session, service_policy(deps), shop_id=names.shop.id or 0)
    zh = locale == "zh-Hans"
    offline = (settings.offline_text_zh if zh else settings.offline_text_en) or t(
        locale, "cs.offline_default")
    hours = settings.hours_text_zh if zh else settings.hours_text_en
    head = await offline_head(session, names.shop, names.conversation, placement, locale)
    text = t(locale, "cs.offline", head_html=head, text=offline)
    if hours:
        text += "\n" + t(locale, "cs.hours", hours=hours)
    return text


async def placement_notices(deps: Deps, session: AsyncSession, placement: Placement, *,
                            opened: bool = False) -> list[Notice]:
    """A placement's notices, rendered: the new agent's header (who, which entry, which shop,
    with End and Transfer; the history follows it when sent) and the customer's."""
    names = await names_of(session, placement.conversation_id)
    if names is None:
        return []
    conversation_id, agent_id = placement.conversation_id, placement.agent_id or 0
    owed: list[Notice] = []
    if placement.agent_user_id is not None:
        locale = locale_of(deps, await session.get(User, placement.agent_user_id))
        key = "ag.header_moved" if placement.previous_agent_id is not None else "ag.header_new"
        # the history follows the header: what comes after this link and is relayed to the
        # agent as it comes is not copied again
        links = await history(session, conversation_id=conversation_id)
        last = (links[-1].id or 0) if links else 0
        owed.append(notice(f"{HANDOUT}:{conversation_id}:{agent_id}:{last}:{locale}",
                           placement.agent_user_id,
                           t(locale, key, customer=customer_name(names), entry=names.entry,
                             shop=names.shop.name),
                           agent_buttons(locale, conversation_id)))
    locale = locale_of(deps, names.customer)
    owed.append(notice(f"{PLACED}:{conversation_id}:{placement.state}:{agent_id}",
                       names.conversation.customer_id,
                       await customer_text(deps, session, names, placement, locale,
                                           opened=opened),
                       customer_buttons(locale, conversation_id, switch=await several_shops(
                           session, names.conversation.customer_id))))
    return owed


async def owe_announcements(deps: Deps, session: AsyncSession, placements: list[Placement],
                            *, now: datetime, opened: bool = False) -> Owed:
    """Before the commit of the change that moved or handed out ``placements``: write what
    each owes to the outbox — its new agent's header (the history follows it), the customer's
    notice (a colleague takes over, their queue place, offline) — and put each new agent in
    the relay's step if they are in no conversation."""
    owed = Owed()
    notices: list[Notice] = []
    for placement in placements:
        notices += await placement_notices(deps, session, placement, opened=opened)
        if placement.previous_agent_user_id is not None:
            owed.released.append((placement.previous_agent_user_id, placement.conversation_id))
        if placement.agent_user_id is not None:
            if placement.previous_agent_id is None:
                owed.headers[placement.agent_user_id] = placement.conversation_id
            else:  # after a colleague's messages, the customer's next one gets its header
                owed.ended.append(placement.agent_user_id)
            await ensure_step(session, placement.agent_user_id, AGENT_FLOW, AGENT_STEP, {}, now)
    owed.rows = outbox.enqueue(session, notices, now=now)
    return owed


async def owe_end(deps: Deps, session: AsyncSession, ended: Ended, *, now: datetime) -> Owed:
    """Before the commit of an end: the customer's "chat ended" with the rating keyboard (not
    when they ended it — their own screen shows it), the agent's unless they ended it, and
    what the freed seat's hand-outs owe."""
    names = await names_of(session, ended.conversation_id)
    notices: list[Notice] = []
    topic = f"{ENDED}:{ended.conversation_id}"
    if names is not None and ended.by != "customer":
        locale = locale_of(deps, names.customer)
        notices.append(notice(f"{topic}:customer", ended.customer_id, t(
            locale, f"cs.ended_{ended.by}", shop=names.shop.name),
            rating_markup(locale, ended.conversation_id)))
    if names is not None and ended.agent_user_id is not None and ended.by != "agent":
        agent_user = await session.get(User, ended.agent_user_id)
        notices.append(notice(f"{topic}:agent", ended.agent_user_id, t(
            locale_of(deps, agent_user), f"ag.ended_{ended.by}", customer=customer_name(names),
            shop=names.shop.name)))
    owed = Owed(rows=outbox.enqueue(session, notices, now=now))
    if ended.agent_user_id is not None:
        owed.ended.append(ended.agent_user_id)
        owed.released.append((ended.agent_user_id, ended.conversation_id))
    owed.extend(await owe_announcements(deps, session, ended.handouts, now=now))
    return owed


def customer_buttons(locale: str, conversation_id: int, *, switch: bool) -> InlineKeyboardMarkup:
    """End chat, and Switch shop when ``switch`` (the customer has chats at two shops or more:
    ``models.service.views.several_shops``)."""
    row = [button(t(locale, "cs.end_button"), cb(CUSTOMER_NS, "end", conversation_id))]
    if switch:
        row.append(button(t(locale, "cs.switch_button"), cb(CUSTOMER_NS, "sw")))
    return keyboard(row)


async def release(ctx: Ctx, *, shop_id: int, user_id: int, reason: str) -> Owed:
    """Permissions took effect (IM off, suspended, unbound, left, forgotten): the user gets no
    new chats; their open ones are re-routed in this transaction, and what that owes their new
    agents and the customers is written to the outbox in it too — before any commit of the
    handler's, so that the re-route is never committed without them. ``announce_from`` sends
    it after."""
    moved = await release_agent(ctx.session, service_policy(ctx.deps), shop_id=shop_id,
                                user_id=user_id, reason=reason, actor_id=ctx.user_id,
                                now=ctx.now())
    return await owe_announcements(ctx.deps, ctx.session, moved, now=ctx.now())


async def announce_from(ctx: Ctx, owed: Owed) -> None:
    """After a handler's change: commit it with what it owes (``release``), then send that."""
    if not owed.empty:
        await ctx.commit()
        await owed.send(ctx.context.bot, ctx.session, now=ctx.now(),
                        state=relay_state(ctx.context.application.bot_data))


def rating_markup(locale: str, conversation_id: int) -> InlineKeyboardMarkup:
    return keyboard([button("⭐" * n, cb(CUSTOMER_NS, "rate", conversation_id, n))
                     for n in range(1, 4)],
                    [button("⭐" * n, cb(CUSTOMER_NS, "rate", conversation_id, n))
                     for n in range(4, 6)])


async def send_to_customer(bot: Bot, deps: Deps, session: AsyncSession, agent: Agent,
                           conversation_id: int, agent_message_id: int, *, now: datetime,
                           state: RelayState, chat: Chat | None = None,
                           reply_to: int | None = None) -> bool:
    """An agent's message to their customer: "<nickname> · <shop>" first (once per run of
    messages), then the copy (threaded under the customer's message ``reply_to``, in their
    chat, when the agent answered a copy of it); recorded (answering stops the clocks)."""
    key = (0, conversation_id, agent.id or 0)
    cached = state.cache.get(key)
    if cached is None or cached[3] <= now:
        names = await names_of(session, conversation_id)
        if names is None:
            return False
        locale = locale_of(deps, names.customer)
        nickname = await agent_nickname(session, agent, locale)
        cached = (names.conversation.customer_id,
                  t(locale, "cs.reply_header", agent=nickname, shop=names.shop.name),
                  locale, now + NAMES_FOR)
        state.cache[key] = cached
    customer_id, header, _locale, _until = cached
    if state.headers.get(customer_id) != (conversation_id, agent.id or 0):
        await send_safely(bot, customer_id, header)
        state.headers[customer_id] = (conversation_id, agent.id or 0)
    copied = await copy(bot, customer_id, agent.user_id, agent_message_id, reply_to=reply_to)
    if copied is None:
        return False
    await record_agent_message(session, service_policy(deps), conversation_id=conversation_id,
                               agent_user_id=agent.user_id, agent_message_id=agent_message_id,
                               customer_message_id=copied, now=now, chat=chat)
    await ensure_step(session, customer_id, CUSTOMER_FLOW, CUSTOMER_STEP,
                      {"c": conversation_id}, now,
                      has_draft=chat.customer_has_draft if chat is not None else None)
    await session.commit()
    return True


async def header_to_agent(bot: Bot, deps: Deps, session: AsyncSession, state: RelayState,
                          conversation_id: int, agent_user_id: int, now: datetime) -> None:
    """The header line before a customer's messages in the agent's chat, once per run."""
    if state.headers.get(agent_user_id) == (conversation_id, 0):
        return
    key = (agent_user_id, conversation_id, 0)
    cached = state.cache.get(key)
    if cached is None or cached[3] <= now:
        names = await names_of(session, conversation_id)
        if names is None:
            return
        locale = locale_of(deps, await session.get(User, agent_user_id))
        text = t(locale, "ag.header", customer=customer_name(names), entry=names.entry,
                 shop=names.shop.name)
        cached = (agent_user_id, text, locale, now + NAMES_FOR)
        state.cache[key] = cached
    sent = await send_safely(bot, agent_user_id, cached[1],
                             agent_buttons(cached[2], conversation_id))
    state.headers[agent_user_id] = (conversation_id, 0)
    if sent is not None:
        state.remember_buttons(agent_user_id, conversation_id, sent.message_id)
