"""The screens of account management (账号管理): the list of a shop's sub-accounts and one
account's screen, and how the holder is told about a change (``handlers.accounts`` acts).

Not a conversation: /newaccount shows an account's screen too (after a second Confirm).
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.access_screens import access_button
from handlers.context import Ctx
from handlers.i18n import module_names
from handlers.keyboards import button, keyboard, pager_row
from handlers.router import MENU_NS, cb
from handlers.telegram_io import Undelivered
from models.accounts import PAGE_SIZE, account_position, accounts_page
from models.lifecycle.access import AccountState, account_state
from models.phones import mask_phone
from models.roles import get_role
from models.tables import AccountStatus, Shop, SubAccount, User

#: the callback namespace of account management
NS = "a"


# --- small helpers -----------------------------------------------------------------------------


def status_text(ctx: Ctx, account: SubAccount) -> str:
    """已授权 / 已暂停 / 已到期, in the reader's language."""
    state = account_state(account)
    if state == AccountState.EXPIRED:
        return ctx.t("access.status_expired")
    suspended = state == AccountState.SUSPENDED
    return ctx.t("accounts.status_suspended" if suspended else "accounts.status_authorized")


def on_off(ctx: Ctx, enabled: bool) -> str:
    """The word for on or off in the owner's language."""
    return ctx.t("common.on" if enabled else "common.off")


async def list_screen(
    ctx: Ctx, shop: Shop, page: int, notice: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """The shop's sub-accounts, one page (clamped to the pages there are)."""
    listed = await accounts_page(ctx.session, shop.id or 0, page)
    rows, total, page, pages = listed.rows, listed.total, listed.page, listed.pages
    lines = [notice, ""] if notice else []
    lines.append(ctx.t("accounts.title", shop=shop.name, used=total, cap=shop.max_sub_accounts))
    if pages > 1:
        lines.append(ctx.t("accounts.page", page=page + 1, pages=pages))
    lines.append("")
    if not rows:
        lines.append(ctx.t("accounts.empty"))
    for number, (account, role) in enumerate(rows, start=page * PAGE_SIZE + 1):
        lines.append(ctx.t(
            "accounts.row", n=number, nickname=account.nickname, phone=mask_phone(account.phone),
            role=role.name, im=on_off(ctx, account.im_enabled), status=status_text(ctx, account),
        ))
    if rows:
        lines += ["", ctx.t("accounts.open_hint")]
    account_rows = [[button(_account_label(account), cb(NS, "op", account.id))]
                    for account, _ in rows]
    nav = pager_row(page, pages, previous=ctx.t("accounts.prev"), following=ctx.t("accounts.next"),
                    data=lambda to: cb(NS, "pg", to))
    extra: list[InlineKeyboardButton] = []
    if ctx.router.has_menu("newaccount") and total < shop.max_sub_accounts:
        extra.append(button(ctx.t("home.menu_newaccount"), cb(MENU_NS, "newaccount")))
    return "\n".join(lines), keyboard(*account_rows, nav, extra)


def _account_label(account: SubAccount) -> str:
    """A button label (plain text, not HTML)."""
    mark = {AccountState.SUSPENDED: "⏸ ", AccountState.EXPIRED: "⌛ "}.get(
        account_state(account), "")
    return f"{mark}{account.nickname} · {mask_phone(account.phone)}"


async def details_screen(
    ctx: Ctx, shop: Shop, account: SubAccount, notice: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """One sub-account and what the owner can do with it."""
    shop_id = shop.id or 0
    role = await get_role(ctx.session, shop_id, account.role_id)
    page = await account_position(ctx.session, shop_id, account.id or 0) // PAGE_SIZE
    lines = [notice, ""] if notice else []
    lines.append(ctx.t(
        "accounts.details", nickname=account.nickname, phone=mask_phone(account.phone),
        role=role.name,
        modules=module_names(ctx.policy, role.modules, ctx.locale, ctx.t("accounts.sep")),
        im=on_off(ctx, account.im_enabled), status=status_text(ctx, account),
        since=account.created_at.strftime("%Y-%m-%d"),
    ))
    acc = account.id
    suspended = account.status == AccountStatus.SUSPENDED.value
    markup = keyboard(
        [button(ctx.t("accounts.change_role"), cb(NS, "rl", acc)),
         button(ctx.t("accounts.rename"), cb(NS, "rn", acc))],
        [button(ctx.t("accounts.im_turn_off" if account.im_enabled else "accounts.im_turn_on"),
                cb(NS, "im", acc, 0 if account.im_enabled else 1)),
         button(ctx.t("accounts.resume" if suspended else "accounts.suspend"),
                cb(NS, "su", acc, 0 if suspended else 1))],
        [access_button(ctx.locale, account, shop.time_zone)],
        [button(ctx.t("accounts.unbind"), cb(NS, "ub", acc))],
        [button(ctx.t("accounts.back_to_list"), cb(NS, "pg", page))],
    )
    return "\n".join(lines), markup


async def show_details(
    ctx: Ctx, shop: Shop, account: SubAccount, notice: str | None = None
) -> None:
    """Show one account's screen (with an optional notice)."""
    text, markup = await details_screen(ctx, shop, account, notice)
    await ctx.show(text, markup)


async def tell_holder(
    ctx: Ctx, holder: User | None, holder_name: str, key: str, /, **params: Any
) -> str | None:
    """Tell the holder in their language (the change is committed first); ``None`` when they
    were told, else the line that tells the owner plainly they were not."""
    sent = await ctx.notify(holder, key, **params) if holder is not None else Undelivered.BLOCKED
    if sent is Undelivered.FAILED:
        return ctx.t("accounts.not_notified_failed", nickname=holder_name)
    if sent is Undelivered.BLOCKED:
        return ctx.t("accounts.not_notified", nickname=holder_name)
    return None


def outcome(done: str, warning: str | None) -> str:
    """What the owner's screen says after a change: done, and whether the holder knows."""
    return f"{done}\n{warning}" if warning else done
