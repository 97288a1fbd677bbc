"""The owner's home: what /start shows the main account of a shop — the seats and the menu.

The menu's buttons are the commands declared with a ``menu_key`` (``handlers.router``).
"""

from __future__ import annotations

from handlers.context import Ctx
from handlers.flow import Flow
from handlers.keyboards import keyboard
from models.accounts import seats_used


async def owner_home(ctx: Ctx) -> bool:
    """The owner menu, if this user is the main account of a shop."""
    shop = await ctx.shop_or_none()
    if shop is None:
        return False
    used = await seats_used(ctx.session, shop.id or 0)
    await ctx.reply(
        ctx.t("home.owner", shop=shop.name, used=used, cap=shop.max_sub_accounts),
        keyboard(*ctx.router.owner_menu_rows(ctx)),
    )
    return True


FLOW = Flow(name="home", home=owner_home)
