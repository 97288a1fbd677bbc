"""/newaccount — provisioning a sub-account, in the order of Douyin Shop's 新建账号:

role → phone → verification code (relayed by the holder) → nickname → IM → summary → confirm.

Every step is written to the user's draft, so a restart finds the owner where they were. Steps
2 and 3 (the phone, the code) are in ``handlers.newaccount_code``; the holder's side of a code
in ``handlers.holder_code``, ``handlers.invite`` and ``handlers.expiry``. A role is created in
the middle of the flow by the roles flow, started nested (it returns to ``back_from_role``).
"""

from __future__ import annotations

from typing import Any

from telegram import Message

from handlers.access_screens import choice_rows
from handlers.account_screens import details_screen
from handlers.card import strip_keyboard, why, with_notice
from handlers.code_messages import OWNER_FLOW as NAME
from handlers.code_messages import OWNER_NS as NS
from handlers.context import Ctx, Deps
from handlers.flow import Command, Flow, Step
from handlers.i18n import module_names, t
from handlers.keyboards import button, keyboard
from handlers.newaccount_code import (
    STEP_NUMBERS,
    ask_code,
    ask_holder_phone,
    back_cancel,
    cancel_button,
    cancel_code,
    cancel_flow,
    checklist,
    chosen_role,
    current_card,
    data_at,
    invite_unopened,
    next_in_batch,
    on_code,
    on_holder_phone,
    rewind_to_role,
    send_code,
    send_when_ready,
    show_card,
)
from handlers.router import MENU_NS, cb
from handlers.telegram_io import Undelivered
from handlers.times import zone_name as zone_name_of
from models.accounts import (
    NICKNAME_MAX,
    account_for_code,
    check_seat_free,
    clean_nickname,
    confirm_sub_account,
)
from models.errors import DomainError
from models.lifecycle.access import NO_END, TERMS, parse_access_end, set_access
from models.phones import mask_phone
from models.policy import IM_MODULE
from models.roles import get_role, list_roles
from models.shops import set_consent_mode
from models.tables import Role, User

#: the nested role creation: the roles flow's first step
ROLE_CREATION = ("roles", "preset")


def role_modules(locale: str, deps: Deps, role: Role) -> str:
    """The role's modules as names in a locale, catalogue order (unknown keys left out)."""
    keys = deps.policy.sorted_modules(role.modules)
    return module_names(deps.policy, keys, locale, t(locale, "accounts.sep"))


async def start_newaccount(ctx: Ctx) -> None:
    """/newaccount and the owner menu's "New account": add a staff sub-account, on a card of
    its own. Started again during the flow (after the owner said to start over), the live code
    is kept: the same number entered again goes on with it (no new code, no cooldown)."""
    if await ctx.owned_shop_or_explain("newaccount.for_owners") is None:
        return
    if await ctx.router.ask_discard(ctx):
        return
    draft = await ctx.load_draft()
    kept: dict[str, object] = {}
    if draft is not None and draft.flow == NAME:
        kept = {k: draft.data[k] for k in ("code_id", "phone") if draft.data.get(k)}
        old = draft.data.get("card")
        await ctx.end_flow()
        if isinstance(old, int):
            await strip_keyboard(ctx, old)
    else:
        await ctx.router.abandon(ctx)
    shop = await ctx.owned_shop()
    await check_seat_free(ctx.session, shop)
    await ctx.start_flow(NAME, "role", kept)
    await ask_role(ctx, fresh=ctx.update.callback_query is None)


# --- 1. role ----------------------------------------------------------------------------------


