"""The customer's side of customer service (客服): ``/start <entry token>`` opens or resumes
the chat with that shop; then everything the customer sends is relayed (copyMessage) to their
agent, or they are told their queue place or the shop's offline text (离线留言).

Callback data, namespace ``cs`` (each checked against the presser's own conversations):
``cs:end:<conv>`` end the chat · ``cs:rate:<conv>:<1-5>`` rate it (once, after the end) ·
``cs:sw`` list the open chats (one per shop) · ``cs:go:<conv>`` write to that shop.
"""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Message

from handlers.card import strip_keyboard
from handlers.context import Ctx
from handlers.flow import Flow, Step
from handlers.keyboards import button, keyboard
from handlers.service_levels import plan_for
from handlers.service_relay import (
    CUSTOMER_FLOW,
    CUSTOMER_NS,
    CUSTOMER_STEP,
    cb,
    copy,
    copyable,
    customer_buttons,
    header_to_agent,
    owe_announcements,
    owe_end,
    rating_markup,
    relay_state,
    service_policy,
)
from models.errors import DomainError
from models.service.conversations import EndedBy, end, open_conversations_of, open_or_resume, rate
from models.service.entries import is_entry_token
from models.service.messages import Chat, load_chat, record_customer_message
from models.service.routing import queue_place
from models.service.tables import OPEN_STATES, Conversation, ConversationState
from models.service.views import several_shops
from models.tables import Shop


async def open_entry(ctx: Ctx, payload: str) -> bool:
    """``/start <entry token>``: the customer's chat with that shop, opened or resumed (no
    phone needed). An unknown or regenerated token gets a clear answer."""
    if not is_entry_token(payload):
        return False
    try:
        opened = await open_or_resume(ctx.session, service_policy(ctx.deps),
                                      customer_id=ctx.user_id, token=payload, now=ctx.now())
    except DomainError as exc:
        await ctx.rollback()
        await ctx.reply(ctx.error_text(exc))
        return True
    conversation_id = opened.conversation.id or 0
    await ctx.start_flow(CUSTOMER_FLOW, CUSTOMER_STEP, {"c": conversation_id})
    # the new chat and what it owes (its agent's header, the customer's notice) in one commit
    owed = (await owe_announcements(ctx.deps, ctx.session, [opened.placement], now=ctx.now(),
                                    opened=True) if opened.placement is not None else None)
    await ctx.commit()
    plan_for(ctx.context.job_queue, opened.conversation.idle_at)
    if owed is None:
        await ctx.reply(ctx.t("cs.resumed", shop=opened.shop.name),
                        await _buttons(ctx, conversation_id))
        return True
    await owed.send(ctx.context.bot, ctx.session, now=ctx.now(),
                    state=relay_state(ctx.context.application.bot_data))
    return True


async def _current(ctx: Ctx) -> Chat | None:
    """The open conversation the customer writes to (their draft's), if still open, and its
    agent (read together, with the shop's settings)."""
    draft = await ctx.load_draft()
    raw = draft.data.get("c") if draft is not None else None
    if not isinstance(raw, int):
        return None
    found = await load_chat(ctx.session, conversation_id=raw)
    if found is None:
        return None
    conversation = found.conversation
    if conversation.customer_id != ctx.user_id or conversation.state not in OPEN_STATES:
        return None
    return found


async def ask(ctx: Ctx) -> None:
    current = await _current(ctx)
    conversation = current.conversation if current is not None else None
    shop = await ctx.session.get(Shop, conversation.shop_id) if conversation else None
    if conversation is None or shop is None:
        await ctx.end_flow()
        await ctx.reply(ctx.t("cs.no_chat"))
        return
    await ctx.reply(ctx.t("cs.ask", shop=shop.name), await _buttons(ctx, conversation.id or 0))


