"""Account management (账号管理), the owner's side: /accounts.

The list of the shop's sub-accounts (paged, with the seat count), and one account's screen
(both drawn by ``handlers.account_screens``): change role, rename (a draft-backed step), IM on /
off, suspend / resume, unbind (confirmed). Every change goes through ``models.accounts`` (which
writes the audit log); the holder is told in their own language before the owner's screen is
updated, and the owner's screen says so when the holder could not be told.

Callback data, namespace ``a`` (ids are re-checked against the presser's shop every time):
``a:pg:<page>`` list page · ``a:op:<acc>`` open · ``a:rl:<acc>`` role choice ·
``a:sr:<acc>:<role>`` set role · ``a:rn:<acc>`` rename · ``a:rx:<acc>`` cancel rename ·
``a:im:<acc>:<0|1>`` IM off / on · ``a:su:<acc>:<0|1>`` resume / suspend ·
``a:ub:<acc>`` ask to unbind · ``a:uy:<acc>`` unbind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers import service_relay
from handlers.account_screens import (
    NS,
    details_screen,
    list_screen,
    outcome,
    show_details,
    tell_holder,
)
from handlers.context import Ctx
from handlers.flow import Command, Flow, Step
from handlers.i18n import module_names, t
from handlers.keyboards import button, keyboard, rows_of
from handlers.router import cb
from models.accounts import (
    NICKNAME_MAX,
    PAGE_SIZE,
    account_position,
    change_role,
    get_account,
    holder_of,
    rename_account,
    set_im,
    set_suspended,
    unbind,
)
from models.errors import DomainError
from models.phones import mask_phone
from models.roles import get_role, list_roles
from models.tables import Shop, SubAccount

NAME = "accounts"
RENAME = "rename"


# --- the list ----------------------------------------------------------------------------------


async def show_accounts(ctx: Ctx, page: int = 0) -> None:
    """Send the shop's account list as a new message."""
    shop = await ctx.owned_shop()
    text, markup = await list_screen(ctx, shop, page)
    await ctx.reply(text, markup)


async def accounts_command(ctx: Ctx) -> None:
    """/accounts (the owner menu's "Accounts", and the list after a sub-account is added)."""
    if await ctx.owned_shop_or_explain("accounts.for_owners") is None:
        return
    await ctx.router.abandon(ctx)
    await show_accounts(ctx)


# --- button actions ----------------------------------------------------------------------------


async def _page(ctx: Ctx, shop: Shop, page: int) -> None:
    """Button: show a page of the list."""
    await ctx.answer()
    text, markup = await list_screen(ctx, shop, page)
    await ctx.show(text, markup)


