"""The holder's side of a code, and its delivery: the code message with its "Not me" button,
the invite link for holders who have not used the bot yet, the expiry job that ends codes at
their deadline, and the start-up delivery of codes that were committed but never sent.

The owner's side (/newaccount) is ``handlers.provisioning``; the two share the flow's name and
its buttons' namespace, defined here.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, Contact, InlineKeyboardMarkup, ReplyKeyboardRemove
from telegram.error import TelegramError
from telegram.ext import ContextTypes, JobQueue

from handlers import home
from handlers.base import Ctx, Deps, button, deps_of, edit_safely, keyboard, send_safely
from handlers.i18n import t
from handlers.onboarding import accept_contact, ask_phone, contact_keyboard
from handlers.router import buttons, cb, step
from models import codes, invites
from models.clock import as_aware
from models.drafts import get_draft, save_draft
from models.errors import DomainError
from models.phones import mask_phone
from models.tables import Role, Shop, User, VerificationCode

log = logging.getLogger(__name__)

FLOW = "newaccount"
INVITE_FLOW = "invite"
EXPIRY_JOB = "code-expiry"
NS = "na"  # the owner's flow buttons
HOLDER_NS = "hc"  # the holder's code message
#: ``deliver``'s answer when Telegram could not be reached (the holder did not block the bot)
SEND_FAILED = "send_failed"


def clock_time(moment: datetime) -> str:
    """A deadline as the owner and holder see it."""
    return moment.strftime("%H:%M UTC")


def holder_code_text(
    locale: str, *, plain: str, shop: Shop, owner: User, role: Role | None, code: VerificationCode
) -> str:
    """The holder's code message: who asks, for which role, give it to them only."""
    return t(
        locale,
        "holder_code.message",
        code=plain,
        shop=shop.name,
        owner=owner.first_name or "—",
        owner_phone=mask_phone(owner.phone),
        role=role.name if role else "—",
        minutes=code_minutes(code),
        until=clock_time(code.expires_at),
    )


def code_minutes(code: VerificationCode) -> int:
    """How many minutes the code was issued for (as the texts say it: at least 1)."""
    return max(1, round((code.expires_at - code.created_at).total_seconds() / 60))


def not_me_keyboard(locale: str, code_id: int) -> InlineKeyboardMarkup:
    """The holder's "Not me" button for a code."""
    return keyboard([button(t(locale, "holder_code.not_me"), cb(HOLDER_NS, "no", code_id))])


async def deliver(
    bot: Bot, deps: Deps, code: VerificationCode, holder: User, plain: str,
    shop: Shop, owner: User, role: Role | None,
) -> int | str | None:
    """Send the code to the holder's chat: the message id, ``None`` if they blocked the bot,
    ``SEND_FAILED`` if Telegram could not be reached (after the retries)."""
    locale = deps.locale_of(holder)
    text = holder_code_text(locale, plain=plain, shop=shop, owner=owner, role=role,
                            code=code)
    try:
        message = await send_safely(bot, holder.id, text, not_me_keyboard(locale, code.id or 0))
    except TelegramError as exc:
        log.warning("code %s could not be sent: %s", code.id, type(exc).__name__)
        return SEND_FAILED
    return message.message_id if message else None


# --- the holder's side ------------------------------------------------------------------------


async def _holder_end_edit(
    session: AsyncSession, deps: Deps, code: VerificationCode, key: str
) -> tuple[int, int, str] | None:
    """The edit that replaces the holder's code message (the digits disappear) with why the
    code ended: chat, message and text; ``None`` when the holder has no such message."""
    if code.holder_id is None or code.holder_message_id is None:
        return None
    holder = await session.get(User, code.holder_id)
    shop = await session.get(Shop, code.shop_id)
    text = t(deps.locale_of(holder), key, shop=shop.name if shop else "—")
    return code.holder_id, code.holder_message_id, text


async def end_holder_message(ctx: Ctx, code: VerificationCode, key: str) -> None:
    """Tell the holder why their code ended, in this update's session (committed first)."""
    edit = await _holder_end_edit(ctx.session, ctx.deps, code, key)
    if edit is not None:
        await ctx.commit()
        await edit_safely(ctx.context.bot, *edit)


