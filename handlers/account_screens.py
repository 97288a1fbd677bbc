"""The screens of account management (账号管理): the list of a shop's sub-accounts and one
account's screen, and how the holder is told about a change (``handlers.accounts`` acts).

Not a conversation: /newaccount shows an account's screen too (after a second Confirm).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.access_screens import access_button
from handlers.context import Ctx
from handlers.i18n import module_names
from handlers.keyboards import button, keyboard, pager_row
from handlers.router import MENU_NS, cb
from handlers.telegram_io import Undelivered
from handlers.times import local_date, shop_zone, zone_name
from models.accounts import (
    PAGE_SIZE,
    AccountFilter,
    account_position,
    all_accounts,
    filtered_page,
    get_account,
    seats_used,
)
from models.errors import DomainError
from models.lifecycle.access import AccountState, account_state
from models.phones import mask_phone
from models.roles import get_role, list_roles
from models.tables import AccountStatus, Role, Shop, SubAccount, User

#: the callback namespace of account management
NS = "a"
#: the flow of /accounts, whose draft keeps the owner's view of the list
ACCOUNTS_FLOW = "accounts"


# --- small helpers -----------------------------------------------------------------------------


async def drafted_account(ctx: Ctx) -> tuple[Shop, SubAccount] | None:
    """The shop and the account a step's draft names (``account_id``: a rename, a typed access
    end); ends the flow, saying so, if either is gone."""
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


def status_text(ctx: Ctx, account: SubAccount) -> str:
    """已授权 / 已暂停 / 已到期, in the reader's language."""
    state = account_state(account)
    if state == AccountState.EXPIRED:
        return ctx.t("access.status_expired")
    suspended = state == AccountState.SUSPENDED
    return ctx.t("accounts.status_suspended" if suspended else "accounts.status_authorized")


def on_off(ctx: Ctx, enabled: bool) -> str:
    """The word for on or off in the owner's language."""
    return ctx.t("common.im_on" if enabled else "common.im_off")


#: the status filter's values, in the order its button goes through them ("" is any)
STATES = ("", AccountState.AUTHORIZED.value, AccountState.SUSPENDED.value,
          AccountState.EXPIRED.value)
#: the IM filter's values, in the order its button goes through them
IM_CHOICES = ("", "on", "off")
#: the longest typed filter kept
FILTER_MAX = 30


@dataclass(frozen=True)
class AccountView:
    """How the owner is looking at the list (kept in the /accounts draft): the filter — the
    text typed, a role, a status, IM — and, when selecting for a bulk change, the selection."""

    text: str = ""
    role_id: int = 0
    state: str = ""
    im: str = ""
    picking: bool = False
    selected: tuple[int, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, data: object) -> AccountView:
        """The view kept in a draft's data (anything unexpected is the default)."""
        if not isinstance(data, dict):
            return cls()
        text, role_id = data.get("text"), data.get("role_id")
        state, im, selected = data.get("state"), data.get("im"), data.get("selected")
        return cls(
            text=text[:FILTER_MAX] if isinstance(text, str) else "",
            role_id=role_id if isinstance(role_id, int) else 0,
            state=state if state in STATES and isinstance(state, str) else "",
            im=im if im in IM_CHOICES and isinstance(im, str) else "",
            picking=data.get("picking") is True,
            selected=tuple(i for i in selected if isinstance(i, int))
            if isinstance(selected, list) else (),
        )

    def data(self) -> dict[str, Any]:
        """The view as draft data."""
        return {"text": self.text, "role_id": self.role_id, "state": self.state, "im": self.im,
                "picking": self.picking, "selected": list(self.selected)}

    def where(self) -> AccountFilter:
        """The filter as the domain takes it."""
        return AccountFilter(
            text=self.text, role_id=self.role_id or None,
            state=AccountState(self.state) if self.state else None,
            im=None if not self.im else self.im == "on",
        )

    def cleared(self) -> AccountView:
        """The same view with no filter (the selection is kept)."""
        return replace(self, text="", role_id=0, state="", im="")