async def ask_role(ctx: Ctx, *, fresh: bool = False) -> None:
    """Step 1: choose the new account's role, or create one. With no role yet, the card says
    so first, and the role creation follows below it."""
    shop = await ctx.owned_shop()
    found = await list_roles(ctx.session, shop.id or 0)
    if not found:
        await show_card(ctx, ctx.t("newaccount.no_roles_yet"), fresh=fresh)
        ctx.fresh_screens = True  # the role creation comes below the explanation
        await ctx.router.start_nested(ctx, *ROLE_CREATION, return_to=NAME,
                                      parent_data=await data_at(ctx, "role") or {})
        return
    data = await data_at(ctx, "role") or {}
    rows = [[button(role.name, cb(NS, "role", role.id))] for role, _used in found]
    rows.append([button(ctx.t("newaccount.create_role"), cb(NS, "newrole"))])
    if not data.get("edit"):  # the shop's way of consent, changed here (docs/product.md)
        mode = "button" if shop.consent_mode == "button" else "code"
        rows.append([button(ctx.t(f"newaccount.consent_{mode}"), cb(NS, "consent"))])
    rows.append(back_cancel(ctx) if data.get("edit") else cancel_button(ctx))
    await show_card(ctx, ctx.t("newaccount.choose_role", shop=shop.name), keyboard(*rows),
                    fresh=fresh)


async def back_from_role(
    ctx: Ctx, role_id: int | None, parent_data: dict[str, object]
) -> None:
    """The nested role flow is done: with a new role go on to the phone, else choose again."""
    await ctx.start_flow(NAME, "role", dict(parent_data))
    if role_id is None:
        shop = await ctx.owned_shop()
        if not await list_roles(ctx.session, shop.id or 0):
            card = await current_card(ctx)
            await cancel_code(ctx, dict(parent_data))  # kept from a rewind, if any
            await ctx.end_flow()
            await show_card(ctx, ctx.t("common.cancelled"), card=card)
            return
        await ask_role(ctx)
        return
    shop = await ctx.owned_shop()
    role = await get_role(ctx.session, shop.id or 0, role_id)
    await ctx.goto(NAME, "role", {"notice": ctx.t("newaccount.role_created", role=role.name)})
    await role_chosen(ctx, role)


async def role_chosen(ctx: Ctx, role: Role) -> None:
    """Step 1 done: remember the role and ask for the phone — or back to the summary when the
    role was changed from there — or, after a rewind (the role first chosen was deleted), go
    back to where the owner was: the code or nickname step as they were, IM and the summary
    asked again (IM's recommendation depends on the role)."""
    # ``role`` stays referenced until the prompt is sent: the session's identity map holds
    # loaded objects weakly, and the prompt's own look-up of the role is then answered from it
    draft = await ctx.load_draft()
    data = dict(draft.data) if draft is not None and draft.flow == NAME else {}
    resume = data.pop("resume", None)
    data["role_id"] = role.id
    if data.pop("edit", None) and data.get("nickname") and "im" in data:
        await ctx.start_flow(NAME, "confirm", data)
        await ask_confirm(ctx)
        return
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


async def ask_nickname(ctx: Ctx, *, notice: str = "") -> None:
    """Step 4: the nickname, with the holder's Telegram name offered."""
    data = await data_at(ctx, "nickname") or {}
    name = data.get("holder_name")
    rows = []
    if isinstance(name, str) and name.strip():
        rows.append([button(ctx.label("newaccount.use_name", name=name.strip()[:NICKNAME_MAX]),
                            cb(NS, "nick"))])
    rows.append(back_cancel(ctx))
    await show_card(ctx, ctx.t("newaccount.ask_nickname", max=NICKNAME_MAX), keyboard(*rows),
                    notice=notice)


async def on_nickname(ctx: Ctx, text: str) -> None:
    """Check the nickname (1–``NICKNAME_MAX`` characters) and go on to IM (or back to the
    summary, when it was changed from there)."""
    try:
        nickname = clean_nickname(text)
    except DomainError as exc:
        await ask_nickname(ctx, notice=why(ctx, exc, text))
        return
    data = await data_at(ctx, "nickname") or {}
    if data.get("edit") and "im" in data:
        await ctx.goto(NAME, "confirm", {"nickname": nickname, "edit": None})
        await ask_confirm(ctx)
        return
    await ctx.goto(NAME, "im", {"nickname": nickname})
    await ask_im(ctx)


# --- 5. IM ------------------------------------------------------------------------------------


