"""Owner transfer (主账号更换): /transfer — the owner hands the shop to one of its sub-accounts.

The owner chooses the target among the shop's sub-accounts (paged; a suspended or expired one
is refused with the domain's reason, the list shown again), then what they become (a
sub-account with one of the shop's roles, or they leave), sees a summary and confirms by typing
the shop's name. Only then is the request written
(``models.lifecycle.transfer.request_transfer``) and the target told in their own chat, with
Accept / Decline, valid ``[lifecycle] transfer_hours``; the owner's card says whom it waits for,
with Withdraw. One pending transfer per shop: /transfer then shows the pending one.

The flow is one card (``handlers.card``, as /newaccount's), edited in place: a refused input (a
wrong name, a text where buttons are expected, a sticker…) is the reason, quoting what was
typed, above the same prompt and buttons — never a message of its own.

Accept runs ``models.lifecycle.handover.accept_transfer`` (one transaction: bindings, owner,
roles, both drafts, the old owner's codes), then ends the customer-service duty of both people
(``service_relay.release``: the old owner is now a sub-account with IM off, the new owner's
sub-account is gone) in the same transaction; both are told. Decline and Withdraw tell the
other person. The expiry is ``handlers.transfer_expiry``.

Callback data, namespace ``tr`` (every id re-checked by the domain against the presser):
``tr:pg:<page>`` a page of targets · ``tr:to:<acc>`` target · ``tr:ro:<role>`` the old owner's
role · ``tr:lv`` the old owner leaves · ``tr:bk`` back to the targets · ``tr:x`` cancel ·
``tr:wd:<transfer>`` withdraw (owner) · ``tr:ac:<transfer>`` / ``tr:dc:<transfer>`` accept /
decline (target).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from telegram import Message

from handlers import service_relay
from handlers.account_screens import outcome
from handlers.card import Card, echo, why
from handlers.code_messages import end_holder_message
from handlers.context import Ctx
from handlers.flow import Command, Flow, Step
from handlers.keyboards import button, keyboard, pager_row, rows_of
from handlers.router import DISCARD_NS, MENU_NS, cb
from handlers.telegram_io import Undelivered
from handlers.times import shop_zone
from handlers.transfer_expiry import schedule_transfer_expiry
from handlers.transfer_screens import (
    NS,
    hours_text,
    old_owner_text,
    parties,
    pending_for_target,
    request_markup,
    request_text,
    until_text,
    waiting_text,
    withdraw_markup,
)
from models.accounts import PAGE_SIZE, accounts_page, get_account
from models.errors import DomainError
from models.lifecycle.common import check_usable, is_expired
from models.lifecycle.handover import accept_transfer
from models.lifecycle.transfer import (
    LEAVE,
    check_typed_name,
    decline_transfer,
    pending_transfer,
    request_transfer,
    withdraw_transfer,
)
from models.phones import mask_phone
from models.roles import get_role, list_roles
from models.tables import AccountStatus, Role, Shop, SubAccount, User

NAME = "transfer"
TARGET, OLD, CONFIRM = "target", "old", "confirm"
#: the flow's one message: its own buttons, the home menu's and the discard question's
#: pressed message becomes it (``handlers.card``)
CARD = Card(NAME, (NS, MENU_NS, DISCARD_NS))

#: refusals that mean the button is not (or no longer) the presser's: a short toast
_STALE = ("transfer_not_found", "stale_button", "no_shop")
#: refusals about the chosen target: back to the list, with the reason
_TARGET = ("account_not_found", "transfer_target_suspended", "transfer_target_expired",
           "transfer_target_gone")


# --- reading the draft -------------------------------------------------------------------------


async def _data(ctx: Ctx) -> dict[str, Any]:
    draft = await ctx.load_draft()
    return dict(draft.data) if draft is not None and draft.flow == NAME else {}


async def _at(ctx: Ctx, *steps: str) -> bool:
    """Whether the presser's draft is at one of ``steps`` of this flow."""
    draft = await ctx.load_draft()
    return draft is not None and draft.flow == NAME and draft.step in steps


async def _target(ctx: Ctx, shop: Shop, data: dict[str, Any]) -> SubAccount | None:
    raw = data.get("account_id")
    if not isinstance(raw, int):
        return None
    try:
        return await get_account(ctx.session, shop.id or 0, raw)
    except DomainError:
        return None


