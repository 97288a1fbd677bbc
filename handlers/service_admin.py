"""/service: the owner's customer-service card (客服分流), its "I answer too" switch, and the
entries (绑定页面) — list, new (name → group), one entry (link and QR at creation, regenerate,
rename, change group, delete).

Callback data, namespace ``sv``: ``sv:home`` the card · ``sv:me`` the owner answers too (or
stops) · ``sv:el`` entries · ``sv:ep:<page>`` a page of them · ``sv:en`` new entry · ``sv:ng:<group>`` the new entry's group (0:
none) · ``sv:eo:<entry>`` open · ``sv:eg:<entry>`` / ``sv:egs:<entry>:<group>`` change group ·
``sv:er:<entry>`` rename · ``sv:rg:<entry>`` / ``sv:rgy:<entry>`` regenerate the link ·
``sv:ed:<entry>`` / ``sv:edy:<entry>`` delete. An entry's link is shown only in the update that
made it (the token is kept only hashed); afterwards the card offers a new one.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton

from handlers.card import with_notice
from handlers.context import Ctx
from handlers.flow import Command, Flow, Step
from handlers.keyboards import button, keyboard, pager_row, rows_of
from handlers.service_common import (
    SV,
    ask_to_confirm,
    back_button,
    button_shop,
    deep_link,
    home_button,
    is_not_found,
    leave_step,
    send_qr,
    show_home,
    step_data,
)
from handlers.times import shop_zone, when
from models.errors import DomainError
from models.service.agents import agent_for, enroll_agent, release_agent
from models.service.entries import (
    ENTRY_NAME_MAX,
    clean_entry_name,
    create_entry,
    delete_entry,
    entries_page,
    entry_page_of,
    get_entry,
    list_entries,
    regenerate_token,
    rename_entry,
    set_entry_group,
)
from models.service.groups import get_group, list_groups, name_key
from models.service.tables import Entry
from models.tables import Shop

FLOW_NAME = "service"
NAME_ERRORS = ("service_entry_name_empty", "service_entry_name_too_long",
               "service_entry_name_taken")


async def service_command(ctx: Ctx) -> None:
    """/service and the owner menu's button: the card, as a new message."""
    if await ctx.owned_shop_or_explain("service_admin.for_owners") is None:
        return
    await ctx.router.abandon(ctx)
    await show_home(ctx, fresh=True)


# --- the owner answers too ------------------------------------------------------------------


async def toggle_me(ctx: Ctx, shop: Shop) -> None:
    """The owner opts in as an agent (offline until they go online in /me), or out — only with
    no open chats, so no customer is left without being told."""
    me = await agent_for(ctx.session, shop_id=shop.id or 0, user_id=ctx.user_id)
    policy, now = ctx.deps.service_policy, ctx.now()
    if me is not None and me.active:
        if me.open_chats:
            await ctx.answer()
            await show_home(ctx, notice="⚠️ " + ctx.t("service_admin.me_has_chats",
                                                      count=me.open_chats))
            return
        await release_agent(ctx.session, policy, shop_id=shop.id or 0, user_id=ctx.user_id,
                            reason="owner_opt_out", actor_id=ctx.user_id, now=now)
        notice = ctx.t("service_admin.me_stopped")
    else:
        await enroll_agent(ctx.session, policy, shop_id=shop.id or 0, user_id=ctx.user_id,
                           actor_id=ctx.user_id, now=now)
        notice = ctx.t("service_admin.me_started")
    await ctx.answer()
    await show_home(ctx, notice=notice)


# --- screens ---------------------------------------------------------------------------------


async def group_names(ctx: Ctx, shop: Shop) -> dict[int, str]:
    return {g.id or 0: g.name for g, _ in await list_groups(ctx.session, shop_id=shop.id or 0)}


