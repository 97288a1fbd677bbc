"""Home: what a user sees after /start — the owner menu, the holder view, or how to begin.

Other conversation modules plug into it (menu entries, the holder view, the invite opener),
so that it imports none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers.base import Ctx, button, keyboard, rows_of
from handlers.router import BUTTONS, Prompt, abandon, buttons, cb
from models.accounts import membership_of, seats_used

#: menu key → action; shown in MENU_ORDER
MENU: dict[str, Prompt] = {}
MENU_ORDER = ("newaccount", "accounts", "roles", "log")
HOLDER_VIEW: list[Prompt] = []
INVITE_OPENER: list[Callable[[Ctx, str], Awaitable[None]]] = []


def menu_entry(key: str, action: Prompt) -> None:
    """Add a button to the owner menu (its label is ``home.menu_<key>``)."""
    MENU[key] = action


async def show_home(ctx: Ctx) -> None:
    """The owner menu, the holder's view, or how to create a shop."""
    if ctx.user.phone is None:
        await ctx.reply(ctx.t("onboarding.link_first"))
        return
    shop = await ctx.shop_or_none()
    if shop is not None:
        used = await seats_used(ctx.session, shop.id or 0)
        rows = rows_of(
            [button(ctx.t(f"home.menu_{key}"), cb("m", key)) for key in MENU_ORDER if key in MENU]
        )
        await ctx.reply(
            ctx.t("home.owner", shop=shop.name, used=used, cap=shop.max_sub_accounts),
            keyboard(*rows),
        )
        return
    if HOLDER_VIEW and await membership_of(ctx.session, ctx.user_id) is not None:
        await HOLDER_VIEW[0](ctx)
        return
    await ctx.reply(ctx.t("home.nobody"))


async def help_text(ctx: Ctx) -> str:
    """/help: the commands this user can use now."""
    lines = [ctx.t("help.title")]
    if ctx.user.phone is None:
        lines.append(ctx.t("help.start_link"))
    elif await ctx.shop_or_none() is not None:
        lines += [ctx.t("help.start")] + [
            ctx.t(f"help.{name}") for name in ("roles", "newaccount", "accounts", "log")
        ]
    elif await membership_of(ctx.session, ctx.user_id) is not None:
        lines += [ctx.t("help.start"), ctx.t("help.me")]
    else:
        lines += [ctx.t("help.start"), ctx.t("help.newshop")]
    lines += [ctx.t("help.language"), ctx.t("help.forget"), ctx.t("help.cancel"),
              ctx.t("help.help")]
    return "\n".join(lines)


async def open_invite(ctx: Ctx, token: str) -> None:
    """``/start <token>``: the holder opened an invite link."""
    if not INVITE_OPENER:
        await ctx.reply(ctx.t("errors.invite_invalid"))
        return
    await INVITE_OPENER[0](ctx, token)


async def on_menu_button(ctx: Ctx, action: str, _args: list[str]) -> None:
    """A button of the owner menu: the same as typing its command."""
    await ctx.answer()
    await abandon(ctx)
    await MENU[action](ctx)


def register_menu_buttons() -> None:
    """Register the ``m:`` namespace once every module has added its entry."""
    if "m" not in BUTTONS:
        buttons("m", {key: () for key in MENU}, on_menu_button)
