"""Bulk changes of sub-accounts (/accounts, a selection): suspend, resume or change the role of
several accounts at once.

The whole bulk runs in the caller's one transaction; each account is locked, read afresh and
changed by the same rule as one account alone (``models.accounts``), which audits it. Each
account's change runs in a savepoint, so an account the rule refuses leaves the others alone,
and every account gets an outcome: changed, unchanged (it was already so — changed meanwhile
by someone else), gone (unbound or left meanwhile) or refused (the rule's reason). Nothing is
skipped silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel.ext.asyncio.session import AsyncSession

from models.accounts import change_role, set_suspended
from models.errors import DomainError
from models.lifecycle.common import lock_account
from models.roles import get_role
from models.tables import Role, SubAccount

#: the most accounts one bulk change takes (a shop's selection is bounded by its seats)
BULK_MAX = 500


class Result(StrEnum):
    """What happened to one account of a bulk change."""

    CHANGED = "changed"
    #: already as asked (changed meanwhile, or selected twice)
    UNCHANGED = "unchanged"
    #: not a sub-account of the shop any more (unbound, left, or never was)
    GONE = "gone"
    #: the rule refused it; ``error`` says why
    REFUSED = "refused"


@dataclass(frozen=True)
class Outcome:
    """One account's outcome. ``account`` is the account as it is after the bulk (``None``
    when it is gone); ``before`` the role name it had, for a role change."""

    account_id: int
    result: Result
    account: SubAccount | None
    error: DomainError | None = None
    before: str | None = None


def _ids(account_ids: Iterable[int]) -> list[int]:
    """The ids once each, in the order given; at least one and at most ``BULK_MAX``."""
    ids = list(dict.fromkeys(account_ids))
    if not ids:
        raise DomainError("bulk_empty")
    if len(ids) > BULK_MAX:
        raise DomainError("bulk_too_many", max=BULK_MAX)
    return ids


async def _each(
    session: AsyncSession,
    shop_id: int,
    account_ids: Iterable[int],
    change: Callable[[SubAccount], Awaitable[str | None]],
) -> list[Outcome]:
    """Lock, re-read and change every account; one outcome each, in the order given."""
    outcomes = []
    for account_id in _ids(account_ids):
        account = await lock_account(session, account_id)
        if account is None or account.shop_id != shop_id:
            outcomes.append(Outcome(account_id, Result.GONE, None))
            continue
        try:
            async with session.begin_nested():
                before = await change(account)
        except DomainError as exc:
            await session.refresh(account)
            if exc.key == "nothing_changed":
                outcomes.append(Outcome(account_id, Result.UNCHANGED, account))
            elif exc.key == "account_not_found":
                outcomes.append(Outcome(account_id, Result.GONE, None))
            else:
                outcomes.append(Outcome(account_id, Result.REFUSED, account, exc))
            continue
        outcomes.append(Outcome(account_id, Result.CHANGED, account, before=before))
    return outcomes


async def bulk_set_suspended(
    session: AsyncSession, *, shop_id: int, actor_id: int, account_ids: Iterable[int],
    suspended: bool, now: datetime,
) -> list[Outcome]:
    """Suspend (or resume) each of the accounts, each audited; one outcome per account."""

    async def change(account: SubAccount) -> None:
        await set_suspended(session, shop_id=shop_id, actor_id=actor_id,
                            account_id=account.id or 0, suspended=suspended, now=now)

    return await _each(session, shop_id, account_ids, change)


async def bulk_change_role(
    session: AsyncSession, *, shop_id: int, actor_id: int, account_ids: Iterable[int],
    role_id: int, now: datetime,
) -> tuple[Role, list[Outcome]]:
    """Give each of the accounts the role ``role_id`` (of the same shop), each audited; the
    role and one outcome per account (``before``: the role each changed account had)."""
    role = await get_role(session, shop_id, role_id)

    async def change(account: SubAccount) -> str:
        before = await get_role(session, shop_id, account.role_id)
        name = before.name
        await change_role(session, shop_id=shop_id, actor_id=actor_id,
                          account_id=account.id or 0, role_id=role_id, now=now)
        return name

    return role, await _each(session, shop_id, account_ids, change)