async def show_entries(ctx: Ctx, shop: Shop, *, notice: str = "", page: int = 0) -> None:
    """The shop's entries, a page at a time (a page past the end shows the last one)."""
    listed = await entries_page(ctx.session, shop_id=shop.id or 0, page=page)
    groups = await group_names(ctx, shop)
    lines = [ctx.t("service_admin.entries_title", shop=shop.name)]
    if listed.pages > 1:
        lines.append(ctx.t("service_paging.page", page=listed.page + 1, pages=listed.pages))
    if not listed.rows:
        lines.append(ctx.t("service_admin.entries_empty"))
    for index, entry in enumerate(listed.rows, start=listed.first_number):
        lines.append(ctx.t("service_admin.entry_item", index=index, name=entry.name,
                           group=groups.get(entry.group_id or 0)
                           or ctx.label("service_admin.no_group")))
    rows = rows_of([button(e.name, f"{SV}:eo:{e.id}") for e in listed.rows])
    rows += [pager_row(listed.page, listed.pages, previous=ctx.label("service_paging.prev"),
                       following=ctx.label("service_paging.next"),
                       data=lambda to: f"{SV}:ep:{to}"),
             [button(ctx.label("service_admin.new_entry_button"), f"{SV}:en")],
             [home_button(ctx)]]
    await ctx.show(with_notice(notice, "\n".join(lines)), keyboard(*rows))


async def show_entry(ctx: Ctx, shop: Shop, entry: Entry, *, notice: str = "",
                     link: str | None = None) -> None:
    """One entry: its group, and its link when it was made in this very update."""
    groups = await group_names(ctx, shop)
    group = groups.get(entry.group_id or 0) or ctx.label("service_admin.no_group")
    link_html = (ctx.t("service_admin.link_now", link=link) if link
                 else ctx.t("service_admin.link_hidden",
                            time=when(ctx.locale, entry.token_at, now=ctx.now(),
                                      tz=shop_zone(shop, ctx.deps.default_time_zone))))
    text = ctx.t("service_admin.entry_card", name=entry.name, group=group, link_html=link_html)
    eid = entry.id
    await ctx.show(with_notice(notice, text), keyboard(
        [button(ctx.label("service_admin.regenerate_button"), f"{SV}:rg:{eid}"),
         button(ctx.label("service_admin.entry_group_button"), f"{SV}:eg:{eid}")],
        [button(ctx.label("service_admin.rename_button"), f"{SV}:er:{eid}"),
         button(ctx.label("service_admin.delete_button"), f"{SV}:ed:{eid}")],
        [back_button(ctx, f"{SV}:ep:{await entry_page_of(ctx.session, entry)}"),
         home_button(ctx)],
    ))


async def group_buttons(ctx: Ctx, shop: Shop, data: str) -> list[list[InlineKeyboardButton]]:
    """A button per group of the shop (``data`` formatted with the group id) and "no group"."""
    groups = await list_groups(ctx.session, shop_id=shop.id or 0)
    rows = rows_of([button(g.name, data.format(g.id)) for g, _ in groups])
    rows.append([button(ctx.label("service_admin.no_group_button"), data.format(0))])
    return rows


async def made(ctx: Ctx, shop: Shop, entry: Entry, token: str, notice: str) -> None:
    """An entry's new link: on its card, and as a QR code photo with the link as caption."""
    link = deep_link(ctx, token)
    await show_entry(ctx, shop, entry, notice=notice, link=link)
    await send_qr(ctx, link, ctx.t("service_admin.qr_caption", name=entry.name, link=link))


# --- typed steps -----------------------------------------------------------------------------


async def ask_name(ctx: Ctx, *, notice: str = "") -> None:
    await ctx.show(with_notice(notice, ctx.t("service_admin.ask_entry_name", max=ENTRY_NAME_MAX)),
                   keyboard([back_button(ctx, f"{SV}:el")]))


