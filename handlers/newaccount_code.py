"""/newaccount, steps 2 and 3: the holder's phone and the code they relay (sent, resent,
verified), with the helpers every step of the flow uses — above all the card (``handlers.card``):
the whole flow is one message of the owner's chat, edited in place (its id is kept in the draft
as ``card``), with an error or a notice above the prompt. The flow itself, and its literal, are
in ``handlers.newaccount``.
"""

from __future__ import annotations

import html
from typing import Any

from telegram import InlineKeyboardMarkup

from handlers.card import Card, echo, why
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
    resend_keyboard,
)
from handlers.context import Answered, Ctx
from handlers.expiry import schedule_expiry
from handlers.keyboards import button, keyboard
from handlers.router import cb
from models import codes
from models.accounts import NICKNAME_MAX, check_phone_available, clean_nickname
from models.code_limits import note_lookup
from models.errors import DomainError
from models.phones import mask_phone, normalize_phone
from models.roles import get_role
from models.tables import CodeStatus, Role, Shop, User, VerificationCode

#: refusals that say the phone cannot be added here (the three meanings in docs/product.md)
BINDING_REFUSALS = ("phone_bound_here", "phone_bound_elsewhere", "phone_is_main_account")
#: the namespaces whose pressed message becomes the card: this flow's, the home menu's, the
#: router's discard question, the role editor's (nested in this flow)
ADOPTED = (NS, "m", "dq", "rn")
#: the flow's one message (``handlers.card``)
CARD = Card(NAME, ADOPTED)
#: the most numbers one message may bring (one a line)
MAX_BATCH = 20
#: the steps, as the card numbers them
STEP_NUMBERS = {"role": 1, "phone": 2, "code": 3, "nickname": 4, "im": 5, "confirm": 6,
                "access": 6}


# --- helpers ----------------------------------------------------------------------------------


async def data_at(ctx: Ctx, *steps: str) -> dict[str, Any] | None:
    """The flow's data if the user's draft is at one of ``steps`` (else the button is stale)."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != NAME or draft.step not in steps:
        return None
    return dict(draft.data)


async def current_card(ctx: Ctx) -> int | None:
    """The message id of the owner's card, while the flow runs."""
    return await CARD.current(ctx)


async def show_card(ctx: Ctx, text: str, markup: InlineKeyboardMarkup | None = None, *,
                    notice: str = "", fresh: bool = False, card: int | None = None) -> None:
    """Show the flow's one card (``handlers.card.Card.show``), a checklist of numbers being
    added (if any) at its head."""
    draft = await ctx.load_draft()
    batch = draft.data.get("batch") if draft is not None and draft.flow == NAME else None
    head = checklist(ctx, batch) if isinstance(batch, dict) and batch.get("at", -1) >= 0 else ""
    await CARD.show(ctx, text, markup, notice=notice, fresh=fresh, card=card, head=head)


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
    await ask_role_again(ctx, ctx.t("newaccount.role_gone"))


async def ask_role_again(ctx: Ctx, notice: str) -> None:
    """Ask step 1 with a notice above it (through the router: step 1 is in the flow module)."""
    step = ctx.router.step(NAME, "role")
    assert step is not None
    await ctx.goto(NAME, "role", {"notice": notice})
    await step.ask(ctx)


def cancel_button(ctx: Ctx) -> list[Any]:
    """The flow's Cancel button."""
    return [button(ctx.t("common.cancel_button"), cb(NS, "cancel"))]


def back_cancel(ctx: Ctx) -> list[Any]:
    """⬅️ Back and Cancel, on one row."""
    return [button(ctx.t("common.back"), cb(NS, "back")),
            button(ctx.t("common.cancel_button"), cb(NS, "cancel"))]


# --- 2. phone ---------------------------------------------------------------------------------


async def ask_holder_phone(ctx: Ctx, *, notice: str = "") -> None:
    """Step 2: the staff member's phone number (after a cooldown refusal, the number is kept
    and "⏳ Send when ready" offered)."""
    data, _, role = await chosen_role(ctx, "phone")
    rows = []
    if data.get("waiting"):
        rows.append([button(ctx.t("newaccount.send_when_ready"), cb(NS, "ready"))])
    rows.append(back_cancel(ctx))
    await show_card(
        ctx, ctx.t("newaccount.ask_phone", role=role.name, region=ctx.policy.default_region),
        keyboard(*rows), notice=notice,
    )


