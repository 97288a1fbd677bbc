"""Verification codes: issue, deliver by invite, verify, decline, expire (docs/product.md,
"Verification codes").

A code is six digits from ``secrets``; only ``HMAC-SHA256(server secret, salt || code)`` is
stored, compared in constant time. The server secret (``Policy.code_secret``) lives outside the
database, so a copy of the database alone cannot give the codes back by trying all 10^6. The
database's ``expires_at`` is the truth: a code entered after it is refused even if the scheduler
has not run yet; once verified, a code gets a new deadline one TTL later, to be confirmed by.

Every change of a code's status is a conditional ``UPDATE … WHERE status IN (…)``: when two
sessions race (a verify and the expiry job, a decline and a confirm), one wins and the other
reads the outcome back instead of overwriting it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit, claims
from models.code_entry import CODE_DIGITS
from models.code_entry import code_entry as code_entry  # re-exported: handlers use codes.*
from models.code_limits import check_issue
from models.errors import DomainError
from models.phones import mask_phone
from models.policy import Policy
from models.tables import CodeStatus, User, VerificationCode
from models.users import user_by_phone


def invite_token(policy: Policy, code: VerificationCode) -> str:
    """An invite's link token: derived from the server secret and the code's salt, so the same
    link can be shown again (Resend) while only its SHA-256 is stored."""
    digest = hmac.new(policy.code_secret, b"invite:" + bytes.fromhex(code.salt),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:24]


#: the statuses a code can still be used (or declined) in
LIVE = (CodeStatus.PENDING.value, CodeStatus.VERIFIED.value)


def _hash_code(secret: bytes, salt: str, code: str) -> str:
    return hmac.new(secret, bytes.fromhex(salt) + code.encode(), hashlib.sha256).hexdigest()


def hash_token(token: str) -> str:
    """Invite tokens are bearer secrets too: only their SHA-256 is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def keyed(policy: Policy, code: VerificationCode) -> str:
    """Give ``code`` fresh digits (a new salt and hash); the digits, for the holder only."""
    plain = new_code()
    code.salt = secrets.token_hex(16)
    code.code_hash = _hash_code(policy.code_secret, code.salt, plain)
    return plain


#: ``status = 'pending'`` for queries that have a better index than (status, expires_at).
#:
#: Without ANALYZE statistics SQLite guesses that an equality on an indexed column leaves about
#: ten rows, so for "this owner's pending codes for this phone" and "these ids, if still
#: pending" it walked every pending code of every shop through ix_code_status_expires instead
#: of using the phone index or the primary key: a cost growing with all pending codes.
#: ``status || ''`` is the same test (status is never NULL) but no index can serve it, so SQLite
#: takes the right one; PostgreSQL plans by statistics and keeps using the same indexes.
STILL_PENDING: ColumnElement[bool] = (
    col(VerificationCode.status).concat("") == CodeStatus.PENDING.value
)

# Statements run for every code issued or entered, built once (building a SQLAlchemy statement
# costs more than running it).
_SUPERSEDABLE = select(VerificationCode).where(
    col(VerificationCode.owner_id) == bindparam("owner_id"),
    col(VerificationCode.phone) == bindparam("phone"),
    STILL_PENDING,
)
_CODE_FOR_UPDATE = (
    select(VerificationCode).where(col(VerificationCode.id) == bindparam("code_id")).with_for_update()
)


async def lock_code(session: AsyncSession, code_id: int) -> VerificationCode | None:
    """The code, locked for this transaction (``SELECT … FOR UPDATE`` on PostgreSQL)."""
    return (await session.exec(_CODE_FOR_UPDATE, params={"code_id": code_id})).first()


