"""The agent's actions (not a conversation): status (🟢 在线 / ☕ 小休 / ⚫ 离线), the open
chats, End and Transfer (转接). ``service_agent`` declares the flow; /me's button reaches the
status screen through the ``ag`` namespace."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup

from handlers.context import Answered, Ctx
from handlers.keyboards import button, keyboard
from handlers.service_relay import (
    AGENT_FLOW,
    AGENT_NS,
    AGENT_STEP,
    Names,
    agent_buttons,
    agent_nickname,
    cb,
    customer_name,
    names_of,
    owe_announcements,
    owe_end,
    relay_state,
    remove_buttons,
    service_policy,
)
from models.accounts import membership_of
from models.errors import DomainError
from models.service.agents import (
    agent_for,
    agent_of_member,
    agents_of,
    enroll_agent,
    open_chats,
    set_status,
)
from models.service.conversations import EndedBy, end, transfer
from models.service.groups import get_group, list_groups
from models.service.tables import Agent, AgentStatus, Conversation, ConversationState
from models.tables import SubAccount

STATUS_KEYS = {"on": AgentStatus.ONLINE.value, "br": AgentStatus.BREAK.value,
               "off": AgentStatus.OFFLINE.value}
ICONS = {AgentStatus.ONLINE.value: "🟢", AgentStatus.BREAK.value: "☕",
         AgentStatus.OFFLINE.value: "⚫"}


async def my_shop_id(ctx: Ctx) -> int | None:
    """The shop the user may answer customers of: the one they own, or their sub-account's."""
    shop = await ctx.shop_or_none()
    if shop is not None:
        return shop.id
    membership = await membership_of(ctx.session, ctx.user_id)
    return membership.shop.id if membership is not None else None


async def my_agent(ctx: Ctx) -> Agent | None:
    """The user's agent row in the shop they own, or else in their sub-account's."""
    shop = await ctx.shop_or_none()
    if shop is not None and shop.id is not None:
        return await agent_for(ctx.session, shop_id=shop.id, user_id=ctx.user_id)
    return await agent_of_member(ctx.session, user_id=ctx.user_id)


async def status_screen(ctx: Ctx) -> tuple[str, InlineKeyboardMarkup]:
    agent = await my_agent(ctx)
    status = agent.status if agent is not None and agent.active else AgentStatus.OFFLINE.value
    chats = agent.open_chats if agent is not None else 0
    text = ctx.t("ag.status", icon=ICONS[status], status=ctx.t(f"ag.status_{status}"),
                 chats=chats)
    rows = [button(ICONS[value] + " " + ctx.t(f"ag.status_{value}"), cb(AGENT_NS, "st", key))
            for key, value in STATUS_KEYS.items() if value != status]
    return text, keyboard(rows, [button(ctx.t("ag.chats_button"), cb(AGENT_NS, "ch"))])


async def show_status(ctx: Ctx) -> None:
    text, markup = await status_screen(ctx)
    await ctx.show(text, markup)


async def change_status(ctx: Ctx, status: str, *, hand_back: bool = False) -> None:
    """Go online / on break / offline (SPEC §8): online hands out waiting chats at once;
    offline with open chats is refused unless they are handed back to routing."""
    shop_id = await my_shop_id(ctx)
    if shop_id is None:
        raise DomainError("service_not_agent")
    policy, now = service_policy(ctx.deps), ctx.now()
    agent = await agent_for(ctx.session, shop_id=shop_id, user_id=ctx.user_id)
    if status != AgentStatus.OFFLINE.value and (agent is None or not agent.active):
        agent = await enroll_agent(ctx.session, policy, shop_id=shop_id, user_id=ctx.user_id,
                                   actor_id=ctx.user_id, now=now)
    if agent is None or agent.id is None:
        raise DomainError("service_not_agent")
    try:
        change = await set_status(ctx.session, policy, shop_id=shop_id, agent_id=agent.id,
                                  status=status, actor_id=ctx.user_id, now=now,
                                  hand_back=hand_back)
    except DomainError as exc:
        if exc.key == "nothing_changed":
            await ctx.answer()
            await show_status(ctx)
            raise Answered from exc
        if exc.key != "service_offline_has_chats":
            raise
        await ctx.rollback()
        await ctx.answer()
        await ctx.show(ctx.error_text(exc), keyboard(
            [button(ctx.t("ag.hand_back_button"), cb(AGENT_NS, "hb"))],
            [button(ctx.t("ag.chats_button"), cb(AGENT_NS, "ch"))]))
        raise Answered from exc
    draft = await ctx.load_draft()
    if status == AgentStatus.OFFLINE.value:
        if draft is not None and draft.flow == AGENT_FLOW:
            await ctx.end_flow()
    elif draft is None or draft.flow != AGENT_FLOW:
        await ctx.start_flow(AGENT_FLOW, AGENT_STEP)
    # the chats handed back or handed out: their notices committed with the change, sent after
    owed = await owe_announcements(ctx.deps, ctx.session, change.moved + change.handouts,
                                   now=now)
    await ctx.answer()
    await show_status(ctx)
    await owed.send(ctx.context.bot, ctx.session, now=now,
                    state=relay_state(ctx.context.application.bot_data))