async def on_holder_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """"Not me": the holder declines; the code dies and the owner is told."""
    try:
        code = await codes.decline_code(ctx.session, code_id=int(args[0]),
                                        holder_id=ctx.user_id, now=ctx.now())
    except DomainError:
        await ctx.stale()
        return
    await _back_to_code_step(ctx.session, code, ctx.now())
    await ctx.answer()
    await ctx.show(ctx.t("holder_code.declined_by_you"))
    owner = await ctx.session.get(User, code.owner_id)
    if owner is not None:
        locale = ctx.deps.locale_of(owner)
        await send_safely(
            ctx.context.bot, owner.id,
            t(locale, "newaccount.declined_notice", phone=mask_phone(code.phone)),
            resend_keyboard(locale),
        )


buttons(HOLDER_NS, {"no": ("int",)}, on_holder_button)


async def open_invite(ctx: Ctx, token: str) -> None:
    """``/start <token>``: link the phone first if needed, then deliver the code. Only the
    token's SHA-256 is kept (in the draft too), never the token."""
    token_hash = invites.invite_hash(token)
    await invites.code_for_invite(ctx.session, token_hash, now=ctx.now())
    if ctx.user.phone is None:
        await ctx.start_flow(INVITE_FLOW, "contact", {"token_hash": token_hash})
        await ctx.reply(ctx.t("holder_code.invite_welcome"))
        await ask_phone(ctx)
        return
    await claim(ctx, token_hash)


home.INVITE_OPENER.append(open_invite)


async def on_invite_contact(ctx: Ctx, contact: Contact) -> None:
    """The invited holder shared their contact: link it (for good, whatever the invite says)
    and deliver the code if it matches."""
    draft = await ctx.load_draft()
    token_hash = str((draft.data if draft else {}).get("token_hash", ""))
    phone = await accept_contact(ctx, contact)
    if phone is None:
        return
    await ctx.end_flow()
    await ctx.commit()  # the phone they proved stays linked even if the invite is refused
    try:
        await claim(ctx, token_hash)
    except DomainError as exc:
        await ctx.reply(ctx.t("onboarding.linked"), ReplyKeyboardRemove())
        await ctx.reply(ctx.error_text(exc))


async def on_invite_text(ctx: Ctx, _text: str) -> None:
    """A typed number cannot prove ownership."""
    await ctx.reply(ctx.t("onboarding.use_contact_button"), contact_keyboard(ctx))


step(INVITE_FLOW, "contact", prompt=ask_phone, on_text=on_invite_text,
     on_contact=on_invite_contact)


async def claim(ctx: Ctx, token_hash: str) -> None:
    """Use up the invite and send the holder their code; tell the owner."""
    code, plain = await invites.claim_invite(ctx.session, ctx.policy, token_hash, ctx.user,
                                           now=ctx.now())
    shop = await ctx.session.get(Shop, code.shop_id)
    owner = await ctx.session.get(User, code.owner_id)
    role = await ctx.session.get(Role, code.role_id) if code.role_id else None
    assert shop is not None and owner is not None
    await ctx.commit()
    sent = await deliver(ctx.context.bot, ctx.deps, code, ctx.user, plain, shop, owner, role)
    owner_locale = ctx.deps.locale_of(owner)
    if sent is None or sent is SEND_FAILED:
        await codes.mark_undeliverable(ctx.session, code, now=ctx.now(), blocked=sent is None)
        await ctx.commit()
        await send_safely(
            ctx.context.bot, owner.id,
            t(owner_locale, _failure_key(sent), phone=mask_phone(code.phone)),
            resend_keyboard(owner_locale),
        )
        return
    assert isinstance(sent, int)
    await codes.mark_delivered(ctx.session, code, holder_id=ctx.user_id, message_id=sent)
    await ctx.commit()
    # the holder's name is not told: the owner sees it only once the code is verified
    await send_safely(
        ctx.context.bot, owner.id,
        t(owner_locale, "newaccount.invite_opened", phone=mask_phone(code.phone)),
    )


def _failure_key(sent: int | str | None) -> str:
    """The owner's notice for a code that could not be sent (blocked, or Telegram unreachable)."""
    return "newaccount.holder_blocked" if sent is None else "newaccount.send_failed"


def resend_keyboard(locale: str, key: str = "newaccount.resend") -> InlineKeyboardMarkup:
    """Resend and Cancel for the owner, under a notice sent outside their update."""
    return keyboard([button(t(locale, key), cb(NS, "resend"))],
                    [button(t(locale, "common.cancel_button"), cb(NS, "cancel"))])


