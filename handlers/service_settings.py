"""/service → settings: routing mode, default cap (接待上限), sticky days, the service-level
times, re-route on breach, idle close, and the offline (离线留言) and working-hours texts in
both languages. Each typed value is checked by ``models.service.settings`` and refused with the
same prompt; nothing is written until it is valid.

Callback data, namespace ``ss``: ``ss:o`` the card · ``ss:mode`` switch the mode · ``ss:rr``
re-route on breach on/off · ``ss:f:<setting>`` type a value · ``ss:clr:<setting>`` clear a text.
"""

from __future__ import annotations

from handlers.card import with_notice
from handlers.context import Ctx
from handlers.flow import Flow, Step
from handlers.keyboards import button, keyboard, rows_of
from handlers.service_common import (
    SS,
    back_button,
    button_shop,
    home_button,
    leave_step,
    step_data,
)
from handlers.service_times import seconds
from models.errors import DomainError
from models.service.policy import (
    CAP_RANGE,
    HOURS_TEXT_MAX,
    IDLE_HOURS_RANGE,
    OFFLINE_TEXT_MAX,
    SECONDS_RANGE,
    STICKY_DAYS_RANGE,
)
from models.service.settings import get_settings, update_settings
from models.service.tables import RoutingMode, ServiceSettings
from models.tables import Shop

FLOW_NAME = "service_settings"
#: the settings typed as whole numbers, with their bounds
NUMBERS = {
    "default_cap": CAP_RANGE,
    "sticky_days": STICKY_DAYS_RANGE,
    "first_response_seconds": SECONDS_RANGE,
    "reply_seconds": SECONDS_RANGE,
    "idle_close_hours": IDLE_HOURS_RANGE,
}
#: the settings typed as texts, with their longest length
TEXTS = {
    "offline_text_en": OFFLINE_TEXT_MAX,
    "offline_text_zh": OFFLINE_TEXT_MAX,
    "hours_text_en": HOURS_TEXT_MAX,
    "hours_text_zh": HOURS_TEXT_MAX,
}
#: what a typed value may be refused for (the same prompt again)
REFUSALS = ("service_cap_invalid", "service_sticky_days_invalid", "service_seconds_invalid",
            "service_idle_hours_invalid", "service_text_too_long", "nothing_changed")


#: the settings typed in seconds / hours (shown as "2 minutes", "24 hours")
SECONDS = ("first_response_seconds", "reply_seconds")
HOURS = ("idle_close_hours",)


def shown(ctx: Ctx, settings: ServiceSettings, name: str) -> str:
    """A setting's value as the card shows it (plain text; the card's text escapes it): times
    in minutes and hours, not raw seconds; the sticky days as a sentence."""
    value = getattr(settings, name)
    if name in TEXTS:
        return str(value) if value else ctx.label("service_admin.not_set")
    if name in SECONDS:
        return seconds(ctx, int(value))
    if name in HOURS:
        return seconds(ctx, int(value) * 3600)
    if name == "sticky_days":
        return (ctx.label("service_admin.sticky_on", days=value) if value
                else ctx.label("service_admin.sticky_off"))
    return str(value)


async def show_settings(ctx: Ctx, shop: Shop, *, notice: str = "") -> None:
    settings = await get_settings(ctx.session, ctx.deps.service_policy, shop_id=shop.id or 0)
    text = ctx.t(
        "service_admin.settings_card", shop=shop.name,
        mode=ctx.label(f"service_admin.mode_{settings.mode}"),
        reroute=ctx.label("common.on" if settings.reroute_on_breach else "common.off"),
        **{name: shown(ctx, settings, name) for name in (*NUMBERS, *TEXTS)},
    )
    fields = [button(ctx.label(f"service_admin.field_{name}"), f"{SS}:f:{name}")
              for name in (*NUMBERS, *TEXTS)]
    other = (RoutingMode.LEAST_BUSY.value if settings.mode == RoutingMode.WEIGHTED.value
             else RoutingMode.WEIGHTED.value)
    await ctx.show(with_notice(notice, text), keyboard(
        [button(ctx.label("service_admin.mode_button", mode=ctx.label(f"service_admin.mode_{other}")),
                f"{SS}:mode")],
        [button(ctx.label("service_admin.reroute_off_button" if settings.reroute_on_breach
                          else "service_admin.reroute_on_button"), f"{SS}:rr")],
        *rows_of(fields),
        [home_button(ctx)],
    ))


