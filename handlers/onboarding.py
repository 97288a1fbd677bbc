"""/start: link the phone (shared contact), open a deep link, or show the home screen.

Someone who has not linked a phone is always at the share step: /start welcomes them once (a
second /start only asks again), and whatever they send before linking — a text, a sticker, a
photo, a command of the shop's — is answered with the share prompt and its button
(``handlers.router`` routes a message from someone with no phone and no conversation here).
"""

from __future__ import annotations

from telegram import Contact, ReplyKeyboardRemove

from handlers.context import Ctx
from handlers.flow import Command, Flow, Step
from handlers.menus import refresh_menu
from handlers.phone_link import accept_contact, ask_phone, not_a_contact, typed_instead_of_contact

NAME = "onboard"


async def start(ctx: Ctx) -> None:
    """/start: link the phone if needed, open a deep link (an invite), or show the home."""
    args = ctx.context.args or []
    if args:
        await ctx.router.abandon(ctx)
        if not await ctx.router.deep_link(ctx, args[0]):
            await ctx.reply(ctx.t("errors.invite_invalid"))
        return
    if ctx.user.phone is None:
        draft = await ctx.load_draft()
        if draft is not None and (draft.flow, draft.step) == (NAME, "phone"):
            await ask_phone(ctx)  # welcomed already: the prompt only
            return
        await ctx.router.abandon(ctx)
        await ctx.start_flow(NAME, "phone")
        await ctx.reply(ctx.t("onboarding.welcome", name=ctx.user.first_name or "👋"))
        await ask_phone(ctx)
        return
    await ctx.router.show_home(ctx)
    await refresh_menu(ctx)


async def on_own_contact(ctx: Ctx, contact: Contact) -> None:
    """Link the shared phone, then show what the user can do."""
    was_linked = ctx.user.phone is not None
    phone = await accept_contact(ctx, contact)
    if phone is None:
        return
    draft = await ctx.load_draft()
    if draft is not None and draft.flow == NAME:
        await ctx.end_flow()
    if not was_linked:
        await ctx.reply(ctx.t("onboarding.linked"), ReplyKeyboardRemove())
        await refresh_menu(ctx)
    await ctx.router.show_home(ctx)


async def home_before_linking(ctx: Ctx) -> bool:
    """/start's home for someone who has not linked a phone: link it first."""
    if ctx.user.phone is not None:
        return False
    await ctx.reply(ctx.t("onboarding.link_first"))
    return True


FLOW = Flow(
    name=NAME,
    commands=(Command("start", start, who="everyone"),),
    steps={
        "phone": Step(ask=ask_phone, on_text=typed_instead_of_contact, on_contact=on_own_contact,
                      on_message=not_a_contact),
    },
    home=home_before_linking,
)