async def move_code(
    session: AsyncSession, code: VerificationCode, *, from_: tuple[str, ...], **values: Any
) -> bool:
    """Set ``values`` on the code only if its status is still one of ``from_``; ``code`` is read
    back either way. ``True`` when this session made the change."""
    result = await session.exec(
        update(VerificationCode)
        .where(col(VerificationCode.id) == code.id, col(VerificationCode.status).in_(from_))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(code)
    return bool(result.rowcount == 1)


@dataclass
class IssuedCode:
    """A freshly issued code; ``plain`` exists only in memory, to be sent to the holder."""

    code: VerificationCode
    plain: str
    holder: User | None
    invite_token: str | None
    superseded: list[VerificationCode]



def code_event(
    session: AsyncSession, code: VerificationCode, action: str, *, now: datetime,
    actor_id: int | None, **detail: Any,
) -> None:
    """Audit one step in a code's life (the phone masked, never the digits)."""
    audit.record(session, now=now, shop_id=code.shop_id, actor_id=actor_id, action=action,
                 object_type="code", object_id=code.id, phone=mask_phone(code.phone), **detail)

async def issue_code(
    session: AsyncSession,
    policy: Policy,
    *,
    shop_id: int,
    owner_id: int,
    role_id: int | None,
    phone: str,
    now: datetime,
) -> IssuedCode:
    """Issue a code for ``phone`` within the limits of ``models.code_limits`` (checked under the
    phone's lock, held until the caller commits).

    Pending codes the same owner issued for the same phone are superseded. When the phone is
    linked to a Telegram user the code is queued for them; otherwise an invite token is made.
    """
    await check_issue(session, policy, shop_id=shop_id, phone=phone, now=now)
    superseded_rows = await session.exec(
        _SUPERSEDABLE, params={"owner_id": owner_id, "phone": phone}
    )
    superseded = []
    for old in list(superseded_rows.all()):
        if await move_code(session, old, from_=(CodeStatus.PENDING.value,),
                           status=CodeStatus.SUPERSEDED.value, ended_at=now,
                           invite_token_hash=None):
            superseded.append(old)

    holder = await user_by_phone(session, phone)
    life = (timedelta(seconds=policy.code_ttl_seconds) if holder is not None
            else timedelta(hours=policy.invite_hours))
    code = VerificationCode(
        shop_id=shop_id,
        owner_id=owner_id,
        role_id=role_id,
        phone=phone,
        salt="",
        code_hash="",
        created_at=now,
        expires_at=now + life,
        holder_id=holder.id if holder else None,
        delivery="queued" if holder else "invite",
    )
    plain = keyed(policy, code)
    invite = None if holder is not None else invite_token(policy, code)
    code.invite_token_hash = hash_token(invite) if invite else None
    session.add(code)
    await session.flush()
    code_event(session, code, "code.issued", now=now, actor_id=owner_id,
               delivery="direct" if holder else "invite")
    return IssuedCode(code, plain, holder, invite, superseded)


async def mark_delivered(
    session: AsyncSession, code: VerificationCode, *, holder_id: int, message_id: int
) -> None:
    """Remember which chat message carries the code (to edit it when the code ends)."""
    code.holder_id, code.holder_message_id, code.delivery = holder_id, message_id, "delivered"
    session.add(code)


async def mark_undeliverable(
    session: AsyncSession, code: VerificationCode, *, now: datetime, blocked: bool = True
) -> None:
    """The holder could not be reached (blocked the bot, or the send failed): the code dies at
    once, and as it reached nobody it holds no cooldown."""
    moved = await move_code(session, code, from_=LIVE, status=CodeStatus.CANCELLED.value,
                            ended_at=now, invite_token_hash=None, delivery="failed")
    if moved:
        code_event(session, code, "code.undeliverable", now=now, actor_id=None,
                   reason="blocked" if blocked else "send_failed")


async def _end(
    session: AsyncSession,
    code: VerificationCode,
    status: CodeStatus,
    *,
    now: datetime,
    actor_id: int | None,
    action: str,
    from_: tuple[str, ...] = LIVE,
) -> bool:
    """End a code that is still in ``from_``; ``False`` if another session ended it first."""
    if not await move_code(session, code, from_=from_, status=status.value, ended_at=now,
                           invite_token_hash=None):
        return False
    code_event(session, code, action, now=now, actor_id=actor_id)
    return True


class VerifyOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    EXPIRED = "expired"
    DECLINED = "declined"
    ENDED = "ended"


@dataclass
class VerifyResult:
    outcome: VerifyOutcome
    code: VerificationCode
    tries_left: int = 0
    just_ended: bool = False


def _status_outcome(status: str) -> VerifyOutcome:
    return {
        CodeStatus.VERIFIED.value: VerifyOutcome.OK,
        CodeStatus.EXPIRED.value: VerifyOutcome.EXPIRED,
        CodeStatus.LOCKED.value: VerifyOutcome.LOCKED,
        CodeStatus.DECLINED.value: VerifyOutcome.DECLINED,
    }.get(status, VerifyOutcome.ENDED)


async def verify_code(
    session: AsyncSession,
    policy: Policy,
    *,
    code_id: int,
    owner_id: int,
    entered: str,
    now: datetime,
) -> VerifyResult:
    """Check what the owner entered. Wrong entries count; the last allowed one locks the code.

    ``entered`` is normalised by ``code_entry``; anything that is not a code is refused with
    ``code_format`` and costs no try. A verified code must be confirmed within one TTL.
    """
    digits = code_entry(entered)
    if digits is None:
        raise DomainError("code_format")
    code = await lock_code(session, code_id)
    if code is None or code.owner_id != owner_id:
        raise DomainError("code_not_found")
    if code.status != CodeStatus.PENDING.value:
        return VerifyResult(_status_outcome(code.status), code)
    pending = (CodeStatus.PENDING.value,)
    if now >= code.expires_at:
        if await _end(session, code, CodeStatus.EXPIRED, now=now, actor_id=None,
                      action="code.expired", from_=pending):
            return VerifyResult(VerifyOutcome.EXPIRED, code, just_ended=True)
        return VerifyResult(_status_outcome(code.status), code)
    if hmac.compare_digest(_hash_code(policy.code_secret, code.salt, digits), code.code_hash):
        if not await move_code(session, code, from_=pending, status=CodeStatus.VERIFIED.value,
                               expires_at=now + timedelta(seconds=policy.code_ttl_seconds)):
            return VerifyResult(_status_outcome(code.status), code)
        code_event(session, code, "code.verified", now=now, actor_id=owner_id)
        return VerifyResult(VerifyOutcome.OK, code)
    if not await move_code(session, code, from_=pending, attempts=VerificationCode.attempts + 1):
        return VerifyResult(_status_outcome(code.status), code)
    left = max(0, policy.max_attempts - code.attempts)
    code_event(session, code, "code.failed", now=now, actor_id=owner_id, attempt=code.attempts)
    if left == 0:
        if await _end(session, code, CodeStatus.LOCKED, now=now, actor_id=owner_id,
                      action="code.locked", from_=pending):
            return VerifyResult(VerifyOutcome.LOCKED, code, just_ended=True)
        return VerifyResult(_status_outcome(code.status), code)
    return VerifyResult(VerifyOutcome.WRONG, code, tries_left=left)


async def accept_code(
    session: AsyncSession, policy: Policy, *, code_id: int, holder_id: int, now: datetime
) -> VerificationCode:
    """The holder pressed "✅ Join" in their own chat (a shop whose ``consent_mode`` is
    "button"): the same proof as relaying the digits — their own chat, their own verified
    phone — so the code is verified, to be confirmed within one TTL."""
    code = await lock_code(session, code_id)
    if code is None or code.holder_id != holder_id:
        raise DomainError("stale_button")
    if code.status != CodeStatus.PENDING.value or now >= code.expires_at:
        raise DomainError("code_already_ended")
    if not await move_code(session, code, from_=(CodeStatus.PENDING.value,),
                           status=CodeStatus.VERIFIED.value,
                           expires_at=now + timedelta(seconds=policy.code_ttl_seconds)):
        raise DomainError("code_already_ended")
    code_event(session, code, "code.accepted", now=now, actor_id=holder_id)
    return code


async def decline_code(
    session: AsyncSession, *, code_id: int, holder_id: int, now: datetime
) -> VerificationCode:
    """The holder pressed "Not me" (until the owner confirms): the code dies and the owner is
    to be told."""
    code = await session.get(VerificationCode, code_id)
    if code is None or code.holder_id != holder_id:
        raise DomainError("stale_button")
    was = code.status
    if was not in LIVE or not await _end(session, code, CodeStatus.DECLINED, now=now,
                                         actor_id=holder_id, action="code.declined"):
        raise DomainError("code_already_ended")
    return code


async def cancel_code(
    session: AsyncSession, *, code_id: int, actor_id: int, now: datetime
) -> VerificationCode | None:
    """The owner abandoned the flow: a pending or verified code dies. Returns it if it ended now."""
    code = await session.get(VerificationCode, code_id)
    if code is None or code.status not in LIVE:
        return None
    if not await _end(session, code, CodeStatus.CANCELLED, now=now, actor_id=actor_id,
                      action="code.cancelled"):
        return None
    return code


_LIVE_STATUS: ColumnElement[bool] = col(VerificationCode.status).in_(LIVE)


async def expire_due(
    session: AsyncSession, *, now: datetime, limit: int = 500
) -> list[VerificationCode]:
    """Mark live codes (pending, or verified and not confirmed) whose deadline has passed as
    expired; returns the ones this session expired (oldest first): only those are to be
    announced, whichever process runs this too."""
    # SKIP LOCKED (PostgreSQL; nothing on SQLite, one process): another process expiring at
    # the same moment takes other rows instead of waiting for these, and as this transaction
    # holds their locks until it commits, the update below wins every row it selected, so
    # each expiry is announced by exactly one process.
    result = await session.exec(
        select(VerificationCode)
        .where(_LIVE_STATUS, VerificationCode.expires_at <= now)
        .order_by(col(VerificationCode.expires_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    due = list(result.all())
    if not due:
        return []
    ids = [c.id for c in due]
    # Conditional update: a code confirmed, declined or verified anew meanwhile is left alone.
    await session.exec(
        update(VerificationCode)
        .where(col(VerificationCode.id).in_(ids), _LIVE_STATUS,
               col(VerificationCode.expires_at) <= now)
        .values(status=CodeStatus.EXPIRED.value, ended_at=now, invite_token_hash=None)
        .execution_options(synchronize_session=False)
    )
    # Read them back, all in one statement (what ``session.refresh`` would do one by one).
    reread = await session.exec(
        select(VerificationCode)
        .where(col(VerificationCode.id).in_(ids))
        .execution_options(populate_existing=True)
    )
    reread.all()
    expired = [c for c in due if c.status == CodeStatus.EXPIRED.value and c.ended_at == now]
    for code in expired:
        code_event(session, code, "code.expired", now=now, actor_id=None)
    return expired


async def next_deadline(session: AsyncSession) -> datetime | None:
    """The earliest deadline among live codes (for the expiry job)."""
    result = await session.exec(
        select(func.min(VerificationCode.expires_at)).where(_LIVE_STATUS)
    )
    value = result.one()
    return value if isinstance(value, datetime) else None


#: ``delivery`` of a code claimed by ``claim_undelivered``, being sent again
RESENDING = "resending"


async def claim_undelivered(
    session: AsyncSession, *, now: datetime, limit: int = 500
) -> list[VerificationCode]:
    """Claim the pending codes queued for a holder whose message was never sent (a crash
    between the commit and the send), still within their deadline: their ``delivery`` becomes
    ``resending`` in this transaction, so once it commits no other process claims them.

    On PostgreSQL rows another process is claiming are skipped (``SKIP LOCKED``), and so is a
    code whose owner or holder has an update in flight on any process (``claims.users_idle``):
    that update has just committed the code and is sending it itself.
    """
    result = await session.exec(
        select(VerificationCode).where(
            VerificationCode.status == CodeStatus.PENDING.value,
            VerificationCode.delivery == "queued",
            VerificationCode.expires_at > now,
        ).order_by(col(VerificationCode.id)).limit(limit).with_for_update(skip_locked=True)
    )
    claimed = []
    for code in list(result.all()):
        people = [code.owner_id] + ([code.holder_id] if code.holder_id else [])
        if not await claims.users_idle(session, people):
            continue
        if await move_code(session, code, from_=(CodeStatus.PENDING.value,), delivery=RESENDING):
            claimed.append(code)
    return claimed


def rekey(policy: Policy, code: VerificationCode) -> str:
    """Only the hash of a code is kept: to send it again, it gets fresh digits (same deadline)."""
    return keyed(policy, code)
