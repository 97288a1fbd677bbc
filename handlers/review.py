"""Access reviews (权限复核), the owner's side: /review, and the review job.

Every ``review_days`` (the shop's own, or ``[lifecycle] review_days``; off possible) the job
starts a round (``models.lifecycle.reviews``) and sends the owner its first page: every
sub-account as it was at the start (nickname, masked phone, role, IM, status, last activity)
with Keep / Suspend / Unbind (confirmed) on each and "Keep all remaining". Unanswered, the
owner is reminded once after ``review_reminder_days``; after ``review_deadline_days`` the shop's
no-response rule keeps the undecided accounts or suspends them (their chats re-routed, the
holders told) and the owner is told what happened. Every decision is audited (and shown in
/log). The owner sets the period and the rule on the settings screen (``set_review_settings``).
A suspend or unbind re-routes the holder's open customer chats and tells the holder, as in
/accounts.

The job runs at start-up, in the duty poll, and at the earliest deadline in the database — and
at least once a day, so a shop created since is seen in time (its first round is due
``review_days`` after its creation).

Callback data, namespace ``rv`` (ids re-checked against the presser's shop every time):
``rv:pg:<round>:<page>`` a page · ``rv:k|s:<item>:<page>`` keep / suspend ·
``rv:u:<item>:<page>`` ask to unbind · ``rv:uy:<item>:<page>`` unbind · ``rv:ka:<round>`` keep
all remaining · ``rv:st`` settings · ``rv:sd:<days>`` period (0: off) · ``rv:sdd`` the default
period · ``rv:sr:<keep|suspend|default>`` the rule · ``rv:home`` back to the review.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import ContextTypes, JobQueue

from handlers import service_relay
from handlers.access_screens import plural
from handlers.account_screens import tell_holder
from handlers.card import with_notice
from handlers.context import Ctx, Deps, deps_of
from handlers.deadlines import run_by
from handlers.flow import Command, Flow
from handlers.i18n import label, t
from handlers.keyboards import button, keyboard, pager_row
from handlers.outbox import notice as outbox_notice
from handlers.outbox import send_overdue, send_owed
from handlers.router import cb
from handlers.times import local_date, shop_zone
from models import outbox
from models.errors import DomainError
from models.lifecycle.policy import LifecyclePolicy, NoResponse
from models.lifecycle.review_decisions import (
    PAGE_SIZE,
    decide,
    keep_all_remaining,
    review_page,
)
from models.lifecycle.reviews import (
    NoResponseApplied,
    ReviewReminder,
    StartedReview,
    apply_no_response,
    due_review_reminders,
    next_review_deadline,
    no_response_rule,
    open_round,
    review_days,
    set_review_settings,
    start_due_reviews,
)
from models.lifecycle.tables import ReviewDecision, ReviewItem
from models.outbox import Notice
from models.service.agents import release_agent
from models.service.results import Placement
from models.tables import Shop, SubAccount, User

log = logging.getLogger(__name__)

NAME = "review"
NS = "rv"
REVIEW_JOB = "access-review"
#: the job looks at least this often (a new shop's first round, settings changed elsewhere)
REVIEW_EVERY = timedelta(days=1)
#: the periods offered on the settings screen, in days
PERIODS = (30, 90, 180, 365)
_STATUS = {"authorized": "accounts.status_authorized", "suspended": "accounts.status_suspended",
           "expired": "access.status_expired"}
_CHOICES = {"k": ReviewDecision.KEEP, "s": ReviewDecision.SUSPEND, "uy": ReviewDecision.UNBIND}


# --- words -------------------------------------------------------------------------------------


def days_text(locale: str, n: int) -> str:
    return plural(locale, "review.days", n)


def rule_text(locale: str, rule: NoResponse) -> str:
    return t(locale, f"review.rule_{rule.value}")


def _day(moment: datetime, tz: tzinfo) -> str:
    """The date of a moment as the shop's owner reads it, in the shop's time zone."""
    return local_date(moment, tz)


# --- the screens -------------------------------------------------------------------------------


def _item_lines(locale: str, n: int, item: ReviewItem, tz: tzinfo) -> list[str]:
    active = (_day(item.last_activity_at, tz) if item.last_activity_at is not None
              else t(locale, "review.active_never"))
    lines = [t(locale, "review.item", n=n, nickname=item.nickname, phone=item.phone_masked,
               role=item.role_name,
               im=t(locale, "common.im_on" if item.im_enabled else "common.im_off"),
               status=t(locale, _STATUS.get(item.status, "accounts.status_suspended")),
               active=active)]
    if item.decision is not None:
        lines.append(t(locale, "review.item_decided",
                       decision=t(locale, f"review.decided_{item.decision}")))
    return lines


async def review_screen(
    session: AsyncSession, locale: str, policy: LifecyclePolicy, shop: Shop, round_id: int,
    page: int, notice: str | None = None, *, default_zone: str,
) -> tuple[str, InlineKeyboardMarkup]:
    """One page of a round: its items (decided ones with the decision), Keep / Suspend /
    Unbind on each undecided one, the pager, "Keep all remaining" and the settings. Dates are
    the shop's days (its time zone, else ``default_zone``)."""
    tz = shop_zone(shop, default_zone)
    shown = await review_page(session, shop_id=shop.id or 0, round_id=round_id, page=page)
    round_, page = shown.round, shown.page
    is_open = round_.closed_at is None
    lines = [notice, ""] if notice else []
    lines.append(t(locale, "review.title", shop=shop.name, started=_day(round_.started_at, tz),
                   left=shown.undecided, total=shown.total,
                   deadline=_day(round_.deadline_at, tz),
                   rule=rule_text(locale, no_response_rule(shop, policy))))
    if shown.pages > 1:
        lines.append(t(locale, "review.page", page=page + 1, pages=shown.pages))
    if not is_open:
        lines.append(t(locale, "review.closed"))
    rows: list[list[InlineKeyboardButton]] = []
    for number, item in enumerate(shown.items, start=page * PAGE_SIZE + 1):
        lines += ["", *_item_lines(locale, number, item, tz)]
        if is_open and item.decision is None:
            rows.append([
                button(label(locale, "review.keep", nickname=item.nickname),
                       cb(NS, "k", item.id, page)),
                button(label(locale, "review.suspend"), cb(NS, "s", item.id, page)),
                button(label(locale, "review.unbind"), cb(NS, "u", item.id, page)),
            ])
    nav = pager_row(page, shown.pages, previous=label(locale, "review.prev"),
                    following=label(locale, "review.next"),
                    data=lambda to: cb(NS, "pg", round_.id, to))
    extra = []
    if is_open and shown.undecided:
        extra.append([button(label(locale, "review.keep_all", count=shown.undecided),
                             cb(NS, "ka", round_.id))])
    extra.append([button(label(locale, "review.settings_button"), cb(NS, "st"))])
    return "\n".join(lines), keyboard(*rows, nav, *extra)


