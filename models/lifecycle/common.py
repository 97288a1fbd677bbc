"""What the lifecycle's decisions share: row locks, the savepoint a decision runs in, and
whether an account may still be used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.errors import DomainError
from models.savepoint import savepoint
from models.tables import AccountStatus, Shop, SubAccount

_SHOP_FOR_UPDATE = (
    select(Shop).where(col(Shop.id) == bindparam("shop_id"))
    .with_for_update().execution_options(populate_existing=True)
)
_ACCOUNT_FOR_UPDATE = (
    select(SubAccount).where(col(SubAccount.id) == bindparam("account_id"))
    .with_for_update().execution_options(populate_existing=True)
)


async def lock_shop(session: AsyncSession, shop_id: int) -> Shop | None:
    """The shop, read afresh and locked for this transaction (``FOR UPDATE`` on PostgreSQL;
    on SQLite the savepoint of ``decision`` already holds the database's write lock)."""
    return (await session.exec(_SHOP_FOR_UPDATE, params={"shop_id": shop_id})).first()


async def lock_account(session: AsyncSession, account_id: int) -> SubAccount | None:
    """The sub-account, read afresh and locked for this transaction."""
    return (await session.exec(_ACCOUNT_FOR_UPDATE, params={"account_id": account_id})).first()


@asynccontextmanager
async def decision(session: AsyncSession, conflict: str, **params: Any) -> AsyncIterator[None]:
    """Run one decision in a SAVEPOINT of the caller's transaction (``models.savepoint``).

    On SQLite the savepoint opens the transaction with ``BEGIN IMMEDIATE`` when none is open
    (see ``bot.db``), so the rows read inside are the ones written: two decisions never
    interleave. A unique constraint that refuses a write (another session got there first)
    rolls the savepoint back and becomes ``DomainError(conflict)``; the caller's transaction
    goes on.
    """
    try:
        async with savepoint(session):
            yield
    except IntegrityError as exc:
        raise DomainError(conflict, **params) from exc


def is_expired(account: SubAccount, now: datetime) -> bool:
    """Whether the account's access has ended (expired, or its end date has passed)."""
    return account.expired_at is not None or (
        account.access_until is not None and account.access_until <= now
    )


def check_usable(account: SubAccount, now: datetime, *, prefix: str) -> None:
    """Refuse an account that is suspended or expired: ``<prefix>_expired`` /
    ``<prefix>_suspended``."""
    if is_expired(account, now):
        raise DomainError(f"{prefix}_expired", nickname=account.nickname)
    if account.status != AccountStatus.AUTHORIZED.value:
        raise DomainError(f"{prefix}_suspended", nickname=account.nickname)
