"""Time-limited access in the domain, on SQLite and PostgreSQL: the end chosen or typed, the
reminder (72 h, or a third of a short term), the expiry that suspends (shown as expired,
audited, each account once, after a restart too), extending, and last activity."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import db
from models.accounts import set_suspended
from models.errors import DomainError
from models.lifecycle.access import (
    AccountState,
    account_state,
    due_access_reminders,
    expire_due_access,
    next_access_deadline,
    parse_access_end,
    record_activity,
    reminder_at,
    set_access,
    set_time_zone,
)
from models.lifecycle.policy import LifecyclePolicy
from models.tables import AccountStatus, Shop, SubAccount
from tests.lifecycle_world import HANK, LIFE, MIA, NOW, OLIVIA, OSCAR, World, events, make_world


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await make_world(engine)


async def give(w: World, account: int, until: datetime | None, *, at: datetime = NOW,
               policy: LifecyclePolicy = LIFE) -> None:
    async with w.session() as s:
        await set_access(s, policy=policy, shop_id=w.shop_id, actor_id=OLIVIA,
                         account_id=account, until=until, now=at)
        await s.commit()


async def account(w: World, account_id: int) -> SubAccount:
    async with w.session() as s:
        row = await s.get(SubAccount, account_id)
        assert row is not None
        return row


# --- choosing the end ---------------------------------------------------------------------------


def test_the_terms_and_none() -> None:
    assert parse_access_end("none", now=NOW) is None
    assert parse_access_end("1d", now=NOW) == NOW + timedelta(days=1)
    assert parse_access_end(" 7D ", now=NOW) == NOW + timedelta(days=7)
    assert parse_access_end("30d", now=NOW) == NOW + timedelta(days=30)


def test_a_typed_date_ends_with_that_day_in_the_shop_time_zone() -> None:
    assert parse_access_end("2026-03-31", now=NOW) == datetime(2026, 4, 1)
    # Shanghai is UTC+8: the day ends at 16:00 UTC
    assert parse_access_end("2026-03-31", now=NOW, time_zone="Asia/Shanghai") == datetime(
        2026, 3, 31, 16, 0)
    assert parse_access_end("２０２６/３/５", now=NOW) == datetime(2026, 3, 6)
    assert parse_access_end("2026.3.1", now=NOW) == datetime(2026, 3, 2)  # today: until tonight


@pytest.mark.parametrize(("raw", "key"), [
    ("tomorrow", "access_date_format"),
    ("", "access_date_format"),
    ("2026-02-30", "access_date_format"),
    ("31-03-2026", "access_date_format"),
    ("2026-02-28", "access_date_past"),
    ("2040-01-01", "access_date_too_far"),
])
def test_bad_dates_are_refused_clearly(raw: str, key: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_access_end(raw, now=NOW)
    assert caught.value.key == key


def test_a_date_over_in_shanghai_is_past_though_not_in_utc() -> None:
    late = datetime(2026, 3, 1, 17, 0)  # 01:00 on 2 March in Shanghai
    assert parse_access_end("2026-03-01", now=late) == datetime(2026, 3, 2)
    with pytest.raises(DomainError) as caught:
        parse_access_end("2026-03-01", now=late, time_zone="Asia/Shanghai")
    assert caught.value.params == {"date": "2026-03-01"}


def test_the_reminder_is_72_hours_before_or_a_third_of_a_short_term() -> None:
    assert reminder_at(LIFE, until=NOW + timedelta(days=30), now=NOW) == (
        NOW + timedelta(days=30) - timedelta(hours=72))
    assert reminder_at(LIFE, until=NOW + timedelta(days=1), now=NOW) == NOW + timedelta(hours=16)
    short = LifecyclePolicy(access_reminder_hours=2)
    assert reminder_at(short, until=NOW + timedelta(days=7), now=NOW) == (
        NOW + timedelta(days=7) - timedelta(hours=2))


async def test_set_change_and_remove_the_end_audited(world: World) -> None:
    end = NOW + timedelta(days=30)
    await give(world, world.hank, end)
    hank = await account(world, world.hank)
    assert (hank.access_until, hank.access_remind_at) == (end, end - timedelta(hours=72))
    async with world.session() as s:
        with pytest.raises(DomainError) as caught:
            await set_access(s, policy=LIFE, shop_id=world.shop_id, actor_id=OLIVIA,
                             account_id=world.hank, until=end, now=NOW)
        assert caught.value.key == "nothing_changed"
        with pytest.raises(DomainError) as caught:
            await set_access(s, policy=LIFE, shop_id=world.shop_id, actor_id=OLIVIA,
                             account_id=world.hank, until=NOW, now=NOW)
        assert caught.value.key == "access_date_past"
        with pytest.raises(DomainError) as caught:
            await set_access(s, policy=LIFE, shop_id=world.other_shop_id, actor_id=OSCAR,
                             account_id=world.hank, until=None, now=NOW)
        assert caught.value.key == "account_not_found"
    await give(world, world.hank, None)
    hank = await account(world, world.hank)
    assert (hank.access_until, hank.access_remind_at) == (None, None)
    async with world.session() as s:
        [first] = await events(s, world.shop_id, "account.access_until")
        assert first.detail["until"] == end.isoformat(timespec="minutes")
        assert first.detail["phone"] == "+86 139****9000"
        [removed] = await events(s, world.shop_id, "account.access_unlimited")
        assert removed.detail["before"] == end.isoformat(timespec="minutes")


# --- reminders and expiry ---------------------------------------------------------------------


async def test_the_reminder_comes_once_and_not_for_a_suspended_account(world: World) -> None:
    end = NOW + timedelta(days=1)
    await give(world, world.hank, end)
    await give(world, world.mia, end)
    async with world.session() as s:
        await set_suspended(s, shop_id=world.shop_id, actor_id=OLIVIA, account_id=world.mia,
                            suspended=True, now=NOW)
        await s.commit()
    remind = NOW + timedelta(hours=16)
    async with world.session() as s:
        assert await next_access_deadline(s) == remind
        assert await due_access_reminders(s, now=remind - timedelta(minutes=1)) == []
        [notice] = await due_access_reminders(s, now=remind)
        await s.commit()
    assert (notice.account_id, notice.owner_id, notice.holder_id) == (world.hank, OLIVIA, HANK)
    assert (notice.nickname, notice.masked_phone, notice.until) == ("Hank", "+86 139****9000", end)
    async with world.session() as s:
        assert await due_access_reminders(s, now=remind + timedelta(hours=1)) == []
        assert await next_access_deadline(s) == end


async def test_extending_schedules_a_new_reminder(world: World) -> None:
    await give(world, world.hank, NOW + timedelta(days=1))
    async with world.session() as s:
        assert len(await due_access_reminders(s, now=NOW + timedelta(hours=20))) == 1
        await s.commit()
    later = NOW + timedelta(hours=20)
    await give(world, world.hank, NOW + timedelta(days=30), at=later)
    hank = await account(world, world.hank)
    assert hank.access_remind_at == NOW + timedelta(days=30) - timedelta(hours=72)


async def test_expiry_suspends_shows_expired_audits_and_happens_once(world: World) -> None:
    end = NOW + timedelta(days=7)
    await give(world, world.hank, end)
    async with world.session() as s:
        assert await expire_due_access(s, now=end - timedelta(seconds=1)) == []
        [gone] = await expire_due_access(s, now=end)
        await s.commit()
    assert (gone.account_id, gone.holder_id, gone.owner_id, gone.shop_id) == (
        world.hank, HANK, OLIVIA, world.shop_id)
    hank = await account(world, world.hank)
    assert hank.status == AccountStatus.SUSPENDED.value and hank.expired_at == end
    assert account_state(hank) == AccountState.EXPIRED
    assert account_state(await account(world, world.mia)) == AccountState.AUTHORIZED
    async with world.session() as s:
        [event] = await events(s, world.shop_id, "account.expired")
        assert event.actor_id is None and event.detail["nickname"] == "Hank"
        assert await expire_due_access(s, now=end + timedelta(days=1)) == []
        assert await next_access_deadline(s) is None


async def test_after_a_restart_past_the_end_the_account_expires_once(
    world: World, engine: AsyncEngine,
) -> None:
    end = NOW + timedelta(days=1)
    await give(world, world.hank, end)
    fresh = db.create_engine(engine.url.render_as_string(hide_password=False))
    try:
        async with db.sessionmaker(fresh)() as s:  # a new process, two days on
            assert await next_access_deadline(s) == NOW + timedelta(hours=16)
            late = NOW + timedelta(days=2)
            assert await due_access_reminders(s, now=late) == []  # too late to remind
            assert [n.account_id for n in await expire_due_access(s, now=late)] == [world.hank]
            await s.commit()
            assert await expire_due_access(s, now=late) == []
    finally:
        await fresh.dispose()


async def test_an_expired_account_given_a_new_end_is_authorized_again(world: World) -> None:
    await give(world, world.hank, NOW + timedelta(days=1))
    async with world.session() as s:
        await expire_due_access(s, now=NOW + timedelta(days=1))
        await s.commit()
    async with world.session() as s:
        change = await set_access(s, policy=LIFE, shop_id=world.shop_id, actor_id=OLIVIA,
                                  account_id=world.hank, until=NOW + timedelta(days=31),
                                  now=NOW + timedelta(days=1))
        await s.commit()
    assert change.resumed and change.before == NOW + timedelta(days=1)
    hank = await account(world, world.hank)
    assert hank.status == AccountStatus.AUTHORIZED.value and hank.expired_at is None
    async with world.session() as s:
        event = (await events(s, world.shop_id, "account.access_until"))[-1]
        assert event.detail["resumed"] is True


async def test_an_account_resumed_by_hand_past_its_end_expires_again(world: World) -> None:
    await give(world, world.hank, NOW + timedelta(days=1))
    late = NOW + timedelta(days=2)
    async with world.session() as s:  # suspended by hand before its end: not expired
        await set_suspended(s, shop_id=world.shop_id, actor_id=OLIVIA, account_id=world.hank,
                            suspended=True, now=NOW)
        await s.commit()
    async with world.session() as s:
        assert await expire_due_access(s, now=late) == []
        await set_suspended(s, shop_id=world.shop_id, actor_id=OLIVIA, account_id=world.hank,
                            suspended=False, now=late)
        await s.commit()
    async with world.session() as s:
        deadline = await next_access_deadline(s)
        assert deadline is not None and deadline <= late  # due at once
        assert [n.account_id for n in await expire_due_access(s, now=late)] == [world.hank]


async def test_resuming_an_expired_account_is_refused_until_it_is_extended(
    world: World,
) -> None:
    await give(world, world.hank, NOW + timedelta(days=1))
    late = NOW + timedelta(days=2)
    async with world.session() as s:
        await expire_due_access(s, now=late)
        await s.commit()
    async with world.session() as s:
        with pytest.raises(DomainError) as refused:
            await set_suspended(s, shop_id=world.shop_id, actor_id=OLIVIA,
                                account_id=world.hank, suspended=False, now=late)
        assert refused.value.key == "account_expired_extend_first"
        await s.rollback()
    hank = await account(world, world.hank)
    assert account_state(hank) == AccountState.EXPIRED
    assert [e.action for e in await events_of(world, "account.resumed")] == []
    await give(world, world.hank, late + timedelta(days=7), at=late)
    assert account_state(await account(world, world.hank)) == AccountState.AUTHORIZED


async def events_of(w: World, action: str) -> list[object]:
    async with w.session() as s:
        return list(await events(s, w.shop_id, action))


# --- activity and time zone -------------------------------------------------------------------


def test_last_activity_is_kept_to_the_hour() -> None:
    row = SubAccount(shop_id=1, phone="+1", holder_id=MIA, nickname="Mia", role_id=1,
                     created_at=NOW, updated_at=NOW)
    assert record_activity(row, now=NOW) and row.last_activity_at == NOW
    assert not record_activity(row, now=NOW + timedelta(minutes=59))
    assert record_activity(row, now=NOW + timedelta(hours=1))
    assert row.last_activity_at == NOW + timedelta(hours=1)


async def test_the_shop_time_zone(world: World) -> None:
    async with world.session() as s:
        with pytest.raises(DomainError) as caught:
            await set_time_zone(s, shop_id=world.shop_id, owner_id=OLIVIA,
                                time_zone="Mars/Olympus", now=NOW)
        assert caught.value.key == "time_zone_unknown"
        with pytest.raises(DomainError) as caught:
            await set_time_zone(s, shop_id=world.shop_id, owner_id=HANK,
                                time_zone="Asia/Shanghai", now=NOW)
        assert caught.value.key == "no_shop"
        await set_time_zone(s, shop_id=world.shop_id, owner_id=OLIVIA,
                            time_zone="Asia/Shanghai", now=NOW)
        await s.commit()
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.time_zone == "Asia/Shanghai"
        [event] = await events(s, world.shop_id, "shop.time_zone")
        assert event.detail == {"before": "UTC", "after": "Asia/Shanghai"}