async def _role(ctx: Ctx, shop: Shop, data: dict[str, Any]) -> Role | str | None:
    """The old owner's role from the draft, ``LEAVE``, or ``None`` if unset or gone."""
    raw = data.get("old")
    if raw == LEAVE:
        return LEAVE
    if not isinstance(raw, int):
        return None
    try:
        return await get_role(ctx.session, shop.id or 0, raw)
    except DomainError:
        return None


# --- step 1: the target ------------------------------------------------------------------------


def _account_label(account: SubAccount, now: datetime) -> str:
    """A button label (plain text): ⏸ on one that can't be chosen."""
    usable = account.status == AccountStatus.AUTHORIZED.value and not is_expired(account, now)
    return f"{'' if usable else '⏸ '}{account.nickname} · {mask_phone(account.phone)}"


async def ask_target(ctx: Ctx, notice: str = "") -> None:
    """Step 1: a page of the shop's sub-accounts to choose the new main account from
    (``notice``: why the last answer was refused, above it)."""
    shop = await ctx.owned_shop()
    data = await _data(ctx)
    page = data.get("page") if isinstance(data.get("page"), int) else 0
    listed = await accounts_page(ctx.session, shop.id or 0, int(page or 0), size=PAGE_SIZE)
    if listed.total == 0:
        card = await CARD.current(ctx)
        await ctx.end_flow()
        await CARD.show(ctx, ctx.t("transfer.no_accounts", shop=shop.name), card=card)
        return
    lines = [ctx.t("transfer.choose_target", shop=shop.name)]
    if listed.pages > 1:
        lines.append(ctx.t("transfer.page", page=listed.page + 1, pages=listed.pages))
    now = ctx.now()
    rows = [[button(_account_label(account, now), cb(NS, "to", account.id))]
            for account, _ in listed.rows]
    nav = pager_row(listed.page, listed.pages, previous=ctx.t("transfer.prev"),
                    following=ctx.t("transfer.next"), data=lambda to: cb(NS, "pg", to))
    await CARD.show(ctx, "\n".join(lines),
                    keyboard(*rows, nav, [button(ctx.t("transfer.cancel"), cb(NS, "x"))]),
                    notice=notice)


async def _page(ctx: Ctx, shop: Shop, page: int) -> None:
    await ctx.goto(NAME, TARGET, {"page": page})
    await ctx.answer()
    await ask_target(ctx)


