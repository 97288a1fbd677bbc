"""Scheduler scale: 100,000 pending codes, restart reconciliation, and how late expiry fires.

* Issuing: ``models.codes.issue_code`` for distinct phones, ``batch`` codes per transaction, by
  a number of shops, with a policy whose caps never bite (1-hour TTL: every code is still
  pending when the bot "restarts").
* Reconcile: a fresh subprocess (``benchmarks.reconcile_child``) builds a NEW Application over
  the database and runs its start-up path, ``application.post_init(application)``; it reports
  the time and its peak RSS. Run once at the real time (nothing due: the 100k pending codes are
  planned), and once "later" (a manual clock past the first deadlines: the catch-up of codes that
  fell due while the bot was down — expired, owners told).
* Lateness: the real ``SystemClock`` and the real running ``JobQueue``; codes issued one by one
  as ``/newaccount`` does (issue, commit, ``schedule_expiry``) with deadlines spread over 1–5 s;
  lateness = when the owner's "expired" notice is sent minus the code's ``expires_at``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from benchmarks.common import Percentiles, TimedApi, production_settings
from bot import db
from bot.app import build_application
from bot.localapi import LocalRequest as FakeRequest
from handlers.expiry import schedule_expiry
from models import codes
from models.clock import SystemClock
from models.policy import Policy
from models.shops import create_shop
from models.tables import CodeStatus, VerificationCode
from models.users import link_phone, touch_user

ISSUE_TTL = 3600  # every issued code stays pending for the rest of the run


def generous(policy: Policy, ttl: int = ISSUE_TTL) -> Policy:
    """The production policy with caps that never bite and a long TTL."""
    return dataclasses.replace(policy, code_ttl_seconds=ttl, resend_cooldown_seconds=0,
                               codes_per_phone_per_hour=100)


async def make_owners(sessions: async_sessionmaker[AsyncSession], first_id: int, count: int,
                      phone_prefix: str) -> list[tuple[int, int]]:
    """``count`` owners, each with a linked phone and a shop: (owner id, shop id)."""
    now = SystemClock().now()
    made = []
    async with sessions() as session:
        for k in range(count):
            user, _, _ = await touch_user(session, first_id + k, first_name=f"Owner {k}",
                                          username=None, language_code="en",
                                          default_locale="en", now=now)
            await link_phone(session, user, f"{phone_prefix}{k:06d}")
            shop = await create_shop(session, user, f"Bench shop {k}", max_sub_accounts=50, now=now)
            made.append((user.id, shop.id or 0))
        await session.commit()
    return made


@dataclass
class Issued:
    codes: int
    batch: int
    shops: int
    seconds: float


async def issue_pending(database_url: str, total: int, *, batch: int = 1000,
                        shops: int = 100, progress: bool = True) -> Issued:
    """``total`` pending codes through ``issue_code``, ``batch`` per transaction."""
    settings = production_settings(database_url)
    engine = db.create_engine(settings.database.url)
    sessions = db.sessionmaker(engine)
    policy = generous(settings.policy())
    owners = await make_owners(sessions, 40_000_000, shops, "+8615000")
    clock = SystemClock()
    start = time.perf_counter()
    issued = 0
    while issued < total:
        async with sessions() as session:
            for _ in range(min(batch, total - issued)):
                owner_id, shop_id = owners[issued % len(owners)]
                await codes.issue_code(session, policy, shop_id=shop_id, owner_id=owner_id,
                                       role_id=None, phone=f"+86137{issued:08d}", now=clock.now())
                issued += 1
            await session.commit()
        if progress and issued % (batch * 20) == 0:
            print(f"    … {issued:,} issued ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    await engine.dispose()
    return Issued(total, min(batch, total), shops, seconds)


async def nth_deadline(database_url: str, n: int) -> datetime:
    """The ``n``-th earliest deadline among pending codes (1-based)."""

    async def work(session: AsyncSession) -> datetime:
        result = await session.exec(
            select(VerificationCode.expires_at)
            .where(VerificationCode.status == CodeStatus.PENDING.value)
            .order_by(col(VerificationCode.expires_at)).offset(n - 1).limit(1)
        )
        return result.one()

    return await db.in_session(production_settings(database_url).database.url, work)


def reconcile_in_subprocess(database_url: str, now: datetime | None = None) -> dict[str, float]:
    """Run ``benchmarks.reconcile_child`` and return what it measured."""
    command = [sys.executable, "-m", "benchmarks.reconcile_child", database_url]
    if now is not None:
        command += ["--now", now.isoformat()]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reconcile child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


@dataclass
class Lateness(Percentiles):
    codes: int
    notices: int
    lateness: list[float]  # seconds, one per code whose notice arrived
    pending_meanwhile: int

    def samples(self) -> list[float]:
        return self.lateness

    @property
    def max_ms(self) -> float:
        return max(self.lateness, default=float("nan")) * 1000


async def expiry_lateness(database_url: str, count: int = 200, *, spread: tuple[float, float] = (1, 5),
                          patience: float = 15) -> Lateness:
    """Codes with deadlines spread over ``spread`` seconds; when does each owner hear of it?"""
    settings = production_settings(database_url)
    api = TimedApi()
    app = build_application(settings, request=FakeRequest(api), get_updates_request=FakeRequest(api),
                            rate_limit=False)  # the real SystemClock
    deps = app.bot_data["deps"]
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    await app.start()
    try:
        owners = await make_owners(deps.sessions, 50_000_000, count, "+8615100")
        async with deps.sessions() as session:
            pending = (await session.exec(
                select(func.count()).select_from(VerificationCode)
                .where(VerificationCode.status == CodeStatus.PENDING.value))).one()
        deadlines: dict[int, float] = {}
        low, high = spread
        for k, (owner_id, shop_id) in enumerate(owners):
            wanted = low + (high - low) * k / max(1, count - 1)
            ttl = math.ceil(wanted)
            real_now = SystemClock().now()
            # created a fraction of a second "earlier" so that the TTL is exactly ``wanted``
            now = real_now - timedelta(seconds=ttl - wanted)
            async with deps.sessions() as session:
                issued = await codes.issue_code(
                    session, generous(deps.policy, ttl), shop_id=shop_id, owner_id=owner_id,
                    role_id=None, phone=f"+86136{k:08d}", now=now,
                )
                await session.commit()
            schedule_expiry(app.job_queue, issued.code.expires_at)  # as /newaccount does
            deadlines[owner_id] = issued.code.expires_at.replace(tzinfo=UTC).timestamp()
        give_up = max(deadlines.values()) + patience
        while time.time() < give_up:
            told = {chat for chat, _at, _text in api.sent_at if chat in deadlines}
            if len(told) == len(deadlines):
                break
            await asyncio.sleep(0.05)
        first_notice: dict[int, float] = {}
        for chat, at, _text in api.sent_at:
            if chat in deadlines and chat not in first_notice:
                first_notice[chat] = at
        late = [first_notice[c] - deadlines[c] for c in deadlines if c in first_notice]
    finally:
        await app.stop()
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
    return Lateness(count, len(late), late, int(pending))
