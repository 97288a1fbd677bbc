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

The list is filtered while /accounts is open (its draft, step ``browse``, keeps the view): a
typed text (a part of a nickname, or the last digits of a phone) · ``a:fr`` role choice ·
``a:fo:<role>`` role (0: any) · ``a:fs`` / ``a:fi`` the next status / IM value · ``a:fx`` clear.
A selection for bulk changes: ``a:sm`` start / stop selecting · ``a:tg:<acc>`` (un)select ·
``a:ta`` select all shown · ``a:tn`` none · ``a:bk:<suspend|resume|role>`` ask ·
``a:bp:<role>`` the role for all · ``a:by`` confirm · ``a:bn`` back. The bulk changes run in
``models.bulk`` (one transaction, an outcome per account); each holder changed is told once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from handlers import service_relay
from handlers.account_screens import (
    ACCOUNTS_FLOW,
    FILTER_MAX,
    IM_CHOICES,
    NS,
    STATES,
    AccountView,
    current_view,
    details_screen,
    drafted_account,
    list_screen,
    outcome,
    page_in_view,
    show_details,
    tell_holder,
)
from handlers.context import Ctx
from handlers.flow import Command, Flow, Step
from handlers.i18n import module_names, plural_key, t
from handlers.keyboards import button, keyboard, rows_of
from handlers.router import MENU_NS, cb
from models.accounts import (
    NICKNAME_MAX,
    all_accounts,
    change_role,
    get_account,
    holder_of,
    rename_account,
    set_im,
    set_suspended,
    unbind,
)
from models.bulk import Outcome, Result, bulk_change_role, bulk_set_suspended
from models.errors import DomainError
from models.phones import mask_phone
from models.roles import get_role, list_roles
from models.tables import Role, Shop, SubAccount

NAME = ACCOUNTS_FLOW
RENAME = "rename"
BROWSE = "browse"


# --- the list ----------------------------------------------------------------------------------


async def show_accounts(ctx: Ctx, page: int = 0) -> None:
    """Send the shop's account list (as the owner's view has it) as a new message."""
    shop = await ctx.owned_shop()
    text, markup = await list_screen(ctx, shop, page, view=await current_view(ctx))
    await ctx.reply(text, markup)


async def accounts_command(ctx: Ctx) -> None:
    """/accounts (the owner menu's "Accounts", and the list after a sub-account is added):
    the whole list. Opened by the owner (the command or the menu button), the list is open —
    what they type next filters it; shown at the end of another flow (after Confirm) it leaves
    no draft behind, and its filter buttons open it."""
    if await ctx.owned_shop_or_explain("accounts.for_owners") is None:
        return
    query = ctx.update.callback_query
    asked = query is None or query.data == cb(MENU_NS, "accounts")
    await ctx.router.abandon(ctx)
    if asked:
        await ctx.start_flow(NAME, BROWSE, {"view": AccountView().data()})
    await show_accounts(ctx)


async def _keep_view(ctx: Ctx, view: AccountView, **data: Any) -> bool:
    """Keep ``view`` in the /accounts draft (starting it if the owner is in no flow); ``False``
    (and a "no longer valid" toast) when the owner has gone on to another flow meanwhile,
    which a list's button must not discard."""
    draft = await ctx.load_draft()
    if draft is not None and draft.flow != NAME:
        await ctx.stale()
        return False
    step = draft.step if draft is not None else BROWSE
    await ctx.goto(NAME, step, {"view": view.data(), **data})
    return True


async def _show_view(ctx: Ctx, shop: Shop, view: AccountView, page: int = 0,
                     notice: str | None = None) -> None:
    """Keep the view and show the list as it has it (answering the press)."""
    if not await _keep_view(ctx, view, bulk=None, page=page):
        return
    await ctx.answer()
    text, markup = await list_screen(ctx, shop, page, notice, view=view)
    await ctx.show(text, markup)


def clean_filter(raw: str) -> str:
    """A typed filter: one line, spaces folded, at most ``FILTER_MAX`` characters."""
    folded = " ".join(unicodedata.normalize("NFC", raw).split())
    return folded[:FILTER_MAX]


async def ask_filter(ctx: Ctx) -> None:
    """The browse step asked again (after a restart): the list as the view has it."""
    await show_accounts(ctx)


