"""The router: one application's conversations, built from the list of flows.

Conversation state lives in the ``draft`` table (flow, step, data), not in PTB's
ConversationHandler: a text, a contact or any other message is routed by the step the user's
draft is at, so a restart (even ``kill -9``) loses nothing. Callback data is
``ns:action[:arg…]`` (≤ 64 bytes, built with ``cb``) and parsed strictly against the shapes the
flows declare; anything else is "this menu is no longer valid". Commands, the command menu,
/help, the owner's home menu (``m:<key>``) and what /start shows all come from the same list.
Each ``Application`` builds its own ``Router`` (``bot.app.build_application``); nothing here is
module state.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from telegram import BotCommand, InlineKeyboardButton
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters
from telegram.ext import MessageHandler as PTBMessageHandler

from handlers.context import Answered, Ctx, entry
from handlers.flow import ButtonHandler, Command, Flow, Step
from handlers.i18n import t, template
from handlers.keyboards import button, keyboard, rows_of
from handlers.menus import audience

#: the owner's home menu buttons: ``m:<menu_key>``
MENU_NS = "m"
#: the router's own question "Discard / Continue": ``dq:go`` / ``dq:keep``
DISCARD_NS = "dq"
#: the draft key that keeps what the person pressed or typed while the question is asked
PENDING = "_pending"
#: where a contact goes when the user is in no conversation (phone linking), if declared; and
#: where anything goes that someone who has not linked a phone sends outside a conversation
CONTACT_FALLBACK = ("onboard", "phone")
#: the largest value an ``int`` argument may have: the ids in callback data (shop, role,
#: sub-account, code) are 32-bit INTEGER columns (user ids are BIGINT, but no button carries
#: one), and page numbers and flags are small; anything larger is a forged or broken button
INT_MAX = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")
ARG_KINDS = ("int", "key")


def cb(namespace: str, action: str, *args: object) -> str:
    """Build callback data ``ns:action:arg…``, checking Telegram's 64-byte limit."""
    data = ":".join([namespace, action, *(str(a) for a in args)])
    if len(data.encode()) > 64:
        raise ValueError(f"callback data too long: {data!r}")
    return data


def valid_arg(kind: str, arg: str) -> bool:
    """Whether ``arg`` is a well-formed argument of ``kind`` (ASCII only, in range)."""
    if kind == "int":
        return _DIGITS.fullmatch(arg) is not None and int(arg) <= INT_MAX
    return _KEY.fullmatch(arg) is not None