async def _choose_target(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """A sub-account chosen: refused with the domain's reason if it can't be the target."""
    try:
        account = await get_account(ctx.session, shop.id or 0, account_id)
        check_usable(account, ctx.now(), prefix="transfer_target")
    except DomainError as exc:
        await ctx.answer()
        await ask_target(ctx, why(ctx, exc))
        return
    await ctx.answer()
    await ctx.router.goto(ctx, NAME, OLD, {"account_id": account.id})


# --- step 2: what the old owner becomes ---------------------------------------------------------


async def ask_old(ctx: Ctx, notice: str = "") -> None:
    """Step 2: the shop's roles (the old owner stays as a sub-account), or leave."""
    shop = await ctx.owned_shop()
    account = await _target(ctx, shop, await _data(ctx))
    if account is None:
        await ctx.goto(NAME, TARGET)
        await ask_target(ctx, why(ctx, DomainError("account_not_found")))
        return
    roles = await list_roles(ctx.session, shop.id or 0)
    rows = rows_of([button(role.name, cb(NS, "ro", role.id)) for role, _ in roles])
    await CARD.show(
        ctx,
        ctx.t("transfer.choose_old", nickname=account.nickname, phone=mask_phone(account.phone),
              shop=shop.name),
        keyboard(*rows, [button(ctx.t("transfer.leave_button"), cb(NS, "lv"))],
                 [button(ctx.t("transfer.back"), cb(NS, "bk")),
                  button(ctx.t("transfer.cancel"), cb(NS, "x"))]),
        notice=notice,
    )


async def _choose_role(ctx: Ctx, shop: Shop, role_id: int) -> None:
    role = await get_role(ctx.session, shop.id or 0, role_id)
    await ctx.answer()
    await ctx.router.goto(ctx, NAME, CONFIRM, {"old": role.id})


async def _choose_leave(ctx: Ctx, shop: Shop) -> None:
    await ctx.answer()
    await ctx.router.goto(ctx, NAME, CONFIRM, {"old": LEAVE})


async def _back(ctx: Ctx, shop: Shop) -> None:
    """One step back: from the summary to the role, from the role to the targets."""
    draft = await ctx.load_draft()
    await ctx.answer()
    if draft is not None and draft.step == CONFIRM:
        await ctx.router.goto(ctx, NAME, OLD)
    else:
        await ctx.router.goto(ctx, NAME, TARGET)


# --- step 3: the summary, confirmed by typing the shop's name ----------------------------------


async def ask_confirm(ctx: Ctx, notice: str = "") -> None:
    """Step 3: what will happen, and the shop's name to type. The target or the role gone
    meanwhile: back to the step concerned, with the reason."""
    shop = await ctx.owned_shop()
    data = await _data(ctx)
    account = await _target(ctx, shop, data)
    if account is None:
        await ctx.goto(NAME, TARGET)
        await ask_target(ctx, why(ctx, DomainError("account_not_found")))
        return
    role = await _role(ctx, shop, data)
    if role is None:
        await ctx.goto(NAME, OLD)
        await ask_old(ctx, why(ctx, DomainError("role_not_found")))
        return
    hours = ctx.deps.lifecycle.transfer_hours
    until = ctx.now() + timedelta(hours=hours)
    await CARD.show(
        ctx,
        ctx.t("transfer.summary", nickname=account.nickname, phone=mask_phone(account.phone),
              old_html=old_owner_text(ctx.locale, role if isinstance(role, Role) else None),
              hours=hours_text(ctx.locale, hours),
              until=until_text(until, shop_zone(shop, ctx.deps.default_time_zone)),
              shop=shop.name),
        keyboard([button(ctx.t("transfer.back"), cb(NS, "bk")),
                  button(ctx.t("transfer.cancel"), cb(NS, "x"))]),
        notice=notice,
    )


async def on_name(ctx: Ctx, text: str) -> None:
    """The typed name: wrong → the reason (quoting it) above the same prompt, on the card;
    right → the request, and the card says whom it waits for."""
    shop = await ctx.owned_shop()
    try:
        check_typed_name(shop, text)
    except DomainError as exc:
        await ask_confirm(ctx, why(ctx, exc, text))
        return
    data = await _data(ctx)
    role = await _role(ctx, shop, data)
    if role is None:  # the role was deleted meanwhile: ask_confirm sends the owner back
        await ask_confirm(ctx)
        return
    try:
        transfer = await request_transfer(
            ctx.session, policy=ctx.deps.lifecycle, shop_id=shop.id or 0, owner_id=ctx.user_id,
            account_id=int(data.get("account_id") or 0),
            old_owner=(role.id or 0) if isinstance(role, Role) else "leave", typed_name=text,
            now=ctx.now(),
        )
    except DomainError as exc:
        await ctx.rollback()
        shop = await ctx.owned_shop()
        if exc.key == "transfer_pending":
            card = await CARD.current(ctx)
            await ctx.end_flow()
            await _show_pending(ctx, shop, notice=why(ctx, exc), card=card)
            return
        if exc.key in _TARGET:
            await ctx.goto(NAME, TARGET)
            await ask_target(ctx, why(ctx, exc))
            return
        if exc.key == "role_not_found":
            await ctx.goto(NAME, OLD)
            await ask_old(ctx, why(ctx, exc))
            return
        raise
    card = await CARD.current(ctx)
    await ctx.end_flow()
    schedule_transfer_expiry(ctx.context.job_queue, transfer.expires_at)
    found = await parties(ctx.session, transfer, ctx.deps.default_time_zone)
    warning = None
    if found.target is not None:
        locale = ctx.deps.locale_of(found.target)
        sent = await ctx.notify(found.target, "transfer.request",
                                request_markup(locale, transfer.id or 0),
                                **_request_params(locale, found))
        if isinstance(sent, Undelivered):
            warning = ctx.t("transfer.not_told", nickname=found.nickname)
    await CARD.show(ctx, outcome(waiting_text(ctx.locale, found), warning),
                    withdraw_markup(ctx.locale, transfer.id or 0), card=card)


def _request_params(locale: str, found: Any) -> dict[str, Any]:
    """``transfer.request``'s parameters (``ctx.notify`` formats the text itself)."""
    return {"owner": found.owner_name, "shop": found.shop_name, "nickname": found.nickname,
            "old_html": old_owner_text(locale, found.role, owner=found.owner_name),
            "until": until_text(found.transfer.expires_at, found.tz)}


async def _cancel(ctx: Ctx, shop: Shop) -> None:
    card = await CARD.current(ctx)
    await ctx.end_flow()
    await ctx.answer()
    await CARD.show(ctx, ctx.t("transfer.cancelled"), card=card)


async def not_expected(ctx: Ctx, message: Message) -> None:
    """A sticker, a photo, a contact, or a text where only buttons are expected: the card
    says what is expected (quoting the text), above the same prompt; no message of its own."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME or draft.step not in _ASKS:
        return
    reason = ctx.t("common.need_text" if draft.step == CONFIRM else "common.use_buttons")
    typed = echo(message.text) if message.text and message.text.strip() else ""
    await _ASKS[draft.step](ctx, f"⚠️ {typed}{reason}")


# --- the pending transfer: withdraw, accept, decline -------------------------------------------


async def _show_pending(ctx: Ctx, shop: Shop, *, notice: str = "",
                        card: int | None = None) -> bool:
    """The owner's card of the shop's pending transfer, if there is one (``card``: that of the
    flow just ended, ``notice`` above it)."""
    transfer = await pending_transfer(ctx.session, shop.id or 0)
    if transfer is None:
        return False
    found = await parties(ctx.session, transfer, ctx.deps.default_time_zone)
    await CARD.show(ctx, waiting_text(ctx.locale, found),
                    withdraw_markup(ctx.locale, transfer.id or 0), notice=notice, card=card)
    return True


async def _told(ctx: Ctx, user: User | None, key: str, **params: Any) -> bool:
    """Tell the other person (committing first); whether the message arrived."""
    if user is None:
        return False
    return not isinstance(await ctx.notify(user, key, **params), Undelivered)


async def _withdraw(ctx: Ctx, transfer_id: int) -> None:
    transfer = await withdraw_transfer(ctx.session, transfer_id=transfer_id,
                                       owner_id=ctx.user_id, now=ctx.now())
    found = await parties(ctx.session, transfer, ctx.deps.default_time_zone)
    await ctx.answer()
    told = await _told(ctx, found.target, "transfer.withdrawn_target", owner=found.owner_name,
                       shop=found.shop_name)
    warning = None if told else ctx.t("transfer.other_not_told", name=found.nickname)
    await ctx.show(outcome(ctx.t("transfer.withdrawn_owner", nickname=found.nickname), warning))


async def _decline(ctx: Ctx, transfer_id: int) -> None:
    transfer = await decline_transfer(ctx.session, transfer_id=transfer_id,
                                      holder_id=ctx.user_id, now=ctx.now())
    found = await parties(ctx.session, transfer, ctx.deps.default_time_zone)
    await ctx.answer()
    told = await _told(ctx, found.owner, "transfer.declined_owner", nickname=found.nickname,
                       shop=found.shop_name)
    warning = None if told else ctx.t("transfer.other_not_told", name=found.owner_name)
    await ctx.show(outcome(ctx.t("transfer.declined_you", shop=found.shop_name), warning))


async def _accept(ctx: Ctx, transfer_id: int) -> None:
    """The target accepts: the shop is theirs; duty ended, both told, the owner menu shown."""
    done = await accept_transfer(ctx.session, transfer_id=transfer_id, holder_id=ctx.user_id,
                                 now=ctx.now())
    await ctx.router.abandon(ctx)  # the new owner's own flow (the domain ended both drafts)
    moved = await service_relay.release(ctx, shop_id=done.shop_id, user_id=done.old_owner_id,
                                        reason="transfer")
    moved.extend(await service_relay.release(ctx, shop_id=done.shop_id,
                                             user_id=done.new_owner_id, reason="transfer"))
    shop = await ctx.session.get(Shop, done.shop_id)
    if shop is not None:
        ctx.adopt_shop(shop)
    await ctx.answer()
    for code in done.cancelled_codes:
        await end_holder_message(ctx, code, "holder_code.cancelled")
    old_owner = await ctx.session.get(User, done.old_owner_id)
    params = {"nickname": done.former_nickname, "shop": done.shop_name}
    if done.old_owner_role is not None:
        key = "transfer.accepted_old_role"
        params["role"] = done.old_owner_role.name
    else:
        key = "transfer.accepted_old_left"
    name = (old_owner.first_name if old_owner is not None else "") or "—"
    told = await _told(ctx, old_owner, key, **params)
    warning = None if told else ctx.t("transfer.other_not_told", name=name)
    await ctx.show(outcome(ctx.t("transfer.accepted_new", shop=done.shop_name), warning),
                   keyboard(*ctx.router.owner_menu_rows(ctx)))
    await service_relay.announce_from(ctx, moved)


# --- the command and the buttons ---------------------------------------------------------------


async def transfer_command(ctx: Ctx) -> None:
    """/transfer (the owner menu's "Change main account"): the pending transfer, or step 1.
    The target of a pending transfer gets its request again."""
    shop = await ctx.shop_or_none()
    if shop is None:
        asked = await pending_for_target(ctx.session, ctx.user_id)
        if asked is not None:
            found = await parties(ctx.session, asked, ctx.deps.default_time_zone)
            await ctx.router.abandon(ctx)
            await ctx.reply(request_text(ctx.locale, found),
                            request_markup(ctx.locale, asked.id or 0))
            return
    if await ctx.owned_shop_or_explain("transfer.for_owners") is None:
        return
    await ctx.router.abandon(ctx)
    shop = await ctx.owned_shop()
    if await _show_pending(ctx, shop):
        return
    await ctx.router.start(ctx, NAME, TARGET, {"page": 0})


#: the conversation's own buttons: (the steps they belong to, the action)
_STEP_ACTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "pg": ((TARGET,), _page),
    "to": ((TARGET,), _choose_target),
    "ro": ((OLD,), _choose_role),
    "lv": ((OLD,), _choose_leave),
    "bk": ((OLD, CONFIRM), _back),
    "x": ((TARGET, OLD, CONFIRM), _cancel),
}
_ANSWERS = {"wd": _withdraw, "ac": _accept, "dc": _decline}
#: each step's prompt, with a notice above it
_ASKS: dict[str, Callable[[Ctx, str], Awaitable[None]]] = {
    TARGET: ask_target, OLD: ask_old, CONFIRM: ask_confirm}


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """``tr:`` buttons. The steps' buttons act only for the owner whose draft is at that step;
    Withdraw / Accept / Decline are checked by the domain (not theirs: a toast)."""
    values = [int(a) for a in args]
    try:
        if action in _ANSWERS:
            await _ANSWERS[action](ctx, *values)
            return
        steps, run = _STEP_ACTIONS[action]
        shop = await ctx.shop_or_none()
        if shop is None or not await _at(ctx, *steps):
            await ctx.stale()
            return
        await run(ctx, shop, *values)
    except DomainError as exc:
        await ctx.rollback()
        if exc.key in _STALE or (exc.key == "role_not_found" and action == "ro"):
            await ctx.stale()
            return
        if exc.key == "role_not_found":
            exc = DomainError("transfer_role_gone")
        await ctx.answer()
        await ctx.show(ctx.error_text(exc))


FLOW = Flow(
    name=NAME,
    namespace=NS,
    buttons={
        "pg": ("int",), "to": ("int",), "ro": ("int",), "lv": (), "bk": (), "x": (),
        "wd": ("int",), "ac": ("int",), "dc": ("int",),
    },
    on_button=on_button,
    steps={
        TARGET: Step(ask=ask_target, on_message=not_expected),
        OLD: Step(ask=ask_old, on_message=not_expected),
        CONFIRM: Step(ask=ask_confirm, on_text=on_name, on_message=not_expected),
    },
    commands=(Command("transfer", transfer_command, who="owner", menu_key="transfer"),),
    on_cancel=CARD.strip,
)
