"""/service → groups (客服分组): the list with member counts, a new group, one group (its
members with their weights (权重), add / weight / remove a member, its overflow group, rename,
delete).

Callback data, namespace ``sg``: ``sg:l`` list · ``sg:p:<page>`` a page of it · ``sg:n`` new · ``sg:o:<group>`` open ·
``sg:a:<group>`` add a member · ``sg:ac:<group>:<account>`` that sub-account (0: the owner) ·
``sg:m:<group>:<agent>`` one member · ``sg:w:<group>:<agent>`` its weight ·
``sg:rm:<group>:<agent>`` remove it · ``sg:of:<group>`` / ``sg:ofs:<group>:<target>`` the
overflow group (0: none) · ``sg:rn:<group>`` rename · ``sg:d:<group>`` / ``sg:dy:<group>``
delete. A member is added only once its weight is typed.
"""

from __future__ import annotations

from handlers.card import with_notice
from handlers.context import Ctx
from handlers.flow import Flow, Step
from handlers.keyboards import button, keyboard, pager_row, rows_of
from handlers.service_common import (
    SG,
    agent_names,
    ask_to_confirm,
    back_button,
    button_shop,
    home_button,
    im_accounts,
    is_not_found,
    leave_step,
    step_data,
)
from models.errors import DomainError
from models.service.agents import agent_for, enroll_agent
from models.service.groups import (
    GROUP_NAME_MAX,
    WEIGHT_RANGE,
    add_member,
    check_weight,
    create_group,
    delete_group,
    get_group,
    group_page_of,
    groups_page,
    list_groups,
    members,
    remove_member,
    rename_group,
    set_overflow,
    set_weight,
)
from models.service.tables import ServiceGroup
from models.tables import Shop, SubAccount

FLOW_NAME = "service_groups"
NAME_ERRORS = ("service_group_name_empty", "service_group_name_too_long",
               "service_group_name_taken", "nothing_changed")


async def show_list(ctx: Ctx, shop: Shop, *, notice: str = "", page: int = 0) -> None:
    """The shop's groups with their member counts, a page at a time (a page past the end
    shows the last one)."""
    listed = await groups_page(ctx.session, shop_id=shop.id or 0, page=page)
    lines = [ctx.t("service_admin.groups_title", shop=shop.name)]
    if listed.pages > 1:
        lines.append(ctx.t("service_paging.page", page=listed.page + 1, pages=listed.pages))
    if not listed.rows:
        lines.append(ctx.t("service_admin.groups_empty"))
    for index, (group, count) in enumerate(listed.rows, start=listed.first_number):
        lines.append(ctx.t("service_admin.group_item", index=index, name=group.name, count=count))
    rows = rows_of([button(g.name, f"{SG}:o:{g.id}") for g, _ in listed.rows])
    rows += [pager_row(listed.page, listed.pages, previous=ctx.label("service_paging.prev"),
                       following=ctx.label("service_paging.next"),
                       data=lambda to: f"{SG}:p:{to}"),
             [button(ctx.label("service_admin.new_group_button"), f"{SG}:n")],
             [home_button(ctx)]]
    await ctx.show(with_notice(notice, "\n".join(lines)), keyboard(*rows))


async def show_group(ctx: Ctx, shop: Shop, group: ServiceGroup, *, notice: str = "") -> None:
    """One group: members with weights, the overflow group, and what can be done."""
    shop_id, gid = shop.id or 0, group.id or 0
    found = await members(ctx.session, shop_id=shop_id, group_id=gid)
    names = await agent_names(ctx, shop)
    lines = [ctx.t("service_admin.group_card", name=group.name, count=len(found))]
    for m in found:
        key = "service_admin.member_item" if m.agent.active else "service_admin.member_inactive"
        lines.append(ctx.t(key, name=names.get(m.agent.id or 0, "?"), weight=m.member.weight))
    overflow = None
    if group.overflow_group_id is not None:
        overflow = await ctx.session.get(ServiceGroup, group.overflow_group_id)
    lines.append(ctx.t("service_admin.overflow_line", group=overflow.name if overflow
                       else ctx.label("service_admin.no_overflow")))
    rows = rows_of([button(f"⚖️ {names.get(m.agent.id or 0, '?')} · {m.member.weight}",
                           f"{SG}:m:{gid}:{m.agent.id}") for m in found])
    rows += [
        [button(ctx.label("service_admin.add_member_button"), f"{SG}:a:{gid}"),
         button(ctx.label("service_admin.overflow_button"), f"{SG}:of:{gid}")],
        [button(ctx.label("service_admin.rename_button"), f"{SG}:rn:{gid}"),
         button(ctx.label("service_admin.delete_button"), f"{SG}:d:{gid}")],
        [back_button(ctx, f"{SG}:p:{await group_page_of(ctx.session, group)}"),
         home_button(ctx)],
    ]
    await ctx.show(with_notice(notice, "\n".join(lines)), keyboard(*rows))