async def _back_to_code_step(session: AsyncSession, code: VerificationCode, now: datetime) -> None:
    """A verified code ended before Confirm: the owner's flow goes back to the code step (so
    that Resend works) and forgets the holder's name."""
    draft = await get_draft(session, code.owner_id)
    if draft is None or draft.flow != FLOW or draft.data.get("code_id") != code.id \
            or draft.step in ("code", "phone", "role"):
        return
    await save_draft(session, code.owner_id, FLOW, "code",
                     {**draft.data, "holder_name": None}, now)


# --- expiry -----------------------------------------------------------------------------------


def schedule_expiry(job_queue: JobQueue | None, deadline: datetime) -> None:  # type: ignore[type-arg]
    """Make sure the expiry job runs no later than ``deadline``."""
    if job_queue is None:
        return
    when = as_aware(deadline)
    jobs = job_queue.get_jobs_by_name(EXPIRY_JOB)
    if any(job.next_t is not None and job.next_t <= when for job in jobs):
        return
    for job in jobs:
        job.schedule_removal()
    job_queue.run_once(expiry_job, when=when, name=EXPIRY_JOB)


async def expire_and_notify(bot: Bot, deps: Deps) -> datetime | None:
    """End every live code past its deadline (pending, or verified and not confirmed), tell
    owners and holders; the next deadline."""
    while True:
        async with deps.sessions() as session:
            now = deps.clock.now()
            expired = await codes.expire_due(session, now=now)
            for code in expired:
                await _back_to_code_step(session, code, now)
            await session.commit()
            notices = []
            for code in expired:
                owner = await session.get(User, code.owner_id)
                edit = await _holder_end_edit(session, deps, code, "holder_code.expired")
                notices.append((code, owner, edit))
        for code, owner, edit in notices:
            if edit is not None:
                await edit_safely(bot, *edit)
            if owner is None:
                continue
            locale = deps.locale_of(owner)
            await send_safely(
                bot, owner.id, t(locale, "newaccount.expired_notice", phone=mask_phone(code.phone)),
                resend_keyboard(locale, "newaccount.resend_new"),
            )
        if len(expired) < 500:
            break
    async with deps.sessions() as session:
        return await codes.next_deadline(session)


async def deliver_undelivered(bot: Bot, deps: Deps) -> int:
    """Start-up: codes committed but never sent (the process died between the two) are sent
    now with fresh digits, and the owner is told; a holder who cannot be reached is reported to
    the owner, who can resend at once. Returns how many codes were handled."""
    async with deps.sessions() as session:
        pending = await codes.claim_undelivered(session, now=deps.clock.now())
        await session.commit()  # claimed: no other process sends them too
        for code in pending:
            holder = await session.get(User, code.holder_id or 0)
            shop = await session.get(Shop, code.shop_id)
            owner = await session.get(User, code.owner_id)
            role = await session.get(Role, code.role_id) if code.role_id else None
            if holder is None or shop is None or owner is None:
                await codes.mark_undeliverable(session, code, now=deps.clock.now(), blocked=False)
                await session.commit()
                continue
            plain = codes.rekey(deps.policy, code)
            session.add(code)
            await session.commit()
            sent = await deliver(bot, deps, code, holder, plain, shop, owner, role)
            locale = deps.locale_of(owner)
            masked = mask_phone(code.phone)
            if sent is None or sent is SEND_FAILED:
                await codes.mark_undeliverable(session, code, now=deps.clock.now(),
                                               blocked=sent is None)
                await session.commit()
                await send_safely(bot, owner.id, t(locale, _failure_key(sent), phone=masked),
                                  resend_keyboard(locale))
                continue
            assert isinstance(sent, int)
            await codes.mark_delivered(session, code, holder_id=holder.id, message_id=sent)
            await session.commit()
            await send_safely(bot, owner.id, t(locale, "newaccount.sent_late", phone=masked,
                                               until=clock_time(code.expires_at)),
                              resend_keyboard(locale))
        return len(pending)


async def expiry_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The scheduler's job: expire due codes, then plan the next run."""
    deps = deps_of(context)
    upcoming = await expire_and_notify(context.bot, deps)
    if upcoming is not None:
        schedule_expiry(context.job_queue, upcoming)
