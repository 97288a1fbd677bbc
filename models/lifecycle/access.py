"""Time-limited access (docs/lifecycle.md): an end date per sub-account, a reminder before it, and the
expiry that suspends the account at the end.

The database is the truth: ``sub_account.access_until`` is the end, ``access_remind_at`` the
owner's reminder (NULL once sent), and ``expired_at`` marks an account suspended because its
end came (its status is ``suspended``; ``account_state`` shows it as expired). The scheduler
asks ``next_access_deadline`` when to run, and ``due_access_reminders`` and
``expire_due_access`` each return an account once, however often they run or restart.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.lifecycle.common import decision, lock_account, lock_shop
from models.lifecycle.policy import LifecyclePolicy
from models.phones import mask_phone
from models.tables import AccountStatus, Shop, SubAccount

#: the terms offered as buttons, by their choice key
TERMS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
NO_END = "none"
#: the latest end date accepted, from now
MAX_TERM = timedelta(days=3650)
#: last activity is kept to this precision: at most one write an hour per holder
ACTIVITY_PRECISION = timedelta(hours=1)
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_AUTHORIZED = col(SubAccount.status) == AccountStatus.AUTHORIZED.value


class AccountState(StrEnum):
    """What an account's status shows: authorized, suspended, or expired (suspended because
    its end date came)."""

    AUTHORIZED = "authorized"
    SUSPENDED = "suspended"
    EXPIRED = "expired"


def account_state(account: SubAccount) -> AccountState:
    """The status to show for ``account`` (lists, its screen, the holder's /me)."""
    if account.status == AccountStatus.AUTHORIZED.value:
        return AccountState.AUTHORIZED
    return AccountState.EXPIRED if account.expired_at is not None else AccountState.SUSPENDED


def zone(name: str | None) -> tzinfo:
    """The shop's time zone (UTC when it has none)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def parse_access_end(raw: str, *, now: datetime, time_zone: str | None = None) -> datetime | None:
    """An end chosen or typed: ``none`` (no end), ``1d`` / ``7d`` / ``30d`` (from now), or a
    date ``YYYY-MM-DD`` (also with / or .): access until the end of that day in the shop's
    time zone (UTC if it has none). Returns the end as naive UTC, or ``None`` for no end.

    Refused: ``access_date_format`` (anything else, or no such date), ``access_date_past``
    (a day already over), ``access_date_too_far`` (more than ten years away).
    """
    text = unicodedata.normalize("NFKC", raw).strip().lower()
    if text == NO_END:
        return None
    if text in TERMS:
        return now + TERMS[text]
    found = _DATE.fullmatch(text)
    if found is None:
        raise DomainError("access_date_format")
    try:
        day = date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError as exc:
        raise DomainError("access_date_format") from exc
    tz = zone(time_zone)
    local_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    end = local_end.astimezone(UTC).replace(tzinfo=None)
    if end <= now:
        raise DomainError("access_date_past", date=day.isoformat())
    if end - now > MAX_TERM:
        raise DomainError("access_date_too_far", days=MAX_TERM.days)
    return end


def reminder_at(policy: LifecyclePolicy, *, until: datetime, now: datetime) -> datetime:
    """When the owner is reminded of an end: ``access_reminder_hours`` before it, or a third of
    the term before it if that is shorter."""
    lead = min(timedelta(hours=policy.access_reminder_hours), (until - now) / 3)
    return until - lead


@dataclass
class AccessChange:
    """An end date set, changed or removed."""

    account: SubAccount
    before: datetime | None
    #: the account had expired and is authorized again (the holder is to be told)
    resumed: bool


async def set_access(
    session: AsyncSession, *, policy: LifecyclePolicy, shop_id: int, actor_id: int,
    account_id: int, until: datetime | None, now: datetime,
) -> AccessChange:
    """Give the account an end (``until``, naive UTC) or none. An expired account given a new
    end, or none, is authorized again; the reminder is scheduled anew."""
    if until is not None and until <= now:
        raise DomainError("access_date_past", date=until.date().isoformat())
    async with decision(session, "nothing_changed"):
        account = await lock_account(session, account_id)
        if account is None or account.shop_id != shop_id:
            raise DomainError("account_not_found")
        expired = account.expired_at is not None and account.status == AccountStatus.SUSPENDED
        before = account.access_until
        if before == until and not expired:
            raise DomainError("nothing_changed")
        account.access_until = until
        account.access_remind_at = None if until is None else reminder_at(
            policy, until=until, now=now)
        account.expired_at = None
        if expired:
            account.status = AccountStatus.AUTHORIZED.value
        account.updated_at = now
        session.add(account)
        await session.flush()
    audit.record(
        session, now=now, shop_id=shop_id, actor_id=actor_id,
        action="account.access_until" if until is not None else "account.access_unlimited",
        object_type="account", object_id=account.id, phone=mask_phone(account.phone),
        nickname=account.nickname, until=_iso(until), before=_iso(before), resumed=expired,
    )
    return AccessChange(account, before, expired)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment is not None else ""


@dataclass
class AccessNotice:
    """An account whose end is near (the owner is to be reminded) or has come (the holder and
    the owner are to be told; its customer chats re-routed)."""

    account_id: int
    shop_id: int
    owner_id: int
    holder_id: int
    nickname: str
    masked_phone: str
    until: datetime


def _notice(account: SubAccount, owner_id: int) -> AccessNotice:
    return AccessNotice(account.id or 0, account.shop_id, owner_id, account.holder_id,
                        account.nickname, mask_phone(account.phone),
                        account.access_until or datetime.min)


async def due_access_reminders(
    session: AsyncSession, *, now: datetime, limit: int = 200
) -> list[AccessNotice]:
    """The authorized accounts whose reminder is due and whose end has not come; each is
    returned once (its reminder is marked sent)."""
    rows = (await session.exec(
        select(SubAccount, Shop.owner_id).join(Shop, col(Shop.id) == SubAccount.shop_id)
        .where(_AUTHORIZED, col(SubAccount.access_remind_at) <= now,
               col(SubAccount.access_until) > now)
        .order_by(col(SubAccount.access_remind_at)).limit(limit)
    )).all()
    due = []
    for account, owner_id in rows:
        result = await session.exec(
            update(SubAccount)
            .where(col(SubAccount.id) == account.id,
                   col(SubAccount.access_remind_at) == account.access_remind_at)
            .values(access_remind_at=None).execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            await session.refresh(account)
            due.append(_notice(account, int(owner_id)))
    return due


async def expire_due_access(
    session: AsyncSession, *, now: datetime, limit: int = 200
) -> list[AccessNotice]:
    """Suspend the authorized accounts whose end has come (status suspended, ``expired_at``
    set, audited as "expired"); each is returned once."""
    rows = (await session.exec(
        select(SubAccount, Shop.owner_id).join(Shop, col(Shop.id) == SubAccount.shop_id)
        .where(_AUTHORIZED, col(SubAccount.access_until) <= now)
        .order_by(col(SubAccount.access_until)).limit(limit)
    )).all()
    expired = []
    for account, owner_id in rows:
        result = await session.exec(
            update(SubAccount)
            .where(col(SubAccount.id) == account.id, _AUTHORIZED,
                   col(SubAccount.access_until) <= now)
            .values(status=AccountStatus.SUSPENDED.value, expired_at=now,
                    access_remind_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            continue
        await session.refresh(account)
        expired.append(_notice(account, int(owner_id)))
        audit.record(session, now=now, shop_id=account.shop_id, actor_id=None,
                     action="account.expired", object_type="account", object_id=account.id,
                     phone=mask_phone(account.phone), nickname=account.nickname,
                     until=_iso(account.access_until))
    return expired


async def next_access_deadline(session: AsyncSession) -> datetime | None:
    """The earliest reminder or end of an authorized account (for the scheduler)."""
    remind, until = (await session.exec(  # type: ignore[call-overload]
        select(func.min(SubAccount.access_remind_at), func.min(SubAccount.access_until))
        .where(_AUTHORIZED)
    )).one()
    times = [t for t in (remind, until) if isinstance(t, datetime)]
    return min(times) if times else None


def record_activity(account: SubAccount, *, now: datetime) -> bool:
    """Note that the holder used the bot (kept to the hour, so most updates write nothing);
    ``True`` when the account was changed (the caller's session commits it)."""
    last = account.last_activity_at
    if last is not None and now - last < ACTIVITY_PRECISION:
        return False
    account.last_activity_at = now
    return True


async def set_time_zone(
    session: AsyncSession, *, shop_id: int, owner_id: int, time_zone: str | None, now: datetime
) -> Shop:
    """The shop's time zone for typed dates (an IANA name such as ``Asia/Shanghai``; ``None``:
    UTC). ``time_zone_unknown`` for a name that is not one."""
    name = time_zone.strip() if time_zone else None
    if name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DomainError("time_zone_unknown", name=name[:64]) from exc
    async with decision(session, "nothing_changed"):
        shop = await lock_shop(session, shop_id)
        if shop is None or shop.owner_id != owner_id:
            raise DomainError("no_shop")
        if shop.time_zone == name:
            raise DomainError("nothing_changed")
        before, shop.time_zone = shop.time_zone, name
        session.add(shop)
        await session.flush()
    audit.record(session, now=now, shop_id=shop_id, actor_id=owner_id, action="shop.time_zone",
                 object_type="shop", object_id=shop_id, before=before or "UTC",
                 after=name or "UTC")
    return shop
