"""Retention: what the bot keeps only for a while, and the purge that removes it
(docs/product.md, "Retention and /forget").

After ``retention_days``:
- verification codes that ended (used, expired, declined, cancelled, locked, superseded) —
  except a used code a sub-account still points to (it is deleted with the account's end);
- conversation drafts nobody touched;
- users who only said hello: no phone linked, no shop, no membership, no code naming them.

After ``audit_retention_days`` (longer by default: an owner's record of who had access to the
shop outlives the operational data, and rows of forgotten users hold no name or phone):
- audit events.

``purge_expired`` deletes at most ``batch`` rows of each kind per call (one short transaction
each); call it again while ``Purged.more`` says a kind filled its batch. Running it twice does
nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AuditEvent, CodeStatus, Draft, Shop, SubAccount, User, VerificationCode

BATCH = 500

#: the statuses of a code that can no longer be used
ENDED_CODES = tuple(s.value for s in (
    CodeStatus.USED, CodeStatus.EXPIRED, CodeStatus.DECLINED, CodeStatus.CANCELLED,
    CodeStatus.LOCKED, CodeStatus.SUPERSEDED,
))


@dataclass(frozen=True)
class Purged:
    """How many rows of each kind one purge deleted (counts only: nothing personal)."""

    codes: int = 0
    drafts: int = 0
    audit: int = 0
    users: int = 0
    #: some kind filled its batch: there may be more to delete
    more: bool = False

    def __add__(self, other: Purged) -> Purged:
        return Purged(
            self.codes + other.codes, self.drafts + other.drafts, self.audit + other.audit,
            self.users + other.users, other.more,
        )

    def counts(self) -> dict[str, int]:
        """The counts by kind, for a log line."""
        return {f.name: int(getattr(self, f.name)) for f in fields(self) if f.name != "more"}


async def _ids(session: AsyncSession, statement: Any) -> list[Any]:
    return list((await session.exec(statement)).all())


async def purge_expired(
    session: AsyncSession,
    *,
    now: datetime,
    retention_days: int,
    audit_retention_days: int,
    batch: int = BATCH,
) -> Purged:
    """Delete one batch of each kind of expired data (the caller commits)."""
    cutoff = now - timedelta(days=retention_days)
    audit_cutoff = now - timedelta(days=audit_retention_days)

    code_ids = await _ids(session, (
        select(col(VerificationCode.id))
        .where(col(VerificationCode.status).in_(ENDED_CODES))
        .where(func.coalesce(col(VerificationCode.ended_at), col(VerificationCode.expires_at))
               < cutoff)
        .where(~exists().where(col(SubAccount.code_id) == col(VerificationCode.id)))
        .order_by(col(VerificationCode.id))
        .limit(batch)
    ))
    if code_ids:
        await session.exec(delete(VerificationCode).where(col(VerificationCode.id).in_(code_ids)))

    draft_ids = await _ids(session, (
        select(col(Draft.user_id)).where(col(Draft.updated_at) < cutoff)
        .order_by(col(Draft.user_id)).limit(batch)
    ))
    if draft_ids:
        await session.exec(delete(Draft).where(col(Draft.user_id).in_(draft_ids)))

    audit_ids = await _ids(session, (
        select(col(AuditEvent.id)).where(col(AuditEvent.created_at) < audit_cutoff)
        .order_by(col(AuditEvent.id)).limit(batch)
    ))
    if audit_ids:
        await session.exec(delete(AuditEvent).where(col(AuditEvent.id).in_(audit_ids)))

    user_ids = await _ids(session, (
        select(col(User.id))
        .where(col(User.phone).is_(None))
        .where(func.coalesce(col(User.seen_at), col(User.created_at)) < cutoff)
        .where(~exists().where(col(Shop.owner_id) == col(User.id)))
        .where(~exists().where(col(SubAccount.holder_id) == col(User.id)))
        .where(~exists().where(or_(col(VerificationCode.owner_id) == col(User.id),
                                   col(VerificationCode.holder_id) == col(User.id))))
        .order_by(col(User.id))
        .limit(batch)
    ))
    if user_ids:
        await session.exec(delete(Draft).where(col(Draft.user_id).in_(user_ids)))
        await session.exec(delete(User).where(col(User.id).in_(user_ids)))

    found = (code_ids, draft_ids, audit_ids, user_ids)
    return Purged(len(code_ids), len(draft_ids), len(audit_ids), len(user_ids),
                  more=any(len(ids) >= batch for ids in found))