async def on_filter(ctx: Ctx, text: str) -> None:
    """A text typed while /accounts is open: the list filtered by it (a part of a nickname or
    the last digits of a phone), as a new message; the typed text replaces the previous one."""
    shop = await ctx.shop_or_none()
    if shop is None:
        await ctx.end_flow()
        await ctx.reply(ctx.t("errors.no_shop"))
        return
    view = replace(await current_view(ctx), text=clean_filter(text))
    await ctx.goto(NAME, BROWSE, {"view": view.data(), "bulk": None, "page": 0})
    text_, markup = await list_screen(ctx, shop, 0, view=view)
    await ctx.reply(text_, markup)


# --- button actions ----------------------------------------------------------------------------


async def _page(ctx: Ctx, shop: Shop, page: int) -> None:
    """Button: show a page of the list (as the owner's view has it)."""
    draft = await ctx.load_draft()
    if draft is not None and (draft.flow, draft.step) == (NAME, BROWSE):
        await ctx.goto(NAME, BROWSE, {"page": page})
    await ctx.answer()
    text, markup = await list_screen(ctx, shop, page, view=await current_view(ctx))
    await ctx.show(text, markup)


async def _filter_roles(ctx: Ctx, shop: Shop) -> None:
    """Button: the roles to filter by (and "any role")."""
    view = await current_view(ctx)
    roles = await list_roles(ctx.session, shop.id or 0)
    await ctx.answer()
    rows = rows_of([
        button(("✓ " if role.id == view.role_id else "") + role.name, cb(NS, "fo", role.id))
        for role, _ in roles
    ])
    await ctx.show(ctx.t("accounts.filter_choose_role"), keyboard(
        *rows,
        [button(("✓ " if not view.role_id else "") + ctx.label("accounts.filter_any_role"),
                cb(NS, "fo", 0))],
    ))


async def _filter_role(ctx: Ctx, shop: Shop, role_id: int) -> None:
    """Button: show only the accounts with this role (0: any role)."""
    if role_id:
        await get_role(ctx.session, shop.id or 0, role_id)
    await _show_view(ctx, shop, replace(await current_view(ctx), role_id=role_id))


async def _filter_state(ctx: Ctx, shop: Shop) -> None:
    """Button: the next status to filter by (any → authorized → suspended → expired)."""
    view = await current_view(ctx)
    state = STATES[(STATES.index(view.state) + 1) % len(STATES)]
    await _show_view(ctx, shop, replace(view, state=state))


async def _filter_im(ctx: Ctx, shop: Shop) -> None:
    """Button: the next IM value to filter by (any → on → off)."""
    view = await current_view(ctx)
    im = IM_CHOICES[(IM_CHOICES.index(view.im) + 1) % len(IM_CHOICES)]
    await _show_view(ctx, shop, replace(view, im=im))


async def _filter_clear(ctx: Ctx, shop: Shop) -> None:
    """Button ✖️: the whole list again (a selection is kept)."""
    await _show_view(ctx, shop, (await current_view(ctx)).cleared())


# --- the selection and the bulk changes ------------------------------------------------------


async def _page_of(ctx: Ctx) -> int:
    """The page the list was on (for a toggle, which redraws it in place)."""
    draft = await ctx.load_draft()
    page = draft.data.get("page") if draft is not None and draft.flow == NAME else 0
    return page if isinstance(page, int) else 0


async def _pick_mode(ctx: Ctx, shop: Shop) -> None:
    """Button: start selecting accounts for a bulk change, or stop (the selection is dropped)."""
    view = await current_view(ctx)
    await _show_view(ctx, shop, replace(view, picking=not view.picking, selected=()))


