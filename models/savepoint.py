"""Local transactions: a domain write that can lose a race runs in a SAVEPOINT.

A domain function never rolls back its caller's session. The caller (a handler) may already
have written in the same transaction — the conversation draft, another table's row — and those
writes must survive a refusal and be committed with the rest of the update.

So a write that a unique constraint or a foreign key may refuse because another transaction won
a race (two owners taking one phone, one name, one role) goes in ``async with savepoint(...)``:
the block's writes are flushed inside ``SAVEPOINT … RELEASE``; when the database refuses them,
``ROLLBACK TO SAVEPOINT`` undoes those and nothing else, and the ``IntegrityError`` reaches the
domain function, which turns it into its ``DomainError``.

Undoing a savepoint expires the objects changed inside it; ``held`` names those the caller still
holds (e.g. the user whose phone was to be linked), and they are read again at once, so that
nobody touches an expired object later (on an async session that would be a lazy load, which
fails). Objects created inside the block are dropped from the session, as they never existed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlmodel.ext.asyncio.session import AsyncSession


@asynccontextmanager
async def savepoint(session: AsyncSession, *held: object) -> AsyncIterator[None]:
    """Run the block's writes in a SAVEPOINT and flush them before it is released; if the block
    raises, only its writes are undone, ``held`` is read again and the error goes on."""
    try:
        async with session.begin_nested():
            yield
            await session.flush()
    except Exception:
        for obj in held:
            await session.refresh(obj)
        raise
