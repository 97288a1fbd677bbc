"""Sending the notices a scheduled duty owes (``models.outbox``): after the commit that wrote
them, each is sent and then deleted in its own short transaction; ``send_overdue`` sends those
whose writer died (or could not reach Telegram) once their lease has passed. Shared by the
code-expiry job and the service-level pass; not a conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import TelegramError

from handlers.context import Deps
from handlers.telegram_io import edit_safely, send_safely
from models import outbox
from models.outbox import MAX_ATTEMPTS, Notice, OutboxNotice

log = logging.getLogger(__name__)


def notice(topic: str, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None,
           *, message_id: int | None = None) -> Notice:
    """A notice to write to the outbox (the buttons kept as Bot API JSON)."""
    return Notice(topic=topic, chat_id=chat_id, text=text, message_id=message_id,
                  markup=markup.to_dict() if markup is not None else None)


async def send_owed(bot: Bot, session: AsyncSession, rows: Sequence[OutboxNotice]) -> int:
    """Send ``rows`` (written or claimed by this process, and committed), deleting each once
    sent, in ``session`` (which holds no other writes). How many were sent."""
    sent = 0
    for row in rows:
        markup = InlineKeyboardMarkup.de_json(row.markup, bot) if row.markup else None
        try:
            if row.message_id is None:
                await send_safely(bot, row.chat_id, row.text, markup)
            else:
                await edit_safely(bot, row.chat_id, row.message_id, row.text, markup)
        except TelegramError as exc:
            if row.attempts < MAX_ATTEMPTS:  # kept: sent again once its lease has passed
                log.warning("notice %s not sent (%s); retried later", row.topic,
                            type(exc).__name__)
                continue
            log.error("notice %s given up after %s attempts (%s)", row.topic, row.attempts,
                      type(exc).__name__)
        await outbox.done(session, [row.id or 0])
        await session.commit()
        sent += 1
    return sent


async def send_overdue(bot: Bot, deps: Deps) -> int:
    """Claim the notices whose lease has passed (their process died between its commit and
    the send, or Telegram did not answer) and send them; how many."""
    total = 0
    while True:
        async with deps.sessions() as session:
            rows = await outbox.claim_due(session, now=deps.clock.now())
            await session.commit()  # claimed: leased to this process
            if rows:
                log.info("sending %s notice(s) owed since a process stopped or a send failed",
                         len(rows))
            total += await send_owed(bot, session, rows)
        if len(rows) < 200:
            return total
