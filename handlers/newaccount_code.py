"""/newaccount, steps 2 and 3: the holder's phone and the code they relay (sent, resent,
verified), with the helpers every step of the flow uses. The flow itself, and its literal, are
in ``handlers.newaccount``.
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardMarkup

from handlers.code_messages import (
    OWNER_FLOW as NAME,
)
from handlers.code_messages import (
    OWNER_NS as NS,
)
from handlers.code_messages import (
    SEND_FAILED,
    clock_time,
    code_minutes,
    deliver,
    end_holder_message,
)
from handlers.context import Answered, Ctx
from handlers.expiry import schedule_expiry
from handlers.keyboards import button, keyboard
from handlers.router import cb
from models import codes
from models.accounts import check_phone_available
from models.code_limits import note_lookup
from models.errors import DomainError
from models.phones import mask_phone, normalize_phone
from models.roles import get_role
from models.tables import CodeStatus, Role, Shop, User, VerificationCode

#: refusals that say the phone cannot be added here (the three meanings in docs/product.md)
BINDING_REFUSALS = ("phone_bound_here", "phone_bound_elsewhere", "phone_is_main_account")


# --- helpers ----------------------------------------------------------------------------------


async def data_at(ctx: Ctx, *steps: str) -> dict[str, Any] | None:
    """The flow's data if the user's draft is at one of ``steps`` (else the button is stale)."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME or draft.step not in steps:
        return None
    return dict(draft.data)


async def chosen_role(ctx: Ctx, at: str) -> tuple[dict[str, Any], Shop, Role]:
    """At step ``at``: the flow's data, the owner's shop and the role chosen in step 1.

    If that role has been deleted meanwhile, the flow goes back to choosing a role (what was
    entered is kept) with one message, and the handler stops there (``Answered``).
    """
    data = await data_at(ctx, at) or {}
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
    if draft is None or draft.flow != NAME:
        return
    data = {k: v for k, v in draft.data.items() if k != "role_id"}
    if draft.step != "role":
        data["resume"] = draft.step
    await ctx.start_flow(NAME, "role", data)
    await ctx.reply(ctx.t("newaccount.role_gone"))
    await ctx.router.ask(ctx, NAME, "role")


def cancel_button(ctx: Ctx) -> list[Any]:
    """The flow's Cancel button."""
    return [button(ctx.t("common.cancel_button"), cb(NS, "cancel"))]


# --- 2. phone ---------------------------------------------------------------------------------


async def ask_holder_phone(ctx: Ctx) -> None:
    """Step 2: the staff member's phone number."""
    _, _, role = await chosen_role(ctx, "phone")
    await ctx.reply(
        ctx.t("newaccount.ask_phone", role=role.name, region=ctx.policy.default_region),
        keyboard(cancel_button(ctx)),
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
    data = await data_at(ctx, "phone") or {}
    await send_code(ctx, shop, int(data["role_id"]), phone)


# --- sending a code ---------------------------------------------------------------------------


def code_keyboard(ctx: Ctx) -> InlineKeyboardMarkup:
    """Resend and Cancel, under the code prompts."""
    return keyboard(
        [button(ctx.t("newaccount.resend"), cb(NS, "resend"))], cancel_button(ctx)
    )


async def send_code(ctx: Ctx, shop: Shop, role_id: int, phone: str, *,
                    recheck: bool = False) -> None:
    """Issue a code for ``phone`` and deliver it (direct, or an invite link for the owner).

    ``recheck`` (Resend) runs the binding checks again first: the phone may have
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
        await refused(ctx, exc)
        return
    code, holder = issued.code, issued.holder
    # one write of the draft for the whole step; the holder's name is not shown before the
    # code is verified (docs/product.md: entering a phone reveals no more than the checks need)
    await ctx.goto(NAME, "code", {"phone": phone, "code_id": code.id, "holder_name": None})
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
                  until=clock_time(code.expires_at, shop, ctx.deps.default_time_zone)),
            code_keyboard(ctx),
        )
        return
    link = f"https://t.me/{ctx.context.bot.username}?start={issued.invite_token}"
    await ctx.reply(
        ctx.t("newaccount.invite", phone=masked, link=link,
              until=clock_time(code.expires_at, shop, ctx.deps.default_time_zone)),
        code_keyboard(ctx),
    )


async def refused(ctx: Ctx, exc: DomainError) -> None:
    """No code was issued: say why, then what the owner can do from here."""
    await ctx.reply(ctx.error_text(exc))
    draft = await ctx.load_draft()
    if exc.key == "seat_cap_reached":
        await cancel_code(ctx, dict(draft.data) if draft else {})
        await ctx.end_flow()
        return
    at_code = draft is not None and draft.step == "code"
    if exc.key in BINDING_REFUSALS:
        if at_code:  # Resend found the phone bound meanwhile: the flow goes back to the phone
            await cancel_code(ctx, dict(draft.data) if draft else {})
            await ctx.goto(NAME, "phone", {"code_id": None})
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
    data = await data_at(ctx, "code") or {}
    digits = codes.code_entry(text)
    if digits is None:
        if _looks_like_phone(ctx, text):  # a number typed again: start over with it
            await cancel_code(ctx, data)
            await ctx.goto(NAME, "phone", {"code_id": None})
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
        await ctx.goto(NAME, "nickname", {"holder_name": holder.first_name if holder else None})
        schedule_expiry(ctx.context.job_queue, result.code.expires_at)
        await ctx.reply(ctx.t("newaccount.code_ok", minutes=code_minutes(result.code),
                              until=clock_time(result.code.expires_at, await ctx.shop_or_none(),
                                               ctx.deps.default_time_zone)))
        await ctx.router.ask(ctx, NAME, "nickname")
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


# --- when the flow ends -----------------------------------------------------------------------


async def cancel_code(ctx: Ctx, data: dict[str, Any]) -> None:
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
    if draft is not None and draft.flow == NAME:
        await cancel_code(ctx, dict(draft.data))

