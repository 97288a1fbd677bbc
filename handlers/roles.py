"""/roles: the shop's roles (岗位) and their permissions, and the role-creation flow.

Screens (callback namespace ``r``): the list, one role (rename / description / permissions /
delete), the delete confirmation. Every press re-loads the role through the presser's own
shop, so another shop's role or a deleted one is only ever "no longer valid".

The creation flow (preset → name → description → permissions) and the three edits (rename,
description, permissions) are steps of the ``roles`` flow, kept in the draft at every step;
their buttons (namespace ``rn``) carry the draft's nonce and are accepted only at their step.
``begin_create`` starts the creation flow, also nested in another flow (``router.RETURNS``).
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import InlineKeyboardButton
from telegram.ext import BaseHandler, CommandHandler, filters

from handlers import home
from handlers.base import Ctx, button, entry, keyboard, module_names, rows_of
from handlers.router import RETURNS, abandon, buttons, cb, step
from models.drafts import DraftState, get_draft
from models.errors import DomainError
from models.paging import paging
from models.roles import (
    ROLE_DESCRIPTION_MAX,
    ROLE_NAME_MAX,
    clean_description,
    create_role,
    delete_role,
    ensure_name_free,
    get_role,
    list_roles,
    rename_role,
    role_usage,
    set_description,
    set_modules,
)
from models.tables import Role, Shop

FLOW = "roles"
NS = "r"  # the role menus
NS_FLOW = "rn"  # the creation / edit flow
PAGE_SIZE = 8

#: errors a typed name can get; the user is told why and asked again
NAME_ERRORS = ("role_name_empty", "role_name_too_long", "role_name_taken")
PERMS_STEPS = ("perms", "reperms")
EDIT_STEPS = ("rename", "redesc", "reperms")


# --- small helpers ----------------------------------------------------------------------------


def counted(ctx: Ctx, key: str, n: int) -> str:
    """``roles.<key>_zero|_one|_other`` with ``{n}`` (HTML-safe)."""
    form = "zero" if n == 0 else "one" if n == 1 else "other"
    return ctx.t(f"roles.{key}_{form}", n=n)


def modules_text(ctx: Ctx, keys: list[str]) -> str:
    """The modules' names in catalogue order (unknown keys, if the catalogue changed, as is)."""
    return module_names(ctx.policy, keys, ctx.locale, ctx.t("roles.separator"),
                        empty=ctx.t("roles.no_modules"))


def with_notice(notice: str, text: str) -> str:
    """Put a notice (a refusal or a result) above a screen."""
    return f"{notice}\n\n{text}" if notice else text


# --- the role list ----------------------------------------------------------------------------


async def open_roles(ctx: Ctx) -> None:
    """/roles and the owner menu's "Roles": the list, as a new message."""
    await show_list(ctx, 0, fresh=True)