async def name_refused(ctx: Ctx, shop: Shop, raw: str) -> str | None:
    """Why ``raw`` can't be a new entry's name (now, not only at the save), or ``None``."""
    try:
        name = clean_entry_name(raw)
    except DomainError as exc:
        return ctx.error_text(exc)
    taken = {e.name_key for e in await list_entries(ctx.session, shop_id=shop.id or 0)}
    if name_key(name) in taken:
        return ctx.t("errors.service_entry_name_taken", name=name)
    return None


async def on_name(ctx: Ctx, text: str) -> None:
    shop = await ctx.owned_shop()
    refusal = await name_refused(ctx, shop, text)
    if refusal is not None:
        await ask_name(ctx, notice="⚠️ " + refusal)
        return
    await ctx.goto(FLOW_NAME, "entry_group", {"name": clean_entry_name(text)})
    await ask_group(ctx)


async def ask_group(ctx: Ctx) -> None:
    shop = await ctx.owned_shop()
    data = await step_data(ctx, FLOW_NAME)
    rows = await group_buttons(ctx, shop, f"{SV}:ng:{{}}")
    await ctx.show(ctx.t("service_admin.ask_entry_group", name=str(data.get("name", ""))),
                   keyboard(*rows, [back_button(ctx, f"{SV}:el")]))


async def ask_rename(ctx: Ctx, *, notice: str = "") -> None:
    data = await step_data(ctx, FLOW_NAME)
    shop = await ctx.owned_shop()
    entry = await get_entry(ctx.session, shop_id=shop.id or 0, entry_id=int(str(data["entry"])))
    await ctx.show(with_notice(notice, ctx.t("service_admin.ask_entry_rename", name=entry.name,
                                             max=ENTRY_NAME_MAX)),
                   keyboard([back_button(ctx, f"{SV}:eo:{entry.id}")]))


async def on_rename(ctx: Ctx, text: str) -> None:
    shop = await ctx.owned_shop()
    data = await step_data(ctx, FLOW_NAME)
    try:
        entry = await rename_entry(ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
                                   entry_id=int(str(data["entry"])), name=text, now=ctx.now())
    except DomainError as exc:
        if is_not_found(exc):
            await ctx.end_flow()
            await show_entries(ctx, shop, notice="⚠️ " + ctx.error_text(exc))
            return
        if exc.key not in (*NAME_ERRORS, "nothing_changed"):
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        await ask_rename(ctx, notice="⚠️ " + ctx.error_text(exc))
        return
    await ctx.end_flow()
    await show_entry(ctx, shop, entry, notice=ctx.t("service_admin.entry_renamed",
                                                    name=entry.name))


# --- buttons ---------------------------------------------------------------------------------


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    shop = await button_shop(ctx)
    if action == "ng":
        await new_entry(ctx, shop, int(args[0]))
        return
    await leave_step(ctx)
    if action == "home":
        await ctx.answer()
        await show_home(ctx)
    elif action == "me":
        await toggle_me(ctx, shop)
    elif action in ("el", "ep"):
        await ctx.answer()
        await show_entries(ctx, shop, page=int(args[0]) if args else 0)
    elif action == "en":
        await ctx.answer()
        await ctx.router.abandon(ctx)
        await ctx.start_flow(FLOW_NAME, "entry_name")
        await ask_name(ctx)
    else:
        try:
            entry = await get_entry(ctx.session, shop_id=shop.id or 0, entry_id=int(args[0]))
            await on_entry_button(ctx, shop, entry, action, [int(a) for a in args[1:]])
        except DomainError as exc:
            if not is_not_found(exc):
                raise
            await ctx.rollback()
            shop = await ctx.owned_shop()
            await ctx.stale()


