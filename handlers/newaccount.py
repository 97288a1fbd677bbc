"""/newaccount — provisioning a sub-account, in the order of Douyin Shop's 新建账号:

role → phone → verification code (relayed by the holder) → nickname → IM → summary → confirm.

Every step is written to the user's draft, so a restart finds the owner where they were. Steps
2 and 3 (the phone, the code) are in ``handlers.newaccount_code``; the holder's side of a code
in ``handlers.holder_code``, ``handlers.invite`` and ``handlers.expiry``. A role is created in
the middle of the flow by the roles flow, started nested (it returns to ``back_from_role``).
"""

from __future__ import annotations

from typing import Any

from handlers.account_screens import details_screen
from handlers.code_messages import OWNER_FLOW as NAME
from handlers.code_messages import OWNER_NS as NS
from handlers.context import Ctx, Deps
from handlers.flow import Command, Flow, Step
from handlers.i18n import module_names, t
from handlers.keyboards import button, keyboard
from handlers.newaccount_code import (
    ask_code,
    ask_holder_phone,
    cancel_button,
    cancel_code,
    cancel_flow,
    chosen_role,
    data_at,
    on_code,
    on_holder_phone,
    rewind_to_role,
    send_code,
)
from handlers.router import cb
from handlers.telegram_io import Undelivered
from models.accounts import (
    NICKNAME_MAX,
    account_for_code,
    check_seat_free,
    clean_nickname,
    confirm_sub_account,
)
from models.errors import DomainError
from models.phones import mask_phone
from models.policy import IM_MODULE
from models.roles import get_role, list_roles
from models.tables import Role, User

#: the nested role creation: the roles flow's first step
ROLE_CREATION = ("roles", "preset")


def role_modules(locale: str, deps: Deps, role: Role) -> str:
    """The role's modules as names in a locale, catalogue order (unknown keys left out)."""
    keys = deps.policy.sorted_modules(role.modules)
    return module_names(deps.policy, keys, locale, t(locale, "accounts.sep"))


async def start_newaccount(ctx: Ctx) -> None:
    """/newaccount and the owner menu's "New account": add a staff sub-account."""
    if await ctx.owned_shop_or_explain("newaccount.for_owners") is None:
        return
    await ctx.router.abandon(ctx)
    shop = await ctx.owned_shop()
    await check_seat_free(ctx.session, shop)
    await ctx.start_flow(NAME, "role")
    await ask_role(ctx)


# --- 1. role ----------------------------------------------------------------------------------


async def ask_role(ctx: Ctx) -> None:
    """Step 1: choose the new account's role, or create one."""
    shop = await ctx.owned_shop()
    found = await list_roles(ctx.session, shop.id or 0)
    if not found:
        await ctx.reply(ctx.t("newaccount.no_roles_yet"))
        await ctx.router.start_nested(ctx, *ROLE_CREATION, return_to=NAME,
                                      parent_data=await data_at(ctx, "role") or {})
        return
    rows = [[button(role.name, cb(NS, "role", role.id))] for role, _used in found]
    rows.append([button(ctx.t("newaccount.create_role"), cb(NS, "newrole"))])
    rows.append(cancel_button(ctx))
    await ctx.reply(ctx.t("newaccount.choose_role", shop=shop.name), keyboard(*rows))


async def back_from_role(
    ctx: Ctx, role_id: int | None, parent_data: dict[str, object]
) -> None:
    """The nested role flow is done: with a new role go on to the phone, else choose again."""
    await ctx.start_flow(NAME, "role", dict(parent_data))
    if role_id is None:
        shop = await ctx.owned_shop()
        if not await list_roles(ctx.session, shop.id or 0):
            await cancel_code(ctx, dict(parent_data))  # kept from a rewind, if any
            await ctx.end_flow()
            await ctx.reply(ctx.t("common.cancelled"))
            return
        await ask_role(ctx)
        return
    shop = await ctx.owned_shop()
    role = await get_role(ctx.session, shop.id or 0, role_id)
    await ctx.reply(ctx.t("newaccount.role_created", role=role.name))
    await role_chosen(ctx, role)


async def role_chosen(ctx: Ctx, role: Role) -> None:
    """Step 1 done: remember the role and ask for the phone — or, after a rewind (the role
    first chosen was deleted), go back to where the owner was: the code or nickname step as
    they were, IM and the summary asked again (IM's recommendation depends on the role)."""
    # ``role`` stays referenced until the prompt is sent: the session's identity map holds
    # loaded objects weakly, and the prompt's own look-up of the role is then answered from it
    draft = await ctx.load_draft()
    data = dict(draft.data) if draft is not None and draft.flow == NAME else {}
    resume = data.pop("resume", None)
    data["role_id"] = role.id
    if resume in ("code", "nickname"):
        await ctx.start_flow(NAME, str(resume), data)
        await (ask_code if resume == "code" else ask_nickname)(ctx)
        return
    if resume in ("im", "confirm"):
        await ctx.start_flow(NAME, "im", data)
        await ask_im(ctx)
        return
    await ctx.start_flow(NAME, "phone", data)
    await ask_holder_phone(ctx)


