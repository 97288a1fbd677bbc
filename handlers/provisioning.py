"""/newaccount — provisioning a sub-account, in the order of Douyin Shop's 新建账号:

role → phone → verification code (relayed by the holder) → nickname → IM → summary → confirm.

Also the holder's side of a code: the code message with its "Not me" button, the invite link
for holders who have not used the bot yet, and the expiry job that ends codes at their deadline.
Every step is written to the user's draft, so a restart finds the owner where they were.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import InlineKeyboardMarkup
from telegram.ext import BaseHandler, CommandHandler, filters

from handlers import accounts, home, roles
from handlers.account_screens import details_screen
from handlers.base import (
    Answered,
    Ctx,
    Deps,
    Undelivered,
    button,
    entry,
    keyboard,
    module_names,
)
from handlers.holder_codes import (  # re-exported: other modules know them from here
    EXPIRY_JOB as EXPIRY_JOB,
)
from handlers.holder_codes import (
    FLOW as FLOW,
)
from handlers.holder_codes import (
    NS,
    SEND_FAILED,
    clock_time,
    code_minutes,
    deliver,
    end_holder_message,
    schedule_expiry,
)
from handlers.i18n import t
from handlers.router import RETURNS, abandon, buttons, cb, on_cancel, step
from models import codes
from models.accounts import (
    NICKNAME_MAX,
    account_for_code,
    check_phone_available,
    check_seat_free,
    clean_nickname,
    confirm_sub_account,
)
from models.code_limits import note_lookup
from models.errors import DomainError
from models.phones import mask_phone, normalize_phone
from models.policy import IM_MODULE
from models.roles import get_role, list_roles
from models.tables import CodeStatus, Role, Shop, User, VerificationCode

log = logging.getLogger(__name__)


#: refusals that say the phone cannot be added here (SPEC §2's three meanings)
BINDING_REFUSALS = ("phone_bound_here", "phone_bound_elsewhere", "phone_is_main_account")


# --- helpers ----------------------------------------------------------------------------------


def role_modules(locale: str, deps: Deps, role: Role) -> str:
    """The role's modules as names in a locale, catalogue order (unknown keys left out)."""
    keys = deps.policy.sorted_modules(role.modules)
    return module_names(deps.policy, keys, locale, t(locale, "accounts.sep"))


async def _at(ctx: Ctx, *steps: str) -> dict[str, Any] | None:
    """The flow's data if the user's draft is at one of ``steps`` (else the button is stale)."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != FLOW or draft.step not in steps:
        return None
    return dict(draft.data)


async def _chosen_role(ctx: Ctx, at: str) -> tuple[dict[str, Any], Shop, Role]:
    """At step ``at``: the flow's data, the owner's shop and the role chosen in step 1.

    If that role has been deleted meanwhile, the flow goes back to choosing a role (what was
    entered is kept) with one message, and the handler stops there (``Answered``).
    """
    data = await _at(ctx, at) or {}
    shop = await ctx.owned_shop()
    try:
        role = await get_role(ctx.session, shop.id or 0, int(data.get("role_id", 0)))
    except DomainError as exc:
        if exc.key != "role_not_found" or not data:
            raise
        await rewind_to_role(ctx)
        raise Answered from exc
    return data, shop, role


async def rewind_to_role(ctx: Ctx) -> None:
    """The role chosen for the new account is gone: back to step 1, keeping the phone, the
    code and what else was entered (the step to come back to is kept as ``resume``)."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != FLOW:
        return
    data = {k: v for k, v in draft.data.items() if k != "role_id"}
    if draft.step != "role":
        data["resume"] = draft.step
    await ctx.start_flow(FLOW, "role", data)
    await ctx.reply(ctx.t("newaccount.role_gone"))
    await ask_role(ctx)


async def _after_role_deleted(ctx: Ctx, role_id: int) -> None:
    """The owner deleted a role: if their /newaccount in progress uses it, rewind it now."""
    draft = await ctx.load_draft()
    if draft is not None and draft.flow == FLOW and draft.data.get("role_id") == role_id:
        await rewind_to_role(ctx)


roles.ON_DELETED.append(_after_role_deleted)


def _cancel_button(ctx: Ctx) -> list[Any]:
    """The flow's Cancel button."""
    return [button(ctx.t("common.cancel_button"), cb(NS, "cancel"))]