async def chats_screen(ctx: Ctx) -> None:
    """/chats: the agent's open chats, a button each to pick where plain messages go."""
    agent = await my_agent(ctx)
    if agent is None or not agent.active:
        raise DomainError("service_not_agent")
    chats = await open_chats(ctx.session, agent_id=agent.id or 0)
    await ctx.answer()
    if not chats:
        await ctx.show(ctx.t("errors.service_no_open_chats"))
        return
    await ctx.show(ctx.t("ag.chats_title", count=len(chats)), await pick_keyboard(ctx, chats))


async def pick_keyboard(ctx: Ctx, chats: list[Conversation]) -> InlineKeyboardMarkup:
    rows = []
    for conversation in chats:
        names = await names_of(ctx.session, conversation.id or 0)
        label = f"{customer_name(names)} · {names.entry}" if names else "—"
        rows.append([button(label, cb(AGENT_NS, "pk", conversation.id))])
    return keyboard(*rows)


async def stale_press(ctx: Ctx, conversation_id: int) -> bool:
    """A press on End / Transfer / a transfer choice of a chat that left the presser (ended,
    transferred, re-routed): answered with a pop-up saying what happened, and the pressed
    message's buttons removed — never a new message. ``False`` when the press is for the
    presser's own chat, or the presser is none of the shop's agents (the rules answer)."""
    conversation = await ctx.session.get(Conversation, conversation_id, populate_existing=True)
    agent = await my_agent(ctx)
    if conversation is None:
        text = ctx.t("errors.service_conversation_not_found")
    elif agent is None or agent.shop_id != conversation.shop_id:
        return False
    elif conversation.state == ConversationState.ASSIGNED.value:
        if conversation.agent_id == agent.id:
            return False
        other = await ctx.session.get(Agent, conversation.agent_id or 0)
        text = ctx.t("ag.stale_transferred",
                     agent=await agent_nickname(ctx.session, other, ctx.locale) if other else "—")
    elif conversation.state == ConversationState.CLOSED.value:
        text = ctx.t("ag.stale_ended")
    else:
        text = ctx.t("ag.stale_waiting")
    await ctx.answer(text)
    await _pressed_loses_buttons(ctx, conversation_id)
    return True


def _forget_pressed(ctx: Ctx, conversation_id: int) -> int | None:
    """The pressed message is no longer one of the chat's headers with buttons (the relay
    stops tracking it); its id, if the update is a press."""
    query = ctx.update.callback_query
    if query is None or query.message is None:
        return None
    relay_state(ctx.context.application.bot_data).forget_buttons(
        ctx.chat_id, conversation_id, query.message.message_id)
    return query.message.message_id


async def _pressed_loses_buttons(ctx: Ctx, conversation_id: int) -> None:
    """The pressed header acted for a chat that is no longer the presser's."""
    pressed = _forget_pressed(ctx, conversation_id)
    if pressed is not None:
        await remove_buttons(ctx.context.bot, ctx.chat_id, pressed)


