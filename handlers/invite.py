"""An invite link (``/start <token>``): a holder who had not used the bot links their phone,
then gets the code the owner asked for; the owner is told.

Only the token's SHA-256 is kept (in the draft too), never the token.
"""

from __future__ import annotations

from telegram import Contact, ReplyKeyboardRemove

from handlers.code_messages import SEND_FAILED, deliver, failure_key, tell_owner
from handlers.context import Ctx
from handlers.expiry import schedule_expiry
from handlers.flow import Flow, Step
from handlers.phone_link import accept_contact, ask_phone, typed_instead_of_contact
from models import codes, invites
from models.errors import DomainError
from models.tables import Role, Shop, User

NAME = "invite"


async def open_invite(ctx: Ctx, token: str) -> bool:
    """``/start <token>``: link the phone first if needed, then deliver the code."""
    token_hash = invites.invite_hash(token)
    code = await invites.code_for_invite(ctx.session, token_hash, now=ctx.now())
    if ctx.user.phone is None:
        # who asks, for which shop and role, before the contact is asked for
        shop = await ctx.session.get(Shop, code.shop_id)
        owner = await ctx.session.get(User, code.owner_id)
        role = await ctx.session.get(Role, code.role_id) if code.role_id else None
        await ctx.start_flow(NAME, "contact", {"token_hash": token_hash})
        await ctx.reply(ctx.t("holder_code.invite_welcome", shop=shop.name if shop else "—",
                              owner=(owner.first_name if owner else None) or "—",
                              role=role.name if role else "—"))
        await ask_phone(ctx)
        return True
    await claim(ctx, token_hash)
    return True


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
    # the contact keyboard goes (the code's own message carries its inline "Not me")
    await ctx.reply(ctx.t("onboarding.linked"), ReplyKeyboardRemove())
    try:
        await claim(ctx, token_hash)
    except DomainError as exc:
        await ctx.reply(ctx.error_text(exc))


async def claim(ctx: Ctx, token_hash: str) -> None:
    """Use up the invite and send the holder their code; tell the owner."""
    code, plain = await invites.claim_invite(ctx.session, ctx.policy, token_hash, ctx.user,
                                           now=ctx.now())
    shop = await ctx.session.get(Shop, code.shop_id)
    owner = await ctx.session.get(User, code.owner_id)
    role = await ctx.session.get(Role, code.role_id) if code.role_id else None
    assert shop is not None and owner is not None
    await ctx.commit()
    schedule_expiry(ctx.context.job_queue, code.expires_at)
    sent = await deliver(ctx.context.bot, ctx.deps, code, ctx.user, plain, shop, owner, role)
    if sent is None or sent is SEND_FAILED:
        await codes.mark_undeliverable(ctx.session, code, now=ctx.now(), blocked=sent is None)
        await ctx.commit()
        await tell_owner(ctx.session, ctx.context.bot, ctx.deps, code, failure_key(sent))
        return
    assert isinstance(sent, int)
    await codes.mark_delivered(ctx.session, code, holder_id=ctx.user_id, message_id=sent)
    await ctx.commit()
    # the holder's name is not told: the owner sees it only once the code is verified
    await tell_owner(ctx.session, ctx.context.bot, ctx.deps, code, "newaccount.invite_opened")


FLOW = Flow(
    name=NAME,
    steps={
        "contact": Step(ask=ask_phone, on_text=typed_instead_of_contact,
                        on_contact=on_invite_contact),
    },
    deep_link=open_invite,
)
