"""Helpers for the customer-service domain tests: a shop with staff written straight to the
database, agents, groups and entries made through the domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from models.service.agents import enroll_agent, set_status
from models.service.entries import create_entry
from models.service.groups import add_member, create_group
from models.service.policy import ServicePolicy
from models.service.settings import update_settings
from models.tables import PhoneBinding, Role, Shop, SubAccount, User, VerificationCode

NOW = datetime(2026, 3, 2, 9, 0, 0)
POLICY = ServicePolicy()
OWNER_ID = 1000


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.sessionmaker(engine)


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with db.sessionmaker(engine)() as s:
        yield s


@dataclass
class World:
    """Tea House, its staff (user id → agent id) and its entries (name → token)."""

    shop: Shop
    role_id: int
    shop_id: int
    owner_id: int
    agents: dict[int, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    clock: list[datetime] = field(default_factory=lambda: [NOW])

    def now(self) -> datetime:
        return self.clock[0]

    def advance(self, seconds: float) -> datetime:
        self.clock[0] += timedelta(seconds=seconds)
        return self.clock[0]


async def add_user(session: AsyncSession, uid: int, name: str = "", phone: str | None = None
                   ) -> User:
    user = await session.get(User, uid)
    if user is None:
        user = User(id=uid, first_name=name or f"U{uid}", phone=phone, locale="en",
                    created_at=NOW)
        session.add(user)
        await session.flush()
    return user


async def make_shop(session: AsyncSession, owner_id: int = OWNER_ID, name: str = "Tea House"
                    ) -> World:
    phone = f"+86138{owner_id:08d}"
    await add_user(session, owner_id, "Olivia", phone)
    shop = Shop(name=name, owner_id=owner_id, created_at=NOW)
    session.add(shop)
    await session.flush()
    session.add(PhoneBinding(phone=phone, shop_id=shop.id or 0, kind="owner", created_at=NOW))
    role = Role(shop_id=shop.id or 0, name="Customer service", name_key="customer service",
                modules=["customer_service"], created_at=NOW, updated_at=NOW)
    session.add(role)
    await session.flush()
    await session.commit()
    return World(shop=shop, role_id=role.id or 0, shop_id=shop.id or 0, owner_id=owner_id)


async def add_staff(session: AsyncSession, world: World, uid: int, *, im: bool = True,
                    enroll: bool = True, online: bool = True, cap: int | None = None) -> int:
    """A sub-account (IM on) for user ``uid``, enrolled as an agent and online; its agent id."""
    phone = f"+86139{uid:08d}"
    await add_user(session, uid, f"Agent{uid}", phone)
    session.add(PhoneBinding(phone=phone, shop_id=world.shop_id, kind="sub", created_at=NOW))
    code = VerificationCode(shop_id=world.shop_id, owner_id=world.owner_id,
                            role_id=world.role_id, phone=phone, salt="00", code_hash="0" * 64,
                            status="used", created_at=NOW, expires_at=NOW, holder_id=uid)
    session.add(code)
    await session.flush()
    session.add(SubAccount(shop_id=world.shop_id, phone=phone, holder_id=uid,
                           nickname=f"Agent{uid}", role_id=world.role_id,
                           im_enabled=im, code_id=code.id or 0, created_at=NOW, updated_at=NOW))
    await session.flush()
    if not enroll:
        await session.commit()
        return 0
    agent = await enroll_agent(session, POLICY, shop_id=world.shop_id, user_id=uid,
                               actor_id=world.owner_id, now=world.now())
    agent_id = agent.id or 0
    if cap is not None:
        agent.cap = cap
        session.add(agent)
    if online:
        await set_status(session, POLICY, shop_id=world.shop_id, agent_id=agent_id,
                         status="online", actor_id=uid, now=world.now())
    await session.commit()
    world.agents[uid] = agent_id
    return agent_id


async def add_group(session: AsyncSession, world: World, name: str,
                    members: dict[int, int]) -> int:
    """A group of the given agents (user id → weight); its id."""
    group = await create_group(session, shop_id=world.shop_id, actor_id=world.owner_id,
                               name=name, now=world.now())
    for uid, weight in members.items():
        await add_member(session, shop_id=world.shop_id, actor_id=world.owner_id,
                         group_id=group.id or 0, agent_id=world.agents[uid], weight=weight,
                         now=world.now())
    await session.commit()
    world.groups[name] = group.id or 0
    return group.id or 0


async def add_entry(session: AsyncSession, world: World, name: str, group: str | None) -> str:
    _entry, token = await create_entry(
        session, shop_id=world.shop_id, actor_id=world.owner_id, name=name,
        group_id=world.groups[group] if group else None, now=world.now())
    await session.commit()
    world.tokens[name] = token
    return token


async def configure(session: AsyncSession, world: World, **changes: object) -> None:
    await update_settings(session, POLICY, shop_id=world.shop_id,
                          actor_id=world.owner_id, now=world.now(), **changes)
    await session.commit()