# --- 1. role ----------------------------------------------------------------------------------


async def ask_role(ctx: Ctx) -> None:
    """Step 1: choose the new account's role, or create one."""
    shop = await ctx.owned_shop()
    found = await list_roles(ctx.session, shop.id or 0)
    if not found:
        await ctx.reply(ctx.t("newaccount.no_roles_yet"))
        await roles.begin_create(ctx, parent=FLOW, parent_data=await _at(ctx, "role") or {})
        return
    rows = [[button(role.name, cb(NS, "role", role.id))] for role, _used in found]
    rows.append([button(ctx.t("newaccount.create_role"), cb(NS, "newrole"))])
    rows.append(_cancel_button(ctx))
    await ctx.reply(ctx.t("newaccount.choose_role", shop=shop.name), keyboard(*rows))


async def back_from_role_creation(
    ctx: Ctx, role_id: int | None, parent_data: dict[str, object]
) -> None:
    """The nested role flow is done: with a new role go on to the phone, else choose again."""
    await ctx.start_flow(FLOW, "role", dict(parent_data))
    if role_id is None:
        shop = await ctx.owned_shop()
        if not await list_roles(ctx.session, shop.id or 0):
            await _cancel_code(ctx, dict(parent_data))  # kept from a rewind, if any
            await ctx.end_flow()
            await ctx.reply(ctx.t("common.cancelled"))
            return
        await ask_role(ctx)
        return
    shop = await ctx.owned_shop()
    role = await get_role(ctx.session, shop.id or 0, role_id)
    await ctx.reply(ctx.t("newaccount.role_created", role=role.name))
    await _role_chosen(ctx, role)


RETURNS[FLOW] = back_from_role_creation


async def _role_chosen(ctx: Ctx, role: Role) -> None:
    """Step 1 done: remember the role and ask for the phone — or, after a rewind (the role
    first chosen was deleted), go back to where the owner was: the code or nickname step as
    they were, IM and the summary asked again (IM's recommendation depends on the role)."""
    # ``role`` stays referenced until the prompt is sent: the session's identity map holds
    # loaded objects weakly, and the prompt's own look-up of the role is then answered from it
    draft = await ctx.load_draft()
    data = dict(draft.data) if draft is not None and draft.flow == FLOW else {}
    resume = data.pop("resume", None)
    data["role_id"] = role.id
    if resume in ("code", "nickname"):
        await ctx.start_flow(FLOW, str(resume), data)
        await (ask_code if resume == "code" else ask_nickname)(ctx)
        return
    if resume in ("im", "confirm"):
        await ctx.start_flow(FLOW, "im", data)
        await ask_im(ctx)
        return
    await ctx.start_flow(FLOW, "phone", data)
    await ask_holder_phone(ctx)


step(FLOW, "role", prompt=ask_role)


# --- 2. phone ---------------------------------------------------------------------------------


async def ask_holder_phone(ctx: Ctx) -> None:
    """Step 2: the staff member's phone number."""
    _, _, role = await _chosen_role(ctx, "phone")
    await ctx.reply(
        ctx.t("newaccount.ask_phone", role=role.name, region=ctx.policy.default_region),
        keyboard(_cancel_button(ctx)),
    )


async def on_holder_phone(ctx: Ctx, text: str) -> None:
    """Check the phone (format, the three conflicts, seat cap) and send a code."""
    shop = await ctx.owned_shop()
    try:
        phone = normalize_phone(text, ctx.policy.default_region)
        # counted before the checks: a refusal tells as much about a phone as a code does
        await note_lookup(ctx.session, ctx.policy, owner_id=ctx.user_id, phone=phone,
                          now=ctx.now())
        await check_phone_available(ctx.session, shop, phone)
    except DomainError as exc:
        await ctx.reply(ctx.error_text(exc))
        if exc.key == "seat_cap_reached":
            await ctx.end_flow()
            return
        await ask_holder_phone(ctx)
        return
    data = await _at(ctx, "phone") or {}
    await send_code(ctx, shop, int(data["role_id"]), phone)


step(FLOW, "phone", prompt=ask_holder_phone, on_text=on_holder_phone)


# --- sending a code ---------------------------------------------------------------------------


