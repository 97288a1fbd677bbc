"""The agent's side of customer service (客服): status, open chats, and answering.

An agent answers by replying to a customer's relayed message, or, with one open chat, by
just writing; with several and nothing replied to (and no chat picked), the bot never
guesses: it asks which (buttons) and keeps the message to send after the choice.

Callback data, namespace ``ag`` (checked against the presser's own chats):
``ag:ss`` status · ``ag:st:<on|br|off>`` set it · ``ag:hb`` offline, handing the chats back ·
``ag:ch`` open chats · ``ag:pk:<conv>`` write to that chat · ``ag:end:<conv>`` end ·
``ag:tr:<conv>`` transfer menu · ``ag:hd:<conv>`` back to the header · ``ag:ta:<conv>:<agent>``
/ ``ag:tg:<conv>:<group>`` transfer. A press for a chat that left the presser is answered with
a pop-up (what happened to it) and takes the pressed message's buttons off.

An answer to the copy of a customer's message is threaded under that message in the customer's
chat (``reply_parameters``; the message map knows which it is).
"""

from __future__ import annotations

from telegram import Message

from handlers.context import Ctx
from handlers.flow import Audience, Command, Flow, Step
from handlers.service_agent_actions import (
    STATUS_KEYS,
    back_to_header,
    change_status,
    chats_screen,
    do_transfer,
    end_chat,
    my_agent,
    pick_keyboard,
    show_status,
    stale_press,
    transfer_menu,
)
from handlers.service_relay import (
    AGENT_FLOW,
    AGENT_NS,
    AGENT_STEP,
    copyable,
    customer_name,
    names_of,
    relay_state,
    replied_customer_message,
    send_to_customer,
)
from models.errors import DomainError
from models.service.agents import open_chats
from models.service.messages import Chat, resolve_reply_target
from models.service.tables import Agent, AgentStatus, Conversation, ConversationState


async def ask(ctx: Ctx) -> None:
    await ctx.reply(ctx.t("ag.desk"))


async def _picked(ctx: Ctx, agent: Agent) -> int | None:
    """The chat the agent picked for plain messages, if it is still theirs and open."""
    draft = await ctx.load_draft()
    raw = draft.data.get("pick") if draft is not None else None
    if not isinstance(raw, int):
        return None
    found = await ctx.session.get(Conversation, raw, populate_existing=True)
    if found is None or found.agent_id != agent.id or found.state != ConversationState.ASSIGNED:
        return None
    return raw


async def on_message(ctx: Ctx, message: Message) -> None:
    """An agent's message: to the chat it replies to, the picked one, or the only one."""
    agent = await my_agent(ctx)
    if agent is None or not agent.active or agent.id is None:
        await ctx.end_flow()
        await ctx.reply(ctx.t("errors.service_not_agent"))
        return
    if not copyable(message):
        await ctx.reply(ctx.t("ag.cannot_copy"))
        return
    replied = message.reply_to_message.message_id if message.reply_to_message else None
    target: int | None = None
    loaded: Chat | None = None
    threaded: int | None = None
    if replied is not None:
        try:
            resolved = await resolve_reply_target(ctx.session, agent_id=agent.id,
                                                  replied_to=replied)
            target, loaded = resolved.conversation_id, resolved.chat
        except DomainError as exc:
            if exc.key != "service_reply_unknown":
                raise
        if target is not None:
            threaded = await replied_customer_message(ctx.session, agent_user_id=agent.user_id,
                                                      message_id=replied)
    if target is None:
        target = await _picked(ctx, agent)
    if target is None:
        found = await resolve_reply_target(ctx.session, agent_id=agent.id, replied_to=None)
        target = found.conversation_id
    if target is None:
        draft = await ctx.load_draft()
        pending = list(draft.data.get("pending") or []) if draft is not None else []
        await ctx.goto(AGENT_FLOW, AGENT_STEP, {"pending": [*pending, message.message_id]})
        chats = await open_chats(ctx.session, agent_id=agent.id)
        await ctx.reply(ctx.t("ag.which_chat", count=len(chats)),
                        await pick_keyboard(ctx, chats))
        return
    await _send(ctx, agent, target, [message.message_id], loaded, threaded)