async def on_holder_phone(ctx: Ctx, text: str) -> None:
    """Check the phone (format, the three conflicts, seat cap) and send a code — or, for the
    phone of the live code the flow already has (a restart, Back, Change number), keep it."""
    shop = await ctx.owned_shop()
    data = await data_at(ctx, "phone") or {}
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        await start_batch(ctx, data, lines)
        return
    try:
        phone = normalize_phone(text, ctx.policy.default_region)
    except DomainError as exc:
        notice = why(ctx, exc, text)
        if not text.strip().startswith(("+", "＋", "00")):  # perhaps a number from elsewhere
            notice += "\n" + ctx.t("newaccount.hint_country_code",
                                   region=ctx.policy.default_region)
        await ask_holder_phone(ctx, notice=notice)
        return
    if await keep_live_code(ctx, data, phone):
        return
    if phone == ctx.user.phone:
        await ask_holder_phone(ctx, notice="⚠️ " + echo(text) + ctx.t("newaccount.own_phone"))
        return
    try:
        # counted before the checks: a refusal tells as much about a phone as a code does
        await note_lookup(ctx.session, ctx.policy, owner_id=ctx.user_id, phone=phone,
                          now=ctx.now())
        await check_phone_available(ctx.session, shop, phone)
    except DomainError as exc:
        if exc.key == "seat_cap_reached":
            await end_with(ctx, why(ctx, exc))
            return
        # the refusal says how to fix it (errors.phone_bound_elsewhere: who can do what)
        await ask_holder_phone(ctx, notice=why(ctx, exc, text))
        return
    await take_phone(ctx, shop, data, phone)


async def take_phone(ctx: Ctx, shop: Shop, data: dict[str, Any], phone: str) -> None:
    """A phone that passed its checks: its code (the live code of another number ends)."""
    await cancel_code(ctx, data)  # the live code of another number
    await ctx.goto(NAME, "phone", {"code_id": None, "phone": None, "waiting": None})
    await send_code(ctx, shop, int(data["role_id"]), phone)


async def start_batch(ctx: Ctx, data: dict[str, Any], lines: list[str]) -> None:
    """Several numbers, one a line: every one must be a phone number (else the card lists
    those that are not, and nothing starts); then IM is asked once, and the numbers are taken
    one after another on a checklist, with the same role."""
    phones: list[str] = []
    bad: list[str] = []
    for line in lines:
        try:
            phone = normalize_phone(line, ctx.policy.default_region)
        except DomainError:
            bad.append(line)
            continue
        if phone not in phones:
            phones.append(phone)
    if bad:
        listed = ", ".join(echo(line).removesuffix(" — ") for line in bad)
        await ask_holder_phone(ctx, notice="⚠️ " + ctx.t("newaccount.batch_bad", lines_html=listed))
        return
    if len(phones) > MAX_BATCH:
        await ask_holder_phone(ctx, notice="⚠️ " + ctx.t("newaccount.batch_too_many",
                                                         count=len(phones), max=MAX_BATCH))
        return
    await cancel_code(ctx, data)  # a live code of a number entered before
    batch = {"phones": phones, "done": {}, "skipped": {}, "at": -1}
    await ctx.goto(NAME, "im", {"batch": batch, "quick": True, "code_id": None, "phone": None})
    await ctx.router.ask(ctx, NAME, "im")


def checklist(ctx: Ctx, batch: dict[str, Any]) -> str:
    """The numbers of a checklist: done (with the nickname), skipped (why), now, to come."""
    phones = [str(p) for p in batch.get("phones") or []]
    done, skipped = dict(batch.get("done") or {}), dict(batch.get("skipped") or {})
    lines = [ctx.t("newaccount.batch_title", done=len(done), total=len(phones))]
    for i, phone in enumerate(phones):
        masked = mask_phone(phone)
        if phone in done:
            lines.append(f"✅ {masked} — {html.escape(str(done[phone]))}")
        elif phone in skipped:
            lines.append(f"⛔ {masked} — {skipped[phone]}")
        elif i == batch.get("at"):
            lines.append(f"▶️ {masked}")
        else:
            lines.append(f"▫️ {masked}")
    return "\n".join(lines)