def code_keyboard(ctx: Ctx) -> InlineKeyboardMarkup:
    """Resend and Cancel, under the code prompts."""
    return keyboard(
        [button(ctx.t("newaccount.resend"), cb(NS, "resend"))], _cancel_button(ctx)
    )


async def send_code(ctx: Ctx, shop: Shop, role_id: int, phone: str, *,
                    recheck: bool = False) -> None:
    """Issue a code for ``phone`` and deliver it (direct, or an invite link for the owner).

    ``recheck`` (Resend) runs the binding checks of SPEC §2 again first: the phone may have
    been bound elsewhere since the first code.
    """
    try:
        if recheck:
            await check_phone_available(ctx.session, shop, phone)
        issued = await codes.issue_code(
            ctx.session, ctx.policy, shop_id=shop.id or 0, owner_id=ctx.user_id,
            role_id=role_id, phone=phone, now=ctx.now(),
        )
    except DomainError as exc:
        await _refused(ctx, exc)
        return
    code, holder = issued.code, issued.holder
    # one write of the draft for the whole step; the holder's name is not shown before the
    # code is verified (SPEC §3: entering a phone reveals no more than §2 needs)
    await ctx.goto(FLOW, "code", {"phone": phone, "code_id": code.id, "holder_name": None})
    await ctx.commit()
    schedule_expiry(ctx.context.job_queue, code.expires_at)
    for old in issued.superseded:
        await end_holder_message(ctx, old, "holder_code.superseded")
    role = await ctx.session.get(Role, role_id)
    masked = mask_phone(phone)
    if holder is not None:
        sent = await deliver(ctx.context.bot, ctx.deps, code, holder, issued.plain,
                             shop, ctx.user, role)
        if sent is None or sent is SEND_FAILED:
            await codes.mark_undeliverable(ctx.session, code, now=ctx.now(), blocked=sent is None)
            key = "newaccount.holder_blocked" if sent is None else "newaccount.send_failed"
            await ctx.reply(ctx.t(key, phone=masked), code_keyboard(ctx))
            return
        assert isinstance(sent, int)
        await codes.mark_delivered(ctx.session, code, holder_id=holder.id, message_id=sent)
        await ctx.reply(
            ctx.t("newaccount.code_sent", phone=masked, minutes=code_minutes(code),
                  until=clock_time(code.expires_at)),
            code_keyboard(ctx),
        )
        return
    link = f"https://t.me/{ctx.context.bot.username}?start={issued.invite_token}"
    await ctx.reply(
        ctx.t("newaccount.invite", phone=masked, link=link, until=clock_time(code.expires_at)),
        code_keyboard(ctx),
    )


async def _refused(ctx: Ctx, exc: DomainError) -> None:
    """No code was issued: say why, then what the owner can do from here."""
    await ctx.reply(ctx.error_text(exc))
    draft = await ctx.load_draft()
    if exc.key == "seat_cap_reached":
        await _cancel_code(ctx, dict(draft.data) if draft else {})
        await ctx.end_flow()
        return
    at_code = draft is not None and draft.step == "code"
    if exc.key in BINDING_REFUSALS:
        if at_code:  # Resend found the phone bound meanwhile: the flow goes back to the phone
            await _cancel_code(ctx, dict(draft.data) if draft else {})
            await ctx.goto(FLOW, "phone", {"code_id": None})
        await ask_holder_phone(ctx)
        return
    if at_code:
        await ctx.reply(ctx.t("newaccount.enter_code_again"), code_keyboard(ctx))
    else:
        await ask_holder_phone(ctx)


# --- 3. code ----------------------------------------------------------------------------------


async def ask_code(ctx: Ctx) -> None:
    """Step 3: the code the holder relays."""
    await ctx.reply(ctx.t("newaccount.ask_code"), code_keyboard(ctx))