async def end_chat(ctx: Ctx, conversation_id: int) -> None:
    """End: by the chat's agent, or the shop's owner (anyone else is refused)."""
    agent = await my_agent(ctx)
    conversation = await ctx.session.get(Conversation, conversation_id)
    by = (EndedBy.AGENT if agent is not None and conversation is not None
          and agent.id in (conversation.agent_id, conversation.served_by) else EndedBy.OWNER)
    ended = await end(ctx.session, service_policy(ctx.deps), conversation_id=conversation_id,
                      by=by, actor_id=ctx.user_id, now=ctx.now())
    names = await names_of(ctx.session, conversation_id)
    owed = await owe_end(ctx.deps, ctx.session, ended, now=ctx.now())
    await ctx.answer()
    await _pressed_loses_buttons(ctx, conversation_id)
    await ctx.reply(ctx.t("ag.ended", customer=customer_name(names) if names else "—"))
    await owed.send(ctx.context.bot, ctx.session, now=ctx.now(),
                    state=relay_state(ctx.context.application.bot_data))


def _header_text(ctx: Ctx, names: Names | None) -> str:
    if names is None:
        return "—"
    return ctx.t("ag.header", customer=customer_name(names), entry=names.entry,
                 shop=names.shop.name)


async def back_to_header(ctx: Ctx, conversation_id: int) -> None:
    """⬅️ Back from the transfer menu: the chat's header again, with End and Transfer."""
    names = await names_of(ctx.session, conversation_id)
    await ctx.answer()
    await ctx.show(_header_text(ctx, names), agent_buttons(ctx.locale, conversation_id))


async def transfer_menu(ctx: Ctx, conversation_id: int) -> None:
    """转接: the colleagues who could take it (online or on break) and the groups, in place of
    the pressed header's buttons (⬅️ Back brings them back)."""
    conversation = await ctx.session.get(Conversation, conversation_id)
    agent = await my_agent(ctx)
    shop = await ctx.shop_or_none()
    mine = agent is not None and conversation is not None and conversation.agent_id == agent.id
    owner = shop is not None and conversation is not None and shop.id == conversation.shop_id
    if conversation is None or not (mine or owner):
        raise DomainError("service_not_your_conversation")
    if conversation.state != ConversationState.ASSIGNED.value:
        raise DomainError("service_conversation_closed")
    rows = []
    for other in await agents_of(ctx.session, shop_id=conversation.shop_id):
        if (not other.active or other.id == conversation.agent_id
                or other.status == AgentStatus.OFFLINE.value):
            continue
        account = await ctx.session.get(SubAccount, other.account_id) if other.account_id else None
        label = account.nickname if account else ctx.t("cs.owner_nickname")
        rows.append([button(f"{ICONS[other.status]} {label}",
                            cb(AGENT_NS, "ta", conversation_id, other.id))])
    for group, _count in await list_groups(ctx.session, shop_id=conversation.shop_id):
        rows.append([button(ctx.t("ag.group_label", group=group.name),
                            cb(AGENT_NS, "tg", conversation_id, group.id))])
    if not rows:
        await ctx.answer(ctx.t("ag.transfer_nobody"), alert=True)
        return
    await ctx.answer()
    rows.append([button(ctx.label("common.back"), cb(AGENT_NS, "hd", conversation_id))])
    names = await names_of(ctx.session, conversation_id)
    await ctx.show(_header_text(ctx, names) + "\n" + ctx.t("ag.transfer_title"),
                   keyboard(*rows))


async def do_transfer(ctx: Ctx, conversation_id: int, *, agent_id: int | None = None,
                      group_id: int | None = None) -> None:
    done = await transfer(ctx.session, service_policy(ctx.deps), conversation_id=conversation_id,
                          actor_id=ctx.user_id, now=ctx.now(), to_agent_id=agent_id,
                          to_group_id=group_id)
    names = await names_of(ctx.session, conversation_id)
    customer = customer_name(names) if names else "—"
    taker = await ctx.session.get(Agent, done.placement.agent_id or 0)
    nickname = await agent_nickname(ctx.session, taker, ctx.locale) if taker else "—"
    group = (await get_group(ctx.session, shop_id=done.placement.shop_id, group_id=group_id)
             if group_id is not None else None)
    text = (ctx.t("ag.transferred_to_group", customer=customer, agent=nickname,
                  group=group.name) if group is not None
            else ctx.t("ag.transferred_to", customer=customer, agent=nickname))
    owed = await owe_announcements(ctx.deps, ctx.session, [done.placement, *done.handouts],
                                   now=ctx.now())
    await ctx.answer()
    _forget_pressed(ctx, conversation_id)  # the menu becomes the confirmation
    await ctx.show(text)
    await owed.send(ctx.context.bot, ctx.session, now=ctx.now(),
                    state=relay_state(ctx.context.application.bot_data))