async def recheck_role(ctx: Ctx) -> None:
    """A role was deleted: if it is the one chosen for this new account, rewind to step 1."""
    draft = await ctx.load_draft()
    shop = await ctx.shop_or_none()
    if draft is None or draft.flow != NAME or "role_id" not in draft.data or shop is None:
        return
    try:
        await get_role(ctx.session, shop.id or 0, int(draft.data["role_id"]))
    except DomainError as exc:
        if exc.key != "role_not_found":
            raise
        await rewind_to_role(ctx)


# --- 4. nickname ------------------------------------------------------------------------------


async def ask_nickname(ctx: Ctx) -> None:
    """Step 4: the nickname, with the holder's Telegram name offered."""
    data = await data_at(ctx, "nickname") or {}
    name = data.get("holder_name")
    rows = []
    if isinstance(name, str) and name.strip():
        rows.append([button(ctx.label("newaccount.use_name", name=name.strip()[:NICKNAME_MAX]),
                            cb(NS, "nick"))])
    rows.append(cancel_button(ctx))
    await ctx.reply(ctx.t("newaccount.ask_nickname", max=NICKNAME_MAX), keyboard(*rows))


async def on_nickname(ctx: Ctx, text: str) -> None:
    """Check the nickname (1–``NICKNAME_MAX`` characters) and go on to IM."""
    try:
        nickname = clean_nickname(text)
    except DomainError as exc:
        await ctx.reply(ctx.error_text(exc))
        await ask_nickname(ctx)
        return
    await ctx.goto(NAME, "im", {"nickname": nickname})
    await ask_im(ctx)


# --- 5. IM ------------------------------------------------------------------------------------


async def ask_im(ctx: Ctx) -> None:
    """Step 5: customer-chat (IM) permission on or off."""
    _, _, role = await chosen_role(ctx, "im")
    recommended = IM_MODULE in role.modules
    on_label = ctx.t("newaccount.im_on_recommended" if recommended else "newaccount.im_on")
    await ctx.reply(
        ctx.t("newaccount.ask_im", role=role.name),
        keyboard(
            [button(on_label, cb(NS, "im", 1)), button(ctx.t("newaccount.im_off"), cb(NS, "im", 0))],
            cancel_button(ctx),
        ),
    )


# --- 6. summary and confirm -------------------------------------------------------------------


async def ask_confirm(ctx: Ctx) -> None:
    """Step 6: the summary, with Confirm and Cancel."""
    data, shop, role = await chosen_role(ctx, "confirm")
    await ctx.reply(
        ctx.t(
            "newaccount.summary",
            shop=shop.name,
            role=role.name,
            modules=role_modules(ctx.locale, ctx.deps, role),
            phone=mask_phone(str(data.get("phone"))),
            nickname=str(data.get("nickname")),
            im=ctx.t("common.on" if data.get("im") else "common.off"),
        ),
        keyboard([button(ctx.t("newaccount.confirm"), cb(NS, "ok", data.get("code_id", 0)))],
                 cancel_button(ctx)),
    )


async def confirm(ctx: Ctx, data: dict[str, Any]) -> None:
    """Create the sub-account (Authorized), tell the holder, then show the owner the outcome
    (the holder is told first, so a failed screen update cannot leave them untold)."""
    shop = await ctx.owned_shop()
    shop_id, code_id = shop.id or 0, int(data["code_id"])
    try:
        # held here, so that the confirmation's own look-up and the messages below share a load
        role = await get_role(ctx.session, shop_id, int(data["role_id"]))
        account = await confirm_sub_account(
            ctx.session, shop=shop, owner_id=ctx.user_id, code_id=code_id,
            role_id=int(data["role_id"]), nickname=str(data["nickname"]),
            im_enabled=bool(data["im"]), now=ctx.now(),
        )
    except DomainError as exc:
        if await already_created(ctx, code_id):
            await ctx.end_flow()
            return
        await ctx.answer()
        if exc.key == "role_not_found":
            await rewind_to_role(ctx)
            return
        await cancel_code(ctx, data)
        await ctx.end_flow()
        await ctx.reply(ctx.error_text(exc))
        await ctx.reply(ctx.t("newaccount.not_created"))
        return
    holder = await ctx.session.get(User, account.holder_id)
    await ctx.end_flow()
    await ctx.answer()
    warning: str | None = ctx.t("newaccount.holder_not_told", nickname=account.nickname)
    if holder is not None:
        locale = ctx.deps.locale_of(holder)
        sent = await ctx.notify(
            holder, "holder_code.added", shop=shop.name, role=role.name,
            modules=role_modules(locale, ctx.deps, role),
            im=t(locale, "common.on" if account.im_enabled else "common.off"),
        )
        if sent is Undelivered.FAILED:
            warning = ctx.t("newaccount.holder_not_told_failed", nickname=account.nickname)
        elif sent is not Undelivered.BLOCKED:
            warning = None
    created = ctx.t("newaccount.created", nickname=account.nickname,
                    phone=mask_phone(account.phone), role=role.name)
    await ctx.show(f"{created}\n\n{warning}" if warning else created)
    await ctx.router.open(ctx, "accounts")