async def on_code(ctx: Ctx, text: str) -> None:
    """Verify what the owner typed; wrong codes count, the last try locks the code."""
    data = await _at(ctx, "code") or {}
    digits = codes.code_entry(text)
    if digits is None:
        if _looks_like_phone(ctx, text):  # a number typed again: start over with it
            await _cancel_code(ctx, data)
            await ctx.goto(FLOW, "phone", {"code_id": None})
            await on_holder_phone(ctx, text)
            return
        await ctx.reply(ctx.t("newaccount.code_format"), code_keyboard(ctx))
        return
    code = await ctx.session.get(VerificationCode, int(data.get("code_id") or 0))
    if code is not None and code.status == CodeStatus.PENDING.value and code.delivery == "queued":
        await ctx.reply(ctx.t("newaccount.not_delivered", phone=mask_phone(code.phone)),
                        code_keyboard(ctx))
        return
    result = await codes.verify_code(
        ctx.session, ctx.policy, code_id=int(data.get("code_id") or 0), owner_id=ctx.user_id,
        entered=digits, now=ctx.now(),
    )
    outcome = result.outcome
    if outcome is codes.VerifyOutcome.OK:
        # now, and only now, the holder's Telegram name may be shown (offered as a nickname)
        holder = await ctx.session.get(User, result.code.holder_id or 0)
        await ctx.goto(FLOW, "nickname", {"holder_name": holder.first_name if holder else None})
        schedule_expiry(ctx.context.job_queue, result.code.expires_at)
        await ctx.reply(ctx.t("newaccount.code_ok", minutes=code_minutes(result.code),
                              until=clock_time(result.code.expires_at)))
        await ask_nickname(ctx)
        return
    if outcome is codes.VerifyOutcome.WRONG:
        await ctx.reply(ctx.t("newaccount.code_wrong", left=result.tries_left), code_keyboard(ctx))
        return
    if result.just_ended:
        reason = "holder_code.locked" if outcome is codes.VerifyOutcome.LOCKED else "holder_code.expired"
        await end_holder_message(ctx, result.code, reason)
    key = {
        codes.VerifyOutcome.LOCKED: "newaccount.code_locked",
        codes.VerifyOutcome.EXPIRED: "newaccount.code_expired",
        codes.VerifyOutcome.DECLINED: "newaccount.code_declined",
    }.get(outcome, "newaccount.code_dead")
    await ctx.reply(ctx.t(key, minutes=code_minutes(result.code)), code_keyboard(ctx))


def _looks_like_phone(ctx: Ctx, text: str) -> bool:
    try:
        normalize_phone(text, ctx.policy.default_region)
    except DomainError:
        return False
    return True


step(FLOW, "code", prompt=ask_code, on_text=on_code)


# --- 4. nickname ------------------------------------------------------------------------------


async def ask_nickname(ctx: Ctx) -> None:
    """Step 4: the nickname, with the holder's Telegram name offered."""
    data = await _at(ctx, "nickname") or {}
    name = data.get("holder_name")
    rows = []
    if isinstance(name, str) and name.strip():
        rows.append([button(ctx.label("newaccount.use_name", name=name.strip()[:NICKNAME_MAX]),
                            cb(NS, "nick"))])
    rows.append(_cancel_button(ctx))
    await ctx.reply(ctx.t("newaccount.ask_nickname", max=NICKNAME_MAX), keyboard(*rows))


async def on_nickname(ctx: Ctx, text: str) -> None:
    """Check the nickname (1–``NICKNAME_MAX`` characters) and go on to IM."""
    try:
        nickname = clean_nickname(text)
    except DomainError as exc:
        await ctx.reply(ctx.error_text(exc))
        await ask_nickname(ctx)
        return
    await ctx.goto(FLOW, "im", {"nickname": nickname})
    await ask_im(ctx)


step(FLOW, "nickname", prompt=ask_nickname, on_text=on_nickname)


# --- 5. IM ------------------------------------------------------------------------------------


async def ask_im(ctx: Ctx) -> None:
    """Step 5: customer-chat (IM) permission on or off."""
    _, _, role = await _chosen_role(ctx, "im")
    recommended = IM_MODULE in role.modules
    on_label = ctx.t("newaccount.im_on_recommended" if recommended else "newaccount.im_on")
    await ctx.reply(
        ctx.t("newaccount.ask_im", role=role.name),
        keyboard(
            [button(on_label, cb(NS, "im", 1)), button(ctx.t("newaccount.im_off"), cb(NS, "im", 0))],
            _cancel_button(ctx),
        ),
    )


step(FLOW, "im", prompt=ask_im)


# --- 6. summary and confirm -------------------------------------------------------------------