async def show_candidates(ctx: Ctx, shop: Shop, group: ServiceGroup) -> None:
    """Who may join: IM-enabled authorized sub-accounts, and the owner if they answer too."""
    shop_id, gid = shop.id or 0, group.id or 0
    inside = {(m.agent.user_id) for m in await members(ctx.session, shop_id=shop_id, group_id=gid)}
    choices = [button(a.nickname, f"{SG}:ac:{gid}:{a.id}")
               for a in await im_accounts(ctx, shop) if a.holder_id not in inside]
    me = await agent_for(ctx.session, shop_id=shop_id, user_id=ctx.user_id)
    if me is not None and me.active and ctx.user_id not in inside:
        choices.insert(0, button(ctx.label("service_admin.owner_name"), f"{SG}:ac:{gid}:0"))
    text = ctx.t("service_admin.pick_member" if choices else "service_admin.no_candidates",
                 name=group.name)
    await ctx.show(text, keyboard(*rows_of(choices), [back_button(ctx, f"{SG}:o:{gid}")]))


# --- typed steps -----------------------------------------------------------------------------


async def ask_name(ctx: Ctx, *, notice: str = "") -> None:
    await ctx.show(with_notice(notice, ctx.t("service_admin.ask_group_name", max=GROUP_NAME_MAX)),
                   keyboard([back_button(ctx, f"{SG}:l")]))


async def on_name(ctx: Ctx, text: str) -> None:
    shop = await ctx.owned_shop()
    try:
        group = await create_group(ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
                                   name=text, now=ctx.now())
    except DomainError as exc:
        if exc.key not in NAME_ERRORS:
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        await ask_name(ctx, notice="⚠️ " + ctx.error_text(exc))
        return
    await ctx.end_flow()
    await show_group(ctx, shop, group, notice=ctx.t("service_admin.group_created", name=group.name))


async def draft_group(ctx: Ctx, shop: Shop) -> tuple[ServiceGroup, dict[str, object]]:
    data = await step_data(ctx, FLOW_NAME)
    group = await get_group(ctx.session, shop_id=shop.id or 0, group_id=int(str(data["group"])))
    return group, data


async def ask_rename(ctx: Ctx, *, notice: str = "") -> None:
    group, _ = await draft_group(ctx, await ctx.owned_shop())
    await ctx.show(with_notice(notice, ctx.t("service_admin.ask_group_rename", name=group.name,
                                             max=GROUP_NAME_MAX)),
                   keyboard([back_button(ctx, f"{SG}:o:{group.id}")]))


async def gone(ctx: Ctx, shop: Shop, exc: DomainError) -> None:
    """What a typed step names is gone: leave the step, say so over the list."""
    await ctx.rollback()
    shop = await ctx.owned_shop()
    await ctx.end_flow()
    await show_list(ctx, shop, notice="⚠️ " + ctx.error_text(exc))


async def on_rename(ctx: Ctx, text: str) -> None:
    shop = await ctx.owned_shop()
    try:
        group, _ = await draft_group(ctx, shop)
        group = await rename_group(ctx.session, shop_id=shop.id or 0, actor_id=ctx.user_id,
                                   group_id=group.id or 0, name=text, now=ctx.now())
    except DomainError as exc:
        if is_not_found(exc):
            await gone(ctx, shop, exc)
            return
        if exc.key not in NAME_ERRORS:
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        await ask_rename(ctx, notice="⚠️ " + ctx.error_text(exc))
        return
    await ctx.end_flow()
    await show_group(ctx, shop, group, notice=ctx.t("service_admin.group_renamed", name=group.name))