def _idle_text(ctx: Ctx, shop: Shop) -> str:
    policy = ctx.deps.lifecycle
    period = review_days(shop, policy)
    if period <= 0:
        schedule = ctx.t("review.schedule_off")
    else:
        due = shop.review_due_at or shop.created_at + timedelta(days=period)
        schedule = ctx.t("review.schedule_next", period=days_text(ctx.locale, period),
                         date=_day(due, shop_zone(shop, ctx.deps.default_time_zone)))
    return ctx.t("review.idle", shop=shop.name, schedule=schedule,
                 deadline=days_text(ctx.locale, policy.review_deadline_days),
                 rule=rule_text(ctx.locale, no_response_rule(shop, policy)))


async def _home(ctx: Ctx, shop: Shop, notice: str | None = None, *, new: bool = False) -> None:
    """The open round's first page, or when there is none, the schedule and the settings."""
    current = await open_round(ctx.session, shop.id or 0)
    if current is not None:
        text, markup = await review_screen(ctx.session, ctx.locale, ctx.deps.lifecycle, shop,
                                           current.id or 0, 0, notice,
                                           default_zone=ctx.deps.default_time_zone)
    else:
        body = _idle_text(ctx, shop)
        text = with_notice(notice, body)
        markup = keyboard([button(ctx.label("review.settings_button"), cb(NS, "st"))])
    if new:
        await ctx.reply(text, markup)
    else:
        await ctx.show(text, markup)


async def _show_round(ctx: Ctx, shop: Shop, round_id: int, page: int,
                      notice: str | None = None) -> None:
    text, markup = await review_screen(ctx.session, ctx.locale, ctx.deps.lifecycle, shop,
                                       round_id, page, notice,
                                       default_zone=ctx.deps.default_time_zone)
    await ctx.show(text, markup)


async def review_command(ctx: Ctx) -> None:
    """/review: the open review, or the schedule and the settings."""
    shop = await ctx.owned_shop_or_explain("review.for_owners")
    if shop is None:
        return
    await ctx.router.abandon(ctx)
    await _home(ctx, shop, new=True)


# --- decisions ---------------------------------------------------------------------------------