async def _toggle(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button ☐ / ☑️: select or unselect one account (the list stays on its page)."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    view = await current_view(ctx)
    chosen = list(view.selected)
    if account.id in chosen:
        chosen.remove(account.id)
    else:
        chosen.append(account.id or 0)
    page = await page_in_view(ctx, shop, view, account_id)
    await _show_view(ctx, shop, replace(view, picking=True, selected=tuple(chosen)), page)


async def _pick_all(ctx: Ctx, shop: Shop) -> None:
    """Button: select every account the list shows (all its pages), keeping earlier picks."""
    view = await current_view(ctx)
    where = view.where()
    shown = [a.id or 0 for a, _ in await all_accounts(ctx.session, shop.id or 0)
             if where.matches(a)]
    chosen = list(view.selected) + [i for i in shown if i not in view.selected]
    await _show_view(ctx, shop, replace(view, picking=True, selected=tuple(chosen)))


async def _pick_none(ctx: Ctx, shop: Shop) -> None:
    """Button: clear the selection."""
    await _show_view(ctx, shop, replace(await current_view(ctx), selected=()))


async def _selection(ctx: Ctx, shop: Shop, view: AccountView) -> dict[int, SubAccount]:
    """The selected accounts still in the shop, by id, in the order picked."""
    found = {a.id or 0: a for a, _ in await all_accounts(ctx.session, shop.id or 0)}
    return {i: found[i] for i in view.selected if i in found}


def plural(ctx: Ctx, key: str, n: int, /, **params: Any) -> str:
    """``<key>_one`` or ``<key>_other`` with ``{n}`` (English has the two forms)."""
    return ctx.t(plural_key(key, n), n=n, **params)


async def _bulk_ask(ctx: Ctx, shop: Shop, op: str) -> None:
    """Button: Suspend / Resume (asks to confirm) or Change role (asks for the role) for the
    whole selection."""
    view = await current_view(ctx)
    chosen = await _selection(ctx, shop, view)
    if not chosen or op not in ("suspend", "resume", "role"):
        await ctx.stale()
        return
    if op == "role":
        roles = await list_roles(ctx.session, shop.id or 0)
        if not await _keep_view(ctx, view, bulk=None):
            return
        await ctx.answer()
        rows = rows_of([button(role.name, cb(NS, "bp", role.id)) for role, _ in roles])
        await ctx.show(plural(ctx, "accounts.bulk_choose_role", len(chosen)), keyboard(
            *rows, [button(ctx.t("common.cancel_button"), cb(NS, "bn"))]))
        return
    await _confirm(ctx, view, chosen, {"op": op},
                   plural(ctx, f"accounts.bulk_confirm_{op}", len(chosen)),
                   ctx.label(f"accounts.bulk_yes_{op}", n=len(chosen)))


async def _bulk_role(ctx: Ctx, shop: Shop, role_id: int) -> None:
    """Button: the role for the whole selection; asks to confirm."""
    role = await get_role(ctx.session, shop.id or 0, role_id)
    view = await current_view(ctx)
    chosen = await _selection(ctx, shop, view)
    if not chosen:
        await ctx.stale()
        return
    await _confirm(ctx, view, chosen, {"op": "role", "role_id": role.id},
                   plural(ctx, "accounts.bulk_confirm_role", len(chosen), role=role.name),
                   ctx.label("accounts.bulk_yes_role", n=len(chosen)))


async def _confirm(ctx: Ctx, view: AccountView, chosen: dict[int, SubAccount],
                   bulk: dict[str, Any], question: str, yes: str) -> None:
    """The one confirm screen of a bulk change: what, for whom, that each is told."""
    names_ = [[i, a.nickname] for i, a in chosen.items()]  # to name those gone meanwhile
    if not await _keep_view(ctx, view, bulk={**bulk, "ids": list(chosen), "names": names_}):
        return
    names = ctx.t("accounts.sep").join(a.nickname for a in chosen.values())
    await ctx.answer()
    await ctx.show(
        "\n\n".join([question, ctx.t("accounts.bulk_who", names=names),
                      ctx.t("accounts.bulk_told")]),
        keyboard([button(yes, cb(NS, "by")),
                  button(ctx.t("common.cancel_button"), cb(NS, "bn"))]),
    )


async def _bulk_back(ctx: Ctx, shop: Shop) -> None:
    """Button: back from the bulk change's role choice or confirm screen, nothing changed."""
    await _show_view(ctx, shop, await current_view(ctx), await _page_of(ctx))


async def _bulk_do(ctx: Ctx, shop: Shop) -> None:
    """Button: confirmed. Make the change for every account confirmed, tell each one changed,
    and show the list with what happened to each."""
    draft = await ctx.load_draft()
    bulk = draft.data.get("bulk") if draft is not None and draft.flow == NAME else None
    if not isinstance(bulk, dict) or not isinstance(bulk.get("ids"), list):
        await ctx.stale()  # confirmed already, or the screen is an old one
        return
    view = await current_view(ctx)
    shop_id, op = shop.id or 0, str(bulk.get("op"))
    ids = [i for i in bulk["ids"] if isinstance(i, int)]
    names = {pair[0]: str(pair[1]) for pair in bulk.get("names") or []
             if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int)}
    role: Role | None = None
    if op == "role":
        role, outcomes = await bulk_change_role(
            ctx.session, shop_id=shop_id, actor_id=ctx.user_id, account_ids=ids,
            role_id=int(bulk.get("role_id") or 0), now=ctx.now())
    elif op in ("suspend", "resume"):
        outcomes = await bulk_set_suspended(
            ctx.session, shop_id=shop_id, actor_id=ctx.user_id, account_ids=ids,
            suspended=op == "suspend", now=ctx.now())
    else:
        await ctx.stale()
        return
    moved = service_relay.Owed()
    if op == "suspend":
        for o in outcomes:
            if o.result is Result.CHANGED and o.account is not None:
                moved.extend(await service_relay.release(ctx, shop_id=shop_id,
                                                         user_id=o.account.holder_id,
                                                         reason="suspended"))
    await ctx.goto(NAME, BROWSE, {"view": replace(view, picking=False, selected=()).data(),
                                  "bulk": None})
    await ctx.answer()
    missed = await _tell_changed(ctx, shop, op, role, outcomes)
    notice = _bulk_outcome(ctx, op, role, outcomes, names, missed)
    text, markup = await list_screen(ctx, shop, 0, notice,
                                     view=replace(view, picking=False, selected=()))
    await ctx.show(text, markup)
    await service_relay.announce_from(ctx, moved)


