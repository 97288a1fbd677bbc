"""/newshop: a linked user with no shop names one and becomes its main account (主账号)."""

from __future__ import annotations

from telegram import ReplyKeyboardRemove

from handlers.context import Ctx
from handlers.flow import Command, Flow, Step
from handlers.menus import refresh_menu
from handlers.phone_link import ask_phone
from models.errors import DomainError
from models.shops import SHOP_NAME_MAX, check_can_create_shop, create_shop

NAME = "newshop"
#: the phone-linking step of /start, where /newshop sends someone with no phone yet
LINK_STEP = ("onboard", "phone")


async def newshop(ctx: Ctx) -> None:
    """/newshop: become the main account of a new shop."""
    await ctx.router.abandon(ctx)
    if ctx.user.phone is None:
        await ctx.start_flow(*LINK_STEP)
        await ctx.reply(ctx.t("onboarding.link_first"))
        await ask_phone(ctx)
        return
    await check_can_create_shop(ctx.session, ctx.user)
    await ctx.start_flow(NAME, "name")
    await ask_shop_name(ctx)


async def ask_shop_name(ctx: Ctx) -> None:
    """Ask for the new shop's name."""
    await ctx.reply(ctx.t("newshop.ask_name", max=SHOP_NAME_MAX), ReplyKeyboardRemove())


async def on_shop_name(ctx: Ctx, text: str) -> None:
    """Create the shop with this name; a bad name is explained and asked again."""
    try:
        shop = await create_shop(
            ctx.session, ctx.user, text, max_sub_accounts=ctx.policy.max_sub_accounts,
            now=ctx.now(),
        )
    except DomainError as exc:
        if exc.key in ("shop_name_empty", "shop_name_too_long"):
            await ctx.reply(ctx.error_text(exc))
            await ask_shop_name(ctx)
            return
        await ctx.end_flow()
        raise
    ctx.adopt_shop(shop)
    await ctx.end_flow()
    await ctx.reply(ctx.t("newshop.created", shop=shop.name))
    await refresh_menu(ctx)  # now the main account: the owner menu
    await ctx.router.show_home(ctx)


FLOW = Flow(
    name=NAME,
    commands=(Command("newshop", newshop, who="unlinked"),),
    steps={"name": Step(ask=ask_shop_name, on_text=on_shop_name)},
)
