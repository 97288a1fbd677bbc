"""Time-limited access (访问期限), the owner's side: the Access end card of one sub-account.

Opened from the account screen of /accounts ("⏳ Access end: …") and from the Extend buttons
of a reminder or an expiry (``handlers.access_screens``, which also runs the job). The owner
chooses 1 day / 7 days / 30 days / no end or types a date (a draft-backed step: a bad date is
explained and asked for again); nothing is written until they confirm. The confirm button
carries the exact end shown, so what is confirmed is what was read. ``set_access`` writes it
(audited); an expired account given a new end is authorized again. The holder is told before
the owner's screen is updated, and the job is planned for the new reminder.

Callback data, namespace ``ax`` (ids re-checked against the presser's shop every time):
``ax:op:<acc>`` the card · ``ax:ch:<acc>:<1d|7d|30d|none>`` a choice (asks to confirm) ·
``ax:ex:<acc>:<7|30>`` extend from the current end (asks to confirm) · ``ax:ty:<acc>`` type a
date · ``ax:cx:<acc>`` stop typing · ``ax:ok:<acc>:<none|tYYYYMMDDHHMMSS>`` confirm.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from telegram import InlineKeyboardMarkup

from handlers.access_screens import (
    CHOICES,
    EXTEND_DAYS,
    NS,
    choice_rows,
    current_text,
    end_text,
    plan_for,
)
from handlers.account_screens import (
    ACCOUNTS_FLOW,
    drafted_account,
    outcome,
    show_details,
    tell_holder,
)
from handlers.account_screens import NS as ACCOUNTS_NS
from handlers.card import with_notice
from handlers.context import Ctx
from handlers.flow import Flow, Step
from handlers.keyboards import button, keyboard
from handlers.router import cb
from handlers.times import zone_name
from models.accounts import get_account, holder_of
from models.errors import DomainError
from models.lifecycle.access import NO_END, account_state, parse_access_end, set_access
from models.lifecycle.access import AccountState as State
from models.phones import mask_phone
from models.tables import Shop, SubAccount

NAME = "access"
DATE = "date"
_STAMP = "%Y%m%d%H%M%S"
_KEY = re.compile(r"t(\d{14})")
#: refusals of an end typed or confirmed: the reason, and the same prompt again
_DATE_ERRORS = ("access_date_format", "access_date_past", "access_date_too_far")


def _key(until: datetime | None) -> str:
    return NO_END if until is None else "t" + until.strftime(_STAMP)


def _until(key: str) -> datetime | None:
    """The end a confirm button carries (``stale_button`` if malformed)."""
    if key == NO_END:
        return None
    found = _KEY.fullmatch(key)
    if found is None:
        raise DomainError("stale_button")
    try:
        return datetime.strptime(found[1], _STAMP)
    except ValueError as exc:
        raise DomainError("stale_button") from exc


# --- the card and the confirm ------------------------------------------------------------------



def _zone(ctx: Ctx, shop: Shop) -> str:
    """The time zone the shop's access ends are written and typed in."""
    return zone_name(shop, ctx.deps.default_time_zone)

async def _card(ctx: Ctx, shop: Shop, account: SubAccount, notice: str | None = None) -> None:
    acc = account.id or 0
    text = ctx.t("access.card", nickname=account.nickname, phone=mask_phone(account.phone),
                 current=current_text(ctx.locale, account, _zone(ctx, shop)))
    rows = choice_rows(ctx.locale, lambda key: cb(NS, "ch", acc, key))
    await ctx.show(
        with_notice(notice, text),
        keyboard(*rows, [button(ctx.label("access.choice_date"), cb(NS, "ty", acc))],
                 [button(ctx.label("common.back"), cb(ACCOUNTS_NS, "op", acc))]),
    )


def _confirm(ctx: Ctx, shop: Shop, account: SubAccount, until: datetime | None
             ) -> tuple[str, InlineKeyboardMarkup]:
    acc = account.id or 0
    params = {"nickname": account.nickname, "phone": mask_phone(account.phone),
              "current": current_text(ctx.locale, account, _zone(ctx, shop))}
    if until is None:
        text = ctx.t("access.confirm_none", **params)
    else:
        text = ctx.t("access.confirm_until", end=end_text(ctx.locale, until, _zone(ctx, shop)),
                     **params)
    if account_state(account) == State.EXPIRED:
        text += "\n" + ctx.t("access.confirm_resume")
    markup = keyboard([button(ctx.label("access.confirm_yes"), cb(NS, "ok", acc, _key(until)))],
                      [button(ctx.label("common.back"), cb(NS, "op", acc))])
    return text, markup