async def show_list(ctx: Ctx, page: int, *, notice: str = "", fresh: bool = False) -> None:
    """The shop's roles (name, modules, accounts using it), a page at a time, and "New role"."""
    shop = await ctx.owned_shop()
    found = await list_roles(ctx.session, shop.id or 0)
    page, pages = paging(page, len(found), PAGE_SIZE)
    chunk = found[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    lines = [notice, ""] if notice else []
    lines.append(ctx.t("roles.list_title", shop=shop.name))
    if not found:
        lines.append(ctx.t("roles.list_empty"))
    else:
        lines.append(ctx.t("roles.list_hint"))
        lines.append("")
        for index, (role, used) in enumerate(chunk, start=page * PAGE_SIZE + 1):
            lines.append(ctx.t(
                "roles.list_item", index=index, name=role.name,
                modules_html=counted(ctx, "modules", len(role.modules)),
                accounts_html=counted(ctx, "accounts", used),
            ))
        if pages > 1:
            lines.append("")
            lines.append(ctx.t("roles.page", page=page + 1, pages=pages))
    rows = rows_of([button(role.name, cb(NS, "o", role.id)) for role, _ in chunk])
    nav = []
    if page > 0:
        nav.append(button(ctx.label("roles.prev_button"), cb(NS, "l", page - 1)))
    if page < pages - 1:
        nav.append(button(ctx.label("roles.next_button"), cb(NS, "l", page + 1)))
    rows += [nav, [button(ctx.label("roles.new_button"), cb(NS, "new"))]]
    text, markup = "\n".join(lines), keyboard(*rows)
    if fresh:
        await ctx.reply(text, markup)
    else:
        await ctx.show(text, markup)


# --- one role ---------------------------------------------------------------------------------


async def role_card(ctx: Ctx, shop: Shop, role: Role) -> tuple[str, int]:
    """The role's text (name, description, modules, usage) and the list page it sits on."""
    found = await list_roles(ctx.session, shop.id or 0)
    index = next((i for i, (r, _) in enumerate(found) if r.id == role.id), 0)
    used = found[index][1] if found else 0
    description = (
        html.escape(role.description, quote=False) if role.description
        else ctx.t("roles.no_description")
    )
    text = ctx.t(
        "roles.card", name=role.name, description_html=description,
        count=len(role.modules), modules=modules_text(ctx, list(role.modules)),
        accounts_html=counted(ctx, "accounts", used),
    )
    return text, index // PAGE_SIZE


async def show_role(ctx: Ctx, shop: Shop, role: Role, *, notice: str = "") -> None:
    """One role with its actions."""
    text, page = await role_card(ctx, shop, role)
    rid = role.id
    markup = keyboard(
        [button(ctx.label("roles.rename_button"), cb(NS, "ren", rid)),
         button(ctx.label("roles.describe_button"), cb(NS, "des", rid))],
        [button(ctx.label("roles.perms_button"), cb(NS, "per", rid)),
         button(ctx.label("roles.delete_button"), cb(NS, "del", rid))],
        [button(ctx.label("roles.back_to_list"), cb(NS, "l", page))],
    )
    await ctx.show(with_notice(notice, text), markup)


async def role_gone(ctx: Ctx) -> None:
    """The role an edit was about has been deleted meanwhile: end the edit, show the list."""
    await ctx.end_flow()
    if ctx.update.callback_query is not None:
        await ctx.stale()
    await show_list(ctx, 0, notice=ctx.t("errors.role_not_found"))


async def on_menu_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """The ``r:`` buttons. Role ids are re-checked against the presser's own shop."""
    shop = await ctx.owned_shop()
    if action == "l":
        await ctx.answer()
        await show_list(ctx, int(args[0]))
        return
    if action == "new":
        await ctx.answer()
        await abandon(ctx)
        await begin_create(ctx)
        return
    try:
        role = await get_role(ctx.session, shop.id or 0, int(args[0]))
    except DomainError:
        await ctx.stale()
        return
    if action == "o":
        await ctx.answer()
        await show_role(ctx, shop, role)
    elif action == "del":
        used = await role_usage(ctx.session, role.id or 0)
        if used:
            refusal = ctx.t("errors.role_in_use", name=role.name, count=used)
            await ctx.answer(ctx.label("errors.role_in_use", name=role.name, count=used))
            await show_role(ctx, shop, role, notice=f"⚠️ {refusal}")
            return
        await ctx.answer()
        await ctx.show(
            ctx.t("roles.confirm_delete", name=role.name),
            keyboard([button(ctx.label("roles.delete_yes"), cb(NS, "yes", role.id)),
                      button(ctx.label("roles.delete_no"), cb(NS, "o", role.id))]),
        )
    elif action == "yes":
        await confirm_delete(ctx, shop, role)
    else:
        await ctx.answer()
        await abandon(ctx)
        await begin_edit(ctx, role, {"ren": "rename", "des": "redesc", "per": "reperms"}[action])


#: what other flows do when the owner deletes a role (a /newaccount using it goes back a step)
ON_DELETED: list[Callable[[Ctx, int], Awaitable[None]]] = []


async def confirm_delete(ctx: Ctx, shop: Shop, role: Role) -> None:
    """Delete the role, or say how many sub-accounts still use it."""
    role_id = role.id or 0
    try:
        name = await delete_role(
            ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id, role_id=role_id,
            now=ctx.now(),
        )
    except DomainError as exc:
        if exc.key != "role_in_use":
            raise
        refusal = ctx.t("errors.role_in_use", **exc.params)
        await ctx.answer(ctx.label("errors.role_in_use", **exc.params))
        shop = await ctx.owned_shop()  # reloaded: the session may have been rolled back
        await show_role(ctx, shop, await get_role(ctx.session, shop.id or 0, role_id),
                        notice=f"⚠️ {refusal}")
        return
    await ctx.answer()
    await show_list(ctx, 0, notice=ctx.t("roles.deleted", name=name))
    for hook in ON_DELETED:
        await hook(ctx, role_id)


buttons(
    NS,
    {
        "l": ("int",), "new": (), "o": ("int",), "ren": ("int",), "des": ("int",),
        "per": ("int",), "del": ("int",), "yes": ("int",),
    },
    on_menu_button,
)


# --- the flow: shared -------------------------------------------------------------------------


async def flow_data(ctx: Ctx) -> dict[str, Any]:
    """The roles flow's draft data (empty if the user is elsewhere)."""
    draft = await ctx.load_draft()
    return dict(draft.data) if draft is not None and draft.flow == FLOW else {}


async def reload_draft(ctx: Ctx) -> DraftState | None:
    """Read the draft again (after a rolled-back write expired what the session held)."""
    ctx.draft = await get_draft(ctx.session, ctx.user_id)
    return ctx.draft


def fbtn(ctx: Ctx, key: str, action: str, nonce: int, *args: object, **params: Any) -> InlineKeyboardButton:
    """A button of the flow, tied to this draft by its nonce."""
    return button(ctx.label(key, **params), cb(NS_FLOW, action, nonce, *args))


def why(ctx: Ctx, exc: DomainError) -> str:
    """Why an input was refused, to put above the same prompt."""
    return "⚠️ " + ctx.error_text(exc)


# --- creation ---------------------------------------------------------------------------------


async def begin_create(
    ctx: Ctx, parent: str | None = None, parent_data: dict[str, object] | None = None
) -> None:
    """Start creating a role: preset or blank → name → description → permissions.

    With ``parent`` the new role's id (or ``None`` if the owner backs out from the first
    screen) goes to ``router.RETURNS[parent](ctx, role_id, parent_data)`` instead of the role
    being shown. The parent's data is kept in this flow's draft until then.
    """
    await ctx.owned_shop()
    if parent is not None and parent not in RETURNS:
        raise ValueError(f"no return handler registered for {parent!r}")
    await ctx.start_flow(FLOW, "preset", {
        "n": secrets.randbelow(1_000_000), "parent": parent, "parent_data": dict(parent_data or {}),
    })
    await ask_preset(ctx)


async def ask_preset(ctx: Ctx) -> None:
    """Step 0: a preset (its modules shown) or blank; Back leaves."""
    data = await flow_data(ctx)
    nonce = int(data["n"])
    lines = [ctx.t("roles.create_title"), ctx.t("roles.preset_hint"), ""]
    for preset in ctx.policy.presets:
        lines.append(ctx.t("roles.preset_item", name=preset.name(ctx.locale),
                           modules=modules_text(ctx, list(preset.modules))))
    presets = [
        button(preset.name(ctx.locale), cb(NS_FLOW, "p", nonce, preset.key))
        for preset in ctx.policy.presets
    ]
    await ctx.show("\n".join(lines), keyboard(
        *rows_of(presets),
        [fbtn(ctx, "roles.blank_button", "b", nonce)],
        [fbtn(ctx, "common.back", "back", nonce)],
    ))


async def ask_name(ctx: Ctx, *, notice: str = "") -> None:
    """Step 1: the role name (a preset's name is offered as a button)."""
    data = await flow_data(ctx)
    preset = ctx.policy.preset(str(data.get("preset") or ""))
    lines = [notice] if notice else []
    if preset is not None:
        lines.append(ctx.t("roles.from_preset", preset=preset.name(ctx.locale),
                           modules=modules_text(ctx, list(preset.modules))))
    lines.append(ctx.t("roles.ask_name", max=ROLE_NAME_MAX))
    markup = None
    if preset is not None:
        markup = keyboard([fbtn(ctx, "roles.use_name_button", "use", int(data["n"]),
                                name=preset.name(ctx.locale))])
    await ctx.show("\n\n".join(lines), markup)


async def accept_name(ctx: Ctx, text: str) -> None:
    """Check the name is free now (not only at save), then ask for the description."""
    shop = await ctx.owned_shop()
    try:
        name = await ensure_name_free(ctx.session, shop.id or 0, text)
    except DomainError as exc:
        if exc.key not in NAME_ERRORS:
            raise
        await ask_name(ctx, notice=why(ctx, exc))
        return
    await ctx.goto(FLOW, "desc", {"name": name})
    await ask_description(ctx)


async def ask_description(ctx: Ctx, *, notice: str = "") -> None:
    """Step 2: an optional description, with Skip."""
    data = await flow_data(ctx)
    prompt = ctx.t("roles.ask_description", name=str(data.get("name", "")),
                   max=ROLE_DESCRIPTION_MAX)
    await ctx.show(with_notice(notice, prompt),
                   keyboard([fbtn(ctx, "roles.skip_button", "skip", int(data["n"]))]))


async def on_description(ctx: Ctx, text: str) -> None:
    """The description step: save what the owner typed and go on to permissions."""
    try:
        description = clean_description(text)
    except DomainError as exc:
        await ask_description(ctx, notice=why(ctx, exc))
        return
    await ctx.goto(FLOW, "perms", {"description": description})
    await ask_perms(ctx)


async def ask_perms(ctx: Ctx) -> None:
    """Step 3 (and the permissions edit): every module as a ☑/☐ toggle, all / clear, Done."""
    draft = await ctx.load_draft()
    data = await flow_data(ctx)
    nonce, editing = int(data["n"]), draft is not None and draft.step == "reperms"
    ticked = set(ctx.policy.sorted_modules(list(data.get("modules") or [])))
    toggles = [
        button(f"{'☑' if m.key in ticked else '☐'} {m.name(ctx.locale)}",
               cb(NS_FLOW, "t", nonce, m.key))
        for m in ctx.policy.modules
    ]
    text = ctx.t(
        "roles.perms_edit" if editing else "roles.perms_create", name=str(data.get("name", "")),
        count=len(ticked), total=len(ctx.policy.modules),
    )
    last = [fbtn(ctx, "roles.done_button", "done", nonce)]
    if editing:
        last.insert(0, fbtn(ctx, "common.back", "x", nonce))
    await ctx.show(text, keyboard(
        *rows_of(toggles),
        [fbtn(ctx, "roles.all_button", "all", nonce), fbtn(ctx, "roles.clear_button", "none", nonce)],
        last,
    ))


async def save_new_role(ctx: Ctx, data: dict[str, Any], modules: list[str]) -> None:
    """Create the role; show it, or hand its id back to the parent flow."""
    shop = await ctx.owned_shop()
    try:
        role = await create_role(
            ctx.session, ctx.policy, shop_id=shop.id or 0, actor_id=ctx.user_id,
            name=str(data.get("name", "")), description=str(data.get("description", "")),
            modules=modules, now=ctx.now(),
        )
    except DomainError as exc:
        if exc.key not in NAME_ERRORS:
            raise
        # the name was taken meanwhile (another device, another admin): ask for another one
        await reload_draft(ctx)
        await ctx.goto(FLOW, "name")
        await ctx.answer()
        await ask_name(ctx, notice=why(ctx, exc))
        return
    await ctx.end_flow()
    await ctx.answer(ctx.label("roles.created_toast", name=role.name))
    parent = data.get("parent")
    if isinstance(parent, str) and parent in RETURNS:
        await RETURNS[parent](ctx, role.id, dict(data.get("parent_data") or {}))
        return
    await show_role(ctx, shop, role, notice=ctx.t("roles.created", name=role.name))


async def leave_creation(ctx: Ctx, data: dict[str, Any]) -> None:
    """Back on the first screen: to the parent flow (with no role), or to the list."""
    await ctx.end_flow()
    await ctx.answer()
    parent = data.get("parent")
    if isinstance(parent, str) and parent in RETURNS:
        await RETURNS[parent](ctx, None, dict(data.get("parent_data") or {}))
        return
    await show_list(ctx, 0)


# --- edits ------------------------------------------------------------------------------------


async def begin_edit(ctx: Ctx, role: Role, which: str) -> None:
    """Rename, describe or set permissions of ``role``, through the draft like creation."""
    data: dict[str, Any] = {"n": secrets.randbelow(1_000_000), "role_id": role.id, "name": role.name}
    if which == "redesc":
        data["description"] = role.description
    if which == "reperms":
        data["modules"] = ctx.policy.sorted_modules(list(role.modules))
    await ctx.start_flow(FLOW, which, data)
    await {"rename": ask_rename, "redesc": ask_redescription, "reperms": ask_perms}[which](ctx)


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


async def apply_edit(
    ctx: Ctx, change: Change, done: Callable[[Role], str],
    refused: tuple[str, ...] = (), ask_again: Callable[[DomainError], Awaitable[None]] | None = None,
) -> None:
    """Apply an edit to the role being edited and show it with ``done(role)``.

    "Nothing changed" ends the edit too; a refusal in ``refused`` goes to ``ask_again``.
    """
    found = await edited_role(ctx)
    if found is None:
        return
    shop, role = found
    try:
        role = await change(shop.id or 0, role.id or 0)
    except DomainError as exc:
        if exc.key == "nothing_changed":
            await finish_edit(ctx, shop, role, ctx.t("roles.unchanged"))
            return
        if exc.key not in refused or ask_again is None:
            raise
        await ask_again(exc)
        return
    await finish_edit(ctx, shop, role, done(role))


async def on_rename(ctx: Ctx, text: str) -> None:
    """Rename the role; a refused name is explained and asked for again."""

    async def ask_again(exc: DomainError) -> None:
        await reload_draft(ctx)
        await ask_rename(ctx, notice=why(ctx, exc))

    await apply_edit(
        ctx,
        lambda shop_id, role_id: rename_role(
            ctx.session, shop_id=shop_id, actor_id=ctx.user_id, role_id=role_id, name=text,
            now=ctx.now(),
        ),
        lambda role: ctx.t("roles.renamed", name=role.name),
        NAME_ERRORS, ask_again,
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

    async def ask_again(exc: DomainError) -> None:
        await ask_redescription(ctx, notice=why(ctx, exc))

    await apply_edit(
        ctx,
        lambda shop_id, role_id: set_description(
            ctx.session, shop_id=shop_id, actor_id=ctx.user_id, role_id=role_id,
            description=text, now=ctx.now(),
        ),
        lambda role: ctx.t(
            "roles.description_saved" if role.description else "roles.description_removed"
        ),
        ("role_description_too_long",), ask_again,
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


# --- the flow's buttons -----------------------------------------------------------------------

#: action → the steps its button belongs to
FLOW_ACTIONS: dict[str, tuple[str, ...]] = {
    "p": ("preset",), "b": ("preset",), "back": ("preset",), "use": ("name",),
    "skip": ("desc",), "t": PERMS_STEPS, "all": PERMS_STEPS, "none": PERMS_STEPS,
    "done": PERMS_STEPS, "x": EDIT_STEPS, "clr": ("redesc",),
}


async def on_flow_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """The ``rn:`` buttons: only from the user's current draft, at the step they belong to."""
    draft = await ctx.load_draft()
    if (
        draft is None or draft.flow != FLOW or draft.step not in FLOW_ACTIONS[action]
        or draft.data.get("n") != int(args[0])
    ):
        await ctx.stale()
        return
    data = dict(draft.data)
    if action == "p":
        preset = ctx.policy.preset(args[1])
        if preset is None:
            await ctx.stale()
            return
        await ctx.answer()
        await ctx.goto(FLOW, "name", {"preset": preset.key,
                                      "modules": ctx.policy.sorted_modules(list(preset.modules))})
        await ask_name(ctx)
    elif action == "b":
        await ctx.answer()
        await ctx.goto(FLOW, "name", {"preset": None, "modules": []})
        await ask_name(ctx)
    elif action == "back":
        await leave_creation(ctx, data)
    elif action == "use":
        await use_preset_name(ctx, data)
    elif action == "skip":
        await ctx.answer()
        await ctx.goto(FLOW, "perms", {"description": ""})
        await ask_perms(ctx)
    elif action in ("t", "all", "none"):
        await toggle(ctx, draft.step, action, args[1:], data)
    elif action == "done":
        modules = ctx.policy.sorted_modules(list(data.get("modules") or []))
        if not modules:
            await ctx.answer(ctx.label("roles.need_module"), alert=True)
            return
        if draft.step == "perms":
            await save_new_role(ctx, data, modules)
        else:
            await save_modules(ctx, modules)
    elif action == "x":
        await leave_edit(ctx)
    elif action == "clr":
        await change_description(ctx, "")


async def use_preset_name(ctx: Ctx, data: dict[str, Any]) -> None:
    """The preset's own name as the role name; if it is taken, say so and keep the prompt."""
    preset = ctx.policy.preset(str(data.get("preset") or ""))
    if preset is None:
        await ctx.stale()
        return
    shop = await ctx.owned_shop()
    try:
        await ensure_name_free(ctx.session, shop.id or 0, preset.name(ctx.locale))
    except DomainError as exc:
        if exc.key not in NAME_ERRORS:
            raise
        await ctx.answer(ctx.label(f"errors.{exc.key}", **exc.params), alert=True)
        return
    await ctx.answer()
    await accept_name(ctx, preset.name(ctx.locale))


async def toggle(ctx: Ctx, at: str, action: str, args: list[str], data: dict[str, Any]) -> None:
    """Tick or untick one module, or all of them; the keyboard is edited in place."""
    ticked = set(data.get("modules") or [])
    if action == "all":
        ticked = set(ctx.policy.module_keys)
    elif action == "none":
        ticked = set()
    else:
        key = args[0]
        if ctx.policy.module(key) is None:
            await ctx.stale()
            return
        ticked ^= {key}
    await ctx.goto(FLOW, at, {"modules": ctx.policy.sorted_modules(ticked)})
    await ctx.answer()
    await ask_perms(ctx)


buttons(
    NS_FLOW,
    {
        "p": ("int", "key"), "b": ("int",), "back": ("int",), "use": ("int",),
        "skip": ("int",), "t": ("int", "key"), "all": ("int",), "none": ("int",),
        "done": ("int",), "x": ("int",), "clr": ("int",),
    },
    on_flow_button,
)

step(FLOW, "preset", prompt=ask_preset)
step(FLOW, "name", prompt=ask_name, on_text=accept_name)
step(FLOW, "desc", prompt=ask_description, on_text=on_description)
step(FLOW, "perms", prompt=ask_perms)
step(FLOW, "rename", prompt=ask_rename, on_text=on_rename)
step(FLOW, "redesc", prompt=ask_redescription, on_text=change_description)
step(FLOW, "reperms", prompt=ask_perms)


# --- entry points -----------------------------------------------------------------------------


@entry
async def roles_command(ctx: Ctx) -> None:
    """/roles: the owner's role management (whatever flow they were in is left)."""
    if await ctx.owned_shop_or_explain("roles.for_owners") is None:
        return
    await abandon(ctx)
    await open_roles(ctx)


home.menu_entry("roles", open_roles)


def command_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """This module's commands."""
    return [CommandHandler("roles", roles_command, filters.UpdateType.MESSAGE)]
