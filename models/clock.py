"""Time as the domain sees it: naive UTC datetimes from an injectable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current time (naive UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)


class ManualClock:
    """A clock that only moves when told to; for tests and benchmarks."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or SystemClock().now()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


def as_aware(moment: datetime) -> datetime:
    """Attach UTC to a naive UTC datetime (for schedulers that want aware times)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
