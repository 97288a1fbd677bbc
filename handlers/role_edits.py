"""The role editor's edits of one role — rename, description, permissions — and what every
step of the editor shares (its draft data and nonce, its buttons). The editor's flow and its
literal are in ``handlers.role_editor``.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton

from handlers.card import with_notice
from handlers.context import Ctx
from handlers.i18n import label, module_names, plural_key
from handlers.keyboards import button, keyboard
from handlers.role_screens import show_list, show_role
from handlers.router import cb
from handlers.telegram_io import Undelivered
from models.errors import DomainError
from models.roles import (
    ROLE_DESCRIPTION_MAX,
    ROLE_NAME_MAX,
    get_role,
    rename_role,
    role_holders,
    set_description,
    set_modules,
)
from models.tables import Role, Shop

NAME = "roles"
NS = "rn"
#: errors a typed name can get; the user is told why and asked again
NAME_ERRORS = ("role_name_empty", "role_name_too_long", "role_name_taken")


# --- shared by every step ---------------------------------------------------------------------


async def flow_data(ctx: Ctx) -> dict[str, Any]:
    """The flow's draft data (empty if the user is elsewhere). A flow just started gets its
    nonce here, which ties its buttons to this draft."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME:
        return {}
    if "n" not in draft.data:
        await ctx.goto(NAME, draft.step, {"n": secrets.randbelow(1_000_000)})
        draft = await ctx.load_draft()
        assert draft is not None
    return dict(draft.data)


def fbtn(ctx: Ctx, key: str, action: str, nonce: int, *args: object,
         **params: Any) -> InlineKeyboardButton:
    """A button of the flow, tied to this draft by its nonce."""
    return button(ctx.label(key, **params), cb(NS, action, nonce, *args))


def why(ctx: Ctx, exc: DomainError) -> str:
    """Why an input was refused, to put above the same prompt."""
    return "⚠️ " + ctx.error_text(exc)


async def role_gone(ctx: Ctx) -> None:
    """The role an edit was about has been deleted meanwhile: end the edit, show the list."""
    await ctx.end_flow()
    if ctx.update.callback_query is not None:
        await ctx.stale()
    await show_list(ctx, 0, notice=ctx.t("errors.role_not_found"))


# --- edits ------------------------------------------------------------------------------------


async def edited_role(ctx: Ctx) -> tuple[Shop, Role] | None:
    """The shop and the role being edited, or ``None`` (the edit ended) if it is gone."""
    shop = await ctx.owned_shop()
    data = await flow_data(ctx)
    try:
        return shop, await get_role(ctx.session, shop.id or 0, int(data.get("role_id") or 0))
    except DomainError:
        await role_gone(ctx)
        return None


async def finish_edit(ctx: Ctx, shop: Shop, role: Role, notice: str) -> None:
    """Leave an edit and show the role with a notice."""
    await ctx.end_flow()
    await ctx.answer()
    await show_role(ctx, shop, role, notice=notice)


async def ask_rename(ctx: Ctx, *, notice: str = "") -> None:
    """Ask for the role's new name."""
    data = await flow_data(ctx)
    prompt = ctx.t("roles.ask_rename", name=str(data.get("name", "")), max=ROLE_NAME_MAX)
    await ctx.show(with_notice(notice, prompt),
                   keyboard([fbtn(ctx, "common.back", "x", int(data["n"]))]))


#: one edit of a role: (shop id, role id) → the changed role
Change = Callable[[int, int], Awaitable[Role]]
#: an edit's prompt, asked again with why the input was refused above it
Reask = Callable[..., Awaitable[None]]


async def apply_edit(
    ctx: Ctx, change: Change, done: Callable[[Role], str],
    refused: tuple[str, ...] = (), ask_again: Reask | None = None,
) -> None:
    """Apply an edit to the role being edited and show it with ``done(role)``.

    "Nothing changed" ends the edit too; a refusal in ``refused`` is put above ``ask_again``.
    """
    found = await edited_role(ctx)
    if found is None:
        return
    shop, role = found
    before = RoleShape(role.name, list(role.modules))
    try:
        role = await change(shop.id or 0, role.id or 0)
    except DomainError as exc:
        if exc.key == "nothing_changed":
            await finish_edit(ctx, shop, role, ctx.t("roles.unchanged"))
            return
        if exc.key not in refused or ask_again is None:
            raise
        await ask_again(ctx, notice=why(ctx, exc))
        return
    told = await tell_holders(ctx, shop, role, before)
    await finish_edit(ctx, shop, role, "\n".join(filter(None, [done(role), told])))


