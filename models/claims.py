"""Claiming work that several processes could do (SPEC §10): the keys of the per-user advisory
locks, and whether a user's updates are being handled anywhere right now.

The bot's update processor (``bot.updates``) holds ``pg_advisory_lock(NAMESPACE, key(user))``
while one of the user's updates is handled, on any process. A duty that must not cut into such
an update (the delivery of a code the update has just committed and is sending) asks
``users_idle`` first. SQLite has one process only (``bot.runlock``): nothing to ask.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

#: the first key of the bot's advisory locks (the two-int form: a key space of its own)
NAMESPACE = 17_001
_INT32 = 2**31
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:ns, :key)")


def lock_key(user_id: int) -> int:
    """A Telegram user id (up to 52 bits) folded into PostgreSQL's int4 key. Two users whose ids
    fold to the same key only wait for each other, which is safe."""
    folded = (user_id ^ (user_id >> 31)) % (2 * _INT32)
    return folded - 2 * _INT32 if folded >= _INT32 else folded


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def users_idle(session: AsyncSession, user_ids: list[int]) -> bool:
    """``True`` when no process is handling an update of any of ``user_ids``; their locks are
    then held by this transaction (``pg_try_advisory_xact_lock``) until it ends, so none starts
    before this transaction has written what it claimed. Always ``True`` on SQLite."""
    if not is_postgres(session):
        return True
    conn = await session.connection()
    for user_id in sorted(set(user_ids)):
        taken = (await conn.execute(_TRY_LOCK, {"ns": NAMESPACE, "key": lock_key(user_id)})).scalar()
        if not taken:
            return False
    return True
