"""The role editor: creating a role (preset → name → description → permissions) and the three
edits of one (rename, description, permissions), each a step of the ``roles`` flow kept in the
draft. Its buttons (namespace ``rn``) carry the draft's nonce and are accepted only at their
step. Started by /roles (``handlers.roles``), or nested in /newaccount (it then returns the
new role's id, or ``None``, through the router instead of showing the role).
"""

from __future__ import annotations

from typing import Any

from handlers.card import with_notice
from handlers.context import Ctx
from handlers.flow import Flow, Step
from handlers.keyboards import button, keyboard, rows_of
from handlers.role_edits import (
    NAME,
    NAME_ERRORS,
    NS,
    ask_redescription,
    ask_rename,
    change_description,
    fbtn,
    flow_data,
    leave_edit,
    on_rename,
    save_modules,
    why,
)
from handlers.role_screens import modules_text, show_list, show_role
from handlers.router import cb
from models.errors import DomainError
from models.roles import (
    ROLE_DESCRIPTION_MAX,
    ROLE_NAME_MAX,
    clean_description,
    create_role,
    ensure_name_free,
)

PERMS_STEPS = ("perms", "reperms")
EDIT_STEPS = ("rename", "redesc", "reperms")


# --- creation ---------------------------------------------------------------------------------


async def ask_preset(ctx: Ctx) -> None:
    """Step 0: a preset (its modules shown) or blank; Back leaves."""
    await ctx.owned_shop()
    data = await flow_data(ctx)
    nonce = int(data["n"])
    lines = [ctx.t("roles.create_title"), ctx.t("roles.preset_hint"), ""]
    for preset in ctx.policy.presets:
        lines.append(ctx.t("roles.preset_item", name=preset.name(ctx.locale),
                           modules=modules_text(ctx, list(preset.modules))))
    presets = [
        button(preset.name(ctx.locale), cb(NS, "p", nonce, preset.key))
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
    await ctx.goto(NAME, "desc", {"name": name})
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
    await ctx.goto(NAME, "perms", {"description": description})
    await ask_perms(ctx)


async def ask_perms(ctx: Ctx) -> None:
    """Step 3 (and the permissions edit): every module as a ☑/☐ toggle, all / clear, Done."""
    draft = await ctx.load_draft()
    data = await flow_data(ctx)
    nonce, editing = int(data["n"]), draft is not None and draft.step == "reperms"
    ticked = set(ctx.policy.sorted_modules(list(data.get("modules") or [])))
    toggles = [
        button(f"{'☑' if m.key in ticked else '☐'} {m.name(ctx.locale)}",
               cb(NS, "t", nonce, m.key))
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
        [fbtn(ctx, "roles.all_button", "all", nonce),
         fbtn(ctx, "roles.clear_button", "none", nonce)],
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
        await ctx.goto(NAME, "name")
        await ctx.answer()
        await ask_name(ctx, notice=why(ctx, exc))
        return
    await ctx.end_flow()
    await ctx.answer(ctx.label("roles.created_toast", name=role.name))
    if await ctx.router.finish_nested(ctx, data, role.id):
        return
    await show_role(ctx, shop, role, notice=ctx.t("roles.created", name=role.name))


async def leave_creation(ctx: Ctx, data: dict[str, Any]) -> None:
    """Back on the first screen: to the parent flow (with no role), or to the list."""
    await ctx.end_flow()
    await ctx.answer()
    if await ctx.router.finish_nested(ctx, data, None):
        return
    await show_list(ctx, 0)


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
        draft is None or draft.flow != NAME or draft.step not in FLOW_ACTIONS[action]
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
        await ctx.goto(NAME, "name", {"preset": preset.key,
                                      "modules": ctx.policy.sorted_modules(list(preset.modules))})
        await ask_name(ctx)
    elif action == "b":
        await ctx.answer()
        await ctx.goto(NAME, "name", {"preset": None, "modules": []})
        await ask_name(ctx)
    elif action == "back":
        await leave_creation(ctx, data)
    elif action == "use":
        await use_preset_name(ctx, data)
    elif action == "skip":
        await ctx.answer()
        await ctx.goto(NAME, "perms", {"description": ""})
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
    await ctx.goto(NAME, at, {"modules": ctx.policy.sorted_modules(ticked)})
    await ctx.answer()
    await ask_perms(ctx)


async def describe(ctx: Ctx) -> str | None:
    """What the owner is doing, for the router's discard question and /start's Continue:
    a role being created (once it has a name) or its permissions being changed."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME:
        return None
    name = str(draft.data.get("name") or "")
    if draft.step in ("desc", "perms") and name:
        step = 2 if draft.step == "desc" else 3
        return ctx.t("common.doing_role_new", name=name, step=step)
    if draft.step == "reperms":
        return ctx.t("common.doing_role_perms", name=name)
    return None


FLOW = Flow(
    name=NAME,
    namespace=NS,
    steps={
        "preset": Step(ask=ask_preset),
        "name": Step(ask=ask_name, on_text=accept_name),
        "desc": Step(ask=ask_description, on_text=on_description),
        "perms": Step(ask=ask_perms),
        "rename": Step(ask=ask_rename, on_text=on_rename),
        "redesc": Step(ask=ask_redescription, on_text=change_description),
        "reperms": Step(ask=ask_perms),
    },
    buttons={
        "p": ("int", "key"), "b": ("int",), "back": ("int",), "use": ("int",),
        "skip": ("int",), "t": ("int", "key"), "all": ("int",), "none": ("int",),
        "done": ("int",), "x": ("int",), "clr": ("int",),
    },
    on_button=on_flow_button,
    describe=describe,
)