async def ask_confirm(ctx: Ctx) -> None:
    """Step 6: the summary, with Confirm and Cancel."""
    data, shop, role = await _chosen_role(ctx, "confirm")
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
                 _cancel_button(ctx)),
    )


step(FLOW, "confirm", prompt=ask_confirm)


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
        if await _already_created(ctx, code_id):
            await ctx.end_flow()
            return
        await ctx.answer()
        if exc.key == "role_not_found":
            await rewind_to_role(ctx)
            return
        await _cancel_code(ctx, data)
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
    await accounts.show_accounts(ctx)


async def _already_created(ctx: Ctx, code_id: int) -> bool:
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
        if await _at(ctx, "role", "phone", "code", "nickname", "im", "confirm") is None:
            await ctx.stale()
            return
        await cancel_flow(ctx)
        await ctx.end_flow()
        await ctx.answer()
        await ctx.show(ctx.t("common.cancelled"))
        return
    if action == "role":
        if await _at(ctx, "role") is None:
            await ctx.stale()
            return
        shop = await ctx.owned_shop()
        try:
            role = await get_role(ctx.session, shop.id or 0, int(args[0]))
        except DomainError:
            await ctx.stale()
            return
        await ctx.answer()
        await _role_chosen(ctx, role)
        return
    if action == "newrole":
        data = await _at(ctx, "role")
        if data is None:
            await ctx.stale()
            return
        await ctx.answer()
        await roles.begin_create(ctx, parent=FLOW, parent_data=data)
        return
    if action == "resend":
        data = await _at(ctx, "code")
        if data is None:
            await ctx.stale()
            return
        await ctx.answer()
        shop = await ctx.owned_shop()
        await send_code(ctx, shop, int(data["role_id"]), str(data["phone"]), recheck=True)
        return
    if action == "nick":
        data = await _at(ctx, "nickname")
        name = (data or {}).get("holder_name")
        if data is None or not isinstance(name, str) or not name.strip():
            await ctx.stale()
            return
        await ctx.answer()
        await on_nickname(ctx, name[:NICKNAME_MAX])
        return
    if action == "im":
        if await _at(ctx, "im") is None:
            await ctx.stale()
            return
        await ctx.answer()
        await ctx.goto(FLOW, "confirm", {"im": args[0] == "1"})
        await ask_confirm(ctx)
        return
    if action == "ok":
        data = await _at(ctx, "confirm")
        if data is None or int(data.get("code_id", 0)) != int(args[0]):
            if not await _already_created(ctx, int(args[0])):
                await ctx.stale()
            return
        await confirm(ctx, data)


buttons(
    NS,
    {"cancel": (), "role": ("int",), "newrole": (), "resend": (), "nick": (), "im": ("int",),
     "ok": ("int",)},
    on_button,
)


async def _cancel_code(ctx: Ctx, data: dict[str, Any]) -> None:
    """The flow ends: a live code dies and the holder's message says so."""
    code_id = data.get("code_id")
    if code_id is None:
        return
    ended = await codes.cancel_code(ctx.session, code_id=int(code_id), actor_id=ctx.user_id,
                                    now=ctx.now())
    if ended is not None:
        await end_holder_message(ctx, ended, "holder_code.cancelled")


async def cancel_flow(ctx: Ctx) -> None:
    """/cancel (or another command) during /newaccount: a live code dies with the flow."""
    draft = await ctx.load_draft()
    if draft is not None and draft.flow == FLOW:
        await _cancel_code(ctx, dict(draft.data))


on_cancel(FLOW, cancel_flow)


async def start_newaccount(ctx: Ctx) -> None:
    """Begin /newaccount (the owner menu's "New account" too)."""
    shop = await ctx.owned_shop()
    await check_seat_free(ctx.session, shop)
    await ctx.start_flow(FLOW, "role")
    await ask_role(ctx)


@entry
async def newaccount_command(ctx: Ctx) -> None:
    """/newaccount: add a staff sub-account."""
    if await ctx.owned_shop_or_explain("newaccount.for_owners") is None:
        return
    await abandon(ctx)
    await start_newaccount(ctx)


home.menu_entry("newaccount", start_newaccount)


def command_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """This module's commands."""
    return [CommandHandler("newaccount", newaccount_command, filters.UpdateType.MESSAGE)]

