"""The holder's code message: "Not me" declines the code; it dies and the owner is told.

Callback data, namespace ``hc``: ``hc:no:<code>`` (only the code's own holder may press it).
"""

from __future__ import annotations

from handlers.code_messages import HOLDER_NS, back_to_code_step, tell_owner
from handlers.context import Ctx
from handlers.flow import Flow
from models import codes
from models.errors import DomainError


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """"Not me": the holder declines; the code dies and the owner is told: one short message
    (they must notice), and their card shows what to do, "📱 Change number" first."""
    try:
        code = await codes.decline_code(ctx.session, code_id=int(args[0]),
                                        holder_id=ctx.user_id, now=ctx.now())
    except DomainError:
        await ctx.stale()
        return
    await back_to_code_step(ctx.session, code, ctx.now())
    await ctx.answer()
    await ctx.show(ctx.t("holder_code.declined_by_you"))
    await ctx.commit()
    await tell_owner(ctx.session, ctx.context.bot, ctx.deps, code, "newaccount.declined_notice",
                     alert="newaccount.declined_alert", markup_key="newaccount.send_again",
                     change_first=True)


FLOW = Flow(name="holder_code", namespace=HOLDER_NS, buttons={"no": ("int",)},
            on_button=on_button)