async def weight_subject(ctx: Ctx, shop: Shop, data: dict[str, object]) -> str:
    """Who the weight being typed is for."""
    if "agent" in data:
        names = await agent_names(ctx, shop)
        return names.get(int(str(data["agent"])), "?")
    account = int(str(data.get("account", 0)))
    if account == 0:
        return ctx.label("service_admin.owner_name")
    found = await ctx.session.get(SubAccount, account)
    if found is None or found.shop_id != shop.id:
        raise DomainError("service_agent_not_found")
    return found.nickname


async def ask_weight(ctx: Ctx, *, notice: str = "") -> None:
    shop = await ctx.owned_shop()
    group, data = await draft_group(ctx, shop)
    low, high = WEIGHT_RANGE
    text = ctx.t("service_admin.ask_weight", who=await weight_subject(ctx, shop, data),
                 group=group.name, min=low, max=high)
    await ctx.show(with_notice(notice, text), keyboard([back_button(ctx, f"{SG}:o:{group.id}")]))


async def on_weight(ctx: Ctx, text: str) -> None:
    shop = await ctx.owned_shop()
    raw = text.strip()
    try:
        group, data = await draft_group(ctx, shop)
        weight = check_weight(int(raw) if raw.isascii() and raw.isdigit() else -1)
        who = await weight_subject(ctx, shop, data)
        await save_weight(ctx, shop, group, data, weight)
    except DomainError as exc:
        if is_not_found(exc):
            await gone(ctx, shop, exc)
            return
        if exc.key not in ("service_weight_invalid", "nothing_changed", "service_member_exists",
                           "service_not_agent"):
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        await ask_weight(ctx, notice="⚠️ " + ctx.error_text(exc))
        return
    await ctx.end_flow()
    await show_group(ctx, shop, group, notice=ctx.t("service_admin.weight_set", who=who,
                                                    weight=weight))


async def save_weight(ctx: Ctx, shop: Shop, group: ServiceGroup, data: dict[str, object],
                      weight: int) -> None:
    """Set a member's weight, or enrol the chosen person as an agent and add them."""
    shop_id, gid, now = shop.id or 0, group.id or 0, ctx.now()
    if "agent" in data:
        await set_weight(ctx.session, shop_id=shop_id, actor_id=ctx.user_id, group_id=gid,
                         agent_id=int(str(data["agent"])), weight=weight, now=now)
        return
    account = int(str(data.get("account", 0)))
    user_id = ctx.user_id
    if account:
        found = await ctx.session.get(SubAccount, account)
        if found is None or found.shop_id != shop_id:
            raise DomainError("service_agent_not_found")
        user_id = found.holder_id
    agent = await enroll_agent(ctx.session, ctx.deps.service_policy, shop_id=shop_id,
                               user_id=user_id, actor_id=ctx.user_id, now=now)
    await add_member(ctx.session, shop_id=shop_id, actor_id=ctx.user_id, group_id=gid,
                     agent_id=agent.id or 0, weight=weight, now=now)


# --- buttons ---------------------------------------------------------------------------------


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    shop = await button_shop(ctx)
    await leave_step(ctx)
    if action in ("l", "p"):
        await ctx.answer()
        await show_list(ctx, shop, page=int(args[0]) if args else 0)
        return
    if action == "n":
        await ctx.answer()
        await ctx.router.abandon(ctx)
        await ctx.start_flow(FLOW_NAME, "name")
        await ask_name(ctx)
        return
    try:
        group = await get_group(ctx.session, shop_id=shop.id or 0, group_id=int(args[0]))
        await on_group_button(ctx, shop, group, action, [int(a) for a in args[1:]])
    except DomainError as exc:
        if not is_not_found(exc):
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        await ctx.stale()


