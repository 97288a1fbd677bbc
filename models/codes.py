"""Verification codes (SPEC §3): issue, deliver by invite, verify, decline, expire.

A code is six digits from ``secrets``; only ``HMAC-SHA256(salt, code)`` is stored and it is
compared in constant time. The database's ``expires_at`` is the truth: a code entered after it
is refused even if the scheduler has not run yet.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, bindparam, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.phones import mask_phone
from models.policy import Policy
from models.tables import CodeStatus, User, VerificationCode
from models.users import user_by_phone

CODE_DIGITS = 6


def _hash_code(salt: str, code: str) -> str:
    return hmac.new(bytes.fromhex(salt), code.encode(), hashlib.sha256).hexdigest()


def hash_token(token: str) -> str:
    """Invite tokens are bearer secrets too: only their SHA-256 is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def code_entry(text: str) -> str | None:
    """What someone typed as a code, spaces dropped, if it has the shape of one (six digits);
    else ``None`` — a typo of shape is not a wrong code and costs no attempt."""
    digits = "".join(text.split())
    if len(digits) == CODE_DIGITS and digits.isdigit():
        return digits
    return None


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


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
_RECENT_FOR_PHONE = (
    select(VerificationCode.created_at, VerificationCode.shop_id)
    .where(col(VerificationCode.phone) == bindparam("phone"),
           col(VerificationCode.created_at) > bindparam("since"))
    .order_by(col(VerificationCode.created_at))
)
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


@dataclass
class IssuedCode:
    """A freshly issued code; ``plain`` exists only in memory, to be sent to the holder."""

    code: VerificationCode
    plain: str
    holder: User | None
    invite_token: str | None
    superseded: list[VerificationCode]


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
    """Issue a code for ``phone``, enforcing the resend cooldown and the hourly cap.

    Pending codes the same owner issued for the same phone are superseded. When the phone is
    linked to a Telegram user the code goes to them; otherwise an invite token is made.
    """
    hour_ago = now - timedelta(hours=1)
    recent = await session.exec(_RECENT_FOR_PHONE, params={"phone": phone, "since": hour_ago})
    recent_rows = list(recent.all())
    recent_times = [created for created, _shop in recent_rows]
    if len(recent_times) >= policy.codes_per_phone_per_hour:
        wait = recent_times[0] + timedelta(hours=1) - now
        raise DomainError(
            "code_hourly_cap",
            cap=policy.codes_per_phone_per_hour,
            minutes=max(1, math.ceil(wait.total_seconds() / 60)),
        )
    if policy.resend_cooldown_seconds <= 3600:
        # A code of this shop older than the hour just read cannot hold a cooldown of an hour
        # or less, so the same rows answer "when did this shop last send one" (no 2nd query).
        own = [created for created, shop in recent_rows if shop == shop_id]
        last = max(own) if own else None
    else:
        last_own = await session.exec(
            select(func.max(VerificationCode.created_at)).where(
                VerificationCode.phone == phone, VerificationCode.shop_id == shop_id
            )
        )
        last = last_own.one()
    if last is not None:
        ready = last + timedelta(seconds=policy.resend_cooldown_seconds)
        if now < ready:
            seconds = max(1, math.ceil((ready - now).total_seconds()))
            raise DomainError("code_cooldown", seconds=seconds)

    superseded_rows = await session.exec(
        _SUPERSEDABLE, params={"owner_id": owner_id, "phone": phone}
    )
    superseded = list(superseded_rows.all())
    for old in superseded:
        old.status, old.ended_at, old.invite_token_hash = CodeStatus.SUPERSEDED.value, now, None
        session.add(old)

    plain = new_code()
    salt = secrets.token_hex(16)
    holder = await user_by_phone(session, phone)
    invite_token = None if holder is not None else secrets.token_urlsafe(18)
    code = VerificationCode(
        shop_id=shop_id,
        owner_id=owner_id,
        role_id=role_id,
        phone=phone,
        salt=salt,
        code_hash=_hash_code(salt, plain),
        created_at=now,
        expires_at=now + timedelta(seconds=policy.code_ttl_seconds),
        holder_id=holder.id if holder else None,
        invite_token_hash=hash_token(invite_token) if invite_token else None,
        delivery="direct" if holder else "invite",
    )
    session.add(code)
    await session.flush()
    audit.record(
        session,
        now=now,
        shop_id=shop_id,
        actor_id=owner_id,
        action="code.issued",
        object_type="code",
        object_id=code.id,
        phone=mask_phone(phone),
        delivery=code.delivery,
    )
    return IssuedCode(code, plain, holder, invite_token, superseded)


