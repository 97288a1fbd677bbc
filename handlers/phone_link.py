"""Linking a phone by sharing one's own contact (used by /start and by an invite link).

Not a conversation: the pieces the two conversations that link phones share.
"""

from __future__ import annotations

from telegram import Contact, KeyboardButton, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove

from handlers.context import Ctx
from models.errors import DomainError
from models.phones import normalize_contact_phone
from models.users import link_phone


def contact_keyboard(ctx: Ctx) -> ReplyKeyboardMarkup:
    """The reply keyboard with the request-contact button."""
    return ReplyKeyboardMarkup(
        [[KeyboardButton(ctx.t("onboarding.share_button"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder=ctx.t("onboarding.share_placeholder"),
    )


async def ask_phone(ctx: Ctx) -> None:
    """Ask the user to share their own phone with the contact button."""
    await ctx.reply(ctx.t("onboarding.ask_phone"), contact_keyboard(ctx))


def looks_like_a_phone(text: str) -> bool:
    """Whether a typed text is a phone number (someone typing theirs instead of sharing it)."""
    digits = sum(c.isdigit() for c in text)
    return digits >= 6 and all(c.isdigit() or c in " +-()." for c in text.strip())


async def typed_instead_of_contact(ctx: Ctx, text: str) -> None:
    """A typed number cannot prove ownership, and any other text is not what this step
    needs: the share prompt with its button again, saying why."""
    key = "onboarding.use_contact_button" if looks_like_a_phone(text) else "onboarding.ask_phone"
    await ctx.reply(ctx.t(key), contact_keyboard(ctx))


async def not_a_contact(ctx: Ctx, _message: Message) -> None:
    """A sticker, a photo, a voice message…: the button is what this step needs."""
    await ctx.reply(ctx.t("onboarding.tap_the_button"), contact_keyboard(ctx))


async def accept_contact(ctx: Ctx, contact: Contact) -> str | None:
    """Check the shared contact is the sender's own and link it; the phone or ``None``.

    A contact from the address book (another person's, or one's own saved card: its
    ``user_id`` is not the sender) proves nothing about who has the phone: explained, and
    the button offered."""
    if contact.user_id != ctx.user_id:
        await ctx.reply(ctx.t("onboarding.not_own_contact"), contact_keyboard(ctx))
        return None
    try:
        phone = normalize_contact_phone(contact.phone_number, ctx.policy.default_region)
        await link_phone(ctx.session, ctx.user, phone)
    except DomainError as exc:
        if exc.key == "phone_already_linked":
            await ctx.reply(ctx.t("onboarding.already_linked"), ReplyKeyboardRemove())
            return ctx.user.phone
        await ctx.reply(ctx.error_text(exc), contact_keyboard(ctx))
        return None
    return phone