async def ask_im(ctx: Ctx) -> None:
    """Step 5: customer-chat (IM) permission on or off."""
    _, _, role = await chosen_role(ctx, "im")
    recommended = IM_MODULE in role.modules
    on_label = ctx.t("newaccount.im_on_recommended" if recommended else "newaccount.im_on")
    await show_card(
        ctx,
        ctx.t("newaccount.ask_im", role=role.name),
        keyboard(
            [button(on_label, cb(NS, "im", 1)),
             button(ctx.t("newaccount.im_off"), cb(NS, "im", 0))],
            back_cancel(ctx),
        ),
    )


# --- 6. summary and confirm -------------------------------------------------------------------


async def ask_confirm(ctx: Ctx, *, notice: str = "") -> None:
    """Step 6: the summary, each line editable (the role, the nickname, IM), then Confirm."""
    data, shop, role = await chosen_role(ctx, "confirm")
    im = bool(data.get("im"))
    await show_card(
        ctx,
        ctx.t(
            "newaccount.summary",
            shop=shop.name,
            role=role.name,
            modules=role_modules(ctx.locale, ctx.deps, role),
            phone=mask_phone(str(data.get("phone"))),
            nickname=str(data.get("nickname")),
            im=ctx.t("common.im_on" if im else "common.im_off"),
            access=access_label(ctx, data.get("access")),
        ),
        keyboard(
            [button(ctx.t("newaccount.edit_role"), cb(NS, "edit", "role")),
             button(ctx.t("newaccount.edit_nickname"), cb(NS, "edit", "nick"))],
            [button(ctx.t("newaccount.im_turn_off" if im else "newaccount.im_turn_on"),
                    cb(NS, "imt")),
             button(ctx.label("newaccount.access_button",
                              end=access_label(ctx, data.get("access"))), cb(NS, "access"))],
            [button(ctx.t("newaccount.confirm"), cb(NS, "ok", data.get("code_id", 0)))],
            cancel_button(ctx),
        ),
        notice=notice,
    )


# --- the access end (chosen at the summary) ---------------------------------------------------


def access_label(ctx: Ctx, raw: object) -> str:
    """The access end as the summary shows it: none, a term (from Confirm) or a date."""
    if not raw or raw == NO_END:
        return ctx.t("newaccount.access_none")
    if isinstance(raw, str) and raw in TERMS:
        return ctx.t(f"access.choice_{raw}")
    return str(raw)


async def ask_access(ctx: Ctx, *, notice: str = "") -> None:
    """The access end: none, 1 / 7 / 30 days, or a date typed as YYYY-MM-DD."""
    if await data_at(ctx, "access") is None:
        return
    choices = choice_rows(ctx.locale, lambda key: cb(NS, "end", key))
    await show_card(ctx, ctx.t("newaccount.ask_access"), keyboard(
        *choices, [button(ctx.t("common.back"), cb(NS, "back"))],
    ), notice=notice)


async def on_access(ctx: Ctx, text: str) -> None:
    """A date typed (or a term): checked now, kept as typed, back to the summary."""
    shop = await ctx.owned_shop()
    try:
        parse_access_end(text, now=ctx.now(),
                         time_zone=zone_name_of(shop, ctx.deps.default_time_zone))
    except DomainError as exc:
        await ask_access(ctx, notice=why(ctx, exc, text))
        return
    raw = " ".join(text.split()).lower()
    await ctx.goto(NAME, "confirm", {"access": raw})
    await ask_confirm(ctx)