@dataclass(frozen=True)
class RoleShape:
    """What the holders of a role see of it: its name and its modules."""

    name: str
    modules: list[str]


def _module_changes(ctx: Ctx, locale: str, before: list[str], after: list[str]) -> str:
    """"added X; removed Y" in ``locale`` (plain text)."""
    sep = label(locale, "roles.separator")
    added = [m for m in after if m not in before]
    removed = [m for m in before if m not in after]
    parts = []
    if added:
        parts.append(label(locale, "roles.notice_added",
                           modules=module_names(ctx.policy, added, locale, sep)))
    if removed:
        parts.append(label(locale, "roles.notice_removed",
                           modules=module_names(ctx.policy, removed, locale, sep)))
    return label(locale, "roles.notice_sep").join(parts)


async def tell_holders(ctx: Ctx, shop: Shop, role: Role, before: RoleShape) -> str:
    """Tell every holder of ``role`` (suspended ones too) what changed of what they see of it
    — its name, its modules or both — in one message each, in their language; what the
    owner's screen says about it (empty when the change is one holders do not see)."""
    renamed = role.name != before.name
    after = list(role.modules)
    remodelled = after != before.modules
    if not (renamed or remodelled):
        return ""
    holders = await role_holders(ctx.session, shop.id or 0, role.id or 0)
    if not holders:
        return ""
    key = ("roles.notice_both" if renamed and remodelled
           else "roles.notice_renamed" if renamed else "roles.notice_modules")
    missed: list[str] = []
    for account, user in holders:
        locale = ctx.deps.locale_of(user)
        sent = await ctx.notify(
            user, key, shop=shop.name, before=before.name, name=role.name,
            changes=_module_changes(ctx, locale, before.modules, after),
            modules=module_names(ctx.policy, after, locale, label(locale, "roles.separator")),
        )
        if isinstance(sent, Undelivered):
            missed.append(account.nickname)
    told = len(holders) - len(missed)
    lines = [ctx.t(plural_key("roles.holders_told", told), n=told)] if told else []
    if missed:
        lines.append(ctx.t("roles.holders_not_told", names=ctx.label("roles.separator")
                           .join(missed)))
    return "\n".join(lines)


async def on_rename(ctx: Ctx, text: str) -> None:
    """Rename the role; a refused name is explained and asked for again."""
    await apply_edit(
        ctx,
        lambda shop_id, role_id: rename_role(
            ctx.session, shop_id=shop_id, actor_id=ctx.user_id, role_id=role_id, name=text,
            now=ctx.now(),
        ),
        lambda role: ctx.t("roles.renamed", name=role.name),
        NAME_ERRORS, ask_rename,
    )


async def ask_redescription(ctx: Ctx, *, notice: str = "") -> None:
    """Ask for the role's new description (showing the current one)."""
    data = await flow_data(ctx)
    nonce, current = int(data["n"]), str(data.get("description") or "")
    row = [fbtn(ctx, "common.back", "x", nonce)]
    if current:
        row.append(fbtn(ctx, "roles.remove_description_button", "clr", nonce))
    await ctx.show(with_notice(notice, ctx.t(
        "roles.ask_redescription", name=str(data.get("name", "")), max=ROLE_DESCRIPTION_MAX,
        current_html=html.escape(current, quote=False) if current
        else ctx.t("roles.no_description"),
    )), keyboard(row))


async def change_description(ctx: Ctx, text: str) -> None:
    """Replace the description; one that is too long is asked for again."""
    await apply_edit(
        ctx,
        lambda shop_id, role_id: set_description(
            ctx.session, shop_id=shop_id, actor_id=ctx.user_id, role_id=role_id,
            description=text, now=ctx.now(),
        ),
        lambda role: ctx.t(
            "roles.description_saved" if role.description else "roles.description_removed"
        ),
        ("role_description_too_long",), ask_redescription,
    )


async def save_modules(ctx: Ctx, modules: list[str]) -> None:
    """Done while editing a role's permissions: save the ticked modules."""
    await apply_edit(
        ctx,
        lambda shop_id, role_id: set_modules(
            ctx.session, ctx.policy, shop_id=shop_id, actor_id=ctx.user_id, role_id=role_id,
            modules=modules, now=ctx.now(),
        ),
        lambda role: ctx.t("roles.perms_saved"),
    )


async def leave_edit(ctx: Ctx) -> None:
    """Back from an edit: nothing is changed, the role is shown again."""
    found = await edited_role(ctx)
    if found is not None:
        await finish_edit(ctx, *found, notice="")
