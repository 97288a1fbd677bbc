"""A verification code as the holder and the owner see it: the holder's code message (its text,
its delivery, its "Not me" button, the edit that ends it) and the owner's notices about it.

Not a conversation: the owner's /newaccount, the invite, the holder's "Not me" and the expiry
job all send or end these messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import TelegramError

from handlers.context import Ctx, Deps
from handlers.i18n import label, t
from handlers.keyboards import button, keyboard
from handlers.router import cb
from handlers.telegram_io import edit_safely, send_safely
from handlers.times import local_time, shop_zone
from models.accounts import NICKNAME_MAX
from models.drafts import DraftState, get_draft, save_draft
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


def consent_keyboard(locale: str, code_id: int, shop: Shop) -> InlineKeyboardMarkup:
    """✅ Join <shop> and 🙅 Not me, under a request to accept (a shop asking by button)."""
    return keyboard([button(label(locale, "holder_code.join", shop=shop.name),
                            cb(HOLDER_NS, "ok", code_id))],
                    [button(t(locale, "holder_code.not_me"), cb(HOLDER_NS, "no", code_id))])


async def deliver(
    bot: Bot, deps: Deps, code: VerificationCode, holder: User, plain: str,
    shop: Shop, owner: User, role: Role | None, *, consent: bool = False,
) -> int | str | None:
    """Send the code to the holder's chat — or, with ``consent`` (the shop asks by button), a
    request to accept with ✅ Join, without digits: the message id, ``None`` if they blocked
    the bot, ``SEND_FAILED`` if Telegram could not be reached (after the retries)."""
    locale = deps.locale_of(holder)
    if consent:
        text = t(locale, "holder_code.consent_message", shop=shop.name,
                 owner=owner.first_name or "—", owner_phone=mask_phone(owner.phone),
                 role=role.name if role else "—", minutes=code_minutes(code),
                 until=clock_time(code.expires_at, shop, deps.default_time_zone))
        markup = consent_keyboard(locale, code.id or 0, shop)
    else:
        text = holder_code_text(locale, plain=plain, shop=shop, owner=owner, role=role,
                                code=code, default_zone=deps.default_time_zone)
        markup = not_me_keyboard(locale, code.id or 0)
    try:
        message = await send_safely(bot, holder.id, text, markup)
    except TelegramError as exc:
        log.warning("code %s could not be sent: %s", code.id, type(exc).__name__)
        return SEND_FAILED
    return message.message_id if message else None


def failure_key(sent: int | str | None) -> str:
    """The owner's notice for a code that could not be sent (blocked, or Telegram unreachable)."""
    return "newaccount.holder_blocked" if sent is None else "newaccount.send_failed"


def resend_keyboard(locale: str, key: str = "newaccount.resend", *,
                    change_first: bool = False) -> InlineKeyboardMarkup:
    """The code step's buttons on the owner's card: 📱 Change number, Resend, Cancel
    (``change_first``: Change number on a row of its own, first — after "Not me")."""
    change = button(t(locale, "newaccount.change_number"), cb(OWNER_NS, "chphone"))
    resend = button(t(locale, key), cb(OWNER_NS, "resend"))
    cancel = [button(t(locale, "common.cancel_button"), cb(OWNER_NS, "cancel"))]
    if change_first:
        return keyboard([change], [resend], cancel)
    return keyboard([change, resend], cancel)


def card_of(draft: DraftState | None, code: VerificationCode) -> int | None:
    """The message id of the owner's /newaccount card, if their flow is about ``code``."""
    if draft is None or draft.flow != OWNER_FLOW or draft.data.get("code_id") != code.id:
        return None
    card = draft.data.get("card")
    return int(card) if isinstance(card, int) else None


@dataclass(frozen=True)
class OwnerNotice:
    """What the owner is told about a code outside their update: ``text`` (with ``markup``)
    edits ``card`` (their /newaccount card) or, with no card, is sent as a new message."""

    owner_id: int
    text: str
    markup: InlineKeyboardMarkup | None
    card: int | None


