"""/language: choose English or 简体中文 (the texts and the chat's command menu switch); for the
main account of a shop, also the shop's time zone (/timezone), which every time the bot shows
the shop's people follows (``handlers.times``).

Callback data, namespace ``lang``: ``lang:set:<locale>`` · ``lang:tzo`` open the time-zone card
· ``lang:tz:<i>`` choose the i-th common zone. A typed zone name is the draft step
``language.zone``.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton

from handlers.card import with_notice
from handlers.context import Ctx
from handlers.flow import Command, Flow, Step
from handlers.i18n import LOCALES, t
from handlers.keyboards import button, keyboard, rows_of
from handlers.menus import refresh_menu
from handlers.router import cb
from handlers.times import COMMON_ZONES, local_time, shop_zone, zone_name
from models.errors import DomainError
from models.lifecycle.access import set_time_zone
from models.tables import Shop
from models.users import set_locale

NS = "lang"
NAME = "language"


def language_keyboard() -> list[list[InlineKeyboardButton]]:
    """One button per language."""
    return [[button(t(code, "language.name"), cb(NS, "set", code)) for code in LOCALES]]


async def language(ctx: Ctx) -> None:
    """/language: choose English or 简体中文 (an owner also sees the shop's time zone)."""
    rows = language_keyboard()
    shop = await ctx.shop_or_none()
    if shop is not None:
        zone = zone_name(shop, ctx.deps.default_time_zone)
        rows.append([button(ctx.label("timezone.button", zone=zone), cb(NS, "tzo"))])
    await ctx.reply(ctx.t("language.choose"), keyboard(*rows))


def zone_card(
    ctx: Ctx, shop: Shop, notice: str = ""
) -> tuple[str, list[list[InlineKeyboardButton]]]:
    """The time-zone card: the zone now, the common zones as buttons, a name may be typed."""
    default = ctx.deps.default_time_zone
    current = zone_name(shop, default)
    text = ctx.t("timezone.card", shop=shop.name, zone=current,
                 time=local_time(ctx.now(), shop_zone(shop, default)))
    labels = [ctx.label("timezone.default_mark", zone=z) if z == default else z
              for z in COMMON_ZONES]
    rows = rows_of([button(("✅ " if z == current else "") + labels[i], cb(NS, "tz", i))
                    for i, z in enumerate(COMMON_ZONES)])
    return with_notice(notice, text), rows


async def timezone_command(ctx: Ctx) -> None:
    """/timezone: the shop's time zone (the main account only)."""
    shop = await ctx.owned_shop_or_explain("timezone.for_owners")
    if shop is None:
        return
    await ctx.router.abandon(ctx)
    await ctx.start_flow(NAME, "zone")
    await ask_zone(ctx)


async def ask_zone(ctx: Ctx, notice: str = "") -> None:
    """Show the time-zone card (a new message, or the pressed one edited)."""
    shop = await ctx.owned_shop()
    text, rows = zone_card(ctx, shop, notice)
    await ctx.show(text, keyboard(*rows))


async def choose_zone(ctx: Ctx, name: str) -> None:
    """Set the shop's time zone; an unknown name is explained above the same card."""
    shop = await ctx.owned_shop()
    try:
        await set_time_zone(ctx.session, shop_id=shop.id or 0, owner_id=ctx.user_id,
                            time_zone=name, now=ctx.now())
    except DomainError as exc:
        if exc.key == "time_zone_unknown":
            await ctx.answer()
            await ask_zone(ctx, ctx.error_text(exc))
            return
        if exc.key != "nothing_changed":  # the zone it already has: said as done
            raise
    await ctx.session.refresh(shop)
    await ctx.end_flow()
    await ctx.answer()
    zone = zone_name(shop, ctx.deps.default_time_zone)
    await ctx.show(ctx.t("timezone.set", zone=zone,
                         time=local_time(ctx.now(), shop_zone(shop, ctx.deps.default_time_zone))))


async def on_zone_text(ctx: Ctx, text: str) -> None:
    """A typed IANA name, e.g. ``Europe/Paris``."""
    await choose_zone(ctx, " ".join(text.split())[:64])


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """Switch the language (and the chat's command menu), or the shop's time zone."""
    if action == "set":
        await switch_language(ctx, args[0])
        return
    if await ctx.shop_or_none() is None:
        await ctx.stale()
        return
    if action == "tzo":
        await ctx.answer()
        await ctx.router.abandon(ctx)
        await ctx.start_flow(NAME, "zone")
        await ask_zone(ctx)
        return
    index = int(args[0])
    if index >= len(COMMON_ZONES):
        await ctx.stale()
        return
    await choose_zone(ctx, COMMON_ZONES[index])


async def switch_language(ctx: Ctx, code: str) -> None:
    """Switch the user's language and the command menu of their chat."""
    if code not in LOCALES:
        await ctx.stale()
        return
    await set_locale(ctx.session, ctx.user, code)
    ctx.locale = code
    await ctx.answer()
    await ctx.show(ctx.t("language.switched"))
    await refresh_menu(ctx)


FLOW = Flow(
    name=NAME,
    namespace=NS,
    buttons={"set": ("key",), "tzo": (), "tz": ("int",)},
    on_button=on_button,
    steps={"zone": Step(ask=ask_zone, on_text=on_zone_text)},
    commands=(
        Command("language", language, who="everyone"),
        Command("timezone", timezone_command, who="owner"),
    ),
)
