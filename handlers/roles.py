"""/roles: the shop's roles (岗位) — the list, one role (rename / description / permissions /
delete), the delete confirmation.

Callback data, namespace ``r``: ``r:l:<page>`` list page · ``r:new`` new role · ``r:o:<role>``
open · ``r:ren|des|per:<role>`` rename / describe / permissions (the role editor's steps) ·
``r:del:<role>`` ask to delete · ``r:yes:<role>`` delete. Every press re-loads the role through
the presser's own shop, so another shop's role or a deleted one is only ever "no longer valid".
"""

from __future__ import annotations

from typing import Any

from handlers.context import Ctx
from handlers.flow import Command, Flow
from handlers.keyboards import button, keyboard
from handlers.role_screens import NS, show_list, show_role
from handlers.router import cb
from models.errors import DomainError
from models.roles import delete_role, get_role, role_usage
from models.tables import Role, Shop

#: the role editor's flow (``handlers.role_editor``), started at one of its steps
EDITOR = "roles"
#: a role's edit buttons → the editor's step
EDITS = {"ren": "rename", "des": "redesc", "per": "reperms"}


async def roles_command(ctx: Ctx) -> None:
    """/roles and the owner menu's "Roles": the list, as a new message (whatever flow the
    owner was in is left)."""
    if await ctx.owned_shop_or_explain("roles.for_owners") is None:
        return
    await ctx.router.abandon(ctx)
    await show_list(ctx, 0, fresh=True)


async def on_menu_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """The ``r:`` buttons. Role ids are re-checked against the presser's own shop."""
    shop = await ctx.owned_shop()
    if action == "l":
        await ctx.answer()
        await show_list(ctx, int(args[0]))
        return
    if action == "new":
        await ctx.answer()
        await ctx.router.abandon(ctx)
        await ctx.router.start(ctx, EDITOR, "preset")
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
        await ctx.router.abandon(ctx)
        await begin_edit(ctx, role, EDITS[action])


async def begin_edit(ctx: Ctx, role: Role, step: str) -> None:
    """Rename, describe or set the permissions of ``role``: the editor's step, with the role."""
    data: dict[str, Any] = {"role_id": role.id, "name": role.name}
    if step == "redesc":
        data["description"] = role.description
    if step == "reperms":
        data["modules"] = ctx.policy.sorted_modules(list(role.modules))
    await ctx.router.start(ctx, EDITOR, step, data)


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
        await show_role(ctx, shop, await get_role(ctx.session, shop.id or 0, role_id),
                        notice=f"⚠️ {refusal}")
        return
    await ctx.answer()
    await show_list(ctx, 0, notice=ctx.t("roles.deleted", name=name))
    await ctx.router.changed(ctx)  # a /newaccount in progress with this role goes back a step


FLOW = Flow(
    name="role_menu",
    namespace=NS,
    buttons={
        "l": ("int",), "new": (), "o": ("int",), "ren": ("int",), "des": ("int",),
        "per": ("int",), "del": ("int",), "yes": ("int",),
    },
    on_button=on_menu_button,
    commands=(Command("roles", roles_command, who="owner", menu_key="roles"),),
)