async def _tell_changed(ctx: Ctx, shop: Shop, op: str, role: Role | None,
                        outcomes: list[Outcome]) -> list[str]:
    """Tell every holder whose account changed, one message each; the nicknames of those who
    could not be told."""
    missed = []
    for o in outcomes:
        if o.result is not Result.CHANGED or o.account is None:
            continue
        holder = await holder_of(ctx.session, o.account)
        if op == "role" and role is not None:
            locale = ctx.deps.locale_of(holder)
            modules = module_names(ctx.policy, role.modules, locale, t(locale, "accounts.sep"))
            warning = await tell_holder(ctx, holder, o.account.nickname, "accounts.notify_role",
                                        shop=shop.name, role=role.name, before=o.before or "",
                                        modules=modules)
        else:
            key = "accounts.notify_suspended" if op == "suspend" else "accounts.notify_resumed"
            warning = await tell_holder(ctx, holder, o.account.nickname, key, shop=shop.name)
        if warning is not None:
            missed.append(o.account.nickname)
    return missed


def _bulk_outcome(ctx: Ctx, op: str, role: Role | None, outcomes: list[Outcome],
                  names: dict[int, str], missed: list[str]) -> str:
    """The result line of a bulk change, and what happened to the accounts it did not change."""
    sep = ctx.t("accounts.sep")

    def named(result: Result) -> list[Outcome]:
        return [o for o in outcomes if o.result is result]

    def who(group: list[Outcome]) -> str:
        return sep.join(o.account.nickname if o.account is not None
                        else names.get(o.account_id, f"#{o.account_id}") for o in group)

    changed = named(Result.CHANGED)
    lines = [plural(ctx, f"accounts.bulk_done_{op}", len(outcomes), done=len(changed),
                    role=role.name if role is not None else "")]
    if unchanged := named(Result.UNCHANGED):
        lines.append(ctx.t(f"accounts.bulk_unchanged_{op}", names=who(unchanged),
                           role=role.name if role is not None else ""))
    if gone := named(Result.GONE):
        lines.append(ctx.t("accounts.bulk_gone", names=who(gone)))
    for o in named(Result.REFUSED):
        assert o.error is not None
        lines.append(ctx.t("accounts.bulk_refused", names=who([o]),
                           why=ctx.label(f"errors.{o.error.key}", **o.error.params)))
    if missed:
        lines.append(ctx.t("accounts.bulk_not_told", names=sep.join(missed)))
    return "\n".join(lines)


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
        button(("✓ " if role.id == current.id else "") + role.name,
               cb(NS, "sr", account_id, role.id))
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
    moved = service_relay.Owed() if enabled else await service_relay.release(
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
                                        reason="suspended") if suspended else service_relay.Owed()
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
    """Button: unbind (delete the membership, free the phone) and tell the holder; then the
    list as the owner's view has it, on the page the account was on."""
    shop_id = shop.id or 0
    account = await get_account(ctx.session, shop_id, account_id)
    holder = await holder_of(ctx.session, account)
    nickname, phone = account.nickname, mask_phone(account.phone)
    view = await current_view(ctx)
    page = await page_in_view(ctx, shop, view, account_id)
    moved = await service_relay.release(ctx, shop_id=shop_id, user_id=account.holder_id,
                                        reason="unbound")
    await unbind(ctx.session, shop_id=shop_id, actor_id=ctx.user_id, account_id=account_id,
                 now=ctx.now())
    await ctx.answer()
    warning = await tell_holder(ctx, holder, nickname, "accounts.notify_unbound",
                                 shop=shop.name)
    text, markup = await list_screen(ctx, shop, page, outcome(
        ctx.t("accounts.done_unbound", nickname=nickname, phone=phone), warning), view=view)
    await ctx.show(text, markup)
    await service_relay.announce_from(ctx, moved)