async def confirm(ctx: Ctx, data: dict[str, Any]) -> None:
    """Create the sub-account (Authorized), tell the holder, then show the owner the outcome
    on the card, with "Add another" for the same role (the holder is told first, so a failed
    screen update cannot leave them untold)."""
    shop = await ctx.owned_shop()
    shop_id, code_id = shop.id or 0, int(data["code_id"])
    card = await current_card(ctx)
    try:  # the end chosen is checked again: a date may have passed since
        until = parse_access_end(str(data.get("access") or NO_END), now=ctx.now(),
                                 time_zone=zone_name_of(shop, ctx.deps.default_time_zone))
    except DomainError as exc:
        await ctx.answer()
        await ask_confirm(ctx, notice=why(ctx, exc))
        return
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
        await show_card(ctx, "⚠️ " + ctx.error_text(exc) + "\n\n" + ctx.t("newaccount.not_created"),
                        card=card)
        return
    if until is not None:  # in the same transaction as the account (a refusal undoes both)
        await set_access(ctx.session, policy=ctx.deps.lifecycle, shop_id=shop_id,
                         actor_id=ctx.user_id, account_id=account.id or 0, until=until,
                         now=ctx.now())
    holder = await ctx.session.get(User, account.holder_id)
    await ctx.end_flow()
    await ctx.answer()
    warning: str | None = ctx.t("newaccount.holder_not_told", nickname=account.nickname)
    if holder is not None:
        locale = ctx.deps.locale_of(holder)
        sent = await ctx.notify(
            holder, "holder_code.added", shop=shop.name, role=role.name,
            modules=role_modules(locale, ctx.deps, role),
            im=t(locale, "common.im_on" if account.im_enabled else "common.im_off"),
        )
        if sent is Undelivered.FAILED:
            warning = ctx.t("newaccount.holder_not_told_failed", nickname=account.nickname)
        elif sent is not Undelivered.BLOCKED:
            warning = None
    created = ctx.t("newaccount.created", nickname=account.nickname,
                    phone=mask_phone(account.phone), role=role.name)
    if warning:
        created = f"{created}\n\n{warning}"
    batch = data.get("batch")
    if isinstance(batch, dict):  # a checklist: on with the next number
        batch = {**batch, "done": {**batch.get("done", {}), account.phone: account.nickname}}
        await ctx.start_flow(NAME, "phone", {"role_id": role.id, "im": account.im_enabled,
                                             "quick": True, "batch": batch, "card": card})
        if await next_in_batch(ctx, notice=created):
            return
        await finish_batch(ctx, notice=created)
        return
    again = [button(ctx.label("newaccount.add_another", role=role.name),
                    cb(NS, "again", role.id, int(account.im_enabled)))]
    rows = [again, [button(ctx.t("home.menu_accounts"), cb(MENU_NS, "accounts"))]]
    await show_card(ctx, created, keyboard(*rows), card=card)


async def finish_batch(ctx: Ctx, *, notice: str = "") -> None:
    """The checklist is done: the flow ends, its card shows every number, with "Add another"."""
    draft = await ctx.load_draft()
    data = dict(draft.data) if draft is not None and draft.flow == NAME else {}
    batch = dict(data.get("batch") or {})
    card = await current_card(ctx)
    await ctx.end_flow()
    rows = [[button(ctx.t("home.menu_accounts"), cb(MENU_NS, "accounts"))]]
    if data.get("role_id"):
        shop = await ctx.owned_shop()
        try:
            role = await get_role(ctx.session, shop.id or 0, int(data["role_id"]))
        except DomainError:
            role = None
        if role is not None:
            rows.insert(0, [button(ctx.label("newaccount.add_another", role=role.name),
                                   cb(NS, "again", role.id, int(bool(data.get("im")))))])
    text = checklist(ctx, {**batch, "at": -1})
    await show_card(ctx, with_notice(notice, text), keyboard(*rows), card=card)


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
    handler = BUTTONS.get(action)
    if handler is None:
        await ctx.stale()
        return
    await handler(ctx, args)


async def press_cancel(ctx: Ctx, _args: list[str]) -> None:
    if await data_at(ctx, *STEP_NUMBERS) is None:
        await ctx.stale()
        return
    card = await current_card(ctx)
    await cancel_flow(ctx)
    await ctx.end_flow()
    await ctx.answer()
    await show_card(ctx, ctx.t("common.cancelled"), card=card)


async def press_role(ctx: Ctx, args: list[str]) -> None:
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


async def press_newrole(ctx: Ctx, _args: list[str]) -> None:
    data = await data_at(ctx, "role")
    if data is None:
        await ctx.stale()
        return
    await ctx.answer()
    await ctx.router.start_nested(ctx, *ROLE_CREATION, return_to=NAME, parent_data=data)


