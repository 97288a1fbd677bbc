"""Times as a person reads them: in the time zone of their shop, said the way people say them.

Not a conversation: every screen that shows a time formats it here. Times are kept naive UTC
(``models.tables``); a shop may have an IANA time zone of its own (``shop.time_zone``, set by
its main account with /timezone); a shop without one, and a person with no shop, use the
configured default (``[shop] default_time_zone``). Staff see their shop's time zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.i18n import t
from models.accounts import membership_of
from models.lifecycle.access import zone
from models.tables import Shop

#: the time zones /timezone offers as buttons (any other IANA name can be typed)
COMMON_ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "UTC",
)


def zone_name(shop: Shop | None, default: str) -> str:
    """The name of the time zone a shop's times are shown in."""
    return (shop.time_zone if shop is not None else None) or default


def shop_zone(shop: Shop | None, default: str) -> tzinfo:
    """The time zone a shop's times are shown in."""
    return zone(zone_name(shop, default))


async def person_zone(session: AsyncSession, *, user_id: int, own_shop: Shop | None,
                      default: str) -> tzinfo:
    """The time zone a person reads times in: their own shop's (``own_shop``), else the shop
    they are staff of, else ``default``."""
    shop = own_shop
    if shop is None:
        membership = await membership_of(session, user_id)
        shop = membership.shop if membership is not None else None
    return shop_zone(shop, default)


def local(moment: datetime, tz: tzinfo) -> datetime:
    """A naive-UTC moment in ``tz``."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(tz)


def local_time(moment: datetime, tz: tzinfo) -> str:
    """The clock time of a moment: ``16:47`` (``08:47 UTC`` where the zone is UTC itself, so
    that nobody takes it for their own time)."""
    shown = local(moment, tz).strftime("%H:%M")
    return f"{shown} UTC" if _is_utc(tz) else shown


def _is_utc(tz: tzinfo) -> bool:
    return tz is UTC or str(tz) in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu")


def local_date(moment: datetime, tz: tzinfo) -> str:
    """The date of a moment in ``tz``: ``2026-12-01``."""
    return local(moment, tz).date().isoformat()


def local_today(now: datetime, tz: tzinfo) -> date:
    """Today's date in ``tz``."""
    return local(now, tz).date()


def day_bounds(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """Today in ``tz``: its start and the next day's start, as naive UTC (a day may be 23 or
    25 hours long where the clocks change)."""
    today = local_today(now, tz)
    start = datetime(today.year, today.month, today.day, tzinfo=tz)
    following = today + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return (start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None))


def when(locale: str, moment: datetime, *, now: datetime, tz: tzinfo) -> str:
    """A past moment as /log shows it: "today 16:33", "yesterday 09:10", else
    "2026-11-28 09:10" (days as they are in ``tz``)."""
    shown, today = local(moment, tz), local_today(now, tz)
    clock = shown.strftime("%H:%M")
    if shown.date() == today:
        return t(locale, "times.today", time=clock)
    if shown.date() == today - timedelta(days=1):
        return t(locale, "times.yesterday", time=clock)
    return t(locale, "times.on_day", date=shown.date().isoformat(), time=clock)


def minutes_left(until: datetime, now: datetime) -> int:
    """Whole minutes from ``now`` to ``until``, rounded, at least 1."""
    return max(1, round((until - now).total_seconds() / 60))


def valid_until(locale: str, until: datetime, *, now: datetime, tz: tzinfo) -> str:
    """A deadline as a relative time and a clock time: "valid for 5 minutes, until 16:47"."""
    return t(locale, "times.valid_until", minutes=minutes_left(until, now),
             time=local_time(until, tz))
