"""/log: the shop's audit events, newest first, paged, in the owner's language.

Each event is told from its detail dict through a text per action (``log.actions.<action>``
with the dot as ``_``); only the placeholders a text names are filled in, so nothing else of
the detail is ever shown (codes are never recorded; phones are masked, and masked again if a
raw number ever slipped in). An action without a text gets a generic line.

Callback data, namespace ``lg``: ``lg:pg:<page>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from telegram import InlineKeyboardMarkup

from handlers.context import Ctx
from handlers.flow import Command, Flow
from handlers.i18n import label, module_names, placeholders, template
from handlers.keyboards import keyboard, pager_row
from handlers.router import cb
from handlers.service_common import agent_names
from models import audit
from models.paging import paging
from models.phones import mask_phone
from models.privacy import ACTOR_DELETED, SUBJECT_DELETED, personal_keys
from models.tables import AuditEvent, Shop, User

NS = "lg"
PAGE_SIZE = 10
_RAW_PHONE = re.compile(r"^\+?\d{7,15}$")
MISSING = "—"


def safe_phone(value: object) -> str:
    """A phone from a detail dict as it may be shown: masked, whatever was recorded."""
    text = str(value)
    if _RAW_PHONE.match(text):
        return mask_phone(text if text.startswith("+") else "+" + text)
    return text


def _module_changes(ctx: Ctx, before: object, after: object) -> str:
    """Describe a change of modules as added and removed names, as plain text (the event's
    text escapes it once, like every other parameter)."""
    old = set(before) if isinstance(before, list) else set()
    new = set(after) if isinstance(after, list) else set()
    loc, policy = ctx.locale, ctx.policy
    sep = label(loc, "accounts.sep")
    parts = []
    if new - old:
        parts.append(label(loc, "log.added", modules=module_names(policy, new - old, loc, sep)))
    if old - new:
        parts.append(label(loc, "log.removed", modules=module_names(policy, old - new, loc, sep)))
    return label(loc, "log.sep").join(parts) if parts else label(loc, "log.unchanged")


#: customer-service actions whose ``before`` / ``after`` are an agent's status
_STATUS_ACTIONS = ("service.status",)
_STATUSES = ("online", "break", "offline")


def _settings_changed(ctx: Ctx, after: object) -> str:
    """The customer-service settings a change touched, by their names on the settings card."""
    names = sorted(after) if isinstance(after, dict) else []
    labels = []
    for name in names:
        key = "reroute" if name == "reroute_on_breach" else name
        labels.append(template(ctx.locale, f"service_admin.field_{key}") or name)
    return label(ctx.locale, "accounts.sep").join(labels) if labels else MISSING


def _service_detail(ctx: Ctx, event: AuditEvent, detail: dict[str, Any],
                    agents: Mapping[int, str]) -> dict[str, Any]:
    """A customer-service event's detail as its text wants it: the agent by name (from the
    detail's ``agent``, or the event's object when the object is the agent), statuses in the
    reader's words, the settings changed by name."""
    shown = dict(detail)
    agent_id = detail.get("agent")
    if agent_id is None and event.object_type == "agent":
        agent_id = event.object_id
    if isinstance(agent_id, int):
        shown["agent"] = agents.get(agent_id) or ctx.t("log.someone", id=agent_id)
    if event.action in _STATUS_ACTIONS:
        for side in ("before", "after"):
            if shown.get(side) in _STATUSES:
                shown[side] = label(ctx.locale, f"log.status_{shown[side]}")
    if event.action == "service.settings":
        shown["settings"] = _settings_changed(ctx, detail.get("after"))
    return shown


_ISO_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")


def _lifecycle_detail(ctx: Ctx, detail: dict[str, Any]) -> dict[str, Any]:
    """An access or review event's detail as its text wants it: the no-response rule and the
    review period in words, a moment as ``2027-03-31 00:00``."""
    shown = dict(detail)
    if shown.get("rule") in ("keep", "suspend"):
        shown["rule"] = label(ctx.locale, f"review.rule_{shown['rule']}")
    days = shown.get("days")
    if isinstance(days, int):
        shown["days"] = label(ctx.locale, "review.period_off") if days <= 0 else label(
            ctx.locale, "review.period_every",
            period=label(ctx.locale, "review.days_one" if days == 1 else "review.days_many",
                         n=days))
    for name in ("until", "before"):
        if isinstance(shown.get(name), str) and _ISO_MINUTE.match(shown[name]):
            shown[name] = shown[name].replace("T", " ")
    return shown


def _param(ctx: Ctx, detail: dict[str, Any], name: str) -> str:
    """One placeholder of an action's text, from the event's detail."""
    if name == "changes":
        return _module_changes(ctx, detail.get("before"), detail.get("after"))
    value = detail.get(name)
    if value is None or value == "":
        return MISSING
    if name == "phone":
        return safe_phone(value)
    if name == "im" and isinstance(value, bool):
        return ctx.t("common.on" if value else "common.off")
    if name == "delivery" and value in ("direct", "invite"):
        return ctx.t(f"log.delivery_{value}")
    if isinstance(value, list):
        return module_names(ctx.policy, [str(v) for v in value], ctx.locale, ctx.t("accounts.sep"))
    return str(value)