async def mark_delivered(
    session: AsyncSession, code: VerificationCode, *, holder_id: int, message_id: int
) -> None:
    """Remember which chat message carries the code (to edit it when the code ends)."""
    code.holder_id, code.holder_message_id, code.delivery = holder_id, message_id, "delivered"
    session.add(code)


async def mark_undeliverable(session: AsyncSession, code: VerificationCode, *, now: datetime) -> None:
    """The holder could not be reached (blocked the bot): the code dies at once."""
    code.delivery = "failed"
    code.status, code.ended_at, code.invite_token_hash = CodeStatus.CANCELLED.value, now, None
    session.add(code)
    audit.record(
        session,
        now=now,
        shop_id=code.shop_id,
        actor_id=None,
        action="code.undeliverable",
        object_type="code",
        object_id=code.id,
        phone=mask_phone(code.phone),
    )


async def _end(
    session: AsyncSession,
    code: VerificationCode,
    status: CodeStatus,
    *,
    now: datetime,
    actor_id: int | None,
    action: str,
) -> None:
    code.status, code.ended_at, code.invite_token_hash = status.value, now, None
    session.add(code)
    audit.record(
        session,
        now=now,
        shop_id=code.shop_id,
        actor_id=actor_id,
        action=action,
        object_type="code",
        object_id=code.id,
        phone=mask_phone(code.phone),
    )


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
    """Check what the owner entered. Wrong entries count; the last allowed one locks the code."""
    code = await lock_code(session, code_id)
    if code is None or code.owner_id != owner_id:
        raise DomainError("code_not_found")
    if code.status == CodeStatus.VERIFIED.value:
        return VerifyResult(VerifyOutcome.OK, code)
    if code.status != CodeStatus.PENDING.value:
        return VerifyResult(_status_outcome(code.status), code)
    if now >= code.expires_at:
        await _end(session, code, CodeStatus.EXPIRED, now=now, actor_id=None, action="code.expired")
        return VerifyResult(VerifyOutcome.EXPIRED, code, just_ended=True)
    digits = "".join(entered.split())
    if hmac.compare_digest(_hash_code(code.salt, digits), code.code_hash):
        code.status = CodeStatus.VERIFIED.value
        session.add(code)
        audit.record(
            session,
            now=now,
            shop_id=code.shop_id,
            actor_id=owner_id,
            action="code.verified",
            object_type="code",
            object_id=code.id,
            phone=mask_phone(code.phone),
        )
        return VerifyResult(VerifyOutcome.OK, code)
    code.attempts += 1
    left = max(0, policy.max_attempts - code.attempts)
    audit.record(
        session,
        now=now,
        shop_id=code.shop_id,
        actor_id=owner_id,
        action="code.failed",
        object_type="code",
        object_id=code.id,
        phone=mask_phone(code.phone),
        attempt=code.attempts,
    )
    if left == 0:
        await _end(session, code, CodeStatus.LOCKED, now=now, actor_id=owner_id, action="code.locked")
        return VerifyResult(VerifyOutcome.LOCKED, code, just_ended=True)
    session.add(code)
    return VerifyResult(VerifyOutcome.WRONG, code, tries_left=left)


