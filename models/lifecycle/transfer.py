"""Owner transfer (主账号更换, docs/lifecycle.md): the owner hands the shop to an authorized sub-account.

The owner asks (typing the shop's name to confirm), the target accepts or declines within
``transfer_hours``, the owner may withdraw while it is pending; one pending transfer per shop
(a unique partial index). Every change of status is conditional on the row still being
pending, under the transfer's and the shop's row locks, so a racing accept, decline, withdraw,
expiry, unbind or suspend leaves one outcome. ``models.lifecycle.handover`` does the accept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import bindparam, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.lifecycle.common import check_usable, decision, lock_account, lock_shop
from models.lifecycle.policy import LifecyclePolicy
from models.lifecycle.tables import OwnerTransfer, TransferStatus
from models.phones import mask_phone
from models.roles import get_role
from models.shops import clean_shop_name
from models.tables import Shop

LEAVE = "leave"
PENDING = TransferStatus.PENDING.value

_TRANSFER_FOR_UPDATE = (
    select(OwnerTransfer).where(col(OwnerTransfer.id) == bindparam("transfer_id"))
    .with_for_update().execution_options(populate_existing=True)
)
_PENDING_OF_SHOP = select(OwnerTransfer).where(
    col(OwnerTransfer.shop_id) == bindparam("shop_id"), col(OwnerTransfer.status) == PENDING
)


def check_typed_name(shop: Shop, typed: str) -> None:
    """The owner confirms a transfer by typing the shop's exact name (cleaned as names are:
    spaces folded, invisible characters removed, NFC); anything else is
    ``transfer_name_mismatch``."""
    try:
        name = clean_shop_name(typed)
    except DomainError as exc:
        raise DomainError("transfer_name_mismatch", shop=shop.name) from exc
    if name != shop.name:
        raise DomainError("transfer_name_mismatch", shop=shop.name)


async def lock_transfer(session: AsyncSession, transfer_id: int) -> OwnerTransfer | None:
    """The transfer, read afresh and locked for this transaction."""
    return (await session.exec(_TRANSFER_FOR_UPDATE, params={"transfer_id": transfer_id})).first()


async def pending_transfer(session: AsyncSession, shop_id: int) -> OwnerTransfer | None:
    """The shop's pending transfer, if it has one."""
    return (await session.exec(_PENDING_OF_SHOP, params={"shop_id": shop_id})).first()


async def request_transfer(
    session: AsyncSession,
    *,
    policy: LifecyclePolicy,
    shop_id: int,
    owner_id: int,
    account_id: int,
    old_owner: int | Literal["leave"],
    typed_name: str,
    now: datetime,
) -> OwnerTransfer:
    """Ask the holder of ``account_id`` to become the shop's main account.

    ``old_owner`` is what the owner becomes on accept: a sub-account with that role id, or
    ``"leave"``. Refused: not this shop's owner, the name typed wrong, a transfer already
    pending, a target that is not an authorized, unexpired sub-account of this shop, a role
    of another shop.
    """
    async with decision(session, "transfer_pending"):
        shop = await lock_shop(session, shop_id)
        if shop is None or shop.owner_id != owner_id:
            raise DomainError("transfer_not_owner")
        check_typed_name(shop, typed_name)
        if await pending_transfer(session, shop_id) is not None:
            raise DomainError("transfer_pending")
        account = await lock_account(session, account_id)
        if account is None or account.shop_id != shop_id:
            raise DomainError("account_not_found")
        check_usable(account, now, prefix="transfer_target")
        role_name = None
        if old_owner != LEAVE:
            role_name = (await get_role(session, shop_id, int(old_owner))).name
        transfer = OwnerTransfer(
            shop_id=shop_id, from_user_id=owner_id, to_user_id=account.holder_id,
            to_account_id=account_id,
            old_owner_role_id=None if old_owner == LEAVE else int(old_owner),
            old_owner_leaves=old_owner == LEAVE, status=PENDING, created_at=now,
            expires_at=now + timedelta(hours=policy.transfer_hours),
        )
        session.add(transfer)
        await session.flush()
    audit.record(
        session, now=now, shop_id=shop_id, actor_id=owner_id, action="transfer.requested",
        object_type="transfer", object_id=transfer.id, nickname=account.nickname,
        phone=mask_phone(account.phone), old_owner_role=role_name or "",
        old_owner_leaves=old_owner == LEAVE, hours=policy.transfer_hours,
    )
    return transfer