async def press_resend(ctx: Ctx, _args: list[str]) -> None:
    data = await data_at(ctx, "code")
    if data is None:
        await ctx.stale()
        return
    await ctx.answer()
    if await invite_unopened(ctx, data):  # the same link again: it lives on, no new code
        await ask_code(ctx, notice=ctx.t("newaccount.link_same"))
        return
    shop = await ctx.owned_shop()
    await send_code(ctx, shop, int(data["role_id"]), str(data["phone"]), recheck=True)


async def press_change_number(ctx: Ctx, _args: list[str]) -> None:
    """📱 Change number (the code step's way back): the phone step; the live code is kept
    until another number is entered (the same one goes on with it)."""
    if await data_at(ctx, "code") is None:
        await ctx.stale()
        return
    await ctx.answer()
    await ctx.goto(NAME, "phone")
    await ask_holder_phone(ctx)


async def press_back(ctx: Ctx, _args: list[str]) -> None:
    """⬅️ Back: one step back (a change started from the summary goes back to it)."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME:
        await ctx.stale()
        return
    editing = bool(draft.data.get("edit")) and "im" in draft.data
    target = {"phone": "role", "code": "phone", "nickname": "phone", "im": "nickname"}.get(
        draft.step)
    if (editing and draft.step in ("role", "nickname")) or draft.step == "access":
        target = "confirm"
    if target is None:
        await ctx.stale()
        return
    await ctx.answer()
    await ctx.goto(NAME, target, {"edit": None} if target == "confirm" else None)
    await ctx.router.ask(ctx, NAME, target)


async def press_nick(ctx: Ctx, _args: list[str]) -> None:
    data = await data_at(ctx, "nickname")
    name = (data or {}).get("holder_name")
    if data is None or not isinstance(name, str) or not name.strip():
        await ctx.stale()
        return
    await ctx.answer()
    await on_nickname(ctx, name[:NICKNAME_MAX])


async def press_im(ctx: Ctx, args: list[str]) -> None:
    data = await data_at(ctx, "im")
    if data is None:
        await ctx.stale()
        return
    await ctx.answer()
    if data.get("batch") and not data.get("code_id"):  # a checklist: IM once, then the numbers
        await ctx.goto(NAME, "im", {"im": args[0] == "1"})
        if not await next_in_batch(ctx):
            await finish_batch(ctx)
        return
    await ctx.goto(NAME, "confirm", {"im": args[0] == "1"})
    await ask_confirm(ctx)


async def press_im_toggle(ctx: Ctx, _args: list[str]) -> None:
    data = await data_at(ctx, "confirm")
    if data is None:
        await ctx.stale()
        return
    await ctx.answer()
    await ctx.goto(NAME, "confirm", {"im": not data.get("im")})
    await ask_confirm(ctx)


async def press_ready(ctx: Ctx, _args: list[str]) -> None:
    await send_when_ready(ctx)


async def press_consent(ctx: Ctx, _args: list[str]) -> None:
    """How staff already linked confirm: the typed code (default) ⇄ ✅ Join in their chat."""
    if await data_at(ctx, "role") is None:
        await ctx.stale()
        return
    shop = await ctx.owned_shop()
    mode = "code" if shop.consent_mode == "button" else "button"
    await set_consent_mode(ctx.session, shop=shop, actor_id=ctx.user_id, mode=mode,
                           now=ctx.now())
    await ctx.answer(ctx.label(f"newaccount.consent_set_{mode}"))
    await ask_role(ctx)


async def press_access(ctx: Ctx, _args: list[str]) -> None:
    if await data_at(ctx, "confirm") is None:
        await ctx.stale()
        return
    await ctx.answer()
    await ctx.goto(NAME, "access")
    await ask_access(ctx)


async def press_end(ctx: Ctx, args: list[str]) -> None:
    if await data_at(ctx, "access") is None or args[0] not in (NO_END, *TERMS):
        await ctx.stale()
        return
    await ctx.answer()
    await ctx.goto(NAME, "confirm", {"access": args[0]})
    await ask_confirm(ctx)


async def press_edit(ctx: Ctx, args: list[str]) -> None:
    """A line of the summary changed: the role or the nickname step, back to the summary."""
    if await data_at(ctx, "confirm") is None or args[0] not in ("role", "nick"):
        await ctx.stale()
        return
    await ctx.answer()
    step = "role" if args[0] == "role" else "nickname"
    await ctx.goto(NAME, step, {"edit": True})
    await ctx.router.ask(ctx, NAME, step)


async def press_ok(ctx: Ctx, args: list[str]) -> None:
    data = await data_at(ctx, "confirm")
    if data is None or int(data.get("code_id", 0)) != int(args[0]):
        if not await already_created(ctx, int(args[0])):
            await ctx.stale()
        return
    await confirm(ctx, data)


async def press_again(ctx: Ctx, args: list[str]) -> None:
    """➕ Add another (after Authorized): the phone step of a new account, same role and IM,
    on the same card; after the code, the summary (the holder's name as nickname)."""
    if await ctx.router.ask_discard(ctx):
        return
    shop = await ctx.owned_shop()
    try:
        role = await get_role(ctx.session, shop.id or 0, int(args[0]))
        await check_seat_free(ctx.session, shop)
    except DomainError as exc:
        await ctx.answer()
        await show_card(ctx, "⚠️ " + ctx.error_text(exc))
        return
    await ctx.answer()
    await ctx.router.abandon(ctx)
    # the nickname (the holder's name) and IM (as chosen before) go straight to the summary
    await ctx.start_flow(NAME, "phone", {"role_id": role.id, "im": args[1] == "1",
                                         "quick": True})
    await ask_holder_phone(ctx)


BUTTONS = {
    "cancel": press_cancel, "role": press_role, "newrole": press_newrole,
    "resend": press_resend, "chphone": press_change_number, "back": press_back,
    "nick": press_nick, "im": press_im, "imt": press_im_toggle, "edit": press_edit,
    "ok": press_ok, "again": press_again, "access": press_access, "end": press_end,
    "consent": press_consent, "ready": press_ready,
}


async def not_expected(ctx: Ctx, _message: Message) -> None:
    """A sticker, a photo… (or a text where only buttons are expected): the card says what
    is expected, above the same prompt; no message of its own."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME:
        return
    typing = draft.step in ("phone", "code", "nickname", "access")
    notice = "⚠️ " + ctx.t("common.need_text" if typing else "common.use_buttons")
    await ctx.goto(NAME, draft.step, {"notice": notice})
    await ctx.router.ask(ctx, NAME, draft.step)


async def describe(ctx: Ctx) -> str | None:
    """What the owner is doing, for the discard question and /start's Continue: ``None`` when
    nothing has been entered yet."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME:
        return None
    step = STEP_NUMBERS.get(draft.step, 1)
    phone = draft.data.get("phone")
    if not phone:
        return None if step == 1 else ctx.t("newaccount.doing", step=step)
    return ctx.t("newaccount.doing_phone", phone=mask_phone(str(phone)), step=step)


FLOW = Flow(
    name=NAME,
    namespace=NS,
    commands=(Command("newaccount", start_newaccount, who="owner", menu_key="newaccount"),),
    steps={
        "role": Step(ask=ask_role, on_message=not_expected),
        "phone": Step(ask=ask_holder_phone, on_text=on_holder_phone, on_message=not_expected),
        "code": Step(ask=ask_code, on_text=on_code, on_message=not_expected),
        "nickname": Step(ask=ask_nickname, on_text=on_nickname, on_message=not_expected),
        "im": Step(ask=ask_im, on_message=not_expected),
        "confirm": Step(ask=ask_confirm, on_message=not_expected),
        "access": Step(ask=ask_access, on_text=on_access, on_message=not_expected),
    },
    buttons={"cancel": (), "role": ("int",), "newrole": (), "resend": (), "chphone": (),
             "back": (), "nick": (), "im": ("int",), "imt": (), "edit": ("key",),
             "ok": ("int",), "again": ("int", "int"), "access": (), "end": ("key",),
             "consent": (), "ready": ()},
    on_button=on_button,
    on_cancel=cancel_flow,
    on_return=back_from_role,
    on_change=recheck_role,
    describe=describe,
)
