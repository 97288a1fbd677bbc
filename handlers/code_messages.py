"""A verification code as the holder and the owner see it: the holder's code message (its text,
its delivery, its "Not me" button, the edit that ends it) and the owner's notices about it.

Not a conversation: the owner's /newaccount, the invite, the holder's "Not me" and the expiry
job all send or end these messages.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import TelegramError

from handlers.context import Ctx, Deps
from handlers.i18n import t
from handlers.keyboards import button, keyboard
from handlers.router import cb
from handlers.telegram_io import edit_safely, send_safely
from handlers.times import local_time, shop_zone
from models.drafts import get_draft, save_draft
from models.phones import mask_phone
from models.tables import Role, Shop, User, VerificationCode

log = logging.getLogger(__name__)

#: the owner's /newaccount: its draft's flow and its buttons' namespace
OWNER_FLOW = "newaccount"
OWNER_NS = "na"
#: the holder's code message
HOLDER_NS = "hc"
#: ``deliver``'s answer when Telegram could not be reached (the holder did not block the bot)
SEND_FAILED = "send_failed"


def clock_time(moment: datetime, shop: Shop | None = None, default_zone: str = "UTC") -> str:
    """A deadline as the owner and holder see it: the clock time in the shop's time zone."""
    return local_time(moment, shop_zone(shop, default_zone))


def code_minutes(code: VerificationCode) -> int:
    """How many minutes the code was issued for (as the texts say it: at least 1)."""
    return max(1, round((code.expires_at - code.created_at).total_seconds() / 60))


def holder_code_text(
    locale: str, *, plain: str, shop: Shop, owner: User, role: Role | None, code: VerificationCode,
    default_zone: str = "UTC",
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
        until=clock_time(code.expires_at, shop, default_zone),
    )


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
                            code=code, default_zone=deps.default_time_zone)
    try:
        message = await send_safely(bot, holder.id, text, not_me_keyboard(locale, code.id or 0))
    except TelegramError as exc:
        log.warning("code %s could not be sent: %s", code.id, type(exc).__name__)
        return SEND_FAILED
    return message.message_id if message else None


def failure_key(sent: int | str | None) -> str:
    """The owner's notice for a code that could not be sent (blocked, or Telegram unreachable)."""
    return "newaccount.holder_blocked" if sent is None else "newaccount.send_failed"


def resend_keyboard(locale: str, key: str = "newaccount.resend") -> InlineKeyboardMarkup:
    """Resend and Cancel for the owner, under a notice sent outside their update."""
    return keyboard([button(t(locale, key), cb(OWNER_NS, "resend"))],
                    [button(t(locale, "common.cancel_button"), cb(OWNER_NS, "cancel"))])


async def holder_end_edit(
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
    edit = await holder_end_edit(ctx.session, ctx.deps, code, key)
    if edit is not None:
        await ctx.commit()
        await edit_safely(ctx.context.bot, *edit)


async def back_to_code_step(session: AsyncSession, code: VerificationCode, now: datetime) -> None:
    """A verified code ended before Confirm: the owner's flow goes back to the code step (so
    that Resend works) and forgets the holder's name."""
    draft = await get_draft(session, code.owner_id)
    if draft is None or draft.flow != OWNER_FLOW or draft.data.get("code_id") != code.id \
            or draft.step in ("code", "phone", "role"):
        return
    await save_draft(session, code.owner_id, OWNER_FLOW, "code",
                     {**draft.data, "holder_name": None}, now)
