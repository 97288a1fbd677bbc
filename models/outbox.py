"""Notices made durable (SPEC §10): a notice a scheduled duty owes someone — "your code expired",
the holder's code message edited, a service-level nudge — is written to the ``outbox`` in the
same transaction as the change it announces, already leased to the process that made it.

That process sends it after the commit and then deletes the row (``done``), in a second
transaction. A process that dies in between leaves the row behind; once its lease has passed,
any process's duty poll claims it (``claim_due``: ``FOR UPDATE SKIP LOCKED``, a new lease) and
sends it. So a notice is sent at least once; in the normal case exactly once, because the lease
keeps every other process away while its writer sends it. What remains: a process that dies
after Telegram accepted the message and before ``done`` committed has the notice sent again
after the lease (told twice, never not at all).

Rows hold the rendered text (phones masked, never a code) and the buttons as Bot API JSON; a
row that could not be sent ``MAX_ATTEMPTS`` times is dropped and logged by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Text, delete
from sqlmodel import Field, SQLModel, col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

#: how long the process that wrote a notice (or claimed it) has to send it before another
#: process may send it instead
LEASE = timedelta(seconds=20)
#: sends tried before a notice is given up
MAX_ATTEMPTS = 5


class OutboxNotice(SQLModel, table=True):
    """One message owed to a chat: sent (``message_id`` empty) or an edit of ``message_id``."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_lease", "lease_until"),)

    id: int | None = Field(default=None, primary_key=True)
    #: what it announces, for the logs: ``code.expired:42`` (no personal data)
    topic: str = Field(max_length=60)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    message_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    text: str = Field(sa_column=Column(Text, nullable=False))
    markup: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    attempts: int = 0
    created_at: datetime = Field(sa_type=DateTime(timezone=False), nullable=False)
    lease_until: datetime = Field(sa_type=DateTime(timezone=False), nullable=False)


@dataclass(frozen=True)
class Notice:
    """A notice to write: a new message to ``chat_id``, or an edit of its ``message_id``."""

    topic: str
    chat_id: int
    text: str
    markup: dict[str, Any] | None = None
    message_id: int | None = None


def enqueue(session: AsyncSession, notices: Sequence[Notice], *, now: datetime,
            lease: timedelta = LEASE) -> list[OutboxNotice]:
    """Add ``notices`` to this transaction, leased to the caller until ``now + lease``."""
    rows = [OutboxNotice(topic=n.topic, chat_id=n.chat_id, message_id=n.message_id,
                         text=n.text, markup=n.markup, created_at=now,
                         lease_until=now + lease, attempts=1) for n in notices]
    session.add_all(rows)
    return rows


async def claim_due(session: AsyncSession, *, now: datetime, lease: timedelta = LEASE,
                    limit: int = 200) -> list[OutboxNotice]:
    """Notices whose lease has passed (their writer died, or could not send), oldest first,
    leased anew to this transaction's process; another process's claim is skipped (``SKIP
    LOCKED``). Commit before sending them."""
    rows = list((await session.exec(
        select(OutboxNotice).where(col(OutboxNotice.lease_until) <= now)
        .order_by(col(OutboxNotice.id)).limit(limit).with_for_update(skip_locked=True)
    )).all())
    if rows:
        await session.exec(
            update(OutboxNotice).where(col(OutboxNotice.id).in_([r.id for r in rows]))
            .values(lease_until=now + lease, attempts=OutboxNotice.attempts + 1)  # type: ignore[arg-type]
            .execution_options(synchronize_session=False)
        )
        for row in rows:
            row.lease_until, row.attempts = now + lease, row.attempts + 1
    return rows


async def done(session: AsyncSession, ids: Sequence[int]) -> None:
    """The notices ``ids`` were sent (or cannot be, ever): delete them."""
    if ids:
        await session.exec(delete(OutboxNotice).where(col(OutboxNotice.id).in_(list(ids))))  # type: ignore[call-overload]