async def next_in_batch(ctx: Ctx, *, notice: str = "") -> bool:
    """The checklist's next number: its checks, then its code (a number refused is marked
    with why, and the one after it is taken); ``False`` when none is left."""
    draft = await ctx.load_draft()
    data = dict(draft.data) if draft is not None and draft.flow == NAME else {}
    batch = dict(data.get("batch") or {})
    if not batch:
        return False
    shop = await ctx.owned_shop()
    skipped = dict(batch.get("skipped") or {})
    for i, phone in enumerate(batch["phones"]):
        if phone in (batch.get("done") or {}) or phone in skipped:
            continue
        batch["at"] = i
        await ctx.goto(NAME, "phone", {"batch": batch, "phone": None, "code_id": None,
                                       "nickname": None, "holder_name": None,
                                       "notice": notice or None})
        try:
            if phone == ctx.user.phone:
                raise DomainError("phone_is_main_account")
            await note_lookup(ctx.session, ctx.policy, owner_id=ctx.user_id, phone=phone,
                              now=ctx.now())
            await check_phone_available(ctx.session, shop, phone)
            await send_code(ctx, shop, int(data["role_id"]), phone, raising=True)
        except DomainError as exc:
            if exc.key == "seat_cap_reached":
                raise
            skipped[phone] = ctx.error_text(exc)
            batch["skipped"] = skipped
            continue
        return True
    batch["at"] = -1
    await ctx.goto(NAME, "phone", {"batch": batch})
    return False


async def keep_live_code(ctx: Ctx, data: dict[str, Any], phone: str) -> bool:
    """The phone of the flow's code, entered again while that code lives: go on with it (to
    the code step, or past it when it is verified) instead of sending another."""
    if data.get("phone") != phone or not data.get("code_id"):
        return False
    code = await ctx.session.get(VerificationCode, int(data["code_id"]))
    if code is None or code.owner_id != ctx.user_id or ctx.now() >= code.expires_at \
            or code.status not in (CodeStatus.PENDING.value, CodeStatus.VERIFIED.value):
        return False
    if code.status == CodeStatus.VERIFIED.value:
        holder = await ctx.session.get(User, code.holder_id or 0)
        await ctx.goto(NAME, "nickname", {"holder_name": holder.first_name if holder else None})
        await ctx.router.ask(ctx, NAME, "nickname")
        return True
    await ctx.goto(NAME, "code")
    await ask_code(ctx, notice=ctx.t("newaccount.code_kept"))
    return True


async def end_with(ctx: Ctx, notice: str) -> None:
    """The flow cannot go on (the seat cap): its code dies, the card says why."""
    draft = await ctx.load_draft()
    card = await current_card(ctx)
    await cancel_code(ctx, dict(draft.data) if draft else {})
    await ctx.end_flow()
    await show_card(ctx, notice, card=card)


# --- sending a code ---------------------------------------------------------------------------


def code_keyboard(ctx: Ctx, key: str = "newaccount.resend") -> InlineKeyboardMarkup:
    """📱 Change number, Resend and Cancel, under the code step."""
    return resend_keyboard(ctx.locale, key)


async def send_code(ctx: Ctx, shop: Shop, role_id: int, phone: str, *,
                    recheck: bool = False, raising: bool = False) -> None:
    """Issue a code for ``phone`` and deliver it (direct, or an invite link for the owner).

    ``recheck`` (Resend) runs the binding checks again first: the phone may have
    been bound elsewhere since the first code. ``raising``: a refusal is the caller's (a
    checklist of several numbers goes on with the next one).
    """
    try:
        if recheck:
            await check_phone_available(ctx.session, shop, phone)
        issued = await codes.issue_code(
            ctx.session, ctx.policy, shop_id=shop.id or 0, owner_id=ctx.user_id,
            role_id=role_id, phone=phone, now=ctx.now(),
        )
    except DomainError as exc:
        if raising:
            raise
        await refused(ctx, exc, phone)
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
        consent = shop.consent_mode == "button"  # the shop asks by button, not by the digits
        await ctx.goto(NAME, "code", {"consent": consent})
        sent = await deliver(ctx.context.bot, ctx.deps, code, holder, issued.plain,
                             shop, ctx.user, role, consent=consent)
        if sent is None or sent is SEND_FAILED:
            await codes.mark_undeliverable(ctx.session, code, now=ctx.now(), blocked=sent is None)
            key = "newaccount.holder_blocked" if sent is None else "newaccount.send_failed"
            await show_card(ctx, ctx.t(key, phone=masked), code_keyboard(ctx))
            return
        assert isinstance(sent, int)
        await codes.mark_delivered(ctx.session, code, holder_id=holder.id, message_id=sent)
        await ask_code(ctx)
        return
    await show_card(ctx, await invite_text(ctx, code),
                    code_keyboard(ctx, "newaccount.resend_link"))


