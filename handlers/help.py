"""/help: the commands this user can use now (from the router's one list of commands)."""

from __future__ import annotations

from handlers.context import Ctx
from handlers.flow import Command, Flow


async def help_command(ctx: Ctx) -> None:
    """/help: the commands this user can use now."""
    await ctx.reply("\n".join([ctx.t("help.title"), *await ctx.router.help_lines(ctx)]))


FLOW = Flow(name="help", commands=(Command("help", help_command, who="everyone"),))