async def current_view(ctx: Ctx) -> AccountView:
    """The owner's view of the list: the one kept in the /accounts draft, or the whole list."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != ACCOUNTS_FLOW:
        return AccountView()
    return AccountView.of(draft.data.get("view"))


async def page_in_view(ctx: Ctx, shop: Shop, view: AccountView, account_id: int) -> int:
    """The page of the list ``view`` shows that holds the account — or, when the view no
    longer shows it (suspended out of a status filter, renamed out of a typed one, unbound),
    the page it was on, among the accounts that come before it."""
    where = view.where()
    if not where.active:
        return await account_position(ctx.session, shop.id or 0, account_id) // PAGE_SIZE
    before = sum(1 for a, _ in await all_accounts(ctx.session, shop.id or 0)
                 if (a.id or 0) < account_id and where.matches(a))
    return before // PAGE_SIZE


def filter_line(ctx: Ctx, view: AccountView, role_name: str | None) -> str:
    """What is filtered, in words ("Filter: “0022” · Suspended")."""
    parts = []
    if view.text:
        parts.append(ctx.t("accounts.filter_text", text=view.text))
    if role_name is not None:
        parts.append(ctx.t("accounts.filter_role", role=role_name))
    if view.state:
        parts.append(ctx.t(f"accounts.filter_state_{view.state}"))
    if view.im:
        parts.append(ctx.t(f"accounts.filter_im_{view.im}"))
    return ctx.t("accounts.filter_line", what=ctx.t("accounts.filter_sep").join(parts))


async def list_screen(
    ctx: Ctx, shop: Shop, page: int, notice: str | None = None,
    view: AccountView | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """The shop's sub-accounts that ``view`` shows, one page (clamped to the pages there are),
    with the filter buttons, and the selection's buttons while selecting."""
    view = view or AccountView()
    where = view.where()
    listed = await filtered_page(ctx.session, shop.id or 0, page, where)
    rows, total, page, pages = listed.rows, listed.total, listed.page, listed.pages
    used = await seats_used(ctx.session, shop.id or 0) if where.active else total
    role_name = None
    if view.role_id:
        role_name = next((r.name for r in await _roles(ctx, shop) if r.id == view.role_id),
                         None)
    lines = [notice, ""] if notice else []
    lines.append(ctx.t("accounts.title", shop=shop.name, used=used, cap=shop.max_sub_accounts))
    if where.active:
        lines.append(filter_line(ctx, view, role_name))
        lines.append(ctx.t("accounts.filter_shown", shown=total, total=used))
    if view.picking:
        lines.append(ctx.t("accounts.selected", n=len(view.selected)))
    if pages > 1:
        lines.append(ctx.t("accounts.page", page=page + 1, pages=pages))
    lines.append("")
    if not rows:
        lines.append(ctx.t("accounts.filter_none" if where.active else "accounts.empty"))
    for number, (account, role) in enumerate(rows, start=page * PAGE_SIZE + 1):
        lines.append(ctx.t(
            "accounts.row", n=number, nickname=account.nickname, phone=mask_phone(account.phone),
            role=role.name, im=on_off(ctx, account.im_enabled), status=status_text(ctx, account),
        ))
    if rows:
        lines += ["", ctx.t("accounts.pick_hint" if view.picking else "accounts.open_hint")]
    if used:
        lines.append(ctx.t("accounts.filter_hint"))
    if view.picking:
        chosen = set(view.selected)
        account_rows = [[button(("☑️ " if account.id in chosen else "☐ ")
                                + _account_label(account), cb(NS, "tg", account.id))]
                        for account, _ in rows]
    else:
        account_rows = [[button(_account_label(account), cb(NS, "op", account.id))]
                        for account, _ in rows]
    nav = pager_row(page, pages, previous=ctx.t("accounts.prev"), following=ctx.t("accounts.next"),
                    data=lambda to: cb(NS, "pg", to))
    markup_rows: list[list[InlineKeyboardButton]] = [*account_rows, nav]
    if used:
        markup_rows += _filter_rows(ctx, view, role_name, where.active)
        markup_rows += _selection_rows(ctx, view, total)
    extra: list[InlineKeyboardButton] = []
    if ctx.router.has_menu("newaccount") and used < shop.max_sub_accounts and not view.picking:
        extra.append(button(ctx.t("home.menu_newaccount"), cb(MENU_NS, "newaccount")))
    return "\n".join(lines), keyboard(*markup_rows, extra)