async def _open(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: open an account."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    await ctx.answer()
    await show_details(ctx, shop, account)


async def _choose_role(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: offer the shop's roles for an account."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    current = await get_role(ctx.session, shop.id or 0, account.role_id)
    roles = await list_roles(ctx.session, shop.id or 0)
    lines = [ctx.t("accounts.choose_role", nickname=account.nickname,
                   phone=mask_phone(account.phone), role=current.name)]
    if len(roles) < 2:
        lines.append(ctx.t("accounts.only_role"))
    rows = rows_of([
        button(("✓ " if role.id == current.id else "") + role.name, cb(NS, "sr", account_id, role.id))
        for role, _ in roles
    ])
    await ctx.answer()
    await ctx.show("\n".join(lines),
                   keyboard(*rows, [button(ctx.t("common.back"), cb(NS, "op", account_id))]))


async def _set_role(ctx: Ctx, shop: Shop, account_id: int, role_id: int) -> None:
    """Button: give the account the chosen role and tell the holder."""
    shop_id = shop.id or 0
    account = await get_account(ctx.session, shop_id, account_id)
    before = (await get_role(ctx.session, shop_id, account.role_id)).name
    account, role = await change_role(
        ctx.session, shop_id=shop_id, actor_id=ctx.user_id, account_id=account_id,
        role_id=role_id, now=ctx.now(),
    )
    holder = await holder_of(ctx.session, account)
    locale = ctx.deps.locale_of(holder)
    modules = module_names(ctx.policy, role.modules, locale, t(locale, "accounts.sep"))
    await ctx.answer()
    # the holder first: the owner's screen may fail to update, the holder must still be told
    warning = await tell_holder(ctx, holder, account.nickname, "accounts.notify_role",
                                 shop=shop.name, role=role.name, before=before, modules=modules)
    await show_details(ctx, shop, account, outcome(
        ctx.t("accounts.done_role", before=before, after=role.name), warning))


async def _switched(ctx: Ctx, shop: Shop, account: SubAccount, what: str) -> None:
    """After IM on / off or suspend / resume: tell the holder (``accounts.notify_<what>``),
    then show the account with ``accounts.done_<what>``."""
    holder = await holder_of(ctx.session, account)
    await ctx.answer()
    warning = await tell_holder(ctx, holder, account.nickname, f"accounts.notify_{what}",
                                 shop=shop.name)
    await show_details(ctx, shop, account, outcome(
        ctx.t(f"accounts.done_{what}", nickname=account.nickname), warning))


async def _set_im(ctx: Ctx, shop: Shop, account_id: int, enabled: int) -> None:
    """Button: turn IM on or off and tell the holder."""
    if enabled not in (0, 1):
        raise DomainError("stale_button")
    account = await set_im(ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
                           account_id=account_id, enabled=bool(enabled), now=ctx.now())
    moved = [] if enabled else await service_relay.release(
        ctx, shop_id=shop.id or 0, user_id=account.holder_id, reason="im_off")
    await _switched(ctx, shop, account, "im_on" if enabled else "im_off")
    await service_relay.announce_from(ctx, moved)


async def _set_suspended(ctx: Ctx, shop: Shop, account_id: int, suspended: int) -> None:
    """Button: suspend or resume the account and tell the holder."""
    if suspended not in (0, 1):
        raise DomainError("stale_button")
    account = await set_suspended(ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
                                  account_id=account_id, suspended=bool(suspended),
                                  now=ctx.now())
    moved = await service_relay.release(ctx, shop_id=shop.id or 0, user_id=account.holder_id,
                                        reason="suspended") if suspended else []
    await _switched(ctx, shop, account, "suspended" if suspended else "resumed")
    await service_relay.announce_from(ctx, moved)


async def _ask_unbind(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: ask to confirm unbinding, naming the person."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    await ctx.answer()
    await ctx.show(
        ctx.t("accounts.unbind_confirm", nickname=account.nickname,
              phone=mask_phone(account.phone)),
        keyboard([button(ctx.t("accounts.unbind_yes"), cb(NS, "uy", account_id)),
                  button(ctx.t("common.cancel_button"), cb(NS, "op", account_id))]),
    )


async def _unbind(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: unbind (delete the membership, free the phone) and tell the holder."""
    shop_id = shop.id or 0
    account = await get_account(ctx.session, shop_id, account_id)
    holder = await holder_of(ctx.session, account)
    nickname, phone = account.nickname, mask_phone(account.phone)
    page = await account_position(ctx.session, shop_id, account_id) // PAGE_SIZE
    moved = await service_relay.release(ctx, shop_id=shop_id, user_id=account.holder_id,
                                        reason="unbound")
    await unbind(ctx.session, shop_id=shop_id, actor_id=ctx.user_id, account_id=account_id,
                 now=ctx.now())
    await ctx.answer()
    warning = await tell_holder(ctx, holder, nickname, "accounts.notify_unbound",
                                 shop=shop.name)
    text, markup = await list_screen(ctx, shop, page, outcome(
        ctx.t("accounts.done_unbound", nickname=nickname, phone=phone), warning))
    await ctx.show(text, markup)
    await service_relay.announce_from(ctx, moved)


async def _rename(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: start renaming the account."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    await ctx.router.abandon(ctx)
    await ctx.start_flow(NAME, RENAME, {"account_id": account.id})
    await ctx.answer()
    await ask_nickname(ctx)


async def _cancel_rename(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: leave the rename step."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    draft = await ctx.load_draft()
    notice = None
    if draft is not None and (draft.flow, draft.step) == (NAME, RENAME) \
            and draft.data.get("account_id") == account_id:
        await ctx.end_flow()
        notice = ctx.t("accounts.rename_cancelled")
    await ctx.answer()
    await show_details(ctx, shop, account, notice)


_ACTIONS: dict[str, Callable[..., Awaitable[None]]] = {
    "pg": _page,
    "op": _open,
    "rl": _choose_role,
    "sr": _set_role,
    "rn": _rename,
    "rx": _cancel_rename,
    "im": _set_im,
    "su": _set_suspended,
    "ub": _ask_unbind,
    "uy": _unbind,
}


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """Every ``a:`` button: only the shop's owner, only the shop's own accounts and roles."""
    shop = await ctx.shop_or_none()
    if shop is None:
        await ctx.stale()
        return
    values = [int(a) for a in args]
    try:
        await _ACTIONS[action](ctx, shop, *values)
    except DomainError as exc:
        await ctx.rollback()
        if exc.key == "nothing_changed":
            # a toggle pressed on an outdated screen: say so and show the account as it is now
            await ctx.answer(ctx.t("errors.nothing_changed"))
            shop = await ctx.owned_shop()
            await show_details(ctx, shop, await get_account(ctx.session, shop.id or 0, values[0]))
            return
        if exc.key in ("account_not_found", "role_not_found", "stale_button"):
            await ctx.stale()
            return
        raise


# --- rename: a step kept in the draft (survives a restart) ------------------------------------


async def _rename_target(ctx: Ctx) -> tuple[Shop, SubAccount] | None:
    """The shop and account the rename draft names; ends the flow if either is gone."""
    draft = await ctx.load_draft()
    raw = draft.data.get("account_id") if draft is not None else None
    shop = await ctx.shop_or_none()
    if shop is not None and isinstance(raw, int):
        try:
            return shop, await get_account(ctx.session, shop.id or 0, raw)
        except DomainError:
            pass
    await ctx.end_flow()
    await ctx.reply(ctx.t("errors.account_not_found"))
    return None


async def ask_nickname(ctx: Ctx) -> None:
    """Ask for the account's new nickname (1–30 characters)."""
    target = await _rename_target(ctx)
    if target is None:
        return
    _, account = target
    await ctx.reply(
        ctx.t("accounts.ask_nickname", nickname=account.nickname,
              phone=mask_phone(account.phone), max=NICKNAME_MAX),
        keyboard([button(ctx.t("common.cancel_button"), cb(NS, "rx", account.id))]),
    )


async def on_nickname(ctx: Ctx, text: str) -> None:
    """Rename the account; a bad nickname is explained and asked for again."""
    target = await _rename_target(ctx)
    if target is None:
        return
    shop, account = target
    before = account.nickname
    try:
        account = await rename_account(ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
                                       account_id=account.id or 0, nickname=text, now=ctx.now())
    except DomainError as exc:
        if exc.key == "nothing_changed":
            await ctx.end_flow()
            text_, markup = await details_screen(ctx, shop, account, ctx.error_text(exc))
            await ctx.reply(text_, markup)
            return
        if exc.key not in ("nickname_empty", "nickname_too_long"):
            raise
        await ctx.reply(ctx.error_text(exc))
        await ask_nickname(ctx)
        return
    await ctx.end_flow()
    name = account.nickname
    holder = await holder_of(ctx.session, account)
    warning = await tell_holder(ctx, holder, name, "accounts.notify_renamed", shop=shop.name,
                                 nickname=name)
    text_, markup = await details_screen(ctx, shop, account, outcome(
        ctx.t("accounts.done_renamed", before=before, nickname=name), warning))
    await ctx.reply(text_, markup)


FLOW = Flow(
    name=NAME,
    namespace=NS,
    buttons={
        "pg": ("int",), "op": ("int",), "rl": ("int",), "sr": ("int", "int"), "rn": ("int",),
        "rx": ("int",), "im": ("int", "int"), "su": ("int", "int"), "ub": ("int",),
        "uy": ("int",),
    },
    on_button=on_button,
    commands=(Command("accounts", accounts_command, who="owner", menu_key="accounts"),),
    steps={RENAME: Step(ask=ask_nickname, on_text=on_nickname)},
)