async def _item_account(ctx: Ctx, shop: Shop, item_id: int) -> tuple[ReviewItem, SubAccount]:
    """The item and its account, both of this shop (else the button is stale)."""
    item = await ctx.session.get(ReviewItem, item_id)
    account = await ctx.session.get(SubAccount, item.account_id) if item is not None else None
    if item is None or account is None or account.shop_id != shop.id:
        raise DomainError("review_item_gone")
    return item, account


async def _page(ctx: Ctx, shop: Shop, round_id: int, page: int) -> None:
    """Button: a page of a round."""
    await ctx.answer()
    await _show_round(ctx, shop, round_id, page)


async def _decide(ctx: Ctx, shop: Shop, action: str, item_id: int, page: int) -> None:
    """Button: keep, suspend, or (confirmed) unbind one account."""
    item, account = await _item_account(ctx, shop, item_id)
    round_id, nickname, phone = item.round_id, item.nickname, item.phone_masked
    choice = _CHOICES[action]
    holder = await ctx.session.get(User, account.holder_id)
    moved = service_relay.Owed()
    if choice != ReviewDecision.KEEP:  # in this transaction, before an unbind deletes it
        moved = await service_relay.release(
            ctx, shop_id=shop.id or 0, user_id=account.holder_id,
            reason="suspended" if choice == ReviewDecision.SUSPEND else "unbound")
    done = await decide(ctx.session, shop_id=shop.id or 0, owner_id=ctx.user_id,
                        item_id=item_id, choice=choice, now=ctx.now())
    await ctx.answer()
    warning = None
    if done.changed:
        key = ("accounts.notify_suspended" if choice == ReviewDecision.SUSPEND
               else "accounts.notify_unbound")
        warning = await tell_holder(ctx, holder, nickname, key, shop=shop.name)
    notice = ctx.t(f"review.done_{choice.value}", nickname=nickname, phone=phone)
    if warning:
        notice += "\n" + warning
    if done.round_closed:
        notice += "\n" + ctx.t("review.answered")
    await _show_round(ctx, shop, round_id, page, notice)
    await service_relay.announce_from(ctx, moved)


async def _ask_unbind(ctx: Ctx, shop: Shop, item_id: int, page: int) -> None:
    """Button: ask to confirm the unbind, naming the person."""
    item, _account = await _item_account(ctx, shop, item_id)
    await ctx.answer()
    await ctx.show(
        ctx.t("review.unbind_confirm", nickname=item.nickname, phone=item.phone_masked),
        keyboard([button(ctx.label("review.unbind_yes"), cb(NS, "uy", item_id, page)),
                  button(ctx.label("common.back"), cb(NS, "pg", item.round_id, page))]),
    )


async def _keep_all(ctx: Ctx, shop: Shop, round_id: int) -> None:
    """Button: keep every account not decided yet; the round closes."""
    kept = await keep_all_remaining(ctx.session, shop_id=shop.id or 0, owner_id=ctx.user_id,
                                    round_id=round_id, now=ctx.now())
    await ctx.answer()
    notice = plural(ctx.locale, "review.done_kept_all", kept) + "\n" + ctx.t("review.answered")
    await _show_round(ctx, shop, round_id, 0, notice)


# --- settings ----------------------------------------------------------------------------------


async def _settings(ctx: Ctx, shop: Shop, notice: str | None = None) -> None:
    """Button: how often, and what silence means."""
    policy = ctx.deps.lifecycle
    period = review_days(shop, policy)
    if period <= 0:
        shown = ctx.t("review.period_off")
    else:
        shown = ctx.t("review.period_every", period=days_text(ctx.locale, period))
    if shop.review_days is None:
        shown = ctx.t("review.period_default", period=shown)
    text = ctx.t("review.settings", shop=shop.name, period=shown,
                 deadline=days_text(ctx.locale, policy.review_deadline_days),
                 rule=rule_text(ctx.locale, no_response_rule(shop, policy)))

    def mark(on: bool, text_: str) -> str:
        return ("✓ " if on else "") + text_

    periods = [button(mark(shop.review_days == days,
                           ctx.label("review.set_every", period=days_text(ctx.locale, days))),
                      cb(NS, "sd", days)) for days in PERIODS]
    default = days_text(ctx.locale, policy.review_days) if policy.review_days else \
        ctx.label("review.period_off")
    rule = shop.review_no_response
    await ctx.show(
        with_notice(notice, text),
        keyboard(periods[:2], periods[2:],
                 [button(mark(shop.review_days == 0, ctx.label("review.set_off")), cb(NS, "sd", 0)),
                  button(mark(shop.review_days is None,
                              ctx.label("review.set_default", period=default)), cb(NS, "sdd"))],
                 [button(mark(rule == "keep", ctx.label("review.set_keep")), cb(NS, "sr", "keep")),
                  button(mark(rule == "suspend", ctx.label("review.set_suspend")),
                         cb(NS, "sr", "suspend"))],
                 [button(mark(rule is None, ctx.label("review.set_rule_default")),
                         cb(NS, "sr", "default"))],
                 [button(ctx.label("review.back"), cb(NS, "home"))]),
    )


