"""A conversation's card: the whole flow is one message of the person's chat, edited in place
(its message id is kept in the draft as ``card``), with an error or a notice above the prompt.

A refused input is not answered with a message of its own: the card shows why (quoting what
was typed, so that each refusal changes what the person is looking at) above the same prompt
and the same buttons. A card replaced by another message loses its buttons. /newaccount
(``handlers.newaccount_code``) and /transfer (``handlers.transfer``) show their steps this way.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Collection
from dataclasses import dataclass

from telegram import InlineKeyboardMarkup
from telegram.error import TelegramError

from handlers.context import Ctx
from handlers.telegram_io import edit
from models.errors import DomainError

log = logging.getLogger(__name__)

#: the draft keys: the card's message id, and a notice waiting to be shown above the next prompt
CARD, NOTICE = "card", "notice"


def with_notice(notice: str | None, text: str) -> str:
    """A notice (an error, what just happened) above a screen or a prompt (every screen of the
    bot puts one there this way)."""
    return f"{notice}\n\n{text}" if notice else text


def why(ctx: Ctx, exc: DomainError, typed: str | None = None) -> str:
    """Why an input was refused, to put above the same prompt (with what was typed, so that
    each refusal changes the card the person is looking at)."""
    if typed is None:
        return "⚠️ " + ctx.error_text(exc)
    return "⚠️ " + echo(typed) + ctx.error_text(exc)


def echo(typed: str) -> str:
    """What the person typed, quoted (short), before the reason it was refused."""
    text = " ".join(typed.split())
    short = text if len(text) <= 24 else text[:23] + "…"
    return f"«{html.escape(short)}» — "


async def strip_keyboard(ctx: Ctx, message_id: int) -> None:
    """A superseded card loses its buttons (nothing is said if that fails)."""
    await ctx.commit()
    try:
        await ctx.context.bot.edit_message_reply_markup(ctx.chat_id, message_id, reply_markup=None)
    except TelegramError as exc:
        log.debug("could not remove an old card's buttons (%s)", type(exc).__name__)


def pressed(ctx: Ctx, message_id: int) -> bool:
    """Whether this update is a press of a button on the message ``message_id``."""
    query = ctx.update.callback_query
    return query is not None and query.message is not None \
        and query.message.message_id == message_id


@dataclass(frozen=True)
class Card:
    """The card of the flow ``flow``."""

    flow: str
    #: the callback namespaces whose pressed message becomes the card (the flow's own, the home
    #: menu's, the router's discard question…); any other screen keeps its own message
    adopted: Collection[str]

    async def current(self, ctx: Ctx) -> int | None:
        """The message id of the card, while the flow runs."""
        draft = await ctx.load_draft()
        if draft is None or draft.flow != self.flow:
            return None
        card = draft.data.get(CARD)
        return int(card) if isinstance(card, int) else None

    async def show(self, ctx: Ctx, text: str, markup: InlineKeyboardMarkup | None = None, *,
                   notice: str = "", fresh: bool = False, card: int | None = None,
                   head: str = "") -> None:
        """Show the card: the pressed message if this is a button (it becomes the card), else
        the card kept in the draft, edited in place; a new message when there is none yet, when
        ``fresh`` (the flow was started by a command) or when the edit fails. A card that is
        replaced by another message loses its buttons. ``notice`` (else the one the draft
        keeps) goes above ``text``, ``head`` above both; ``card``: the card of a flow just
        ended."""
        draft = await ctx.load_draft()
        waiting = draft.data.get(NOTICE) if draft is not None and draft.flow == self.flow \
            else None
        body = with_notice(notice or (waiting if isinstance(waiting, str) else ""), text)
        if head:
            body = f"{head}\n\n{body}"
        kept = card if card is not None else await self.current(ctx)
        query = ctx.update.callback_query
        own = query is not None and (query.data or "").split(":")[0] in self.adopted
        on = query.message.message_id if own and query is not None \
            and query.message is not None else None
        target = None if fresh else (on if on is not None else kept)
        if target is not None:
            await ctx.commit()
            try:
                await edit(ctx.context.bot, ctx.chat_id, target, body, markup)
            except TelegramError as exc:
                log.info("could not edit the card (%s); sending it anew", type(exc).__name__)
                target = None
        if target is None:
            target = (await ctx.reply(body, markup)).message_id
        if kept is not None and kept != target:
            await strip_keyboard(ctx, kept)
        draft = await ctx.load_draft()
        if draft is not None and draft.flow == self.flow \
                and (draft.data.get(CARD) != target or draft.data.get(NOTICE)):
            await ctx.goto(self.flow, draft.step, {CARD: target, NOTICE: None})

    async def strip(self, ctx: Ctx) -> None:
        """The flow is left (/cancel, another command): its card loses its buttons, unless it
        is the message just pressed (that one is shown anew)."""
        card = await self.current(ctx)
        if card is not None and not pressed(ctx, card):
            await strip_keyboard(ctx, card)