async def on_message(ctx: Ctx, message: Message) -> None:
    """Relay whatever the customer sent, or say why it cannot be; never dropped silently."""
    current = await _current(ctx)
    if current is None:
        await ctx.end_flow()
        await ctx.reply(ctx.t("cs.no_chat"))
        return
    conversation, agent = current.conversation, current.agent
    if not copyable(message):
        await ctx.reply(ctx.t("cs.cannot_copy"))
        return
    state, now = relay_state(ctx.context.application.bot_data), ctx.now()
    if not state.allow(ctx.user_id, now):
        wait = max(1, int((state.retry_at(ctx.user_id) - now).total_seconds()) + 1)
        await ctx.reply(ctx.t("cs.flood", limit=state.limit, seconds=wait))
        return
    conversation_id, policy = conversation.id or 0, service_policy(ctx.deps)
    if conversation.state == ConversationState.ASSIGNED.value and agent is not None:
        await header_to_agent(ctx.context.bot, ctx.deps, ctx.session, state,
                              conversation_id, agent.user_id, now)
        copied = await copy(ctx.context.bot, agent.user_id, ctx.chat_id, message.message_id)
        await record_customer_message(
            ctx.session, policy, conversation_id=conversation_id,
            customer_message_id=message.message_id, now=now,
            agent_chat_id=agent.user_id if copied is not None else None,
            agent_message_id=copied, chat=current)
        plan_for(ctx.context.job_queue, conversation.nudge_at, conversation.idle_at)
        return
    waiting_since = conversation.waiting_since
    first_while_waiting = conversation.last_customer_at is None or (
        waiting_since is not None and conversation.last_customer_at < waiting_since)
    await record_customer_message(ctx.session, policy, conversation_id=conversation_id,
                                  customer_message_id=message.message_id, now=now,
                                  chat=current)
    plan_for(ctx.context.job_queue, conversation.nudge_at, conversation.idle_at)
    if not first_while_waiting:
        return
    if conversation.state == ConversationState.QUEUED.value:
        place = await queue_place(ctx.session, conversation)
        await ctx.reply(ctx.t("cs.kept_queued", place=place))
    else:
        await ctx.reply(ctx.t("cs.kept_offline"))


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    if action == "sw":
        await _switch_list(ctx)
        return
    conversation_id = int(args[0])
    if action == "end":
        await _end(ctx, conversation_id)
        return
    if action == "rate":
        try:
            rated = await rate(ctx.session, conversation_id=conversation_id,
                               customer_id=ctx.user_id, score=int(args[1]), now=ctx.now())
        except DomainError as exc:
            if exc.key != "service_already_rated":
                raise
            await ctx.rollback()
            await ctx.answer(ctx.error_text(exc))  # a second tap: a short answer, no message
            return
        shop = await ctx.session.get(Shop, rated.shop_id)
        await ctx.answer()
        # the rating prompt itself says thank you (it is the chat's last word)
        await ctx.show(ctx.t("cs.rated", shop=shop.name if shop else "—", score=int(args[1])))
        return
    # "go": write to that shop from now on
    found = await ctx.session.get(Conversation, conversation_id)
    if found is None or found.customer_id != ctx.user_id or found.state not in OPEN_STATES:
        await ctx.stale()
        return
    shop = await ctx.session.get(Shop, found.shop_id)
    await ctx.start_flow(CUSTOMER_FLOW, CUSTOMER_STEP, {"c": conversation_id})
    await ctx.answer()
    await ctx.show(ctx.t("cs.switched", shop=shop.name if shop else "—"),
                   await _buttons(ctx, conversation_id))


async def _buttons(ctx: Ctx, conversation_id: int) -> InlineKeyboardMarkup:
    """End chat, and Switch shop for a customer with chats at two shops or more."""
    return customer_buttons(ctx.locale, conversation_id,
                            switch=await several_shops(ctx.session, ctx.user_id))


def _pressed_message(ctx: Ctx) -> int | None:
    query = ctx.update.callback_query
    return query.message.message_id if query is not None and query.message is not None \
        else None


async def _end(ctx: Ctx, conversation_id: int) -> None:
    """End chat: the notice it was pressed on keeps its words (who served the customer) and
    loses its buttons; the end and the rating prompt come as a new message. On a chat that
    has ended already (an old notice's button), a short answer and the buttons go."""
    pressed = _pressed_message(ctx)
    found = await ctx.session.get(Conversation, conversation_id)
    if found is not None and found.customer_id == ctx.user_id \
            and found.state not in OPEN_STATES:
        await ctx.answer(ctx.t("cs.ended_already"))
        if pressed is not None:
            await strip_keyboard(ctx, pressed)
        return
    ended = await end(ctx.session, service_policy(ctx.deps), conversation_id=conversation_id,
                      by=EndedBy.CUSTOMER, actor_id=ctx.user_id, now=ctx.now())
    owed = await owe_end(ctx.deps, ctx.session, ended, now=ctx.now())  # committed with the end
    shop = await ctx.session.get(Shop, ended.shop_id)
    await ctx.answer()
    if pressed is not None:
        await strip_keyboard(ctx, pressed)
    await ctx.reply(ctx.t("cs.ended_self", shop=shop.name if shop else "—"),
                    rating_markup(ctx.locale, conversation_id))
    await owed.send(ctx.context.bot, ctx.session, now=ctx.now(),
                    state=relay_state(ctx.context.application.bot_data))


async def _switch_list(ctx: Ctx) -> None:
    """The customer's open chats, one button per shop."""
    chats = await open_conversations_of(ctx.session, customer_id=ctx.user_id)
    await ctx.answer()
    if not chats:
        await ctx.show(ctx.t("cs.no_chat"))
        return
    rows = []
    for conversation in chats:
        shop = await ctx.session.get(Shop, conversation.shop_id)
        rows.append([button(shop.name if shop else "—", cb(CUSTOMER_NS, "go", conversation.id))])
    await ctx.show(ctx.t("cs.switch_title"), keyboard(*rows))


FLOW = Flow(
    name=CUSTOMER_FLOW,
    namespace=CUSTOMER_NS,
    buttons={"end": ("int",), "rate": ("int", "int"), "sw": (), "go": ("int",)},
    on_button=on_button,
    steps={CUSTOMER_STEP: Step(ask=ask, on_message=on_message)},
    deep_link=open_entry,
)
