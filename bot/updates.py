"""Updates of different users at once, one user's updates one at a time and in order (SPEC §10).

``PerUserUpdateProcessor`` is the Application's update processor. PTB hands it each update as
it arrives, in a task of its own; the processor keeps, per user, a FIFO turn (an
``asyncio.Lock``, whose waiters are woken in the order they came), so a user's second update
starts only when their first has finished, while other users' updates run beside it, at most
``max_concurrent_updates`` at a time. A user's turn is dropped as soon as nobody holds or waits
for it: the table holds only the users who have an update in flight.

The turn is taken *before* a slot of the concurrency bound: a user who sends twenty updates at
once waits with nineteen of them without taking nineteen slots from everybody else (PTB's own
semaphore, taken first, is therefore sized as a backlog, not as the bound).

Across processes (several ``subaccount-bot run`` on one PostgreSQL database) the same exclusion
is the database's: while it handles an update the processor holds
``pg_advisory_lock(NAMESPACE, key(user))`` on a connection of its own
(``PgUserLocks``). A session-level lock and not a transaction-level one, because a handler
commits in the middle of an update (before each message it sends, ``handlers.context.Ctx.commit``)
and a transaction-level lock would end at that first commit, leaving the rest of the update
unguarded. A process that dies (even ``kill -9``) loses its connections, and PostgreSQL releases
their locks at once. Updates that name no user (none the bot asks for today) are not serialised.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from telegram import Update
from telegram.constants import FloodLimit
from telegram.ext import AIORateLimiter, BaseUpdateProcessor

from models.claims import NAMESPACE, lock_key

log = logging.getLogger(__name__)

#: updates that may wait (for their user's turn or for a slot) in PTB's own semaphore
BACKLOG = 10_000


def user_of(update: object) -> int | None:
    """The user an update belongs to (``None``: not serialised)."""
    if isinstance(update, Update):
        if update.effective_user is not None:
            return update.effective_user.id
        if update.effective_chat is not None:
            return update.effective_chat.id
    return None


class UserLocks(Protocol):
    """Exclusion of one user's updates across processes."""

    def hold(self, user_id: int) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def close(self) -> None: ...


class PgUserLocks:
    """Session-level advisory locks, each on a pooled connection of a small engine of its own.

    Its own engine, so that an update never waits for a connection its own handler needs (each
    update takes one lock connection and one session connection; a shared pool could be all
    lock connections). ``AUTOCOMMIT``: a lock connection never sits idle in a transaction.
    """

    def __init__(self, url: str, *, size: int) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=size, max_overflow=0, pool_pre_ping=True, isolation_level="AUTOCOMMIT"
        )

    @contextlib.asynccontextmanager
    async def hold(self, user_id: int) -> AsyncIterator[None]:
        async with self.engine.connect() as conn:
            params = {"ns": NAMESPACE, "key": lock_key(user_id)}
            await conn.execute(text("SELECT pg_advisory_lock(:ns, :key)"), params)
            try:
                yield
            finally:
                await _unlock(conn, params)

    async def close(self) -> None:
        await self.engine.dispose()


async def _unlock(conn: AsyncConnection, params: dict[str, int]) -> None:
    """Release the lock; a connection that cannot is closed for good (its lock goes with it)."""
    try:
        await asyncio.shield(conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), params))
    except BaseException:
        await conn.invalidate()
        raise


def user_locks_for(url: str, *, size: int) -> UserLocks | None:
    """Cross-process locks for a PostgreSQL URL; ``None`` for SQLite (one process only)."""
    if make_url(url).get_backend_name() == "postgresql":
        return PgUserLocks(url, size=size)
    return None


@dataclass
class _Turn:
    lock: asyncio.Lock
    users: int = 0  # updates holding or waiting for this turn


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Concurrent across users (at most ``max_concurrent_updates``), sequential per user."""

    __slots__ = ("_bound", "_limit", "_locks", "_turns")

    def __init__(self, max_concurrent_updates: int, *, locks: UserLocks | None = None) -> None:
        if max_concurrent_updates < 1:
            raise ValueError("max_concurrent_updates must be at least 1")
        # PTB sizes its semaphore by ``max_concurrent_updates``: the backlog while it does
        self._limit = BACKLOG if max_concurrent_updates > 1 else 1
        super().__init__(self._limit)
        self._limit = max_concurrent_updates
        self._bound = asyncio.BoundedSemaphore(max_concurrent_updates)
        self._locks = locks
        self._turns: dict[int, _Turn] = {}

    @property
    def max_concurrent_updates(self) -> int:
        return self._limit

    @property
    def waiting_users(self) -> int:
        """Users with an update in flight (for tests: drops back to 0 when idle)."""
        return len(self._turns)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        try:
            await self._process(update, coroutine)
        finally:  # cancelled (shutdown) before its turn came: never leave it un-awaited
            if inspect.iscoroutine(coroutine) and \
                    inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
                coroutine.close()

    async def _process(self, update: object, coroutine: Awaitable[Any]) -> None:
        user_id = user_of(update)
        if user_id is None:
            async with self._bound:
                await coroutine
            return
        turn = self._turns.get(user_id)
        if turn is None:
            turn = self._turns[user_id] = _Turn(asyncio.Lock())
        turn.users += 1
        try:
            async with turn.lock, self._bound:
                await self._run_locked(user_id, coroutine)
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[user_id]

    async def _run_locked(self, user_id: int, coroutine: Awaitable[Any]) -> None:
        if self._locks is None:
            await coroutine
            return
        try:
            held = self._locks.hold(user_id)
            await held.__aenter__()
        except Exception as exc:
            # The database does not answer: the handler will fail on it too and apologise to
            # the user; do not drop the update silently.
            log.warning("could not take the user lock (%s); handling the update without it",
                        type(exc).__name__)
            await coroutine
            return
        try:
            await coroutine
        except BaseException as exc:
            await held.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await held.__aexit__(None, None, None)

    async def initialize(self) -> None:
        """Nothing to prepare: lock connections are opened on first use."""

    async def shutdown(self) -> None:
        if self._locks is not None:
            await self._locks.close()


def flood_limiter(processes: int) -> AIORateLimiter:
    """PTB's rate limiter with this process's share of the Bot API's flood limits.

    Telegram counts a bot's messages per token (about 30 a second overall, 20 a minute in one
    group), whichever process sends them, so each of ``processes`` processes keeps to 1/N of
    them. A share rather than a limiter through the database: it costs no round trip per
    message, works while the database is slow, and the load balancer spreads updates, so the
    processes' shares are used about evenly. It is conservative when one process is idle.
    """
    return AIORateLimiter(
        overall_max_rate=FloodLimit.MESSAGES_PER_SECOND / processes,
        group_max_rate=FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP / processes,
        max_retries=3,
    )