async def _save(ctx: Ctx, shop: Shop, days: int | None, rule: str | None) -> None:
    changed = await set_review_settings(
        ctx.session, policy=ctx.deps.lifecycle, shop_id=shop.id or 0, owner_id=ctx.user_id,
        days=days, no_response=rule, now=ctx.now())
    if changed.review_due_at is not None:
        schedule_reviews(ctx.context.job_queue, changed.review_due_at, ctx.now())
    await ctx.answer()
    await _settings(ctx, changed, ctx.t("review.saved"))


async def _set_days(ctx: Ctx, shop: Shop, days: int) -> None:
    """Button: a period of the settings screen (0: off)."""
    if days not in (0, *PERIODS):
        raise DomainError("stale_button")
    await _save(ctx, shop, days, shop.review_no_response)


async def _default_days(ctx: Ctx, shop: Shop) -> None:
    await _save(ctx, shop, None, shop.review_no_response)


async def _set_rule(ctx: Ctx, shop: Shop, rule: str) -> None:
    """Button: what an unanswered review means."""
    if rule not in ("keep", "suspend", "default"):
        raise DomainError("stale_button")
    await _save(ctx, shop, shop.review_days, None if rule == "default" else rule)


async def _open_settings(ctx: Ctx, shop: Shop) -> None:
    await ctx.answer()
    await _settings(ctx, shop)


async def _back(ctx: Ctx, shop: Shop) -> None:
    await ctx.answer()
    await _home(ctx, shop)


_ACTIONS: dict[str, Callable[..., Awaitable[None]]] = {
    "pg": _page,
    "u": _ask_unbind,
    "ka": _keep_all,
    "st": _open_settings,
    "sd": _set_days,
    "sdd": _default_days,
    "sr": _set_rule,
    "home": _back,
}
#: refusals that mean the screen is out of date: say why, show the review as it is now
_OUTDATED = ("review_item_decided", "review_closed", "nothing_changed")


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """Every ``rv:`` button: only the shop's owner, only the shop's own rounds and items."""
    shop = await ctx.shop_or_none()
    if shop is None:
        await ctx.stale()
        return
    values: list[Any] = [int(a) if a.isdigit() else a for a in args]
    try:
        if action in _CHOICES:
            await _decide(ctx, shop, action, *values)
        else:
            await _ACTIONS[action](ctx, shop, *values)
    except DomainError as exc:
        await ctx.rollback()
        if exc.key in ("review_item_gone", "review_not_found", "stale_button", "no_shop",
                       "account_not_found"):
            await ctx.stale()
            return
        if exc.key in _OUTDATED:
            await ctx.answer(ctx.error_text(exc))
            shop = await ctx.owned_shop()
            if action in ("sd", "sdd", "sr"):
                await _settings(ctx, shop, ctx.error_text(exc))
            else:
                await _home(ctx, shop, ctx.error_text(exc))
            return
        raise


# --- the job -----------------------------------------------------------------------------------


def schedule_reviews(job_queue: JobQueue | None,  # type: ignore[type-arg]
                     deadline: datetime | None, now: datetime) -> None:
    """Make sure the review job runs by ``deadline``, and within ``REVIEW_EVERY`` anyway."""
    latest = now + REVIEW_EVERY
    run_by(job_queue, review_job, REVIEW_JOB, min(deadline, latest) if deadline else latest)