async def open_for(
    session: AsyncSession, *, transfer_id: int, user_id: int, side: Literal["from", "to"],
    now: datetime,
) -> OwnerTransfer:
    """The pending, unexpired transfer ``transfer_id``, locked, as seen by ``user_id`` on its
    ``side``; ``transfer_not_found`` (not theirs), ``transfer_not_pending`` (answered,
    withdrawn or expired) or ``transfer_expired`` (its time is up; the expiry job ends it)."""
    transfer = await lock_transfer(session, transfer_id)
    who = None if transfer is None else (
        transfer.from_user_id if side == "from" else transfer.to_user_id)
    if transfer is None or who != user_id:
        raise DomainError("transfer_not_found")
    if transfer.status != PENDING:
        raise DomainError("transfer_not_pending")
    if now >= transfer.expires_at:
        raise DomainError("transfer_expired")
    return transfer


async def end_transfer(
    session: AsyncSession, transfer: OwnerTransfer, status: TransferStatus, *, now: datetime
) -> bool:
    """Move a pending transfer to ``status``; ``False`` if another session ended it first."""
    result = await session.exec(
        update(OwnerTransfer)
        .where(col(OwnerTransfer.id) == transfer.id, col(OwnerTransfer.status) == PENDING)
        .values(status=status.value, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(transfer)
    return bool(result.rowcount == 1)


async def _answer(
    session: AsyncSession, *, transfer_id: int, user_id: int, side: Literal["from", "to"],
    status: TransferStatus, action: str, now: datetime,
) -> OwnerTransfer:
    async with decision(session, "transfer_not_pending"):
        transfer = await open_for(session, transfer_id=transfer_id, user_id=user_id,
                                  side=side, now=now)
        if not await end_transfer(session, transfer, status, now=now):
            raise DomainError("transfer_not_pending")
    audit.record(session, now=now, shop_id=transfer.shop_id, actor_id=user_id, action=action,
                 object_type="transfer", object_id=transfer.id)
    return transfer


async def withdraw_transfer(
    session: AsyncSession, *, transfer_id: int, owner_id: int, now: datetime
) -> OwnerTransfer:
    """The owner withdraws a pending transfer (the target is to be told)."""
    return await _answer(session, transfer_id=transfer_id, user_id=owner_id, side="from",
                         status=TransferStatus.WITHDRAWN, action="transfer.withdrawn", now=now)


async def decline_transfer(
    session: AsyncSession, *, transfer_id: int, holder_id: int, now: datetime
) -> OwnerTransfer:
    """The target declines (the owner is to be told)."""
    return await _answer(session, transfer_id=transfer_id, user_id=holder_id, side="to",
                         status=TransferStatus.DECLINED, action="transfer.declined", now=now)


async def expire_due_transfers(
    session: AsyncSession, *, now: datetime, limit: int = 100
) -> list[OwnerTransfer]:
    """End the pending transfers whose time is up; each is returned once (both people are to be
    told), whatever else ends them meanwhile."""
    due = list((await session.exec(
        select(OwnerTransfer)
        .where(col(OwnerTransfer.status) == PENDING, col(OwnerTransfer.expires_at) <= now)
        .order_by(col(OwnerTransfer.expires_at)).limit(limit)
    )).all())
    expired = []
    for transfer in due:
        async with decision(session, "transfer_not_pending"):
            if await end_transfer(session, transfer, TransferStatus.EXPIRED, now=now):
                expired.append(transfer)
    for transfer in expired:
        audit.record(session, now=now, shop_id=transfer.shop_id, actor_id=None,
                     action="transfer.expired", object_type="transfer", object_id=transfer.id)
    return expired


async def next_transfer_deadline(session: AsyncSession) -> datetime | None:
    """The earliest deadline of a pending transfer (for the scheduler)."""
    value = (await session.exec(
        select(func.min(OwnerTransfer.expires_at)).where(col(OwnerTransfer.status) == PENDING)
    )).one()
    return value if isinstance(value, datetime) else None