class Router:
    """The routing tables of one application, and the ways conversations meet."""

    def __init__(self, flows: Sequence[Flow]) -> None:
        self.flows: dict[str, Flow] = {}
        self._steps: dict[tuple[str, str], Step] = {}
        self._buttons: dict[str, tuple[Mapping[str, tuple[str, ...]], ButtonHandler]] = {}
        self._commands: dict[str, Command] = {}
        self._menu: dict[str, Command] = {}
        for flow in flows:
            self._add(flow)
        if self._menu:
            self._buttons[MENU_NS] = ({key: () for key in self._menu}, self._on_menu_button)
        self._buttons[DISCARD_NS] = ({"go": (), "keep": ()}, self._on_discard_button)

    def _add(self, flow: Flow) -> None:
        if not flow.name or flow.name in self.flows:
            raise ValueError(f"bad or duplicate flow name {flow.name!r}")
        self.flows[flow.name] = flow
        for name, step in flow.steps.items():
            self._steps[(flow.name, name)] = step
        if flow.namespace is None:
            if flow.buttons or flow.on_button is not None:
                raise ValueError(f"flow {flow.name!r} has buttons but no namespace")
        else:
            ns = flow.namespace
            if not _KEY.fullmatch(ns) or ns in self._buttons or ns in (MENU_NS, DISCARD_NS):
                raise ValueError(f"bad or duplicate namespace {ns!r}")
            if flow.on_button is None or not flow.buttons:
                raise ValueError(f"namespace {ns!r} needs buttons and on_button")
            for action, kinds in flow.buttons.items():
                if not _KEY.fullmatch(action) or any(k not in ARG_KINDS for k in kinds):
                    raise ValueError(f"bad button shape {ns}:{action} {kinds!r}")
            self._buttons[ns] = (flow.buttons, flow.on_button)
        for command in flow.commands:
            if command.name in self._commands:
                raise ValueError(f"duplicate command /{command.name}")
            self._commands[command.name] = command
            if command.menu_key is not None:
                if command.menu_key in self._menu:
                    raise ValueError(f"duplicate menu key {command.menu_key!r}")
                self._menu[command.menu_key] = command

    # --- reading the tables ---------------------------------------------------------------
    @property
    def commands(self) -> tuple[Command, ...]:
        """Every command, in the order of the flow list."""
        return tuple(self._commands.values())

    @property
    def namespaces(self) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
        """Every callback namespace (the owner menu's ``m`` too) → its button shapes."""
        return {ns: shapes for ns, (shapes, _) in self._buttons.items()}

    def step(self, flow: str, name: str) -> Step | None:
        """The declared step ``flow.name``."""
        return self._steps.get((flow, name))

    def parse(self, data: str) -> tuple[str, str, list[str]] | None:
        """Strictly parse callback data; ``None`` for anything not declared or malformed."""
        if not data or len(data.encode()) > 64:
            return None
        parts = data.split(":")
        if len(parts) < 2 or parts[0] not in self._buttons:
            return None
        namespace, action, args = parts[0], parts[1], parts[2:]
        shape = self._buttons[namespace][0].get(action)
        if shape is None or len(shape) != len(args):
            return None
        if not all(valid_arg(kind, arg) for kind, arg in zip(shape, args, strict=True)):
            return None
        return namespace, action, args

    def has_menu(self, key: str) -> bool:
        """Whether the owner's home menu has the button ``key``."""
        return key in self._menu

    def owner_menu_rows(self, ctx: Ctx) -> list[list[InlineKeyboardButton]]:
        """The owner's home menu: the commands with a menu key, in the list's order (first
        "▶️ Continue: …" when /start found a flow waiting)."""
        rows = rows_of([button(ctx.t(f"home.menu_{key}"), cb(MENU_NS, key))
                        for key in self._menu])
        if ctx.resume_hint:
            rows.insert(0, [button(ctx.label("common.continue_flow", what=ctx.resume_hint),
                                   cb(DISCARD_NS, "keep"))])
        return rows

    def bot_commands(self, locale: str, who: Collection[str] = ("everyone",)) -> list[BotCommand]:
        """The command menu in ``locale`` for people who are ``who`` (registered with
        setMyCommands: the default menu is everyone's; ``handlers.menus`` sets each chat's)."""
        return [BotCommand(c.name, t(locale, f"commands.{c.name}"))
                for c in self._commands.values() if c.is_for(who)]

    async def help_lines(self, ctx: Ctx) -> list[str]:
        """/help: a line per command this user can use now (``help.<name>``; before the phone
        is linked, ``help.<name>_link`` where the catalogue has one)."""
        linked = ctx.user.phone is not None
        who = await audience(ctx.session, ctx.user, await ctx.shop_or_none())
        lines = []
        for command in self._commands.values():
            if not command.is_for(who):
                continue
            key = f"help.{command.name}"
            if not linked and template(ctx.locale, f"{key}_link") is not None:
                key += "_link"
            lines.append(ctx.t(key))
        return lines

    # --- moving between steps and flows --------------------------------------------------
    async def current_step(self, ctx: Ctx) -> Step | None:
        """The declared step the user's draft is at, if any."""
        draft = await ctx.load_draft()
        return self._steps.get((draft.flow, draft.step)) if draft else None

    async def reprompt(self, ctx: Ctx) -> bool:
        """Ask again for what the current step expects; ``False`` if the user is in no flow."""
        found = await self.current_step(ctx)
        if found is None:
            return False
        await found.ask(ctx)
        return True

    async def ask(self, ctx: Ctx, flow: str, step: str) -> None:
        """Ask for what ``flow.step`` expects."""
        found = self._steps.get((flow, step))
        if found is None:
            raise KeyError(f"no step {flow}.{step} is declared")
        await found.ask(ctx)

    async def start(self, ctx: Ctx, flow: str, step: str,
                    data: dict[str, Any] | None = None) -> None:
        """Begin ``flow`` afresh at ``step`` (the draft replaced) and ask for it."""
        await ctx.start_flow(flow, step, data)
        await self.ask(ctx, flow, step)

    async def goto(self, ctx: Ctx, flow: str, step: str,
                   data: dict[str, Any] | None = None) -> None:
        """Move to ``flow.step`` (the draft's data kept and updated) and ask for it."""
        await ctx.goto(flow, step, data)
        await self.ask(ctx, flow, step)

    async def start_nested(
        self, ctx: Ctx, flow: str, step: str, data: dict[str, Any] | None = None, *,
        return_to: str, parent_data: Mapping[str, object] | None = None,
    ) -> None:
        """Start ``flow`` at ``step`` from inside ``return_to``; when it ends it calls
        ``finish_nested``, which hands its result to ``return_to``'s ``on_return`` with
        ``parent_data`` (by default the parent's draft data), kept meanwhile in the draft."""
        parent = self.flows.get(return_to)
        if parent is None or parent.on_return is None:
            raise ValueError(f"flow {return_to!r} declares no on_return")
        if parent_data is None:
            draft = await ctx.load_draft()
            parent_data = draft.data if draft is not None and draft.flow == return_to else {}
        await self.start(ctx, flow, step,
                         {**(data or {}), "parent": return_to, "parent_data": dict(parent_data)})

    async def finish_nested(self, ctx: Ctx, data: Mapping[str, Any], result: int | None) -> bool:
        """A nested flow (draft ``data``) has ended with ``result``: return to the flow that
        started it; ``False`` if it was not started nested."""
        parent = data.get("parent")
        flow = self.flows.get(parent) if isinstance(parent, str) else None
        if flow is None or flow.on_return is None:
            return False
        await flow.on_return(ctx, result, dict(data.get("parent_data") or {}))
        return True

    async def describe(self, ctx: Ctx) -> str | None:
        """What the user has entered in the flow they are in, if it declares ``describe``."""
        draft = await ctx.load_draft()
        flow = self.flows.get(draft.flow) if draft is not None else None
        if flow is None or flow.describe is None:
            return None
        return await flow.describe(ctx)

    async def ask_discard(self, ctx: Ctx) -> bool:
        """A command or a button would leave a flow with something entered: ask "Discard /
        Continue" first (what was pressed or typed is kept in the draft, and done on Discard);
        ``True`` if the question was asked (the caller stops there)."""
        if ctx.discard_confirmed:
            return False
        what = await self.describe(ctx)
        pending = _pending_of(ctx)
        draft = await ctx.load_draft()
        if what is None or pending is None or draft is None:
            return False
        await ctx.goto(draft.flow, draft.step, {PENDING: pending})
        await ctx.answer()
        await ctx.reply(
            ctx.t("common.discard_question", what_html=what),
            keyboard([button(ctx.t("common.discard_button"), cb(DISCARD_NS, "go")),
                      button(ctx.t("common.continue_button"), cb(DISCARD_NS, "keep"))]),
        )
        return True

    async def abandon(self, ctx: Ctx, *, ask: bool = True) -> bool:
        """End the user's current flow (running its clean-up); ``True`` if there was one.

        With something entered in it (the flow's ``describe``), the person is first asked
        whether to discard it (``ask_discard``) and the handler stops (``Answered``); /cancel
        says so itself (``ask=False``)."""
        if ask and await self.ask_discard(ctx):
            raise Answered
        draft = await ctx.load_draft()
        if draft is None:
            return False
        flow = self.flows.get(draft.flow)
        if flow is not None and flow.on_cancel is not None:
            await flow.on_cancel(ctx)
        await ctx.end_flow()
        return True

    async def changed(self, ctx: Ctx) -> None:
        """Shop data changed (a role was deleted): the user's current flow checks its draft."""
        draft = await ctx.load_draft()
        flow = self.flows.get(draft.flow) if draft is not None else None
        if flow is not None and flow.on_change is not None:
            await flow.on_change(ctx)

    async def open(self, ctx: Ctx, key: str) -> None:
        """Run a command by its menu key or name (the owner menu; "the list after Confirm")."""
        command = self._menu.get(key) or self._commands[key]
        await command.run(ctx)

    async def show_home(self, ctx: Ctx) -> None:
        """What /start shows: the first flow's home view that applies, or how to begin (a flow
        waiting is offered as "▶️ Continue: …")."""
        ctx.resume_hint = await self.describe(ctx)
        for flow in self.flows.values():
            if flow.home is not None and await flow.home(ctx):
                return
        await ctx.reply(ctx.t("home.nobody"))

    async def deep_link(self, ctx: Ctx, payload: str) -> bool:
        """``/start <payload>``: the first flow that claims it; ``False`` if none did."""
        for flow in self.flows.values():
            if flow.deep_link is not None and await flow.deep_link(ctx, payload):
                return True
        return False

    # --- the PTB handlers ----------------------------------------------------------------
    def handlers(self) -> list[BaseHandler]:  # type: ignore[type-arg]
        """Every handler in the order they must be tried: commands, then the catch-alls."""
        private = filters.ChatType.PRIVATE
        return [
            *(CommandHandler(c.name, entry(c.run), filters.UpdateType.MESSAGE)
              for c in self._commands.values()),
            CallbackQueryHandler(entry(self._on_button)),
            PTBMessageHandler(filters.UpdateType.EDITED_MESSAGE & private, entry(self._on_edited)),
            PTBMessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND & private,
                              entry(self._on_unknown_command)),
            PTBMessageHandler(
                filters.UpdateType.MESSAGE & ~filters.COMMAND & ~filters.StatusUpdate.ALL & private,
                entry(self._on_message),
            ),
        ]

    async def _on_message(self, ctx: Ctx) -> None:
        """Route a text, contact or anything else by the step the user is at."""
        message = ctx.update.effective_message
        assert message is not None
        found = await self.current_step(ctx)
        if found is None and ctx.user.phone is None and CONTACT_FALLBACK in self._steps:
            # someone who has not linked a phone is at the share step, whatever they send
            await ctx.start_flow(*CONTACT_FALLBACK)
            found = self._steps[CONTACT_FALLBACK]
        if message.contact is not None:
            if found is None:
                fallback = self._steps.get(CONTACT_FALLBACK)
                if fallback is None or fallback.on_contact is None:
                    await ctx.reply(ctx.t("common.not_in_flow"))
                    return
                await fallback.on_contact(ctx, message.contact)
            elif found.on_contact is not None:
                await found.on_contact(ctx, message.contact)
            elif found.on_message is not None:
                await found.on_message(ctx, message)
            else:
                await ctx.reply(ctx.t("common.contact_not_expected"))
                await found.ask(ctx)
            return
        if found is None:
            await ctx.reply(ctx.t("common.not_in_flow"))
            return
        if message.text is not None and found.on_text is not None:
            await found.on_text(ctx, message.text)
            return
        if found.on_message is not None:
            await found.on_message(ctx, message)
            return
        await ctx.reply(ctx.t("common.need_text" if found.on_text else "common.use_buttons"))
        await found.ask(ctx)

    async def _on_button(self, ctx: Ctx) -> None:
        """Route a button press by its namespace; undeclared or malformed data is stale."""
        query = ctx.update.callback_query
        assert query is not None
        parsed = self.parse(query.data or "")
        if parsed is None:
            await ctx.stale()
            return
        namespace, action, args = parsed
        await self._buttons[namespace][1](ctx, action, args)

    async def _on_menu_button(self, ctx: Ctx, action: str, _args: list[str]) -> None:
        """A button of the owner menu: the same as typing its command."""
        await ctx.answer()
        await self.abandon(ctx)
        await self.open(ctx, action)

    async def _on_discard_button(self, ctx: Ctx, action: str, _args: list[str]) -> None:
        """The answer to ``ask_discard`` (or /start's Continue): go back to the flow as it was,
        or leave it and do what was pressed or typed."""
        draft = await ctx.load_draft()
        if draft is None:
            await ctx.stale()
            return
        pending = draft.data.get(PENDING)
        if action == "keep":
            await ctx.answer()
            if pending is not None:
                await ctx.goto(draft.flow, draft.step, {PENDING: None})
            await self.reprompt(ctx)
            return
        if not isinstance(pending, dict):
            await ctx.stale()
            return
        ctx.discard_confirmed = True
        await ctx.answer()
        await ctx.show(ctx.t("common.discarded"))
        command = self._commands.get(str(pending.get("cmd")))
        if command is not None:  # it leaves the flow itself (the question is answered)
            ctx.context.args = [str(a) for a in pending.get("args") or []]
            await command.run(ctx)
            return
        parsed = self.parse(str(pending.get("button") or ""))
        if parsed is None:
            await self.abandon(ctx)
            return
        namespace, action, args = parsed
        await self._buttons[namespace][1](ctx, action, args)

    async def _on_edited(self, ctx: Ctx) -> None:
        """Edited messages are not re-read: say so and ask again."""
        await ctx.reply(ctx.t("common.edit_ignored"))
        await self.reprompt(ctx)

    async def _on_unknown_command(self, ctx: Ctx) -> None:
        """A command the bot does not have."""
        await ctx.reply(ctx.t("common.unknown_command"))


def _pending_of(ctx: Ctx) -> dict[str, Any] | None:
    """What the person pressed or typed, to do it after "Discard": a command (with its
    arguments) or a button's data; ``None`` for anything else."""
    query = ctx.update.callback_query
    if query is not None:
        return {"button": query.data} if query.data else None
    message = ctx.update.effective_message
    text = message.text if message is not None else None
    if not text or not text.startswith("/"):
        return None
    name = text.split()[0][1:].split("@")[0]
    return {"cmd": name, "args": list(ctx.context.args or [])}
