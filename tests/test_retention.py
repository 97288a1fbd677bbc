"""Retention (docs/product.md, "Retention and /forget"): the purge in the domain, and the daily
job through the Application."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from bot.config import ConfigError, Settings, load_settings
from bot.localapi import LocalBotApi as FakeBotApi
from bot.scheduler import RETENTION_JOB
from models.clock import ManualClock
from models.retention import Purged, purge_expired
from models.tables import (
    AuditEvent,
    Draft,
    PhoneBinding,
    Role,
    Shop,
    SubAccount,
    User,
    VerificationCode,
)
from tests.harness import Harness, rows
from tests.support.app import start_harness, stop_harness
from tests.support.flows import setup_hank
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, STRANGER

NOW = datetime(2026, 12, 1, 12, 0)
OLD = NOW - timedelta(days=91)
RECENT = NOW - timedelta(days=89)
DAY = 24 * 3600


def _code(shop_id: int, phone: str, status: str, ended: datetime | None, *, owner_id: int = 1,
          holder_id: int | None = None) -> VerificationCode:
    created = (ended or NOW) - timedelta(minutes=5)
    return VerificationCode(
        shop_id=shop_id, owner_id=owner_id, phone=phone, salt="00", code_hash="0" * 64,
        status=status, created_at=created, expires_at=created + timedelta(minutes=5),
        ended_at=ended, holder_id=holder_id,
    )


async def _world(session: AsyncSession) -> dict[str, int]:
    """Owner 1 with a shop; staff 2 (old used code still in use); every kind of row, old and
    recent. Returns the ids the test looks for."""
    session.add_all([
        User(id=1, phone="+8613800138000", first_name="Olivia", created_at=OLD, seen_at=OLD),
        User(id=2, phone="+8613900139000", first_name="Hank", created_at=OLD, seen_at=OLD),
        User(id=3, first_name="Hello-old", created_at=OLD, seen_at=OLD),
        User(id=4, first_name="Hello-recent", created_at=OLD, seen_at=RECENT),
        User(id=5, phone="+8613600136000", first_name="Linked-old", created_at=OLD, seen_at=OLD),
        User(id=6, first_name="Invited-old", created_at=OLD, seen_at=OLD),
        User(id=7, first_name="Hello-never-seen", created_at=OLD),
    ])
    await session.flush()
    shop = Shop(name="Tea House", owner_id=1, created_at=OLD)
    session.add(shop)
    await session.flush()
    shop_id = shop.id or 0
    role = Role(shop_id=shop_id, name="Ops", name_key="ops", modules=["home"], created_at=OLD,
                updated_at=OLD)
    session.add_all([role, PhoneBinding(phone="+8613800138000", shop_id=shop_id, kind="owner",
                                        created_at=OLD),
                     PhoneBinding(phone="+8613900139000", shop_id=shop_id, kind="sub",
                                  created_at=OLD)])
    in_use = _code(shop_id, "+8613900139000", "used", OLD, holder_id=2)
    codes = {
        status: _code(shop_id, "+8613700137000", status, OLD)
        for status in ("used", "expired", "declined", "cancelled", "locked", "superseded")
    }
    recent = _code(shop_id, "+8613700137000", "expired", RECENT)
    pending = _code(shop_id, "+8613700137000", "pending", None)
    pending.created_at, pending.expires_at = OLD, OLD + timedelta(minutes=5)
    invited = _code(shop_id, "+8613500135000", "pending", None, holder_id=6)
    session.add_all([in_use, *codes.values(), recent, pending, invited])
    await session.flush()
    session.add(SubAccount(shop_id=shop_id, phone="+8613900139000", holder_id=2, nickname="Hank",
                           role_id=role.id or 0, code_id=in_use.id or 0, created_at=OLD,
                           updated_at=OLD))
    session.add_all([
        Draft(user_id=1, flow="roles", step="name", data={}, updated_at=OLD),
        Draft(user_id=2, flow="x", step="y", data={}, updated_at=RECENT),
        Draft(user_id=3, flow="onboard", step="phone", data={}, updated_at=RECENT),
        AuditEvent(shop_id=shop_id, actor_id=1, action="shop.created", object_type="shop",
                   created_at=NOW - timedelta(days=366)),
        AuditEvent(shop_id=shop_id, actor_id=1, action="role.created", object_type="role",
                   created_at=NOW - timedelta(days=200)),
    ])
    await session.commit()
    return {"in_use": in_use.id or 0, "recent": recent.id or 0, "pending": pending.id or 0,
            "invited": invited.id or 0}


async def test_purge_deletes_only_what_is_past_retention(engine: AsyncEngine) -> None:
    sessions = db.sessionmaker(engine)
    async with sessions() as session:
        ids = await _world(session)
    async with sessions() as session:
        purged = await purge_expired(session, now=NOW, retention_days=90,
                                     audit_retention_days=365)
        await session.commit()
    assert purged == Purged(codes=6, drafts=1, audit=1, users=2)
    async with sessions() as session:
        codes = sorted(c.id for c in (await session.exec(select(VerificationCode))).all())
        assert codes == sorted(ids.values())  # in use, recent, and live codes stay
        users = sorted(u.id for u in (await session.exec(select(User))).all())
        # the hello-only users not seen for 90 days go (with their draft); the one seen
        # recently, the linked one, the owner, the staff member and the invited one stay
        assert users == [1, 2, 4, 5, 6]
        assert sorted(d.user_id for d in (await session.exec(select(Draft))).all()) == [2]
        audit = (await session.exec(select(AuditEvent))).all()
        assert [a.action for a in audit] == ["role.created"]
    # idempotent: a second run finds nothing
    async with sessions() as session:
        again = await purge_expired(session, now=NOW, retention_days=90,
                                    audit_retention_days=365)
        await session.commit()
    assert again == Purged()


async def test_purge_works_in_batches(engine: AsyncEngine) -> None:
    sessions = db.sessionmaker(engine)
    async with sessions() as session:
        await _world(session)
    seen = Purged()
    passes = 0
    while True:
        async with sessions() as session:
            purged = await purge_expired(session, now=NOW, retention_days=90,
                                         audit_retention_days=365, batch=2)
            await session.commit()
        passes += 1
        assert max(purged.counts().values()) <= 2
        seen = seen + purged
        if not purged.more:
            break
    assert passes == 4 and seen.counts() == {"codes": 6, "drafts": 1, "audit": 1, "users": 2}


async def test_retention_job_runs_daily_by_the_clock(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    job = next(iter(
        harness.app.job_queue.get_jobs_by_name(RETENTION_JOB)))  # type: ignore[union-attr]
    assert job.next_t is not None
    assert job.next_t.replace(tzinfo=None) == harness.clock.now() + timedelta(days=1)
    await setup_hank(harness)
    await harness.command(STRANGER, "/start")  # only says hello (and leaves a draft)
    harness.clock.advance(60 * DAY)
    await harness.command(STRANGER, "/help")  # seen again: kept 90 days from now
    harness.clock.advance(31 * DAY)
    caplog.set_level(logging.INFO, logger="bot.scheduler")
    # the clean-up, and the daily access-review job (the shop's first review is due by now)
    assert await harness.run_due_jobs() == 2
    assert STRANGER.id in [u.id for u in await rows(harness, User)]
    assert await rows(harness, Draft) == []  # its draft was untouched for 91 days
    harness.clock.advance(60 * DAY)
    assert await harness.run_due_jobs() == 2
    assert [u.id for u in await rows(harness, User)] == [OWNER.id, HOLDER.id]
    # the owner's used code is kept while the sub-account uses it; the rest of the shop stays
    assert len(await rows(harness, SubAccount)) == 1
    assert [c.phone for c in await rows(harness, VerificationCode)] == [HOLDER_PHONE]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention")]
    assert lines[-1] == "retention: deleted 0 codes, 0 drafts, 0 audit, 1 users"
    assert all(str(STRANGER.id) not in line and "Sam" not in line for line in lines)
    # and it has planned its next run
    job = next(iter(
        harness.app.job_queue.get_jobs_by_name(RETENTION_JOB)))  # type: ignore[union-attr]
    assert job.next_t is not None
    assert job.next_t.replace(tzinfo=None) == harness.clock.now() + timedelta(days=1)


async def test_retention_runs_at_start_up(
    settings: Settings, engine: AsyncEngine, clock: ManualClock
) -> None:
    h = await start_harness(settings, engine, FakeBotApi(), clock)
    await h.command(STRANGER, "/start")
    await stop_harness(h)
    clock.advance(91 * DAY)
    h = await start_harness(settings, engine, FakeBotApi(), clock)
    try:
        assert await rows(h, User) == [] and await rows(h, Draft) == []
    finally:
        await stop_harness(h)


def test_retention_settings_defaults_and_validation(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings.retention.retention_days == 90
    assert settings.retention.audit_retention_days == 365
    config = tmp_path / "config.toml"
    config.write_text("[retention]\nretention_days = 30\naudit_retention_days = 730\n")
    loaded = load_settings(config, environ={})
    assert (loaded.retention.retention_days, loaded.retention.audit_retention_days) == (30, 730)
    config.write_text("[retention]\nretention_days = 0\n")
    with pytest.raises(ConfigError, match=r"retention\.retention_days"):
        load_settings(config, environ={})
    config.write_text("[retention]\nkeep = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'retention\.keep'"):
        load_settings(config, environ={})


def test_example_config_documents_retention() -> None:
    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text()
    assert "[retention]" in text and "retention_days = 90" in text
    assert "audit_retention_days = 365" in text
    load_settings(Path(__file__).resolve().parent.parent / "config.example.toml", environ={})
