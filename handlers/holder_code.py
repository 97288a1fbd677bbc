"""The holder's code message: "Not me" declines the code; it dies and the owner is told. In a
shop that asks by button (``consent_mode`` "button"), "✅ Join" accepts instead of relaying
the digits, and the owner's flow goes on.

Callback data, namespace ``hc``: ``hc:no:<code>``, ``hc:ok:<code>`` (only the code's own holder
may press them).
"""

from __future__ import annotations

from handlers.code_messages import HOLDER_NS, accepted_by_holder, back_to_code_step, tell_owner
from handlers.context import Ctx
from handlers.expiry import schedule_expiry
from handlers.flow import Flow
from models import codes
from models.errors import DomainError
from models.tables import Shop


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """The holder's buttons: "✅ Join" (accept) or "Not me" (decline)."""
    if action == "ok":
        await accept(ctx, args)
        return
    await not_me(ctx, args)


async def accept(ctx: Ctx, args: list[str]) -> None:
    """✅ Join: the holder accepts in their own chat (the same proof as the code); the owner's
    card says so and goes on to the nickname."""
    try:
        code = await codes.accept_code(ctx.session, ctx.policy, code_id=int(args[0]),
                                       holder_id=ctx.user_id, now=ctx.now())
    except DomainError:
        await ctx.stale()
        return
    await ctx.answer()
    shop = await ctx.session.get(Shop, code.shop_id)
    await ctx.show(ctx.t("holder_code.accepted_by_you", shop=shop.name if shop else "—"))
    schedule_expiry(ctx.context.job_queue, code.expires_at)
    await accepted_by_holder(ctx.session, ctx.context.bot, ctx.deps, code, ctx.user, ctx.now())


async def not_me(ctx: Ctx, args: list[str]) -> None:
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


FLOW = Flow(name="holder_code", namespace=HOLDER_NS, buttons={"no": ("int",), "ok": ("int",)},
            on_button=on_button)