async def on_group_button(ctx: Ctx, shop: Shop, group: ServiceGroup, action: str,
                          more: list[int]) -> None:
    shop_id, gid = shop.id or 0, group.id or 0
    if action in ("m", "w", "rm"):
        by_agent = {m.agent.id: m for m in await members(ctx.session, shop_id=shop_id,
                                                          group_id=gid)}
        if more[0] not in by_agent:
            raise DomainError("service_member_not_found")
    if action == "o":
        await ctx.answer()
        await show_group(ctx, shop, group)
    elif action == "a":
        await ctx.answer()
        await show_candidates(ctx, shop, group)
    elif action == "ac":
        await begin_weight(ctx, shop, gid, {"group": gid, "account": more[0]})
    elif action == "m":
        member = by_agent[more[0]]
        who = (await agent_names(ctx, shop)).get(more[0], "?")
        await ctx.answer()
        await ctx.show(ctx.t("service_admin.member_card", who=who, group=group.name,
                             weight=member.member.weight), keyboard(
            [button(ctx.label("service_admin.weight_button"), f"{SG}:w:{gid}:{more[0]}"),
             button(ctx.label("service_admin.remove_button"), f"{SG}:rm:{gid}:{more[0]}")],
            [back_button(ctx, f"{SG}:o:{gid}")]))
    elif action == "w":
        await begin_weight(ctx, shop, gid, {"group": gid, "agent": more[0]})
    elif action == "rm":
        who = (await agent_names(ctx, shop)).get(more[0], "?")
        await remove_member(ctx.session, shop_id=shop_id, actor_id=ctx.user_id, group_id=gid,
                            agent_id=more[0], now=ctx.now())
        await ctx.answer()
        await show_group(ctx, shop, group, notice=ctx.t("service_admin.member_removed", who=who))
    elif action == "of":
        others = [g for g, _ in await list_groups(ctx.session, shop_id=shop_id) if g.id != gid]
        rows = rows_of([button(g.name, f"{SG}:ofs:{gid}:{g.id}") for g in others])
        rows.append([button(ctx.label("service_admin.no_overflow_button"), f"{SG}:ofs:{gid}:0")])
        await ctx.answer()
        await ctx.show(ctx.t("service_admin.ask_overflow", name=group.name),
                       keyboard(*rows, [back_button(ctx, f"{SG}:o:{gid}")]))
    elif action == "ofs":
        await choose_overflow(ctx, shop, group, more[0])
    elif action == "rn":
        await begin(ctx, "rename", {"group": gid})
        await ask_rename(ctx)
    elif action == "d":
        await ask_to_confirm(
            ctx, ctx.t("service_admin.confirm_delete_group", name=group.name),
            "service_admin.delete_yes", f"{SG}:dy:{gid}", f"{SG}:o:{gid}")
    elif action == "dy":
        name = group.name
        await delete_group(ctx.session, shop_id=shop_id, actor_id=ctx.user_id, group_id=gid,
                           now=ctx.now())
        await ctx.answer()
        await show_list(ctx, shop, notice=ctx.t("service_admin.group_deleted", name=name))


async def begin(ctx: Ctx, step: str, data: dict[str, object]) -> None:
    await ctx.answer()
    await ctx.router.abandon(ctx)
    await ctx.start_flow(FLOW_NAME, step, dict(data))


async def begin_weight(ctx: Ctx, shop: Shop, gid: int, data: dict[str, object]) -> None:
    account = data.get("account")
    if (isinstance(account, int) and account
            and account not in {a.id for a in await im_accounts(ctx, shop)}):
        raise DomainError("service_agent_not_found")
    await begin(ctx, "weight", data)
    await ask_weight(ctx)


async def choose_overflow(ctx: Ctx, shop: Shop, group: ServiceGroup, target: int) -> None:
    shop_id, gid = shop.id or 0, group.id or 0
    try:
        group = await set_overflow(ctx.session, shop_id=shop_id, actor_id=ctx.user_id,
                                   group_id=gid, overflow_id=target or None, now=ctx.now())
        notice = ctx.t("service_admin.overflow_set")
    except DomainError as exc:
        if exc.key not in ("service_overflow_self", "service_overflow_cycle", "nothing_changed"):
            raise
        await ctx.rollback()
        shop = await ctx.owned_shop()
        group = await get_group(ctx.session, shop_id=shop_id, group_id=gid)
        notice = "⚠️ " + ctx.error_text(exc)
    await ctx.answer()
    await show_group(ctx, shop, group, notice=notice)


FLOW = Flow(
    name=FLOW_NAME,
    namespace=SG,
    buttons={
        "l": (), "p": ("int",), "n": (), "o": ("int",), "a": ("int",), "ac": ("int", "int"),
        "m": ("int", "int"), "w": ("int", "int"), "rm": ("int", "int"), "of": ("int",),
        "ofs": ("int", "int"), "rn": ("int",), "d": ("int",), "dy": ("int",),
    },
    on_button=on_button,
    steps={
        "name": Step(ask=ask_name, on_text=on_name),
        "rename": Step(ask=ask_rename, on_text=on_rename),
        "weight": Step(ask=ask_weight, on_text=on_weight),
    },
)