async def invite_unopened(ctx: Ctx, data: dict[str, Any]) -> bool:
    """Whether the flow's code is an invite nobody has opened yet, still valid."""
    code = await ctx.session.get(VerificationCode, int(data.get("code_id") or 0))
    return code is not None and code.holder_id is None and code.owner_id == ctx.user_id \
        and code.status == CodeStatus.PENDING.value and ctx.now() < code.expires_at


async def until_of(ctx: Ctx, code: VerificationCode) -> str:
    """When ``code`` ends, as the clock of its shop shows it."""
    shop = await ctx.session.get(Shop, code.shop_id)
    return clock_time(code.expires_at, shop, ctx.deps.default_time_zone)


async def invite_text(ctx: Ctx, code: VerificationCode) -> str:
    """The code step for a phone nobody has linked: the invite link to forward (always the
    same one for this invite) and how long it lives."""
    link = f"https://t.me/{ctx.context.bot.username}?start={codes.invite_token(ctx.policy, code)}"
    return ctx.t("newaccount.invite", phone=mask_phone(code.phone), link=link,
                 hours=ctx.policy.invite_hours, until=await until_of(ctx, code))


async def refused(ctx: Ctx, exc: DomainError, phone: str) -> None:
    """No code was issued: say why, above what the owner can do from here."""
    draft = await ctx.load_draft()
    if exc.key == "seat_cap_reached":
        await end_with(ctx, why(ctx, exc))
        return
    at_code = draft is not None and draft.step == "code"
    if exc.key in BINDING_REFUSALS:
        if at_code:  # Resend found the phone bound meanwhile: the flow goes back to the phone
            await cancel_code(ctx, dict(draft.data) if draft else {})
            await ctx.goto(NAME, "phone", {"code_id": None})
        await ask_holder_phone(ctx, notice=why(ctx, exc))
        return
    if at_code:
        await ask_code(ctx, notice=why(ctx, exc) + "\n" + ctx.t("newaccount.enter_code_again"))
        return
    notice = why(ctx, exc)
    if exc.key == "code_cooldown":  # the number is kept: one tap sends it when the time is up
        await ctx.goto(NAME, "phone", {"waiting": phone})
        notice += "\n" + ctx.t("newaccount.cooldown_kept", phone=mask_phone(phone))
    await ask_holder_phone(ctx, notice=notice)


async def send_when_ready(ctx: Ctx) -> None:
    """⏳ Send when ready: the number kept after a cooldown refusal, sent now (or, still too
    early, the same refusal with the seconds left)."""
    data = await data_at(ctx, "phone") or {}
    phone = data.get("waiting")
    if not isinstance(phone, str):
        await ctx.stale()
        return
    await ctx.answer()
    shop = await ctx.owned_shop()
    try:
        await check_phone_available(ctx.session, shop, phone)
    except DomainError as exc:
        await ctx.goto(NAME, "phone", {"waiting": None})
        await ask_holder_phone(ctx, notice=why(ctx, exc))
        return
    await take_phone(ctx, shop, data, phone)


# --- 3. code ----------------------------------------------------------------------------------


