"""The screens of /roles: the shop's roles (岗位), a page at a time, and one role's card.

Not a conversation: the role menus (``handlers.roles``) and the role editor
(``handlers.role_editor``) both show them.
"""

from __future__ import annotations

import html

from handlers.card import with_notice
from handlers.context import Ctx
from handlers.i18n import module_names
from handlers.keyboards import button, keyboard, pager_row, rows_of
from handlers.router import cb
from models.paging import paging
from models.roles import list_roles
from models.tables import Role, Shop

#: the role menus' callback namespace
NS = "r"
PAGE_SIZE = 8


def counted(ctx: Ctx, key: str, n: int) -> str:
    """``roles.<key>_zero|_one|_other`` with ``{n}`` (HTML-safe)."""
    form = "zero" if n == 0 else "one" if n == 1 else "other"
    return ctx.t(f"roles.{key}_{form}", n=n)


def modules_text(ctx: Ctx, keys: list[str]) -> str:
    """The modules' names in catalogue order (unknown keys, if the catalogue changed, as is)."""
    return module_names(ctx.policy, keys, ctx.locale, ctx.t("roles.separator"),
                        empty=ctx.t("roles.no_modules"))


#: at most this many module names on a line of the role list; the rest are counted
LIST_MODULES = 4


def modules_short(ctx: Ctx, keys: list[str], limit: int = LIST_MODULES) -> str:
    """The modules' names for the role list (plain text): all of them when they are few,
    else the first ``limit`` and how many more ("Products, Orders, … and 3 more")."""
    known = ctx.policy.sorted_modules(keys)
    ordered = known + [k for k in keys if k not in known]
    if len(ordered) <= limit:
        return modules_text(ctx, ordered)
    first = module_names(ctx.policy, ordered[:limit], ctx.locale, ctx.label("roles.separator"))
    return ctx.label("roles.modules_more", names=first, n=len(ordered) - limit)


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
                modules=modules_short(ctx, list(role.modules)),
                accounts_html=counted(ctx, "accounts", used),
            ))
        if pages > 1:
            lines.append("")
            lines.append(ctx.t("roles.page", page=page + 1, pages=pages))
    rows = rows_of([button(role.name, cb(NS, "o", role.id)) for role, _ in chunk])
    nav = pager_row(page, pages, previous=ctx.label("roles.prev_button"),
                    following=ctx.label("roles.next_button"), data=lambda to: cb(NS, "l", to))
    rows += [nav, [button(ctx.label("roles.new_button"), cb(NS, "new"))]]
    text, markup = "\n".join(lines), keyboard(*rows)
    if fresh:
        await ctx.reply(text, markup)
    else:
        await ctx.show(text, markup)


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

