"""Routing: named conversation steps kept in the database draft, and callback-data parsing.

Each conversation module registers its steps (``flow.step`` → prompt / text / contact handler)
and its callback namespace. One message handler and one callback handler route every update by
the user's draft and the data's namespace, so a restart loses nothing: the step lives in the DB.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import Contact
from telegram.ext import BaseHandler, CallbackQueryHandler, MessageHandler, filters

from handlers.base import Ctx, entry

TextHandler = Callable[[Ctx, str], Awaitable[None]]
ContactHandler = Callable[[Ctx, Contact], Awaitable[None]]
Prompt = Callable[[Ctx], Awaitable[None]]
ButtonHandler = Callable[[Ctx, str, list[str]], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    """One named state of a conversation."""

    prompt: Prompt
    on_text: TextHandler | None = None
    on_contact: ContactHandler | None = None


STEPS: dict[tuple[str, str], Step] = {}
BUTTONS: dict[str, tuple[dict[str, tuple[str, ...]], ButtonHandler]] = {}
#: where a contact goes when the user is in no conversation (phone linking)
CONTACT_FALLBACK: tuple[str, str] = ("onboard", "phone")

#: the largest value an ``int`` argument may have: the ids in callback data (shop, role,
#: sub-account, code) are 32-bit INTEGER columns (user ids are BIGINT, but no button carries
#: one), and page numbers and flags are small; anything larger is a forged or broken button
INT_MAX = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _valid(kind: str, arg: str) -> bool:
    """Whether ``arg`` is a well-formed argument of ``kind`` (ASCII only, in range)."""
    if kind == "int":
        return _DIGITS.fullmatch(arg) is not None and int(arg) <= INT_MAX
    return _KEY.fullmatch(arg) is not None


def step(
    flow: str,
    name: str,
    *,
    prompt: Prompt,
    on_text: TextHandler | None = None,
    on_contact: ContactHandler | None = None,
) -> None:
    """Register the state ``flow.name``."""
    STEPS[(flow, name)] = Step(prompt, on_text, on_contact)


def buttons(namespace: str, actions: dict[str, tuple[str, ...]], handler: ButtonHandler) -> None:
    """Register a callback namespace: ``ns:action[:arg…]`` with typed args (``int``/``key``)."""
    if ":" in namespace or namespace in BUTTONS:
        raise ValueError(f"bad or duplicate namespace {namespace!r}")
    BUTTONS[namespace] = (actions, handler)


def cb(namespace: str, action: str, *args: object) -> str:
    """Build callback data, checking it against the registered shape and the 64-byte limit."""
    data = ":".join([namespace, action, *(str(a) for a in args)])
    if len(data.encode()) > 64:
        raise ValueError(f"callback data too long: {data!r}")
    return data


def parse(data: str) -> tuple[str, str, list[str]] | None:
    """Strictly parse callback data; ``None`` for anything not registered or malformed."""
    if not data or len(data.encode()) > 64:
        return None
    parts = data.split(":")
    if len(parts) < 2 or parts[0] not in BUTTONS:
        return None
    namespace, action, args = parts[0], parts[1], parts[2:]
    actions, _ = BUTTONS[namespace]
    shape = actions.get(action)
    if shape is None or len(shape) != len(args):
        return None
    if not all(_valid(kind, arg) for kind, arg in zip(shape, args, strict=True)):
        return None
    return namespace, action, args


async def current_step(ctx: Ctx) -> Step | None:
    """The registered step the user's draft is at, if any."""
    draft = await ctx.load_draft()
    return STEPS.get((draft.flow, draft.step)) if draft else None


async def reprompt(ctx: Ctx) -> bool:
    """Ask again for what the current step expects; ``False`` if the user is in no flow."""
    found = await current_step(ctx)
    if found is None:
        return False
    await found.prompt(ctx)
    return True


@entry
async def on_message(ctx: Ctx) -> None:
    """Route a text, contact or anything else by the step the user is at."""
    message = ctx.update.effective_message
    assert message is not None
    found = await current_step(ctx)
    if message.contact is not None:
        handler = (found.on_contact if found else None) or STEPS[CONTACT_FALLBACK].on_contact
        if found is not None and found.on_contact is None:
            await ctx.reply(ctx.t("common.contact_not_expected"))
            await found.prompt(ctx)
            return
        assert handler is not None
        await handler(ctx, message.contact)
        return
    if found is None:
        await ctx.reply(ctx.t("common.not_in_flow"))
        return
    if message.text is not None and found.on_text is not None:
        await found.on_text(ctx, message.text)
        return
    await ctx.reply(ctx.t("common.need_text" if found.on_text else "common.use_buttons"))
    await found.prompt(ctx)


@entry
async def on_button(ctx: Ctx) -> None:
    """Route a button press by its namespace; unknown or malformed data is stale."""
    query = ctx.update.callback_query
    assert query is not None
    parsed = parse(query.data or "")
    if parsed is None:
        await ctx.stale()
        return
    namespace, action, args = parsed
    await BUTTONS[namespace][1](ctx, action, args)


@entry
async def on_edited(ctx: Ctx) -> None:
    """Edited messages are not re-read: say so and ask again."""
    await ctx.reply(ctx.t("common.edit_ignored"))
    await reprompt(ctx)


@entry
async def on_unknown_command(ctx: Ctx) -> None:
    """A command the bot does not have."""
    await ctx.reply(ctx.t("common.unknown_command"))


def routing_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The catch-all handlers (added after every command handler)."""
    private = filters.ChatType.PRIVATE
    return [
        CallbackQueryHandler(on_button),
        MessageHandler(filters.UpdateType.EDITED_MESSAGE & private, on_edited),
        MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND & private, on_unknown_command),
        MessageHandler(
            filters.UpdateType.MESSAGE & ~filters.COMMAND & ~filters.StatusUpdate.ALL & private,
            on_message,
        ),
    ]


ReturnHandler = Callable[[Ctx, "int | None", dict[str, object]], Awaitable[None]]
#: parent flow → where a nested role creation returns: (ctx, new role id or None, parent data)
RETURNS: dict[str, ReturnHandler] = {}

#: what a flow must undo when it is cancelled or replaced (e.g. a pending code dies)
CANCEL_HOOKS: dict[str, Prompt] = {}


def on_cancel(flow: str, hook: Prompt) -> None:
    """Register the clean-up to run when ``flow`` is cancelled."""
    CANCEL_HOOKS[flow] = hook


async def abandon(ctx: Ctx) -> bool:
    """End the user's current flow (running its clean-up); ``True`` if there was one."""
    draft = await ctx.load_draft()
    if draft is None:
        return False
    hook = CANCEL_HOOKS.get(draft.flow)
    if hook is not None:
        await hook(ctx)
    await ctx.end_flow()
    return True