async def _open(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: the Access end card."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    await ctx.answer()
    await _card(ctx, shop, account)


async def _choose(ctx: Ctx, shop: Shop, account_id: int, key: str) -> None:
    """Button: one of the choices; asks to confirm."""
    if key not in CHOICES:
        raise DomainError("stale_button")
    account = await get_account(ctx.session, shop.id or 0, account_id)
    until = parse_access_end(key, now=ctx.now(), time_zone=_zone(ctx, shop))
    text, markup = _confirm(ctx, shop, account, until)
    await ctx.answer()
    await ctx.show(text, markup)


async def _extend(ctx: Ctx, shop: Shop, account_id: int, days: int) -> None:
    """Button (a reminder's or an expiry's): extend from the current end, or from now when
    it has passed; asks to confirm."""
    if days not in EXTEND_DAYS:
        raise DomainError("stale_button")
    account = await get_account(ctx.session, shop.id or 0, account_id)
    now = ctx.now()
    base = account.access_until if account.access_until and account.access_until > now else now
    text, markup = _confirm(ctx, shop, account, base + timedelta(days=days))
    await ctx.answer()
    await ctx.show(text, markup)


async def _apply(ctx: Ctx, shop: Shop, account_id: int, key: str) -> None:
    """Button: Confirm — the end shown is set (audited), the holder told, the job planned."""
    until = _until(key)
    shop_id = shop.id or 0
    await get_account(ctx.session, shop_id, account_id)
    change = await set_access(ctx.session, policy=ctx.deps.lifecycle, shop_id=shop_id,
                              actor_id=ctx.user_id, account_id=account_id, until=until,
                              now=ctx.now())
    account = change.account
    plan_for(ctx.context.job_queue, account)
    holder = await holder_of(ctx.session, account)
    hl = ctx.deps.locale_of(holder)
    end = end_text(hl, until, _zone(ctx, shop)) if until is not None else ""
    await ctx.answer()
    if change.resumed:
        warning = await tell_holder(ctx, holder, account.nickname, "access.notify_resumed",
                                     shop=shop.name)
    elif until is None:
        warning = await tell_holder(ctx, holder, account.nickname, "access.notify_none",
                                     shop=shop.name)
    else:
        warning = await tell_holder(ctx, holder, account.nickname, "access.notify_until",
                                     shop=shop.name, end=end)
    done = (ctx.t("access.done_none", nickname=account.nickname) if until is None else
            ctx.t("access.done_until", nickname=account.nickname,
                  end=end_text(ctx.locale, until, _zone(ctx, shop))))
    if change.resumed:
        done = ctx.t("access.done_resumed", nickname=account.nickname) + "\n" + done
    await show_details(ctx, shop, account, outcome(done, warning))


# --- typing a date: a step kept in the draft ---------------------------------------------------


#: the draft key of the /accounts list the owner came from (its step and data), kept while
#: they type a date and put back after, so that "⬅️ All accounts" finds their filtered list
LIST = "list"


async def _type(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: type a date."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    draft = await ctx.load_draft()
    kept = ({"step": draft.step, "data": dict(draft.data)}
            if draft is not None and draft.flow == ACCOUNTS_FLOW else None)
    await ctx.router.abandon(ctx)
    await ctx.start_flow(NAME, DATE, {"account_id": account.id, LIST: kept})
    await ctx.answer()
    await ask_date(ctx)


async def _leave_date_step(ctx: Ctx) -> None:
    """The date step is over: back to the /accounts list the owner came from, if any."""
    draft = await ctx.load_draft()
    kept = draft.data.get(LIST) if draft is not None else None
    if isinstance(kept, dict):
        await ctx.start_flow(ACCOUNTS_FLOW, str(kept.get("step")), kept.get("data") or {})
    else:
        await ctx.end_flow()


async def _stop_typing(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: leave the date step (nothing changed) and show the card."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    draft = await ctx.load_draft()
    notice = None
    if draft is not None and (draft.flow, draft.step) == (NAME, DATE) \
            and draft.data.get("account_id") == account_id:
        await _leave_date_step(ctx)
        notice = ctx.t("access.date_cancelled")
    await ctx.answer()
    await _card(ctx, shop, account, notice)


async def ask_date(ctx: Ctx) -> None:
    """Ask for the last day, as YYYY-MM-DD."""
    target = await drafted_account(ctx)
    if target is None:
        return
    shop, account = target
    example = (ctx.now() + timedelta(days=30)).strftime("%Y-%m-%d")
    await ctx.reply(
        ctx.t("access.ask_date", nickname=account.nickname, example=example,
              zone=_zone(ctx, shop)),
        keyboard([button(ctx.label("common.cancel_button"), cb(NS, "cx", account.id))]),
    )


async def on_date(ctx: Ctx, text: str) -> None:
    """A typed end: a bad one is explained and asked for again; a good one asks to confirm."""
    target = await drafted_account(ctx)
    if target is None:
        return
    shop, account = target
    try:
        until = parse_access_end(text, now=ctx.now(), time_zone=_zone(ctx, shop))
    except DomainError as exc:
        if exc.key not in _DATE_ERRORS:
            raise
        await ctx.reply(ctx.error_text(exc))
        await ask_date(ctx)
        return
    await _leave_date_step(ctx)
    reply, markup = _confirm(ctx, shop, account, until)
    await ctx.reply(reply, markup)


_ACTIONS: dict[str, Callable[..., Awaitable[None]]] = {
    "op": _open,
    "ch": _choose,
    "ex": _extend,
    "ty": _type,
    "cx": _stop_typing,
    "ok": _apply,
}


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """Every ``ax:`` button: only the shop's owner, only the shop's own accounts."""
    shop = await ctx.shop_or_none()
    if shop is None:
        await ctx.stale()
        return
    account_id = int(args[0])
    rest: list[int | str] = [int(a) if a.isdigit() else a for a in args[1:]]
    if action in ("ch", "ok"):
        rest = list(args[1:])
    try:
        await _ACTIONS[action](ctx, shop, account_id, *rest)
    except DomainError as exc:
        await ctx.rollback()
        if exc.key in ("account_not_found", "stale_button"):
            await ctx.stale()
            return
        if exc.key == "nothing_changed" or exc.key in _DATE_ERRORS:
            # confirmed on an outdated screen: say why, and show the card as it is now
            await ctx.answer(ctx.error_text(exc))
            shop = await ctx.owned_shop()
            await _card(ctx, shop, await get_account(ctx.session, shop.id or 0, account_id),
                        ctx.error_text(exc))
            return
        raise


FLOW = Flow(
    name=NAME,
    namespace=NS,
    buttons={
        "op": ("int",), "ch": ("int", "key"), "ex": ("int", "int"), "ty": ("int",),
        "cx": ("int",), "ok": ("int", "key"),
    },
    on_button=on_button,
    steps={DATE: Step(ask=ask_date, on_text=on_date)},
)
