"""Who may be sent a code now: the cooldown, the hourly caps per shop and per phone, the
day-long stop after two "Not me", and the per-owner limit on phone look-ups (docs/product.md,
"Verification codes").

The caps and the cooldown are read and the new code written under a per-phone lock: the first
statement of ``check_issue`` upserts the phone's ``code_phone_lock`` row, which on PostgreSQL
locks that row until the transaction ends and on SQLite takes the database's write lock. A
second shop issuing for the same phone at the same moment waits, then counts the first one's
code — two shops cannot both pass a cap.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.errors import DomainError
from models.policy import Policy
from models.tables import CodePhoneLock, CodeStatus, PhoneLookup, VerificationCode

#: "Not me" this many times to one shop within DECLINE_WINDOW, and that shop sends no more codes
DECLINES_BEFORE_STOP = 2
DECLINE_WINDOW = timedelta(days=1)
HOUR = timedelta(hours=1)

#: codes that never reached anyone (an invite not yet opened among them): they count for no
#: cooldown and no cap
UNDELIVERED = ("queued", "failed", "invite")


def _lock_statement(dialect: str):  # type: ignore[no-untyped-def]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(CodePhoneLock).values(phone=bindparam("phone"), touched_at=bindparam("now"))
    return stmt.on_conflict_do_update(
        index_elements=[col(CodePhoneLock.phone)], set_={"touched_at": stmt.excluded.touched_at}
    )


_LOCKS = {name: _lock_statement(name) for name in ("postgresql", "sqlite")}

#: each code of the phone since ``since``: when, which shop, how delivered, when declined
_RECENT_FOR_PHONE = select(
    VerificationCode.created_at, VerificationCode.shop_id, VerificationCode.delivery,
    case((col(VerificationCode.status) == CodeStatus.DECLINED.value,
          col(VerificationCode.ended_at)), else_=None),
).where(
    col(VerificationCode.phone) == bindparam("phone"),
    col(VerificationCode.created_at) > bindparam("since"),
)


async def lock_phone(session: AsyncSession, phone: str, *, now: datetime) -> None:
    """Hold the phone's lock until this transaction ends (see the module's docstring)."""
    dialect = session.sync_session.get_bind().dialect.name
    await session.exec(_LOCKS[dialect], params={"phone": phone, "now": now})


def _minutes(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds() / 60))


async def check_issue(
    session: AsyncSession, policy: Policy, *, shop_id: int, phone: str, now: datetime
) -> None:
    """Refuse a new code for ``phone`` from ``shop_id`` that a limit forbids; else the phone
    stays locked for this transaction, for the new code to be written."""
    await lock_phone(session, phone, now=now)
    since = now - max(DECLINE_WINDOW, HOUR, timedelta(seconds=policy.resend_cooldown_seconds))
    rows = list((await session.exec(_RECENT_FOR_PHONE,
                                    params={"phone": phone, "since": since})).all())
    declines = sorted(
        declined for _c, shop, _d, declined in rows
        if shop == shop_id and declined is not None and declined > now - DECLINE_WINDOW
    )
    if len(declines) >= DECLINES_BEFORE_STOP:
        hours = max(1, math.ceil((declines[-DECLINES_BEFORE_STOP] + DECLINE_WINDOW - now)
                                 .total_seconds() / 3600))
        raise DomainError("code_declined_twice", hours=hours)
    sent = [(created, shop) for created, shop, delivery, _declined in rows
            if delivery not in UNDELIVERED]
    own_hour = sorted(c for c, shop in sent if shop == shop_id and c > now - HOUR)
    if len(own_hour) >= policy.codes_per_phone_per_hour:
        raise DomainError("code_hourly_cap", cap=policy.codes_per_phone_per_hour,
                          minutes=_minutes(own_hour[-policy.codes_per_phone_per_hour] + HOUR, now))
    all_hour = sorted(c for c, _shop in sent if c > now - HOUR)
    cap = policy.codes_per_phone_all_shops_per_hour
    if len(all_hour) >= cap:
        raise DomainError("code_phone_cap", minutes=_minutes(all_hour[-cap] + HOUR, now))
    own = [c for c, shop in sent if shop == shop_id]
    if own:
        ready = max(own) + timedelta(seconds=policy.resend_cooldown_seconds)
        if now < ready:
            raise DomainError("code_cooldown",
                              seconds=max(1, math.ceil((ready - now).total_seconds())))


async def note_lookup(
    session: AsyncSession, policy: Policy, *, owner_id: int, phone: str, now: datetime
) -> None:
    """The owner entered ``phone``: refuse it if they have looked up too many phones in the last
    hour without a code being verified, else remember the look-up.

    A phone already looked up in the hour costs nothing again (it tells nothing new); a phone
    whose code this owner got verified in the hour does not count.
    """
    hour_ago = now - HOUR
    await session.exec(delete(PhoneLookup).where(  # type: ignore[call-overload]
        col(PhoneLookup.owner_id) == owner_id, col(PhoneLookup.created_at) <= hour_ago
    ))
    looked = set((await session.exec(
        select(PhoneLookup.phone).where(col(PhoneLookup.owner_id) == owner_id)
    )).all())
    if phone in looked:
        return
    if len(looked) < policy.lookups_per_owner_per_hour:
        session.add(PhoneLookup(owner_id=owner_id, phone=phone, created_at=now))
        return
    verified = set((await session.exec(
        select(VerificationCode.phone).where(
            col(VerificationCode.phone).in_(looked),  # ix_code_phone_created serves it
            col(VerificationCode.owner_id) == owner_id,
            col(VerificationCode.created_at) > hour_ago,
            col(VerificationCode.status).in_((CodeStatus.VERIFIED.value, CodeStatus.USED.value)),
        )
    )).all())
    if len(looked - verified) >= policy.lookups_per_owner_per_hour:
        first = (await session.exec(
            select(func.min(PhoneLookup.created_at)).where(
                col(PhoneLookup.owner_id) == owner_id,
                col(PhoneLookup.phone).not_in(verified) if verified else True,
            )
        )).one()
        until = (first or now) + HOUR
        raise DomainError("lookup_limit", cap=policy.lookups_per_owner_per_hour,
                          minutes=_minutes(until, now))
    session.add(PhoneLookup(owner_id=owner_id, phone=phone, created_at=now))