async def already_created(ctx: Ctx, code_id: int) -> bool:
    """A second Confirm (pressed twice, or on two devices): if the code already made the
    account, say so plainly and show it; ``False`` if it did not."""
    shop = await ctx.shop_or_none()
    done = await account_for_code(ctx.session, shop.id or 0, code_id) if shop else None
    if shop is None or done is None:
        return False
    await ctx.answer(ctx.label("newaccount.already_created_toast"))
    text, markup = await details_screen(
        ctx, shop, done, ctx.t("newaccount.already_created", nickname=done.nickname))
    await ctx.reply(text, markup)
    return True


# --- buttons ----------------------------------------------------------------------------------


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """The owner's buttons in /newaccount; each checks the flow is at its step."""
    if action == "cancel":
        if await data_at(ctx, "role", "phone", "code", "nickname", "im", "confirm") is None:
            await ctx.stale()
            return
        await cancel_flow(ctx)
        await ctx.end_flow()
        await ctx.answer()
        await ctx.show(ctx.t("common.cancelled"))
        return
    if action == "role":
        if await data_at(ctx, "role") is None:
            await ctx.stale()
            return
        shop = await ctx.owned_shop()
        try:
            role = await get_role(ctx.session, shop.id or 0, int(args[0]))
        except DomainError:
            await ctx.stale()
            return
        await ctx.answer()
        await role_chosen(ctx, role)
        return
    if action == "newrole":
        data = await data_at(ctx, "role")
        if data is None:
            await ctx.stale()
            return
        await ctx.answer()
        await ctx.router.start_nested(ctx, *ROLE_CREATION, return_to=NAME, parent_data=data)
        return
    if action == "resend":
        data = await data_at(ctx, "code")
        if data is None:
            await ctx.stale()
            return
        await ctx.answer()
        shop = await ctx.owned_shop()
        await send_code(ctx, shop, int(data["role_id"]), str(data["phone"]), recheck=True)
        return
    if action == "nick":
        data = await data_at(ctx, "nickname")
        name = (data or {}).get("holder_name")
        if data is None or not isinstance(name, str) or not name.strip():
            await ctx.stale()
            return
        await ctx.answer()
        await on_nickname(ctx, name[:NICKNAME_MAX])
        return
    if action == "im":
        if await data_at(ctx, "im") is None:
            await ctx.stale()
            return
        await ctx.answer()
        await ctx.goto(NAME, "confirm", {"im": args[0] == "1"})
        await ask_confirm(ctx)
        return
    if action == "ok":
        data = await data_at(ctx, "confirm")
        if data is None or int(data.get("code_id", 0)) != int(args[0]):
            if not await already_created(ctx, int(args[0])):
                await ctx.stale()
            return
        await confirm(ctx, data)


FLOW = Flow(
    name=NAME,
    namespace=NS,
    commands=(Command("newaccount", start_newaccount, who="owner", menu_key="newaccount"),),
    steps={
        "role": Step(ask=ask_role),
        "phone": Step(ask=ask_holder_phone, on_text=on_holder_phone),
        "code": Step(ask=ask_code, on_text=on_code),
        "nickname": Step(ask=ask_nickname, on_text=on_nickname),
        "im": Step(ask=ask_im),
        "confirm": Step(ask=ask_confirm),
    },
    buttons={"cancel": (), "role": ("int",), "newrole": (), "resend": (), "nick": (),
             "im": ("int",), "ok": ("int",)},
    on_button=on_button,
    on_cancel=cancel_flow,
    on_return=back_from_role,
    on_change=recheck_role,
)
