"""/cancel: leave whatever flow the user is in (its clean-up runs), writing nothing."""

from __future__ import annotations

from telegram import ReplyKeyboardRemove

from handlers.context import Ctx
from handlers.flow import Command, Flow


async def cancel(ctx: Ctx) -> None:
    """/cancel: leave whatever flow the user is in, writing nothing."""
    if await ctx.router.abandon(ctx, ask=False):
        await ctx.reply(ctx.t("common.cancelled"), ReplyKeyboardRemove())
    else:
        await ctx.reply(ctx.t("common.nothing_to_cancel"), ReplyKeyboardRemove())


FLOW = Flow(name="cancel", commands=(Command("cancel", cancel, who="everyone"),))