async def owner_notice(
    session: AsyncSession, deps: Deps, code: VerificationCode, key: str, *,
    markup_key: str | None = "newaccount.resend", change_first: bool = False,
    **params: object,
) -> OwnerNotice | None:
    """The owner's notice about ``code`` (``None``: the owner is gone); the code step's buttons
    only while their flow is still about this code, unless ``markup_key`` is None."""
    owner = await session.get(User, code.owner_id)
    if owner is None:
        return None
    locale = deps.locale_of(owner)
    draft = await get_draft(session, owner.id)
    in_flow = draft is not None and draft.flow == OWNER_FLOW \
        and draft.data.get("code_id") == code.id
    text = t(locale, key, phone=mask_phone(code.phone), **params)
    markup = (resend_keyboard(locale, markup_key, change_first=change_first)
              if in_flow and markup_key is not None else None)
    return OwnerNotice(owner.id, text, markup, card_of(draft, code))


async def tell_owner(
    session: AsyncSession, bot: Bot, deps: Deps, code: VerificationCode, key: str, *,
    alert: str | None = None, markup_key: str | None = "newaccount.resend",
    change_first: bool = False, **params: object,
) -> None:
    """Something happened to ``code`` outside the owner's update (the code was delivered, the
    invite opened, "Not me", the holder blocked the bot): the owner's card is edited to say so
    (``owner_notice``); ``alert`` (a key) is sent as one short new message first, where the
    owner must notice. What was written must be committed before this is called."""
    told = await owner_notice(session, deps, code, key, markup_key=markup_key,
                              change_first=change_first, **params)
    if told is None:
        return
    if told.card is None:
        await send_safely(bot, told.owner_id, told.text, told.markup)
        return
    if alert is not None:
        owner = await session.get(User, code.owner_id)
        await send_safely(bot, told.owner_id,
                          t(deps.locale_of(owner), alert, phone=mask_phone(code.phone)))
    await edit_safely(bot, told.owner_id, told.card, told.text, told.markup)


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


async def accepted_by_holder(
    session: AsyncSession, bot: Bot, deps: Deps, code: VerificationCode, holder: User,
    now: datetime,
) -> None:
    """The holder tapped ✅ Join: the owner's flow goes on to the nickname step (the holder's
    name may now be shown) and their card says "<name> accepted". Commits."""
    owner = await session.get(User, code.owner_id)
    draft = await get_draft(session, code.owner_id)
    if owner is None or draft is None or draft.flow != OWNER_FLOW \
            or draft.data.get("code_id") != code.id or draft.step != "code":
        await session.commit()
        return
    locale = deps.locale_of(owner)
    name = holder.first_name or ""
    await save_draft(session, owner.id, OWNER_FLOW, "nickname",
                     {**draft.data, "holder_name": name or None}, now)
    await session.commit()
    card = card_of(draft, code)
    text = t(locale, "newaccount.accepted", name=name or mask_phone(code.phone)) + "\n\n" \
        + t(locale, "newaccount.ask_nickname", max=NICKNAME_MAX)
    rows = []
    if name.strip():
        rows.append([button(label(locale, "newaccount.use_name", name=name.strip()[:NICKNAME_MAX]),
                            cb(OWNER_NS, "nick"))])
    rows.append([button(t(locale, "common.back"), cb(OWNER_NS, "back")),
                 button(t(locale, "common.cancel_button"), cb(OWNER_NS, "cancel"))])
    if card is None:
        await send_safely(bot, owner.id, text, keyboard(*rows))
    else:
        await edit_safely(bot, owner.id, card, text, keyboard(*rows))


async def back_to_code_step(session: AsyncSession, code: VerificationCode, now: datetime) -> None:
    """A verified code ended before Confirm: the owner's flow goes back to the code step (so
    that Resend works) and forgets the holder's name."""
    draft = await get_draft(session, code.owner_id)
    if draft is None or draft.flow != OWNER_FLOW or draft.data.get("code_id") != code.id \
            or draft.step in ("code", "phone", "role"):
        return
    await save_draft(session, code.owner_id, OWNER_FLOW, "code",
                     {**draft.data, "holder_name": None}, now)