async def change(ctx: Ctx, shop: Shop, **changes: object) -> None:
    await update_settings(ctx.session, ctx.deps.service_policy, shop_id=shop.id or 0,
                          actor_id=ctx.user_id, now=ctx.now(), **changes)


# --- the typed step --------------------------------------------------------------------------


async def field_of(ctx: Ctx) -> str:
    data = await step_data(ctx, FLOW_NAME)
    return str(data.get("field", ""))


async def ask_value(ctx: Ctx, *, notice: str = "") -> None:
    shop = await ctx.owned_shop()
    name = await field_of(ctx)
    settings = await get_settings(ctx.session, ctx.deps.service_policy, shop_id=shop.id or 0)
    label = ctx.label(f"service_admin.field_{name}")
    current = shown(ctx, settings, name)
    rows = [[back_button(ctx, f"{SS}:o")]]
    if name in NUMBERS:
        low, high = NUMBERS[name]
        # the prompt says the unit to type in (the card shows minutes, the value is seconds)
        key = ("service_admin.ask_seconds" if name in SECONDS
               else "service_admin.ask_hours" if name in HOURS
               else "service_admin.ask_sticky" if name == "sticky_days"
               else "service_admin.ask_number")
        text = ctx.t(key, field=label, current=current, min=low, max=high)
    else:
        text = ctx.t("service_admin.ask_text", field=label, current=current, max=TEXTS[name])
        rows.insert(0, [button(ctx.label("service_admin.clear_button"), f"{SS}:clr:{name}")])
    await ctx.show(with_notice(notice, text), keyboard(*rows))


def parsed(name: str, text: str) -> object:
    """What the owner typed, as the setting's type (a non-number stays text and is refused
    by the domain with the setting's bounds)."""
    if name in NUMBERS:
        raw = text.strip()
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else raw
    return text


async def on_value(ctx: Ctx, text: str) -> None:
    shop = await ctx.owned_shop()
    name = await field_of(ctx)
    try:
        await change(ctx, shop, **{name: parsed(name, text)})
    except DomainError as exc:
        if exc.key not in REFUSALS:
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        await ask_value(ctx, notice="⚠️ " + ctx.error_text(exc))
        return
    await ctx.end_flow()
    await show_settings(ctx, shop, notice=ctx.t(
        "service_admin.setting_saved", field=ctx.label(f"service_admin.field_{name}")))


# --- buttons ---------------------------------------------------------------------------------


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    shop = await button_shop(ctx)
    if action in ("f", "clr") and args[0] not in NUMBERS and args[0] not in TEXTS:
        await ctx.stale()
        return
    await leave_step(ctx)
    notice = ""
    if action == "f":
        await ctx.answer()
        await ctx.router.abandon(ctx)
        await ctx.start_flow(FLOW_NAME, "value", {"field": args[0]})
        await ask_value(ctx)
        return
    settings = await get_settings(ctx.session, ctx.deps.service_policy, shop_id=shop.id or 0)
    try:
        if action == "mode":
            other = (RoutingMode.LEAST_BUSY.value if settings.mode == RoutingMode.WEIGHTED.value
                     else RoutingMode.WEIGHTED.value)
            await change(ctx, shop, mode=other)
            notice = ctx.t("service_admin.mode_set", mode=ctx.label(f"service_admin.mode_{other}"))
        elif action == "rr":
            await change(ctx, shop, reroute_on_breach=not settings.reroute_on_breach)
            notice = ctx.t("service_admin.setting_saved",
                           field=ctx.label("service_admin.field_reroute"))
        elif action == "clr":
            await change(ctx, shop, **{args[0]: ""})
            notice = ctx.t("service_admin.setting_cleared",
                           field=ctx.label(f"service_admin.field_{args[0]}"))
    except DomainError as exc:
        if exc.key != "nothing_changed":
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
    await ctx.answer()
    await show_settings(ctx, shop, notice=notice)


FLOW = Flow(
    name=FLOW_NAME,
    namespace=SS,
    buttons={"o": (), "mode": (), "rr": (), "f": ("key",), "clr": ("key",)},
    on_button=on_button,
    steps={"value": Step(ask=ask_value, on_text=on_value)},
)
