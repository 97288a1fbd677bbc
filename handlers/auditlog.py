"""/log: the shop's audit events, newest first, paged, in the owner's language; filtered by
account or role, codes shown or hidden, the per-chat customer-service events (a chat record:
opened, assigned, transferred, too slow, ended, rated) hidden unless asked for, each code's
events folded into its "new account" entry, and 📤 Export (the events as a CSV document in the
chat, ``models.export``).

Each event is told from its detail dict through a text per action (``log.actions.<action>``
with the dot as ``_``); only the placeholders a text names are filled in, so nothing else of
the detail is ever shown (codes are never recorded; phones are masked, and masked again if a
raw number ever slipped in). An action without a text gets a generic line.

Folding: the events of the codes sent to a phone are shown as one line inside the entry of
the sub-account that phone became ("🔑 3 codes, 1 declined"); codes that led to no account are
one line per phone ("Codes for +86 137****0022: …; no sub-account added"), where its last one
happened. With codes hidden neither is shown.

A page costs what it shows: the database counts the view's entries and reads the page's events
(``models.audit``: the filter in SQL, the shop's index (shop_id, id) backwards), then the code
events of the page's phones, which ``fold_page`` folds into its entries. Nothing reads the
whole log but the export, and that a batch at a time.

Callback data, namespace ``lg``: ``lg:pg:<page>`` (the default view) · ``lg:v:<page>:<acc>:
<role>:<shown>`` a page of a view (0: no account / role filter; ``shown`` the sum of 1: codes
shown, 2: chats shown — so the 0 / 1 of buttons sent before chats could be shown still parse,
as views with the chats hidden) · ``lg:fa|fr:<acc>:<role>:<shown>`` choose the account / role ·
``lg:ex:<acc>:<role>:<shown>`` export. The filter is in the buttons: /log keeps no draft.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile

from handlers.context import Ctx
from handlers.flow import Command, Flow
from handlers.i18n import label, module_names, placeholders, plural_key, template
from handlers.keyboards import button, keyboard, pager_row, rows_of
from handlers.router import cb
from handlers.service_common import agent_names
from handlers.telegram_io import with_retry
from handlers.times import shop_zone, when, zone_name
from models import audit
from models.accounts import all_accounts
from models.export import LogCsv, full_phones
from models.paging import paging
from models.phones import mask_phone
from models.privacy import ACTOR_DELETED, SUBJECT_DELETED, personal_keys
from models.roles import list_roles
from models.tables import AuditEvent, Shop, SubAccount, User

NS = "lg"
PAGE_SIZE = 10
#: events read (and held) at a time by an export
EXPORT_BATCH = 1000
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
    if agent_id is None and event.object_type == "agent":  # the object id is stored as text
        agent_id = int(event.object_id) if str(event.object_id).isdigit() else event.object_id
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
            period=label(ctx.locale, plural_key("review.days", days), n=days))
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
        return ctx.t("common.im_on" if value else "common.im_off")
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


#: the bits of a view's ``shown`` argument: code events, per-chat customer-service events
SHOW_CODES, SHOW_CHATS = 1, 2


@dataclass(frozen=True)
class LogView:
    """What the log shows: one account's events, or one role's (its own, and its accounts'),
    or all of them; with the codes' lines or without; with the per-chat customer-service
    events (a chat record) or — the default — without."""

    account_id: int = 0
    role_id: int = 0
    codes: bool = True
    chats: bool = False

    @classmethod
    def of(cls, account_id: int, role_id: int, shown: int) -> LogView:
        """The view of callback arguments (``shown``: the ``SHOW_*`` bits)."""
        return cls(account_id, role_id, bool(shown & SHOW_CODES), bool(shown & SHOW_CHATS))

    def args(self) -> tuple[int, int, int]:
        """The view as callback arguments."""
        return self.account_id, self.role_id, self.shown

    @property
    def shown(self) -> int:
        return (SHOW_CODES if self.codes else 0) | (SHOW_CHATS if self.chats else 0)

    @property
    def active(self) -> bool:
        return bool(self.account_id or self.role_id) or not self.codes or self.chats


@dataclass
class Entry:
    """One entry of the log: an event, with the code events folded into it (``codes``), or a
    line of codes that led to no account (``attempt``: ``event`` is its last code event)."""

    event: AuditEvent
    codes: list[AuditEvent] = field(default_factory=list)
    attempt: bool = False


def _phone(event: AuditEvent) -> str:
    """The event's phone as the log shows it (masked), "" if none."""
    phone = audit.recorded_phone(event)
    return safe_phone(phone) if phone else ""


def fold_page(page: list[AuditEvent], history: list[AuditEvent]) -> list[Entry]:
    """The entries of a page of the log (``page``: its events, newest first, as
    ``audit.entry_events`` reads them): each "new account" entry with the code events of its
    phone since that phone's previous account, each attempt (a phone's last code event) with
    the code events since its last account. ``history``: the code events and "new account"
    events of the page's phones, oldest first (``audit.code_history``; empty with codes
    hidden). Phones are compared as recorded, as the database groups them."""
    pending: dict[str, list[AuditEvent]] = {}
    folded: dict[int, list[AuditEvent]] = {}
    for event in history:
        phone = audit.recorded_phone(event)
        if audit.is_folded(event):
            pending.setdefault(phone, []).append(event)
        elif event.action == audit.ACCOUNT_CREATED and phone:
            folded[event.id or 0] = pending.pop(phone, [])
    attempts = {codes[-1].id or 0: codes for codes in pending.values()}
    return [Entry(event, attempts.get(event.id or 0, [event]), attempt=True)
            if audit.is_folded(event) else Entry(event, folded.get(event.id or 0, []))
            for event in page]


def codes_summary(ctx: Ctx, codes: list[AuditEvent]) -> str:
    """"3 codes, 1 declined, 2 wrong entries" (plain text)."""
    issued = len({e.object_id for e in codes})
    parts = [ctx.label(plural_key("log.codes", issued), n=issued)]
    for outcome in ("declined", "expired", "cancelled", "locked", "undeliverable"):
        n = sum(1 for e in codes if e.action == f"code.{outcome}")
        if n:
            parts.append(ctx.label(f"log.codes_{outcome}", n=n))
    wrong = sum(1 for e in codes if e.action == "code.failed")
    if wrong:
        parts.append(ctx.label(plural_key("log.codes_failed", wrong), n=wrong))
    return ctx.label("log.codes_sep").join(parts)


async def _filter(
    ctx: Ctx, shop: Shop, view: LogView
) -> tuple[audit.LogFilter, str | None, str | None]:
    """The events of the shop the view takes (as a filter the database applies), and the
    names of the account and the role it is filtered by (``None``: not filtered, or gone)."""
    shop_id = shop.id or 0
    if not (view.account_id or view.role_id):
        return audit.LogFilter(codes=view.codes, chats=view.chats), None, None
    accounts = await all_accounts(ctx.session, shop_id)
    if view.account_id:
        chosen = [a for a, _ in accounts if a.id == view.account_id]
    else:
        chosen = [a for a, _ in accounts if a.role_id == view.role_id]
    # a phone as the log records it (masked), and raw, should one have slipped in
    phones = {form for a in chosen for form in (mask_phone(a.phone), a.phone,
                                                  a.phone.lstrip("+"))}
    role_name = next((r.name for r, _ in await list_roles(ctx.session, shop_id)
                      if r.id == view.role_id), None) if view.role_id else None
    account_name = chosen[0].nickname if view.account_id and chosen else None
    where = audit.LogFilter(
        codes=view.codes, chats=view.chats, accounts=frozenset(a.id or 0 for a in chosen),
        phones=frozenset(phones), role_id=view.role_id)
    return where, account_name, role_name


def _filter_line(ctx: Ctx, view: LogView, account: str | None, role: str | None) -> str:
    parts = []
    if view.account_id:
        parts.append(ctx.t("log.filter_account", name=account or MISSING))
    if view.role_id:
        parts.append(ctx.t("log.filter_role", name=role or MISSING))
    if not view.codes:
        parts.append(ctx.t("log.filter_no_codes"))
    if view.chats:
        parts.append(ctx.t("log.filter_chats"))
    return ctx.t("log.filter_line", what=ctx.t("log.filter_sep").join(parts))


def _entry_text(ctx: Ctx, shop: Shop, entry: Entry, users: dict[int, User],
                agents: Mapping[int, str], tz: tzinfo) -> str:
    event = entry.event
    if entry.attempt:
        what = ctx.t("log.codes_attempt", phone=_phone(event),
                     summary=codes_summary(ctx, entry.codes))
    else:
        what = describe(ctx, event, agents)
        if entry.codes:
            what += "\n" + ctx.t("log.codes_folded", summary=codes_summary(ctx, entry.codes))
    return ctx.t("log.event", time=when(ctx.locale, event.created_at, now=ctx.now(), tz=tz),
                 who=who(ctx, shop, event, users), what_html=what)


async def log_screen(
    ctx: Ctx, shop: Shop, page: int, view: LogView | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """One page of the shop's log as ``view`` shows it (clamped to the pages there are)."""
    view = view or LogView()
    where, account, role = await _filter(ctx, shop, view)
    session, shop_id = ctx.session, shop.id or 0
    attempts = await audit.attempts(session, shop_id, where)
    total = await audit.count_entries(session, shop_id, where, attempts)
    page, pages = paging(page, total, PAGE_SIZE)
    shown = await audit.entry_events(session, shop_id, where, attempts,
                                     offset=page * PAGE_SIZE, limit=PAGE_SIZE) if total else []
    phones = {audit.recorded_phone(e) for e in shown
              if audit.is_folded(e) or e.action == audit.ACCOUNT_CREATED} - {""}
    history = await audit.code_history(session, shop_id, phones, max(
        e.id or 0 for e in shown)) if view.codes and phones else []
    chunk = fold_page(shown, history)
    users = await audit.actors(ctx.session, shown)
    agents = await agent_names(ctx, shop) if any(
        e.action.startswith("service.") for e in shown) else {}
    default = ctx.deps.default_time_zone
    tz = shop_zone(shop, default)
    lines = [ctx.t("log.title", shop=shop.name, count=total, zone=zone_name(shop, default))]
    if view.active:
        lines.append(_filter_line(ctx, view, account, role))
    if pages > 1:
        lines.append(ctx.t("log.page", page=page + 1, pages=pages))
    if not chunk:
        lines += ["", ctx.t("log.filter_empty" if view.active else "log.empty")]
    for entry in chunk:
        lines += ["", _entry_text(ctx, shop, entry, users, agents, tz)]
    args = view.args()
    nav = pager_row(page, pages, previous=ctx.t("log.newer"), following=ctx.t("log.older"),
                    data=lambda to: cb(NS, "v", to, *args))
    codes = replace(view, codes=not view.codes)
    chats = replace(view, chats=not view.chats)
    rows: list[list[InlineKeyboardButton]] = [nav, [
        button(ctx.label("log.filter_account_button"), cb(NS, "fa", *args)),
        button(ctx.label("log.filter_role_button"), cb(NS, "fr", *args)),
    ], [
        button(ctx.label("log.codes_hide" if view.codes else "log.codes_show"),
               cb(NS, "v", 0, *codes.args())),
        button(ctx.label("log.chats_hide" if view.chats else "log.chats_show"),
               cb(NS, "v", 0, *chats.args())),
    ]]
    if view.active:
        rows.append([button(ctx.label("log.filter_clear"), cb(NS, "v", 0, *LogView().args()))])
    if total:
        rows.append([button(ctx.label("log.export_button"), cb(NS, "ex", *args))])
    return "\n".join(lines), keyboard(*rows)


async def _choose(ctx: Ctx, shop: Shop, view: LogView, what: str) -> None:
    """The accounts (``fa``) or roles (``fr``) to filter the log by, and "all"."""
    shop_id, shown = shop.id or 0, view.shown
    if what == "fa":
        options = [(a.nickname, cb(NS, "v", 0, a.id, 0, shown), a.id == view.account_id)
                   for a, _ in await all_accounts(ctx.session, shop_id)]
        prompt, every = "log.choose_account", "log.every_account"
    else:
        options = [(r.name, cb(NS, "v", 0, 0, r.id, shown), r.id == view.role_id)
                   for r, _ in await list_roles(ctx.session, shop_id)]
        prompt, every = "log.choose_role", "log.every_role"
    buttons = [button(("✓ " if on else "") + name, data) for name, data, on in options]
    await ctx.answer()
    await ctx.show(ctx.t(prompt), keyboard(
        *rows_of(buttons), [button(ctx.label(every), cb(NS, "v", 0, 0, 0, shown))]))


def _plain(text: str) -> str:
    """A text of the catalogue as plain text (tags dropped, entities read)."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _export_row(ctx: Ctx, shop: Shop, event: AuditEvent, users: dict[int, User],
                agents: Mapping[int, str]) -> dict[str, Any]:
    detail = event.detail if isinstance(event.detail, dict) else {}
    return {
        "id": event.id, "time": event.created_at, "who": _plain(who(ctx, shop, event, users)),
        "action": event.action,
        "object": f"{event.object_type}:{event.object_id}" if event.object_id
        else event.object_type,
        "phone": _phone(event), "nickname": detail.get("nickname"),
        "role": detail.get("role") or (detail.get("name") if event.object_type == "role"
                                       else None),
        "what": _plain(describe(ctx, event, agents)),
    }


async def export(ctx: Ctx, shop: Shop, view: LogView) -> None:
    """📤 Export: the events the view shows, one row each (newest first), as a CSV document
    sent in the chat (``models.export``'s writer; phones as the accounts export has them).
    The events are read and written a batch at a time."""
    where, account, role = await _filter(ctx, shop, view)
    accounts: list[SubAccount] = [a for a, _ in await all_accounts(ctx.session, shop.id or 0)]
    writer = LogCsv(full_phones(accounts))
    agents: dict[int, str] | None = None
    async for batch in audit.filtered_batches(ctx.session, shop.id or 0, where,
                                              size=EXPORT_BATCH):
        users = await audit.actors(ctx.session, batch)
        if agents is None and any(e.action.startswith("service.") for e in batch):
            agents = await agent_names(ctx, shop)
        writer.add(_export_row(ctx, shop, event, users, agents or {}) for event in batch)
    body = writer.text()
    stamp = ctx.now().strftime("%Y%m%d-%H%M")
    caption = ctx.t("log.export_caption", shop=shop.name, count=writer.rows)
    if view.active:
        caption += "\n" + _filter_line(ctx, view, account, role)
    await ctx.answer(ctx.label("log.export_toast"))
    await ctx.commit()
    document = InputFile(("\ufeff" + body).encode("utf-8"),
                         filename=f"activity-log-{shop.id}-{stamp}.csv")
    await with_retry(lambda: ctx.context.bot.send_document(
        ctx.chat_id, document, caption=caption, parse_mode="HTML"))


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


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """The ``lg:`` buttons — only the shop's owner pages through, filters and exports its
    log; a view naming another shop's account or role shows nothing of it."""
    shop = await ctx.shop_or_none()
    if shop is None:
        await ctx.stale()
        return
    values = [int(a) for a in args]
    if action in ("pg", "v"):
        page, rest = values[0], values[1:]
        view = LogView.of(*rest) if rest else LogView()
        await ctx.answer()
        text, markup = await log_screen(ctx, shop, page, view)
        await ctx.show(text, markup)
        return
    view = LogView.of(values[0], values[1], values[2])
    if action == "ex":
        await export(ctx, shop, view)
    else:
        await _choose(ctx, shop, view, action)


FLOW = Flow(
    name="log",
    namespace=NS,
    buttons={"pg": ("int",), "v": ("int", "int", "int", "int"), "fa": ("int", "int", "int"),
             "fr": ("int", "int", "int"), "ex": ("int", "int", "int")},
    on_button=on_button,
    commands=(Command("log", log_command, who="owner", menu_key="log"),),
)