def describe(ctx: Ctx, event: AuditEvent, agents: Mapping[int, str] | None = None) -> str:
    """What happened, in the reader's language (HTML); ``agents`` names the shop's
    customer-service agents by id."""
    key = "log.actions." + event.action.replace(".", "_")
    if event.action == "transfer.requested" and isinstance(event.detail, dict) \
            and event.detail.get("old_owner_leaves"):
        key += "_leave"  # the old owner was to leave the shop: no role to name
    text = template(ctx.locale, key) if re.fullmatch(r"[a-z_.]{1,40}", event.action) else None
    if text is None:
        obj = f"{event.object_type} #{event.object_id}" if event.object_id else event.object_type
        return ctx.t("log.unknown", action=event.action, object=obj)
    detail = event.detail if isinstance(event.detail, dict) else {}
    if event.action.startswith("service."):
        detail = _service_detail(ctx, event, detail, agents or {})
    elif event.action.startswith(("review.", "account.access", "account.expired", "shop.")):
        detail = _lifecycle_detail(ctx, detail)
    names = placeholders(text)
    params = {name: _param(ctx, detail, name) for name in names}
    if detail.get(SUBJECT_DELETED):  # a forgotten person: named as such, their phone a dash
        person = "nickname" if "nickname" in names else "phone"
        for name in set(personal_keys(event.action)) & names:
            if detail.get(name) is None:
                params[name] = ctx.t("forget.deleted_user") if name == person else MISSING
    return ctx.t(key, **params)


def who(ctx: Ctx, shop: Shop, event: AuditEvent, users: dict[int, User]) -> str:
    """The actor: "you" (the owner), the holder by name, or "system"."""
    if event.actor_id is None:
        deleted = isinstance(event.detail, dict) and event.detail.get(ACTOR_DELETED)
        return ctx.t("forget.deleted_user" if deleted else "log.system")
    if event.actor_id == shop.owner_id:
        return ctx.t("log.you")
    nickname = event.detail.get("nickname") if isinstance(event.detail, dict) else None
    if isinstance(nickname, str) and nickname:
        return nickname
    user = users.get(event.actor_id)
    if user is not None and user.first_name:
        return user.first_name
    return ctx.t("log.someone", id=event.actor_id)


async def log_screen(ctx: Ctx, shop: Shop, page: int) -> tuple[str, InlineKeyboardMarkup]:
    """One page of the shop's log (clamped to the pages there are)."""
    shop_id = shop.id or 0
    total = await audit.count(ctx.session, shop_id)
    page, pages = paging(page, total, PAGE_SIZE)
    events = await audit.recent(ctx.session, shop_id, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
    users = await audit.actors(ctx.session, events)
    agents = await agent_names(ctx, shop) if any(
        e.action.startswith("service.") for e in events) else {}
    lines = [ctx.t("log.title", shop=shop.name, count=total)]
    if pages > 1:
        lines.append(ctx.t("log.page", page=page + 1, pages=pages))
    if not events:
        lines += ["", ctx.t("log.empty")]
    for event in events:
        lines += ["", ctx.t(
            "log.event", time=event.created_at.strftime("%Y-%m-%d %H:%M"),
            who=who(ctx, shop, event, users), what_html=describe(ctx, event, agents),
        )]
    nav = pager_row(page, pages, previous=ctx.t("log.newer"), following=ctx.t("log.older"),
                    data=lambda to: cb(NS, "pg", to))
    return "\n".join(lines), keyboard(nav)


async def open_log(ctx: Ctx) -> None:
    """The owner menu's "Log" button: the newest events as a new message."""
    shop = await ctx.owned_shop()
    text, markup = await log_screen(ctx, shop, 0)
    await ctx.reply(text, markup)


async def log_command(ctx: Ctx) -> None:
    """/log (and the owner menu's "Log"): the shop's latest audit events."""
    if await ctx.owned_shop_or_explain("log.for_owners") is None:
        return
    await ctx.router.abandon(ctx)
    await open_log(ctx)


async def on_button(ctx: Ctx, _action: str, args: list[str]) -> None:
    """``lg:pg:<page>`` — only the shop's owner pages through its log."""
    shop = await ctx.shop_or_none()
    if shop is None:
        await ctx.stale()
        return
    await ctx.answer()
    text, markup = await log_screen(ctx, shop, int(args[0]))
    await ctx.show(text, markup)


FLOW = Flow(
    name="log",
    namespace=NS,
    buttons={"pg": ("int",)},
    on_button=on_button,
    commands=(Command("log", log_command, who="owner", menu_key="log"),),
)