async def _applied_notices(session: AsyncSession, deps: Deps, done: NoResponseApplied
                           ) -> list[Notice]:
    """The owner told what the rule did; each suspended holder told why."""
    shop = await session.get(Shop, done.shop_id)
    owner = await session.get(User, done.owner_id)
    if shop is None:
        return []
    owed = []
    locale = deps.locale_of(owner)
    if done.rule == NoResponse.KEEP:
        text = t(locale, "review.no_response_kept", shop=shop.name,
                 left=plural(locale, "review.accounts", done.kept))
    elif done.suspended:
        names = label(locale, "accounts.sep").join(n for _a, _h, n in done.suspended)
        text = t(locale, "review.no_response_suspended", shop=shop.name, names=names,
                 left=plural(locale, "review.accounts", len(done.suspended)))
    else:
        text = t(locale, "review.no_response_none", shop=shop.name)
    if owner is not None:
        owed.append(outbox_notice(f"review.no_response:{done.round_id}", owner.id, text))
    for account_id, holder_id, _nickname in done.suspended:
        holder = await session.get(User, holder_id)
        if holder is not None:
            owed.append(outbox_notice(
                f"review.holder_suspended:{account_id}", holder.id,
                t(deps.locale_of(holder), "review.holder_suspended", shop=shop.name)))
    return owed


async def _started_notices(session: AsyncSession, deps: Deps, begun: StartedReview
                           ) -> list[Notice]:
    """The owner gets the new round's first page."""
    shop = await session.get(Shop, begun.shop_id)
    owner = await session.get(User, begun.owner_id)
    if shop is None or owner is None:
        return []
    locale = deps.locale_of(owner)
    text, markup = await review_screen(session, locale, deps.lifecycle, shop, begun.round_id,
                                       0, t(locale, "review.intro", shop=shop.name),
                                       default_zone=deps.default_time_zone)
    return [outbox_notice(f"review.started:{begun.round_id}", owner.id, text, markup)]


async def _reminder_notices(session: AsyncSession, deps: Deps, due: ReviewReminder
                            ) -> list[Notice]:
    shop = await session.get(Shop, due.shop_id)
    owner = await session.get(User, due.owner_id)
    if shop is None or owner is None:
        return []
    locale = deps.locale_of(owner)
    deadline = _day(due.deadline_at, shop_zone(shop, deps.default_time_zone))
    text = t(locale, "review.reminder", shop=shop.name, deadline=deadline,
             left=plural(locale, "review.accounts", due.undecided),
             rule=rule_text(locale, no_response_rule(shop, deps.lifecycle)))
    markup = keyboard([button(label(locale, "review.open"), cb(NS, "pg", due.round_id, 0))])
    return [outbox_notice(f"review.reminder:{due.round_id}", owner.id, text, markup)]


async def run_reviews(bot: Bot, deps: Deps, bot_data: dict[Any, Any]) -> datetime | None:
    """Close the rounds whose time ran out (the shop's rule), start the rounds due, remind the
    owners who have not finished; the next deadline. The notices go through the outbox
    (written in the transaction of the change, sent after its commit)."""
    policy, now = deps.lifecycle, deps.clock.now()
    await send_overdue(bot, deps)
    async with deps.sessions() as session:
        applied = await apply_no_response(session, policy=policy, now=now)
        moved: list[Placement] = []
        owed: list[Notice] = []
        for done in applied:
            for _account_id, holder_id, _nickname in done.suspended:
                moved += await release_agent(
                    session, service_relay.service_policy(deps), shop_id=done.shop_id,
                    user_id=holder_id, reason="suspended", actor_id=None, now=now)
            owed += await _applied_notices(session, deps, done)
        started = await start_due_reviews(session, policy=policy, now=now)
        for begun in started:
            owed += await _started_notices(session, deps, begun)
        reminders = await due_review_reminders(session, now=now)
        for due in reminders:
            owed += await _reminder_notices(session, deps, due)
        rows = outbox.enqueue(session, owed, now=now)
        relayed = await service_relay.owe_announcements(deps, session, moved, now=now)
        await session.commit()  # the suspensions, the re-routes and every notice they owe
        await send_owed(bot, session, rows)
        await relayed.send(bot, session, now=now, state=service_relay.relay_state(bot_data))
        upcoming = await next_review_deadline(session, policy)
    if applied or started or reminders:
        log.info("reviews: %s started, %s reminded, %s closed unanswered", len(started),
                 len(reminders), len(applied))
    return upcoming


async def review_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's job: one pass, then the next run planned."""
    deps = deps_of(context)
    upcoming = await run_reviews(context.bot, deps, context.application.bot_data)
    schedule_reviews(context.job_queue, upcoming, deps.clock.now())


FLOW = Flow(
    name=NAME,
    namespace=NS,
    buttons={
        "pg": ("int", "int"), "k": ("int", "int"), "s": ("int", "int"), "u": ("int", "int"),
        "uy": ("int", "int"), "ka": ("int",), "st": (), "sd": ("int",), "sdd": (),
        "sr": ("key",), "home": (),
    },
    on_button=on_button,
    commands=(Command("review", review_command, who="owner"),),
)
