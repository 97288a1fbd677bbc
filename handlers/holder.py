"""The holder's side: /me — their shop, role, visible modules, IM, status — and "Leave shop".

Callback data, namespace ``me`` (the id must be the presser's own sub-account):
``me:lv:<acc>`` ask to leave · ``me:ly:<acc>`` leave · ``me:lx:<acc>`` keep (back to /me).
"""

from __future__ import annotations

from telegram import InlineKeyboardMarkup

from handlers import service_relay
from handlers.context import Ctx
from handlers.flow import Command, Flow
from handlers.i18n import module_names
from handlers.keyboards import button, keyboard
from handlers.menus import refresh_menu
from handlers.router import cb
from models.accounts import leave_shop, membership_of
from models.phones import mask_phone
from models.tables import AccountStatus, User

NS = "me"


async def me_screen(ctx: Ctx) -> tuple[str, InlineKeyboardMarkup | None]:
    """What the holder may do in their shop (or why they have nothing to see)."""
    membership = await membership_of(ctx.session, ctx.user_id)
    if membership is None:
        shop = await ctx.shop_or_none()
        if shop is not None:
            return ctx.t("holder.is_owner", shop=shop.name), None
        return ctx.t("holder.none"), None
    account, shop, role = membership.account, membership.shop, membership.role
    lines = [
        ctx.t("holder.title", shop=shop.name),
        "",
        ctx.t("holder.details", nickname=account.nickname, phone=mask_phone(account.phone),
              role=role.name),
    ]
    if account.status == AccountStatus.SUSPENDED.value:
        lines.append(ctx.t("holder.suspended"))
    else:
        lines.append(ctx.t("holder.authorized"))
        modules = module_names(ctx.policy, role.modules, ctx.locale, ctx.t("accounts.sep"))
        lines.append(ctx.t("holder.modules", modules=modules))
        lines.append(ctx.t("holder.im_on" if account.im_enabled else "holder.im_off"))
    service_row = ([button(ctx.t("holder.service_status"), cb(service_relay.AGENT_NS, "ss"))]
                   if account.im_enabled and account.status != AccountStatus.SUSPENDED.value
                   else [])
    markup = keyboard(service_row, [button(ctx.t("holder.leave"), cb(NS, "lv", account.id))])
    return "\n".join(lines), markup


async def show_me(ctx: Ctx) -> None:
    """Send the holder view as a new message (also what /start shows a holder)."""
    text, markup = await me_screen(ctx)
    await ctx.reply(text, markup)


async def me_command(ctx: Ctx) -> None:
    """/me: the holder's sub-account."""
    await ctx.router.abandon(ctx)
    await show_me(ctx)


async def holder_home(ctx: Ctx) -> bool:
    """/start's home for a sub-account holder: the same as /me."""
    if await membership_of(ctx.session, ctx.user_id) is None:
        return False
    await show_me(ctx)
    return True


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """``me:`` buttons act only on the presser's own, current membership."""
    membership = await membership_of(ctx.session, ctx.user_id)
    if membership is None or membership.account.id != int(args[0]):
        await ctx.stale()
        return
    account, shop = membership.account, membership.shop
    if action == "lv":
        await ctx.answer()
        await ctx.show(
            ctx.t("holder.leave_confirm", shop=shop.name),
            keyboard([button(ctx.t("holder.leave_yes"), cb(NS, "ly", account.id)),
                      button(ctx.t("common.cancel_button"), cb(NS, "lx", account.id))]),
        )
        return
    if action == "lx":
        await ctx.answer()
        text, markup = await me_screen(ctx)
        await ctx.show(text, markup)
        return
    owner = await ctx.session.get(User, shop.owner_id)
    nickname, phone, shop_name = account.nickname, mask_phone(account.phone), shop.name
    moved = await service_relay.release(ctx, shop_id=shop.id or 0, user_id=ctx.user_id,
                                        reason="left")
    await leave_shop(ctx.session, holder=ctx.user, now=ctx.now())
    await ctx.answer()
    # the owner first (committed with the change), independently of this screen's update
    if owner is not None:
        await ctx.notify(owner, "holder.notify_owner_left", nickname=nickname, phone=phone,
                         shop=shop_name)
    await ctx.show(ctx.t("holder.left", shop=shop_name))
    await refresh_menu(ctx)  # no longer staff
    await service_relay.announce_from(ctx, moved)


FLOW = Flow(
    name="me",
    namespace=NS,
    buttons={"lv": ("int",), "ly": ("int",), "lx": ("int",)},
    on_button=on_button,
    commands=(Command("me", me_command, who="staff"),),
    home=holder_home,
)
