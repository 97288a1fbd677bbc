"""Durations and days as the owner reads them on the /service screens (live view, settings):
"45 seconds", "1 minute", "3 minutes 5 seconds", "2 hours" (``45秒``, ``1分钟``, ``3分5秒``,
``2小时``); today as "3 December" / "12月3日". Not a conversation: the screens share it.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from handlers.context import Ctx
from handlers.times import local_today


def seconds(ctx: Ctx, value: float | None) -> str:
    """A duration for the owner: "—", "45 seconds", "1 minute", "3 minutes 5 seconds",
    "2 hours", "2 hours 10 minutes" (``45秒``, ``1分钟``, ``3分5秒``…): a whole minute or hour
    says no zero after it."""
    if value is None:
        return ctx.label("service_admin.none")
    total = round(value)
    if total < 60:
        return ctx.label("service_admin.secs", s=total)
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return (ctx.label("service_admin.mins", m=minutes, s=rest) if rest
                else ctx.label("service_admin.mins_whole", m=minutes))
    hours, minutes = total // 3600, total % 3600 // 60
    return (ctx.label("service_admin.hours", h=hours, m=minutes) if minutes
            else ctx.label("service_admin.hours_whole", h=hours))


def day_words(ctx: Ctx, now: datetime, tz: tzinfo) -> str:
    """Today's date in the shop's zone, as the owner says it: "3 December", "12月3日"."""
    today = local_today(now, tz)
    return ctx.label("service_admin.date", day=today.day,
                     month=ctx.label(f"service_admin.months.m{today.month}"))