async def decline_code(
    session: AsyncSession, *, code_id: int, holder_id: int, now: datetime
) -> VerificationCode:
    """The holder pressed "Not me": the code dies and the owner is to be told."""
    code = await session.get(VerificationCode, code_id)
    if code is None or code.holder_id != holder_id:
        raise DomainError("stale_button")
    if code.status != CodeStatus.PENDING.value:
        raise DomainError("code_already_ended")
    await _end(session, code, CodeStatus.DECLINED, now=now, actor_id=holder_id, action="code.declined")
    return code


async def cancel_code(
    session: AsyncSession, *, code_id: int, actor_id: int, now: datetime
) -> VerificationCode | None:
    """The owner abandoned the flow: a pending or verified code dies. Returns it if it ended now."""
    code = await session.get(VerificationCode, code_id)
    if code is None or code.status not in (CodeStatus.PENDING.value, CodeStatus.VERIFIED.value):
        return None
    await _end(session, code, CodeStatus.CANCELLED, now=now, actor_id=actor_id, action="code.cancelled")
    return code


async def expire_due(
    session: AsyncSession, *, now: datetime, limit: int = 500
) -> list[VerificationCode]:
    """Mark pending codes whose deadline has passed as expired; returns them (oldest first)."""
    result = await session.exec(
        select(VerificationCode)
        .where(
            VerificationCode.status == CodeStatus.PENDING.value,
            VerificationCode.expires_at <= now,
        )
        .order_by(col(VerificationCode.expires_at))
        .limit(limit)
    )
    due = list(result.all())
    if not due:
        return []
    ids = [c.id for c in due]
    # Conditional update: a code verified or declined meanwhile is left alone.
    await session.exec(
        update(VerificationCode)
        .where(
            col(VerificationCode.id).in_(ids),
            STILL_PENDING,
        )
        .values(status=CodeStatus.EXPIRED.value, ended_at=now, invite_token_hash=None)
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
        audit.record(
            session,
            now=now,
            shop_id=code.shop_id,
            actor_id=None,
            action="code.expired",
            object_type="code",
            object_id=code.id,
            phone=mask_phone(code.phone),
        )
    return expired


async def next_deadline(session: AsyncSession) -> datetime | None:
    """The earliest deadline among pending codes (for the expiry job)."""
    result = await session.exec(
        select(func.min(VerificationCode.expires_at)).where(
            VerificationCode.status == CodeStatus.PENDING.value
        )
    )
    value = result.one()
    return value if isinstance(value, datetime) else None


async def code_for_invite(session: AsyncSession, token: str, *, now: datetime) -> VerificationCode:
    """The live code an invite token belongs to, or ``invite_invalid``."""
    if not token or len(token) > 64:
        raise DomainError("invite_invalid")
    result = await session.exec(
        select(VerificationCode).where(VerificationCode.invite_token_hash == hash_token(token))
    )
    code = result.first()
    if code is None or code.status != CodeStatus.PENDING.value or now >= code.expires_at:
        raise DomainError("invite_invalid")
    return code


async def claim_invite(
    session: AsyncSession, token: str, user: User, *, now: datetime
) -> tuple[VerificationCode, str]:
    """The holder opened the invite and their linked phone matches: the link is used up.

    Only the hash of the code was kept, so the holder gets fresh digits now; the deadline stays.
    """
    code = await code_for_invite(session, token, now=now)
    if user.phone != code.phone:
        raise DomainError("invite_phone_mismatch", phone=mask_phone(code.phone))
    plain = new_code()
    code.salt = secrets.token_hex(16)
    code.code_hash = _hash_code(code.salt, plain)
    code.invite_token_hash = None
    code.holder_id = user.id
    session.add(code)
    audit.record(
        session,
        now=now,
        shop_id=code.shop_id,
        actor_id=user.id,
        action="code.invite_opened",
        object_type="code",
        object_id=code.id,
        phone=mask_phone(code.phone),
    )
    return code, plain