async def new_entry(ctx: Ctx, shop: Shop, group_id: int) -> None:
    """The new entry's group was chosen: make it, show its link and QR code."""
    draft = await ctx.load_draft()
    if draft is None or (draft.flow, draft.step) != (FLOW_NAME, "entry_group"):
        await ctx.stale()
        return
    if group_id:
        try:
            await get_group(ctx.session, shop_id=shop.id or 0, group_id=group_id)
        except DomainError:
            await ctx.stale()
            return
    try:
        entry, token = await create_entry(
            ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
            name=str(draft.data.get("name", "")), group_id=group_id or None, now=ctx.now())
    except DomainError as exc:
        if exc.key not in NAME_ERRORS:
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        await ctx.answer()
        await ctx.goto(FLOW_NAME, "entry_name")
        await ask_name(ctx, notice="⚠️ " + ctx.error_text(exc))
        return
    await ctx.end_flow()
    await ctx.answer()
    await made(ctx, shop, entry, token, ctx.t("service_admin.entry_created", name=entry.name))


async def on_entry_button(ctx: Ctx, shop: Shop, entry: Entry, action: str,
                          more: list[int]) -> None:
    shop_id, eid = shop.id or 0, entry.id or 0
    if action == "eo":
        await ctx.answer()
        await show_entry(ctx, shop, entry)
    elif action == "eg":
        await ctx.answer()
        rows = await group_buttons(ctx, shop, f"{SV}:egs:{eid}:{{}}")
        await ctx.show(ctx.t("service_admin.ask_entry_group", name=entry.name),
                       keyboard(*rows, [back_button(ctx, f"{SV}:eo:{eid}")]))
    elif action == "egs":
        try:
            entry = await set_entry_group(ctx.session, shop_id=shop_id, actor_id=ctx.user_id,
                                          entry_id=eid, group_id=more[0] or None, now=ctx.now())
        except DomainError as exc:
            if exc.key != "nothing_changed":
                raise
            await ctx.rollback()
            shop = await ctx.owned_shop()
            entry = await get_entry(ctx.session, shop_id=shop_id, entry_id=eid)
        await ctx.answer()
        await show_entry(ctx, shop, entry, notice=ctx.t("service_admin.entry_group_set"))
    elif action == "er":
        await ctx.answer()
        await ctx.router.abandon(ctx)
        await ctx.start_flow(FLOW_NAME, "entry_rename", {"entry": eid})
        await ask_rename(ctx)
    elif action == "rg":
        await ask_to_confirm(
            ctx, ctx.t("service_admin.confirm_regenerate", name=entry.name),
            "service_admin.regenerate_yes", f"{SV}:rgy:{eid}", f"{SV}:eo:{eid}")
    elif action == "rgy":
        entry, token = await regenerate_token(ctx.session, shop_id=shop_id,
                                              actor_id=ctx.user_id, entry_id=eid, now=ctx.now())
        await ctx.answer()
        await made(ctx, shop, entry, token, ctx.t("service_admin.regenerated", name=entry.name))
    elif action == "ed":
        await ask_to_confirm(
            ctx, ctx.t("service_admin.confirm_delete_entry", name=entry.name),
            "service_admin.delete_yes", f"{SV}:edy:{eid}", f"{SV}:eo:{eid}")
    elif action == "edy":
        name = entry.name
        await delete_entry(ctx.session, shop_id=shop_id, actor_id=ctx.user_id, entry_id=eid,
                           now=ctx.now())
        await ctx.answer()
        await show_entries(ctx, shop, notice=ctx.t("service_admin.entry_deleted", name=name))


FLOW = Flow(
    name=FLOW_NAME,
    namespace=SV,
    buttons={
        "home": (), "me": (), "el": (), "ep": ("int",), "en": (), "ng": ("int",), "eo": ("int",),
        "eg": ("int",), "egs": ("int", "int"), "er": ("int",), "rg": ("int",),
        "rgy": ("int",), "ed": ("int",), "edy": ("int",),
    },
    on_button=on_button,
    steps={
        "entry_name": Step(ask=ask_name, on_text=on_name),
        "entry_group": Step(ask=ask_group),
        "entry_rename": Step(ask=ask_rename, on_text=on_rename),
    },
    commands=(Command("service", service_command, who="owner", menu_key="service"),),
)