async def ask_code(ctx: Ctx, *, notice: str = "") -> None:
    """Step 3: the code the holder relays, as its state says (sent, waiting for the invite to
    be opened, not delivered, ended)."""
    data = await data_at(ctx, "code") or {}
    code = await ctx.session.get(VerificationCode, int(data.get("code_id") or 0))
    phone = mask_phone(str(data.get("phone") or (code.phone if code else "")))
    key = "newaccount.resend"
    if code is None or code.status != CodeStatus.PENDING.value or ctx.now() >= code.expires_at:
        text, key = ctx.t("newaccount.code_gone", phone=phone), "newaccount.resend_new"
    elif code.holder_id is None:  # an invite not yet opened: the same link, again
        text, key = await invite_text(ctx, code), "newaccount.resend_link"
    elif code.delivery == "queued":
        text = ctx.t("newaccount.not_delivered", phone=phone)
    elif data.get("consent"):
        text = ctx.t("newaccount.consent_sent", phone=phone, minutes=code_minutes(code),
                     until=await until_of(ctx, code))
    else:
        text = ctx.t("newaccount.code_sent", phone=phone, minutes=code_minutes(code),
                     until=await until_of(ctx, code))
    await show_card(ctx, text, code_keyboard(ctx, key), notice=notice)


async def on_code(ctx: Ctx, text: str) -> None:
    """Verify what the owner typed; wrong codes count, the last try locks the code."""
    data = await data_at(ctx, "code") or {}
    digits = codes.code_entry(text)
    if digits is None:
        if _looks_like_phone(ctx, text):  # a number typed: go on with it as the phone
            await ctx.goto(NAME, "phone")
            await on_holder_phone(ctx, text)
            return
        await ask_code(ctx, notice="⚠️ " + echo(text) + ctx.t("newaccount.code_format"))
        return
    code = await ctx.session.get(VerificationCode, int(data.get("code_id") or 0))
    if code is not None and code.status == CodeStatus.PENDING.value and code.delivery == "queued":
        await ask_code(ctx)
        return
    result = await codes.verify_code(
        ctx.session, ctx.policy, code_id=int(data.get("code_id") or 0), owner_id=ctx.user_id,
        entered=digits, now=ctx.now(),
    )
    outcome = result.outcome
    if outcome is codes.VerifyOutcome.OK:
        # now, and only now, the holder's Telegram name may be shown (offered as a nickname)
        holder = await ctx.session.get(User, result.code.holder_id or 0)
        name = holder.first_name if holder else None
        notice = ctx.t("newaccount.code_ok", minutes=code_minutes(result.code),
                       until=await until_of(ctx, result.code))
        schedule_expiry(ctx.context.job_queue, result.code.expires_at)
        quick = quick_nickname(data, name)
        if quick is not None:  # "Add another": the holder's name and IM as before, to check
            await ctx.goto(NAME, "confirm", {"holder_name": name, "nickname": quick,
                                             "notice": notice})
            await ctx.router.ask(ctx, NAME, "confirm")
            return
        await ctx.goto(NAME, "nickname", {"holder_name": name, "notice": notice})
        await ctx.router.ask(ctx, NAME, "nickname")
        return
    if outcome is codes.VerifyOutcome.WRONG:
        await ask_code(ctx, notice=echo(text)
                       + ctx.t("newaccount.code_wrong", left=result.tries_left))
        return
    if result.just_ended:
        reason = ("holder_code.locked" if outcome is codes.VerifyOutcome.LOCKED
                  else "holder_code.expired")
        await end_holder_message(ctx, result.code, reason)
    key = {
        codes.VerifyOutcome.LOCKED: "newaccount.code_locked",
        codes.VerifyOutcome.EXPIRED: "newaccount.code_expired",
        codes.VerifyOutcome.DECLINED: "newaccount.code_declined",
    }.get(outcome, "newaccount.code_dead")
    await ask_code(ctx, notice=ctx.t(key, minutes=code_minutes(result.code),
                                     phone=mask_phone(result.code.phone)))


def quick_nickname(data: dict[str, Any], name: str | None) -> str | None:
    """After "Add another" (IM chosen before): the holder's name as the nickname, straight to
    the summary (where both can be changed); ``None`` when the nickname must be asked."""
    if "im" not in data or not data.get("quick") or not name:
        return None
    try:
        return clean_nickname(name[:NICKNAME_MAX])
    except DomainError:
        return None


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
    """/cancel (or another command) during /newaccount: a live code dies with the flow, and
    the card loses its buttons."""
    draft = await ctx.load_draft()
    if draft is not None and draft.flow == NAME:
        await cancel_code(ctx, dict(draft.data))
        await CARD.strip(ctx)
