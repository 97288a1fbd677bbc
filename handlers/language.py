"""/language: choose English or 简体中文 (the texts and the chat's command menu switch).

Callback data, namespace ``lang``: ``lang:set:<locale>``.
"""

from __future__ import annotations

import contextlib

from telegram import BotCommandScopeChat, InlineKeyboardButton
from telegram.error import TelegramError

from handlers.context import Ctx
from handlers.flow import Command, Flow
from handlers.i18n import LOCALES, t
from handlers.keyboards import button, keyboard
from handlers.router import cb
from models.users import set_locale

NS = "lang"


def language_keyboard() -> list[list[InlineKeyboardButton]]:
    """One button per language."""
    return [[button(t(code, "language.name"), cb(NS, "set", code)) for code in LOCALES]]


async def language(ctx: Ctx) -> None:
    """/language: choose English or 简体中文."""
    await ctx.reply(ctx.t("language.choose"), keyboard(*language_keyboard()))


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """Switch the user's language and the command menu of their chat."""
    code = args[0]
    if code not in LOCALES:
        await ctx.stale()
        return
    await set_locale(ctx.session, ctx.user, code)
    ctx.locale = code
    await ctx.answer()
    await ctx.show(ctx.t("language.switched"))
    with contextlib.suppress(TelegramError):  # the menu is a convenience; the switch is done
        await ctx.context.bot.set_my_commands(
            ctx.router.bot_commands(code), scope=BotCommandScopeChat(ctx.chat_id)
        )


FLOW = Flow(
    name="language",
    namespace=NS,
    buttons={"set": ("key",)},
    on_button=on_button,
    commands=(Command("language", language, who="everyone"),),
)
