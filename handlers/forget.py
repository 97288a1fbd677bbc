"""/forget (docs/product.md): a user deletes what the bot keeps about them, after a confirm.

/forget explains what will go and asks; nothing is written until "Delete my data". An owner is
refused (the shop must be handed over or closed first). After the confirm: the owner of the
shop they leave is told as with "Leave shop", an owner who was waiting for one of their codes
is told it was withdrawn, and the person's own code messages say the code ended.

Callback data, namespace ``fg``: ``fg:yes`` delete · ``fg:no`` keep everything.
"""

from __future__ import annotations

from handlers import service_relay
from handlers.code_messages import OWNER_FLOW
from handlers.context import Ctx
from handlers.flow import Command, Flow
from handlers.keyboards import button, keyboard
from handlers.menus import refresh_menu
from handlers.router import cb
from handlers.telegram_io import edit_safely
from models.accounts import membership_of
from models.phones import mask_phone
from models.privacy import forget_user, live_codes, refuse_owner
from models.tables import User

NS = "fg"


async def forget_screen(ctx: Ctx) -> str:
    """What /forget would delete for this user, as they will read it."""
    lines = [ctx.t("forget.title"), ""]
    if ctx.user.phone is not None:
        lines.append(ctx.t("forget.item_phone", phone=mask_phone(ctx.user.phone)))
    lines.append(ctx.t("forget.item_name"))
    membership = await membership_of(ctx.session, ctx.user_id)
    if membership is not None:
        lines.append(ctx.t("forget.item_shop", shop=membership.shop.name))
    if await live_codes(ctx.session, ctx.user):
        lines.append(ctx.t("forget.item_codes"))
    lines.append(ctx.t("forget.item_draft"))
    lines.append(ctx.t("forget.item_log"))
    lines += ["", ctx.t("forget.kept"), "", ctx.t("forget.ask")]
    return "\n".join(lines)


async def forget_command(ctx: Ctx) -> None:
    """/forget: say what will be deleted and ask (nothing is written yet)."""
    await refuse_owner(ctx.session, ctx.user)
    await ctx.reply(
        await forget_screen(ctx),
        keyboard([button(ctx.t("forget.yes"), cb(NS, "yes")),
                  button(ctx.t("forget.no"), cb(NS, "no"))]),
    )


async def on_button(ctx: Ctx, action: str, _args: list[str]) -> None:
    """``fg:`` buttons act on the presser's own data only."""
    if action == "no":
        await ctx.answer()
        await ctx.show(ctx.t("forget.kept_all"))
        return
    shop = await ctx.shop_or_none()
    if shop is not None:
        await ctx.answer()
        await ctx.show(ctx.t("errors.forget_owner", shop=shop.name))
        return
    await ctx.router.abandon(ctx)
    membership = await membership_of(ctx.session, ctx.user_id)
    moved = await service_relay.release(ctx, shop_id=membership.shop.id or 0, user_id=ctx.user_id,
                                        reason="forgotten") if membership is not None \
        else service_relay.Owed()
    done = await forget_user(ctx.session, user=ctx.user, now=ctx.now(), owner_flow=OWNER_FLOW)
    await ctx.answer()
    await ctx.show(ctx.t("forget.done"))
    await refresh_menu(ctx)  # no phone any more: the default menu
    for code in done.withdrawn:
        if code.holder_message_id is not None:
            await edit_safely(ctx.context.bot, ctx.chat_id, code.holder_message_id,
                              ctx.t("forget.code_ended"))
        owner = await ctx.session.get(User, code.owner_id)
        if owner is not None:
            key = "forget.owner_code_flow" if code.owner_flow_ended else "forget.owner_code"
            await ctx.notify(owner, key, phone=code.masked_phone)
    if done.left is not None:
        owner = await ctx.session.get(User, done.left.shop.owner_id)
        if owner is not None:
            await ctx.notify(owner, "holder.notify_owner_left", nickname=done.left_nickname,
                             phone=done.left_phone, shop=done.left.shop.name)
    await service_relay.announce_from(ctx, moved)


FLOW = Flow(
    name="forget",
    namespace=NS,
    buttons={"yes": (), "no": ()},
    on_button=on_button,
    commands=(Command("forget", forget_command, who="everyone"),),
)
