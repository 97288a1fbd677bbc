"""Linking a phone by sharing one's own contact (used by /start and by an invite link).

Not a conversation: the pieces the two conversations that link phones share.
"""

from __future__ import annotations

from telegram import Contact, KeyboardButton, ReplyKeyboardMarkup, ReplyKeyboardRemove

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


async def typed_instead_of_contact(ctx: Ctx, _text: str) -> None:
    """A typed number cannot prove ownership: ask for the button again."""
    await ctx.reply(ctx.t("onboarding.use_contact_button"), contact_keyboard(ctx))


async def accept_contact(ctx: Ctx, contact: Contact) -> str | None:
    """Check the shared contact is the sender's own and link it; the phone or ``None``."""
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
