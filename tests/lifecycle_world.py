"""A shop for the lifecycle's domain tests, made through the domain on a migrated database
(SQLite, and PostgreSQL with TEST_DATABASE_URL): Olivia owns Tea House; Hank and Mia are its
sub-accounts (Operations); Oscar owns Noodle Bar with no staff; Sam has only linked a phone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from models import audit
from models.accounts import confirm_sub_account
from models.codes import issue_code, verify_code
from models.lifecycle.policy import LifecyclePolicy
from models.policy import Policy
from models.roles import create_role
from models.shops import create_shop
from models.tables import AuditEvent, Shop, User

NOW = datetime(2026, 3, 1, 12, 0)
POLICY = Policy(code_secret=b"lifecycle-tests-secret")
LIFE = LifecyclePolicy()
OLIVIA, HANK, MIA, OSCAR, SAM = 1, 2, 3, 4, 5
PHONES = {OLIVIA: "+8613800138000", HANK: "+8613900139000", MIA: "+8613700137000",
          OSCAR: "+8613600136000", SAM: "+8613500135000"}
NAMES = {OLIVIA: "Olivia", HANK: "Hank", MIA: "Mia", OSCAR: "Oscar", SAM: "Sam"}


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    shop_id: int
    other_shop_id: int
    ops_role: int
    service_role: int
    other_role: int
    hank: int
    mia: int

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session


async def _bind(session: AsyncSession, shop: Shop, role_id: int, holder: int) -> int:
    issued = await issue_code(session, POLICY, shop_id=shop.id or 0, owner_id=shop.owner_id,
                              role_id=role_id, phone=PHONES[holder], now=NOW)
    await verify_code(session, POLICY, code_id=issued.code.id or 0, owner_id=shop.owner_id,
                      entered=issued.plain, now=NOW)
    account = await confirm_sub_account(
        session, shop=shop, owner_id=shop.owner_id, code_id=issued.code.id or 0,
        role_id=role_id, nickname=NAMES[holder], im_enabled=holder == MIA, now=NOW)
    return account.id or 0


async def make_world(engine: AsyncEngine) -> World:
    sessions = db.sessionmaker(engine)
    async with sessions() as s:
        for uid, phone in PHONES.items():
            s.add(User(id=uid, phone=phone, first_name=NAMES[uid], locale="en", created_at=NOW))
        await s.flush()
        olivia, oscar = await s.get(User, OLIVIA), await s.get(User, OSCAR)
        assert olivia is not None and oscar is not None
        shop = await create_shop(s, olivia, "Tea House", max_sub_accounts=50, now=NOW)
        other = await create_shop(s, oscar, "Noodle Bar", max_sub_accounts=50, now=NOW)
        roles = []
        for owner_shop, name in ((shop, "Operations"), (shop, "Customer service"),
                                 (other, "Cooks")):
            role = await create_role(s, POLICY, shop_id=owner_shop.id or 0,
                                     actor_id=owner_shop.owner_id, name=name, description="",
                                     modules=["home", "orders"], now=NOW)
            roles.append(role.id or 0)
        hank = await _bind(s, shop, roles[0], HANK)
        mia = await _bind(s, shop, roles[0], MIA)
        await s.commit()
        return World(sessions, shop.id or 0, other.id or 0, roles[0], roles[1], roles[2],
                     hank, mia)


async def actions(session: AsyncSession, shop_id: int) -> list[str]:
    """The shop's audit actions, oldest first."""
    return [e.action for e in reversed(await audit.recent(session, shop_id, limit=500))]


async def events(session: AsyncSession, shop_id: int, action: str) -> list[AuditEvent]:
    return list((await session.exec(
        select(AuditEvent).where(col(AuditEvent.shop_id) == shop_id,
                                 col(AuditEvent.action) == action).order_by(col(AuditEvent.id))
    )).all())


async def until_waiting(engine: AsyncEngine, task: asyncio.Task[Any]) -> None:
    """Return once ``task`` waits for a lock another session holds.

    PostgreSQL: a backend of this database shows ``wait_event_type = 'Lock'`` (polled, bounded:
    the condition, not a delay). SQLite: the waiting writer's BEGIN IMMEDIATE runs on aiosqlite's
    thread once the fast path found the database locked, so the task only needs the event loop a
    few times to get there; it cannot read anything before the other session commits.
    """
    if engine.dialect.name != "postgresql":
        for _ in range(50):
            await asyncio.sleep(0)
        assert not task.done(), "the racing session did not wait"
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60  # bounded by the clock: a loaded machine polls slowly
    async with engine.connect() as conn:
        while loop.time() < deadline:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"))).scalar()
            if waiting:
                return
            # pg_stat_activity is read once per transaction: end it, or every later poll would
            # see the same snapshot, taken before the racing session began to wait
            await conn.rollback()
            assert not task.done(), "the racing session did not wait"
            await asyncio.sleep(0.01)
    # a task left waiting would keep its session's connection busy, and closing the sessions
    # would then wait for each other: cancel it so that the test fails instead of hanging
    task.cancel()
    raise AssertionError("the racing session never waited for the lock")