async def _roles(ctx: Ctx, shop: Shop) -> list[Role]:
    return [role for role, _ in await list_roles(ctx.session, shop.id or 0)]


def _filter_rows(
    ctx: Ctx, view: AccountView, role_name: str | None, active: bool
) -> list[list[InlineKeyboardButton]]:
    """🧩 role · status · IM (each says what it filters now), and ✖️ to clear the filter."""
    state = ctx.label(f"accounts.filter_state_{view.state}") if view.state \
        else ctx.label("accounts.filter_any_state")
    im = ctx.label(f"accounts.filter_im_{view.im}") if view.im \
        else ctx.label("accounts.filter_any_im")
    rows = [[
        button(ctx.label("accounts.filter_role_button", role=role_name
                         or ctx.label("accounts.filter_any_role")), cb(NS, "fr")),
        button(ctx.label("accounts.filter_state_button", what=state), cb(NS, "fs")),
        button(ctx.label("accounts.filter_im_button", what=im), cb(NS, "fi")),
    ]]
    if active:
        rows.append([button(ctx.label("accounts.filter_clear"), cb(NS, "fx"))])
    return rows


def _selection_rows(ctx: Ctx, view: AccountView, shown: int) -> list[list[InlineKeyboardButton]]:
    """☑️ Select (not selecting), or the bulk actions on the selection (selecting)."""
    if not view.picking:
        return [[button(ctx.label("accounts.pick_start"), cb(NS, "sm"))]]
    n = len(view.selected)
    rows = []
    if n:
        rows.append([button(ctx.label("accounts.bulk_suspend", n=n), cb(NS, "bk", "suspend")),
                     button(ctx.label("accounts.bulk_resume", n=n), cb(NS, "bk", "resume"))])
        rows.append([button(ctx.label("accounts.bulk_role", n=n), cb(NS, "bk", "role"))])
    pick = [button(ctx.label("accounts.pick_all", n=shown), cb(NS, "ta"))] if shown else []
    if n:
        pick.append(button(ctx.label("accounts.pick_none"), cb(NS, "tn")))
    rows.append(pick)
    rows.append([button(ctx.label("accounts.pick_done"), cb(NS, "sm"))])
    return rows


def _account_label(account: SubAccount) -> str:
    """A button label (plain text, not HTML)."""
    mark = {AccountState.SUSPENDED: "⏸ ", AccountState.EXPIRED: "⌛ "}.get(
        account_state(account), "")
    return f"{mark}{account.nickname} · {mask_phone(account.phone)}"


async def details_screen(
    ctx: Ctx, shop: Shop, account: SubAccount, notice: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """One sub-account and what the owner can do with it. "⬅️ All accounts" goes back to the
    list as the owner's view has it (filtered or not), on the page that holds the account."""
    shop_id = shop.id or 0
    role = await get_role(ctx.session, shop_id, account.role_id)
    page = await page_in_view(ctx, shop, await current_view(ctx), account.id or 0)
    lines = [notice, ""] if notice else []
    lines.append(ctx.t(
        "accounts.details", nickname=account.nickname, phone=mask_phone(account.phone),
        role=role.name,
        modules=module_names(ctx.policy, role.modules, ctx.locale, ctx.t("accounts.sep")),
        im=on_off(ctx, account.im_enabled), status=status_text(ctx, account),
        since=local_date(account.created_at, shop_zone(shop, ctx.deps.default_time_zone)),
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
        [access_button(ctx.locale, account, zone_name(shop, ctx.deps.default_time_zone))],
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
