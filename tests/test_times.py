"""Local times (issue 15, point 5): one formatter (``handlers/times.py``), the shop's time zone
(/timezone, default from ``[shop] default_time_zone``), and every screen that shows a time."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import ConfigError, load_settings
from bot.localapi import LocalBotApi
from handlers.times import day_bounds, local_date, local_time, valid_until, when
from models.clock import ManualClock
from models.tables import Shop
from tests.harness import Harness, rows
from tests.support.app import start_harness, stop_harness
from tests.support.domain import holder_code
from tests.support.flows import make_owner, onboard, to_code_step
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER

SHANGHAI, LONDON = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/London")
#: 23:50 in Shanghai, 15:50 in London: the two cities are on different days soon
NOW = datetime(2026, 12, 1, 15, 50)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def test_the_same_moment_in_shanghai_and_london() -> None:
    moment = datetime(2026, 12, 1, 8, 47)
    assert local_time(moment, SHANGHAI) == "16:47"
    assert local_time(moment, LONDON) == "08:47"
    assert local_time(datetime(2026, 7, 1, 8, 47), LONDON) == "09:47"  # summer time
    assert local_time(moment, ZoneInfo("UTC")) == "08:47 UTC"
    assert local_date(datetime(2026, 11, 30, 16, 30), SHANGHAI) == "2026-12-01"
    assert local_date(datetime(2026, 11, 30, 16, 30), LONDON) == "2026-11-30"


def test_today_and_yesterday_are_the_shops_days() -> None:
    just_after_midnight_in_shanghai = datetime(2026, 11, 30, 16, 5)
    just_before = datetime(2026, 11, 30, 15, 55)
    assert when("en", just_after_midnight_in_shanghai, now=NOW, tz=SHANGHAI) == "today 00:05"
    assert when("en", just_before, now=NOW, tz=SHANGHAI) == "yesterday 23:55"
    assert when("en", just_after_midnight_in_shanghai, now=NOW, tz=LONDON) == "yesterday 16:05"
    assert when("en", NOW, now=NOW, tz=LONDON) == "today 15:50"
    assert when("en", datetime(2026, 11, 29, 15, 0), now=NOW, tz=SHANGHAI) == "2026-11-29 23:00"
    assert when("en", datetime(2026, 11, 29, 16, 0), now=NOW, tz=SHANGHAI) == "yesterday 00:00"
    assert when("zh-Hans", just_after_midnight_in_shanghai, now=NOW, tz=SHANGHAI) == "今天 00:05"
    assert when("zh-Hans", just_before, now=NOW, tz=SHANGHAI) == "昨天 23:55"


def test_a_day_in_the_shops_time_zone() -> None:
    assert day_bounds(NOW, SHANGHAI) == (datetime(2026, 11, 30, 16), datetime(2026, 12, 1, 16))
    assert day_bounds(NOW, LONDON) == (datetime(2026, 12, 1), datetime(2026, 12, 2))
    # the day the clocks go back in London is 25 hours long
    autumn = datetime(2026, 10, 25, 12)
    start, end = day_bounds(autumn, LONDON)
    assert (end - start).total_seconds() == 25 * 3600


def test_relative_deadlines_with_plural_forms() -> None:
    until = datetime(2026, 12, 1, 8, 47)
    assert valid_until("en", until, now=datetime(2026, 12, 1, 8, 42), tz=SHANGHAI) == (
        "valid for 5 minutes, until 16:47")
    assert valid_until("en", until, now=datetime(2026, 12, 1, 8, 46, 20), tz=LONDON) == (
        "valid for 1 minute, until 08:47")
    assert valid_until("zh-Hans", until, now=datetime(2026, 12, 1, 8, 42), tz=SHANGHAI) == (
        "5分钟内有效（16:47前）")


def test_the_default_time_zone_is_a_validated_setting(tmp_path: Path) -> None:
    base = {"BOT_TOKEN": "1:T"}
    assert load_settings(environ=base).shop.default_time_zone == "UTC"
    config = tmp_path / "config.toml"
    config.write_text('[shop]\ndefault_time_zone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError,
                       match=re.escape("shop.default_time_zone: 'Mars/Olympus' is not")):
        load_settings(config, environ=base)
    config.write_text('[shop]\ndefault_time_zone = "Asia/Shanghai"\n')
    assert load_settings(config, environ=base).shop.default_time_zone == "Asia/Shanghai"


async def test_the_owner_chooses_the_shop_time_zone(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/timezone")
    card = harness.last(OWNER)
    assert "Now: UTC (it is 15:50 UTC there)" in card.text
    await harness.click(OWNER, "Asia/Shanghai")
    assert "✅ Time zone: Asia/Shanghai. It is 23:50 there." in harness.last(OWNER).text
    assert [s.time_zone for s in await rows(harness, Shop)] == ["Asia/Shanghai"]
    # a typed name: a wrong one is explained above the same card, a right one is taken
    await harness.command(OWNER, "/timezone")
    shown = await harness.text(OWNER, "Europe/Londn")
    assert "“Europe/Londn” is not a time zone" in shown[-1].text
    assert "Now: Asia/Shanghai" in shown[-1].text and shown[-1].buttons
    await harness.text(OWNER, "Europe/London")
    assert "✅ Time zone: Europe/London. It is 15:50 there." in harness.last(OWNER).text
    assert [s.time_zone for s in await rows(harness, Shop)] == ["Europe/London"]
    await harness.text(OWNER, "Asia/Tokyo")  # the step has ended: nothing more is set
    assert [s.time_zone for s in await rows(harness, Shop)] == ["Europe/London"]


async def test_staff_cannot_set_the_time_zone(harness: Harness) -> None:
    from tests.support.domain import add_sub_account

    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await add_sub_account(harness, holder=HOLDER, phone=HOLDER_PHONE)
    await harness.command(HOLDER, "/timezone")
    assert "set by the shop's main account" in harness.last(HOLDER).text


async def test_language_screen_offers_the_time_zone_to_owners(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "Time zone: UTC")
    assert "Now: UTC" in harness.last(OWNER).text
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await harness.command(HOLDER, "/language")
    assert "Time zone" not in str(harness.last(HOLDER).buttons)


async def test_log_and_code_times_are_in_the_shops_zone(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/timezone")
    await harness.click(OWNER, "Asia/Shanghai")
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await to_code_step(harness)
    # the holder (staff-to-be of this shop) and the owner both see Shanghai time
    holder_text = next(m.text for m in reversed(harness.messages(HOLDER)) if "code" in m.text)
    assert "(until 23:55)" in holder_text
    assert "(until 23:55)" in harness.last(OWNER).text
    assert holder_code(harness)
    await harness.command(OWNER, "/log")
    # /log leaves the wizard, which has a phone entered: the bot asks first
    assert "Discard it?" in harness.last(OWNER).text
    await harness.click(OWNER, "Discard")
    log = harness.last(OWNER).text
    assert "times in Asia/Shanghai" in log
    assert "today 23:50" in log and "UTC ·" not in log  # (the zone change itself says UTC)


async def test_log_says_today_in_chinese(harness: Harness) -> None:
    from tests.harness import Person

    wang = Person(6006, "王芳", "zh-hans")
    await make_owner(harness, who=wang, phone="+8613500135000", shop="芳芳美妆")
    await harness.command(wang, "/timezone")
    await harness.click(wang, "Asia/Shanghai")
    harness.clock.advance(20 * 60)  # 00:10 in Shanghai: the shop was made yesterday there
    await harness.command(wang, "/log")
    log = harness.last(wang).text
    assert "时区：Asia/Shanghai" in log
    assert "昨天 23:50" in log and "今天" not in log


async def test_a_configured_default_applies_to_shops_without_one(
        database_url: str, engine: AsyncEngine, api: LocalBotApi) -> None:
    settings = load_settings(environ={"BOT_TOKEN": "123456:TEST-TOKEN",
                                      "DATABASE_URL": database_url})
    settings = settings.model_copy(update={"shop": settings.shop.model_copy(
        update={"default_time_zone": "Asia/Shanghai"})})
    h = await start_harness(settings, engine, api, ManualClock(NOW))
    try:
        await make_owner(h)
        await h.command(OWNER, "/log")
        assert "times in Asia/Shanghai" in h.last(OWNER).text
        assert "today 23:50" in h.last(OWNER).text
        await h.command(OWNER, "/timezone")
        assert "Asia/Shanghai (default)" in str(h.last(OWNER).buttons)
    finally:
        await stop_harness(h)


async def test_staff_read_their_shops_zone_and_others_the_default(harness: Harness) -> None:
    from handlers.times import person_zone
    from models.shops import owned_shop
    from tests.support.domain import add_sub_account
    from tests.support.people import STRANGER, STRANGER_PHONE

    await make_owner(harness)
    await harness.command(OWNER, "/timezone")
    await harness.click(OWNER, "Asia/Shanghai")
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await add_sub_account(harness, holder=HOLDER, phone=HOLDER_PHONE)
    await onboard(harness, STRANGER, STRANGER_PHONE)
    async with harness.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        for who, own, zone in ((OWNER, shop, "Asia/Shanghai"), (HOLDER, None, "Asia/Shanghai"),
                               (STRANGER, None, "Europe/London")):
            found = await person_zone(session, user_id=who.id, own_shop=own,
                                      default="Europe/London")
            assert str(found) == zone, who.first_name


async def test_the_live_view_and_its_day_are_the_shops(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/timezone")
    await harness.click(OWNER, "Asia/Shanghai")
    harness.clock.advance(15 * 60)  # 00:05 on 2 December in Shanghai, still 1 December in UTC
    await harness.command(OWNER, "/service")
    await harness.click(OWNER, "Live view")
    live = harness.last(OWNER).text
    assert "live view (at 00:05:00)" in live
    assert "Today, 2 December" in live
