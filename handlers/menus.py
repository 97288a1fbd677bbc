"""The command menu of each person's chat: the commands for what they are now.

Not a conversation. Telegram shows a chat's own menu (``setMyCommands`` with
``BotCommandScopeChat``) before the bot's default one; the default (registered at start-up, in
both languages) lists the commands for a newcomer and for someone with no shop. A person who has
linked a phone gets a menu of their own: the main account of a shop its owner commands, a
sub-account the staff ones; anyone else has the default menu. It is
set in the person's language whenever what they are changes — their phone linked, a shop
created, their language switched, /start — by the flow that changed it (``refresh_menu``), and
for the other person of a change (added as a sub-account, unbound, made the main account) when
they are told about it (``Ctx.notify`` calls ``refresh_menu_of``). Back to neither (unbound,
left, /forget), the chat's own menu is deleted and the default applies again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, BotCommandScopeChat
from telegram.error import TelegramError

from models.accounts import membership_of
from models.shops import owned_shop
from models.tables import Shop, User

if TYPE_CHECKING:
    from handlers.context import Ctx
    from handlers.router import Router

log = logging.getLogger(__name__)

#: whom the default menu (every chat without one of its own) is for: a newcomer, and anyone
#: with no shop (/newshop is how an owner begins)
DEFAULT_AUDIENCE = frozenset({"everyone", "unlinked"})


async def audience(session: AsyncSession, user: User, shop: Shop | None) -> set[str]:
    """Who the person is, as commands declare it (``handlers.flow.Audience``): ``everyone``
    and, once a phone is linked, ``owner``, ``staff`` or ``unlinked`` (neither)."""
    who = {"everyone"}
    if user.phone is None:
        return who
    if shop is not None:
        who.add("owner")
    elif await membership_of(session, user.id) is not None:
        who.add("staff")
    else:
        who.add("unlinked")
    return who


async def set_menu(bot: Bot, router: Router, user_id: int, locale: str, who: set[str]) -> None:
    """Give the person's chat the menu for ``who`` in ``locale`` (or the default menu back)."""
    scope = BotCommandScopeChat(user_id)
    try:
        if who == {"everyone"}:
            await bot.delete_my_commands(scope=scope)
        else:
            await bot.set_my_commands(router.bot_commands(locale, who), scope=scope)
    except TelegramError as exc:  # the menu is a convenience: what changed has changed
        log.info("could not set the command menu of a chat (%s)", type(exc).__name__)


async def refresh_menu(ctx: Ctx) -> None:
    """The menu of this update's person, for what they are now."""
    who = await audience(ctx.session, ctx.user, await ctx.shop_or_none())
    await ctx.commit()
    await set_menu(ctx.context.bot, ctx.router, ctx.user_id, ctx.locale, who)


async def refresh_menu_of(ctx: Ctx, person: User) -> None:
    """The menu of another person (the one a change was about), for what they are now."""
    who = await audience(ctx.session, person, await owned_shop(ctx.session, person.id))
    await set_menu(ctx.context.bot, ctx.router, person.id, ctx.deps.locale_of(person), who)