async def _send(ctx: Ctx, agent: Agent, conversation_id: int, message_ids: list[int],
                loaded: Chat | None = None, threaded: int | None = None) -> None:
    """Each message to the customer; ``loaded``: the conversation as read in this update
    (used for the first message only: each send commits); ``threaded``: the message in the
    customer's chat the first one answers."""
    state = relay_state(ctx.context.application.bot_data)
    await ctx.commit()
    for message_id in message_ids:
        if not await send_to_customer(ctx.context.bot, ctx.deps, ctx.session, agent,
                                      conversation_id, message_id, now=ctx.now(), state=state,
                                      chat=loaded, reply_to=threaded):
            await ctx.reply(ctx.t("ag.undelivered"))
            return
        loaded, threaded = None, None


async def pick(ctx: Ctx, conversation_id: int) -> None:
    """Plain messages go to this chat from now on; the ones kept meanwhile go now."""
    agent = await my_agent(ctx)
    found = await ctx.session.get(Conversation, conversation_id, populate_existing=True)
    if (agent is None or found is None or found.agent_id != agent.id
            or found.state != ConversationState.ASSIGNED):
        await ctx.stale()
        return
    draft = await ctx.load_draft()
    pending = [int(m) for m in (draft.data.get("pending") or [])] if (
        draft is not None and draft.flow == AGENT_FLOW) else []
    await ctx.start_flow(AGENT_FLOW, AGENT_STEP, {"pick": conversation_id})
    names = await names_of(ctx.session, conversation_id)
    await ctx.answer()
    await ctx.show(ctx.t("ag.picked", customer=customer_name(names) if names else "—",
                         entry=names.entry if names else "—"))
    if pending:
        await _send(ctx, agent, conversation_id, pending)


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    if action == "ss":
        await ctx.answer()
        await show_status(ctx)
    elif action == "st":
        if args[0] not in STATUS_KEYS:
            await ctx.stale()
            return
        await change_status(ctx, STATUS_KEYS[args[0]])
    elif action == "hb":
        await change_status(ctx, AgentStatus.OFFLINE.value, hand_back=True)
    elif action == "ch":
        await chats_screen(ctx)
    elif action == "pk":
        await pick(ctx, int(args[0]))
    elif await stale_press(ctx, int(args[0])):
        return
    elif action == "end":
        await end_chat(ctx, int(args[0]))
    elif action == "tr":
        await transfer_menu(ctx, int(args[0]))
    elif action == "hd":
        await back_to_header(ctx, int(args[0]))
    elif action == "ta":
        await do_transfer(ctx, int(args[0]), agent_id=int(args[1]))
    else:  # "tg"
        await do_transfer(ctx, int(args[0]), group_id=int(args[1]))


async def status_command(ctx: Ctx) -> None:
    await show_status(ctx)


async def online(ctx: Ctx) -> None:
    await change_status(ctx, AgentStatus.ONLINE.value)


async def on_break(ctx: Ctx) -> None:
    await change_status(ctx, AgentStatus.BREAK.value)


async def offline(ctx: Ctx) -> None:
    await change_status(ctx, AgentStatus.OFFLINE.value)


async def chats_command(ctx: Ctx) -> None:
    await chats_screen(ctx)


#: the agent's commands are for those who may answer customers: owners and their staff
AGENTS: tuple[Audience, ...] = ("owner", "staff")

FLOW = Flow(
    name=AGENT_FLOW,
    namespace=AGENT_NS,
    buttons={"ss": (), "st": ("key",), "hb": (), "ch": (), "pk": ("int",), "end": ("int",),
             "tr": ("int",), "hd": ("int",), "ta": ("int", "int"), "tg": ("int", "int")},
    on_button=on_button,
    steps={AGENT_STEP: Step(ask=ask, on_message=on_message)},
    commands=(
        Command("status", status_command, who=AGENTS),
        Command("online", online, who=AGENTS),
        Command("break", on_break, who=AGENTS),
        Command("offline", offline, who=AGENTS),
        Command("chats", chats_command, who=AGENTS),
    ),
)
