"""The holder's code message: "Not me" declines the code; it dies and the owner is told.

Callback data, namespace ``hc``: ``hc:no:<code>`` (only the code's own holder may press it).
"""

from __future__ import annotations

from handlers.code_messages import HOLDER_NS, back_to_code_step, resend_keyboard
from handlers.context import Ctx
from handlers.flow import Flow
from handlers.i18n import t
from handlers.telegram_io import send_safely
from models import codes
from models.errors import DomainError
from models.phones import mask_phone
from models.tables import User


async def on_button(ctx: Ctx, action: str, args: list[str]) -> None:
    """"Not me": the holder declines; the code dies and the owner is told."""
    try:
        code = await codes.decline_code(ctx.session, code_id=int(args[0]),
                                        holder_id=ctx.user_id, now=ctx.now())
    except DomainError:
        await ctx.stale()
        return
    await back_to_code_step(ctx.session, code, ctx.now())
    await ctx.answer()
    await ctx.show(ctx.t("holder_code.declined_by_you"))
    owner = await ctx.session.get(User, code.owner_id)
    if owner is not None:
        locale = ctx.deps.locale_of(owner)
        await send_safely(
            ctx.context.bot, owner.id,
            t(locale, "newaccount.declined_notice", phone=mask_phone(code.phone)),
            resend_keyboard(locale),
        )


FLOW = Flow(name="holder_code", namespace=HOLDER_NS, buttons={"no": ("int",)},
            on_button=on_button)
