"""Sending the notices a scheduled duty owes (``models.outbox``): after the commit that wrote
them, each is sent and then deleted in its own short transaction; ``send_overdue`` sends those
whose writer died (or could not reach Telegram) once their lease has passed. Shared by the
code-expiry job, the service-level pass and the customer relay; not a conversation.

A kind of notice (its topic up to the first ``:``) may need more than its message (``KINDS``):
a check made just before it is sent — is what it announces still so? if not, it is dropped —
and a step run once it is delivered, in the transaction that deletes the row (the relay's
hand-out header is followed by the chat's history, copied by id: ``service_notices``). Both run
in whichever process sends the notice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import TelegramError

from handlers import service_notices
from handlers.context import Deps
from handlers.telegram_io import edit_safely, send_safely
from models import outbox
from models.outbox import MAX_ATTEMPTS, Notice, OutboxNotice

log = logging.getLogger(__name__)

#: is the notice still true (``session``: the sender's, reading only)?
StillOwed = Callable[[AsyncSession, OutboxNotice], Awaitable[bool]]
#: what follows a delivered notice (``now``: the sender's clock); its writes are committed with
#: the row's deletion; it handles its own Telegram errors (the message is already delivered)
AfterSent = Callable[[Bot, AsyncSession, OutboxNotice, datetime], Awaitable[None]]


@dataclass(frozen=True)
class Kind:
    """What notices of a kind need besides their message."""

    still_owed: StillOwed | None = None
    after_sent: AfterSent | None = None


#: the kinds (a topic up to its first ``:``) that need more than their message; the others are
#: sent as they are
KINDS: Mapping[str, Kind] = {
    service_notices.HANDOUT: Kind(still_owed=service_notices.placement_holds,
                                  after_sent=service_notices.copy_history),
    service_notices.PLACED: Kind(still_owed=service_notices.placement_holds),
}
_PLAIN = Kind()


def kind_of(row: OutboxNotice) -> Kind:
    return KINDS.get(row.topic.split(":", 1)[0], _PLAIN)


def notice(topic: str, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None,
           *, message_id: int | None = None) -> Notice:
    """A notice to write to the outbox (the buttons kept as Bot API JSON)."""
    return Notice(topic=topic, chat_id=chat_id, text=text, message_id=message_id,
                  markup=markup.to_dict() if markup is not None else None)


async def send_owed(bot: Bot, session: AsyncSession, rows: Sequence[OutboxNotice], *,
                    now: datetime | None = None, sent_ids: dict[int, int] | None = None) -> int:
    """Send ``rows`` (written or claimed by this process, and committed), deleting each once
    sent, in ``session`` (which holds no other writes). How many were sent (or given up).
    ``now``: for what follows a notice of a kind in ``KINDS`` (default: when it was written).
    ``sent_ids``: filled with each new message's id by its row's id (to edit it later)."""
    sent = 0
    for row in rows:
        kind = kind_of(row)
        if kind.still_owed is not None and not await kind.still_owed(session, row):
            log.info("notice %s dropped: what it announced changed before it was sent",
                     row.topic)
            await outbox.done(session, [row.id or 0])
            await session.commit()
            continue
        markup = InlineKeyboardMarkup.de_json(row.markup, bot) if row.markup else None
        try:
            if row.message_id is None:
                message = await send_safely(bot, row.chat_id, row.text, markup)
                delivered = message is not None
                if message is not None and sent_ids is not None and row.id is not None:
                    sent_ids[row.id] = message.message_id
            else:
                await edit_safely(bot, row.chat_id, row.message_id, row.text, markup)
                delivered = True
        except TelegramError as exc:
            if row.attempts < MAX_ATTEMPTS:  # kept: sent again once its lease has passed
                log.warning("notice %s not sent (%s); retried later", row.topic,
                            type(exc).__name__)
                continue
            log.error("notice %s given up after %s attempts (%s)", row.topic, row.attempts,
                      type(exc).__name__)
            delivered = False
        if delivered and kind.after_sent is not None:
            try:
                await kind.after_sent(bot, session, row, now or row.created_at)
            except TelegramError as exc:
                log.warning("what follows notice %s stopped (%s)", row.topic,
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
            now = deps.clock.now()
            rows = await outbox.claim_due(session, now=now)
            await session.commit()  # claimed: leased to this process
            if rows:
                log.info("sending %s notice(s) owed since a process stopped or a send failed",
                         len(rows))
            total += await send_owed(bot, session, rows, now=now)
        if len(rows) < 200:
            return total
