"""Accepting an owner transfer: the shop changes hands in one transaction (docs/lifecycle.md).

The shop's ``owner_id`` becomes the target's; the old owner's phone binding becomes a
sub-account binding (or is deleted, if they leave) before the target's becomes the owner
binding, so a phone is never bound twice and the shop never has two main accounts (the
``phone_binding`` primary key and ``uq_phone_binding_shop_owner`` say so); the target's
sub-account row goes; the old owner gets one with the chosen role (nickname: their first name,
or "—"). Both people's drafts end and the old owner's live codes are cancelled (they can no
longer confirm them). Every step is audited.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit, drafts
from models.accounts import NICKNAME_MAX
from models.codes import LIVE, cancel_code
from models.errors import DomainError
from models.lifecycle.common import check_usable, decision, lock_account, lock_shop
from models.lifecycle.tables import TransferStatus
from models.lifecycle.transfer import end_transfer, open_for
from models.phones import mask_phone
from models.roles import get_role
from models.tables import (
    AccountStatus,
    BindingKind,
    PhoneBinding,
    Role,
    SubAccount,
    User,
    VerificationCode,
)
from models.text import drop_controls, visible

NO_NAME = "—"


@dataclass
class Handover:
    """What an accepted transfer did, for telling both people."""

    transfer_id: int
    shop_id: int
    shop_name: str
    old_owner_id: int
    new_owner_id: int
    #: the target's former sub-account (deleted): its id and nickname
    former_account_id: int
    former_nickname: str
    #: the old owner's new sub-account and role (None: they left the shop)
    old_owner_account: SubAccount | None
    old_owner_role: Role | None
    #: the old owner's codes in flight, cancelled (their holders' messages to be edited)
    cancelled_codes: list[VerificationCode] = field(default_factory=list)


def _nickname(first_name: str) -> str:
    """The old owner's nickname: their first name, cleaned like a typed one and cut to fit,
    or "—" when it has nothing visible (a forgotten or nameless user)."""
    name = unicodedata.normalize("NFC", " ".join(drop_controls(first_name).split()))
    name = name[:NICKNAME_MAX].strip()
    return name if visible(name) else NO_NAME


async def _owner_binding(session: AsyncSession, shop_id: int) -> PhoneBinding:
    binding = (await session.exec(
        select(PhoneBinding).where(col(PhoneBinding.shop_id) == shop_id,
                                   col(PhoneBinding.kind) == BindingKind.OWNER.value)
        .with_for_update()
    )).first()
    if binding is None:
        raise DomainError("transfer_conflict")
    return binding


async def accept_transfer(
    session: AsyncSession, *, transfer_id: int, holder_id: int, now: datetime
) -> Handover:
    """The target accepts: the shop becomes theirs, in the caller's transaction.

    Refused, changing nothing: not their transfer, no longer pending, expired, their
    sub-account gone (unbound meanwhile), suspended or expired, the chosen role deleted.
    """
    async with decision(session, "transfer_conflict"):
        transfer = await open_for(session, transfer_id=transfer_id, user_id=holder_id,
                                  side="to", now=now)
        shop = await lock_shop(session, transfer.shop_id)
        if shop is None or shop.owner_id != transfer.from_user_id:
            raise DomainError("transfer_not_pending")
        account = await lock_account(session, transfer.to_account_id)
        if account is None or account.shop_id != shop.id or account.holder_id != holder_id:
            raise DomainError("transfer_target_gone")
        check_usable(account, now, prefix="transfer_target")
        role = None
        if not transfer.old_owner_leaves:
            if transfer.old_owner_role_id is None:
                raise DomainError("transfer_role_gone")
            role = await get_role(session, shop.id or 0, transfer.old_owner_role_id)
        old_owner = await session.get(User, transfer.from_user_id)
        old_binding = await _owner_binding(session, shop.id or 0)
        new_binding = await session.get(PhoneBinding, account.phone)
        if old_owner is None or new_binding is None:
            raise DomainError("transfer_conflict")
        done = Handover(
            transfer_id=transfer.id or 0, shop_id=shop.id or 0, shop_name=shop.name,
            old_owner_id=transfer.from_user_id, new_owner_id=holder_id,
            former_account_id=account.id or 0, former_nickname=account.nickname,
            old_owner_account=None, old_owner_role=role,
        )
        new_phone, old_phone = account.phone, old_binding.phone

        await session.delete(account)  # its review items go with it
        await session.flush()
        if role is None:
            await session.exec(delete(PhoneBinding).where(col(PhoneBinding.phone) == old_phone))
        else:
            old_binding.kind = BindingKind.SUB.value
            session.add(old_binding)
        await session.flush()
        new_binding.kind = BindingKind.OWNER.value
        session.add(new_binding)
        await session.flush()
        shop.owner_id = holder_id
        session.add(shop)
        await session.flush()
        if role is not None:
            done.old_owner_account = SubAccount(
                shop_id=shop.id or 0, phone=old_phone, holder_id=old_owner.id,
                nickname=_nickname(old_owner.first_name), role_id=role.id or 0,
                im_enabled=False, status=AccountStatus.AUTHORIZED.value, code_id=None,
                created_at=now, updated_at=now, last_activity_at=now,
            )
            session.add(done.old_owner_account)
            await session.flush()
        if not await end_transfer(session, transfer, TransferStatus.ACCEPTED, now=now):
            raise DomainError("transfer_not_pending")

    await drafts.clear_draft(session, done.old_owner_id)
    await drafts.clear_draft(session, holder_id)
    live = (await session.exec(select(VerificationCode).where(
        col(VerificationCode.shop_id) == done.shop_id,
        col(VerificationCode.owner_id) == done.old_owner_id,
        col(VerificationCode.status).in_(LIVE),
    ))).all()
    for code in list(live):
        ended = await cancel_code(session, code_id=code.id or 0, actor_id=holder_id, now=now)
        if ended is not None:
            done.cancelled_codes.append(ended)
    _audit(session, done, new_phone=new_phone, old_phone=old_phone, now=now)
    return done


def _audit(session: AsyncSession, done: Handover, *, new_phone: str, old_phone: str,
           now: datetime) -> None:
    def record(action: str, object_type: str, object_id: object, **detail: object) -> None:
        audit.record(session, now=now, shop_id=done.shop_id, actor_id=done.new_owner_id,
                     action=action, object_type=object_type, object_id=object_id, **detail)

    record("transfer.accepted", "transfer", done.transfer_id)
    record("shop.owner_changed", "shop", done.shop_id, phone=mask_phone(new_phone),
           before=mask_phone(old_phone))
    record("account.became_owner", "account", done.former_account_id,
           nickname=done.former_nickname, phone=mask_phone(new_phone))
    if done.old_owner_account is not None and done.old_owner_role is not None:
        record("account.created", "account", done.old_owner_account.id,
               phone=mask_phone(old_phone), nickname=done.old_owner_account.nickname,
               role=done.old_owner_role.name, im=False, via="transfer")
    else:
        record("owner.left", "shop", done.shop_id, phone=mask_phone(old_phone))