async def _rename(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: start renaming the account."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    draft = await ctx.load_draft()
    if draft is not None and draft.flow == NAME:  # the list's view is kept for afterwards
        await ctx.goto(NAME, RENAME, {"account_id": account.id})
    else:
        await ctx.router.abandon(ctx)
        await ctx.start_flow(NAME, RENAME, {"account_id": account.id})
    await ctx.answer()
    await ask_nickname(ctx)


async def _end_rename(ctx: Ctx) -> None:
    """Leave the rename step: back to the list's view if /accounts was open, else no flow."""
    draft = await ctx.load_draft()
    if draft is not None and draft.flow == NAME and "view" in draft.data:
        await ctx.goto(NAME, BROWSE, {"account_id": None})
    else:
        await ctx.end_flow()


async def _cancel_rename(ctx: Ctx, shop: Shop, account_id: int) -> None:
    """Button: leave the rename step."""
    account = await get_account(ctx.session, shop.id or 0, account_id)
    draft = await ctx.load_draft()
    notice = None
    if draft is not None and (draft.flow, draft.step) == (NAME, RENAME) \
            and draft.data.get("account_id") == account_id:
        await _end_rename(ctx)
        notice = ctx.t("accounts.rename_cancelled")
    await ctx.answer()
    await show_details(ctx, shop, account, notice)


_ACTIONS: dict[str, Callable[..., Awaitable[None]]] = {
    "pg": _page,
    "fr": _filter_roles,
    "fo": _filter_role,
    "fs": _filter_state,
    "fi": _filter_im,
    "fx": _filter_clear,
    "sm": _pick_mode,
    "tg": _toggle,
    "ta": _pick_all,
    "tn": _pick_none,
    "bk": _bulk_ask,
    "bp": _bulk_role,
    "by": _bulk_do,
    "bn": _bulk_back,
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
    values: list[Any] = [a if action == "bk" else int(a) for a in args]
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


async def ask_nickname(ctx: Ctx) -> None:
    """Ask for the account's new nickname (1–30 characters)."""
    target = await drafted_account(ctx)
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
    target = await drafted_account(ctx)
    if target is None:
        return
    shop, account = target
    before = account.nickname
    try:
        account = await rename_account(ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
                                       account_id=account.id or 0, nickname=text, now=ctx.now())
    except DomainError as exc:
        if exc.key == "nothing_changed":
            await _end_rename(ctx)
            text_, markup = await details_screen(ctx, shop, account, ctx.error_text(exc))
            await ctx.reply(text_, markup)
            return
        if exc.key not in ("nickname_empty", "nickname_too_long"):
            raise
        await ctx.reply(ctx.error_text(exc))
        await ask_nickname(ctx)
        return
    await _end_rename(ctx)
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
        "uy": ("int",), "fr": (), "fo": ("int",), "fs": (), "fi": (), "fx": (), "sm": (),
        "tg": ("int",), "ta": (), "tn": (), "bk": ("key",), "bp": ("int",), "by": (), "bn": (),
    },
    on_button=on_button,
    commands=(Command("accounts", accounts_command, who="owner", menu_key="accounts"),),
    steps={RENAME: Step(ask=ask_nickname, on_text=on_nickname),
           BROWSE: Step(ask=ask_filter, on_text=on_filter)},
)
