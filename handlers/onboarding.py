"""Onboarding: /start (phone linking, invite links), /newshop, /help, /language, /cancel."""

from __future__ import annotations

import contextlib

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    Contact,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CommandHandler, filters

from handlers import home
from handlers.base import Ctx, button, entry, keyboard
from handlers.i18n import LOCALES, t
from handlers.router import abandon, buttons, cb, step
from models.errors import DomainError
from models.phones import normalize_contact_phone
from models.shops import SHOP_NAME_MAX, check_can_create_shop, create_shop
from models.users import link_phone, set_locale

FLOW_ONBOARD = "onboard"
FLOW_SHOP = "newshop"

#: the bot's command menu, per locale (registered with setMyCommands at start-up)
COMMANDS = ("start", "newshop", "roles", "newaccount", "accounts", "me", "log", "language",
            "forget", "help", "cancel")


def bot_commands(locale: str) -> list[BotCommand]:
    """The command menu in ``locale``."""
    return [BotCommand(name, t(locale, f"commands.{name}")) for name in COMMANDS]


# --- phone linking ----------------------------------------------------------------------------


def contact_keyboard(ctx: Ctx) -> ReplyKeyboardMarkup:
    """The reply keyboard with the request-contact button."""
    return ReplyKeyboardMarkup(
        [[KeyboardButton(ctx.t("onboarding.share_button"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder=ctx.t("onboarding.share_placeholder"),
    )


async def ask_phone(ctx: Ctx) -> None:
    """Ask the user to share their own phone with the contact button."""
    await ctx.reply(ctx.t("onboarding.ask_phone"), contact_keyboard(ctx))


async def typed_instead_of_contact(ctx: Ctx, _text: str) -> None:
    """A typed number cannot prove ownership: ask for the button again."""
    await ctx.reply(ctx.t("onboarding.use_contact_button"), contact_keyboard(ctx))


async def accept_contact(ctx: Ctx, contact: Contact) -> str | None:
    """Check the shared contact is the sender's own and link it; the phone or ``None``."""
    if contact.user_id != ctx.user_id:
        await ctx.reply(ctx.t("onboarding.not_own_contact"), contact_keyboard(ctx))
        return None
    try:
        phone = normalize_contact_phone(contact.phone_number, ctx.policy.default_region)
        await link_phone(ctx.session, ctx.user, phone)
    except DomainError as exc:
        if exc.key == "phone_already_linked":
            await ctx.reply(ctx.t("onboarding.already_linked"), ReplyKeyboardRemove())
            return ctx.user.phone
        await ctx.reply(ctx.error_text(exc), contact_keyboard(ctx))
        return None
    return phone


async def on_own_contact(ctx: Ctx, contact: Contact) -> None:
    """Link the shared phone, then show what the user can do."""
    was_linked = ctx.user.phone is not None
    phone = await accept_contact(ctx, contact)
    if phone is None:
        return
    draft = await ctx.load_draft()
    if draft is not None and draft.flow == FLOW_ONBOARD:
        await ctx.end_flow()
    if not was_linked:
        await ctx.reply(ctx.t("onboarding.linked"), ReplyKeyboardRemove())
    await home.show_home(ctx)


step(FLOW_ONBOARD, "phone", prompt=ask_phone, on_text=typed_instead_of_contact,
     on_contact=on_own_contact)


# --- /start -----------------------------------------------------------------------------------


@entry
async def start(ctx: Ctx) -> None:
    """/start: link the phone if needed, open an invite link, or show the home menu."""
    args = ctx.context.args or []
    if args:
        await abandon(ctx)
        await home.open_invite(ctx, args[0])
        return
    if ctx.user.phone is None:
        await abandon(ctx)
        await ctx.start_flow(FLOW_ONBOARD, "phone")
        await ctx.reply(ctx.t("onboarding.welcome", name=ctx.user.first_name or "👋"))
        await ask_phone(ctx)
        return
    await home.show_home(ctx)


# --- /newshop ---------------------------------------------------------------------------------


async def ask_shop_name(ctx: Ctx) -> None:
    """Ask for the new shop's name."""
    await ctx.reply(ctx.t("newshop.ask_name", max=SHOP_NAME_MAX), ReplyKeyboardRemove())


async def on_shop_name(ctx: Ctx, text: str) -> None:
    """Create the shop with this name; a bad name is explained and asked again."""
    try:
        shop = await create_shop(
            ctx.session, ctx.user, text, max_sub_accounts=ctx.policy.max_sub_accounts,
            now=ctx.now(),
        )
    except DomainError as exc:
        if exc.key in ("shop_name_empty", "shop_name_too_long"):
            await ctx.reply(ctx.error_text(exc))
            await ask_shop_name(ctx)
            return
        await ctx.end_flow()
        raise
    ctx.adopt_shop(shop)
    await ctx.end_flow()
    await ctx.reply(ctx.t("newshop.created", shop=shop.name))
    await home.show_home(ctx)


step(FLOW_SHOP, "name", prompt=ask_shop_name, on_text=on_shop_name)


@entry
async def newshop(ctx: Ctx) -> None:
    """/newshop: become the main account of a new shop."""
    await abandon(ctx)
    if ctx.user.phone is None:
        await ctx.start_flow(FLOW_ONBOARD, "phone")
        await ctx.reply(ctx.t("onboarding.link_first"))
        await ask_phone(ctx)
        return
    await check_can_create_shop(ctx.session, ctx.user)
    await ctx.start_flow(FLOW_SHOP, "name")
    await ask_shop_name(ctx)


# --- /help, /cancel, /language ----------------------------------------------------------------


@entry
async def help_command(ctx: Ctx) -> None:
    """/help: the commands this user can use now."""
    await ctx.reply(await home.help_text(ctx))


@entry
async def cancel(ctx: Ctx) -> None:
    """/cancel: leave whatever flow the user is in, writing nothing."""
    if await abandon(ctx):
        await ctx.reply(ctx.t("common.cancelled"), ReplyKeyboardRemove())
    else:
        await ctx.reply(ctx.t("common.nothing_to_cancel"), ReplyKeyboardRemove())


def language_keyboard() -> list[list]:  # type: ignore[type-arg]
    """One button per language."""
    return [[button(t(code, "language.name"), cb("lang", "set", code)) for code in LOCALES]]


@entry
async def language(ctx: Ctx) -> None:
    """/language: choose English or 简体中文."""
    await ctx.reply(ctx.t("language.choose"), keyboard(*language_keyboard()))


async def on_language_button(ctx: Ctx, action: str, args: list[str]) -> None:
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
            bot_commands(code), scope=BotCommandScopeChat(ctx.chat_id)
        )


buttons("lang", {"set": ("key",)}, on_language_button)


def command_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """This module's commands."""
    return [
        CommandHandler("start", start, filters.UpdateType.MESSAGE),
        CommandHandler("newshop", newshop, filters.UpdateType.MESSAGE),
        CommandHandler("help", help_command, filters.UpdateType.MESSAGE),
        CommandHandler("cancel", cancel, filters.UpdateType.MESSAGE),
        CommandHandler("language", language, filters.UpdateType.MESSAGE),
    ]
