"""Fixtures: a migrated database (SQLite always, PostgreSQL with TEST_DATABASE_URL), the real
Application over a fake Bot API, a manual clock, and the people who talk to the bot."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from bot.app import build_application
from bot.config import Settings, load_settings
from bot.localapi import LocalBotApi as FakeBotApi
from bot.localapi import LocalRequest as FakeRequest
from models.accounts import confirm_sub_account
from models.clock import ManualClock
from models.codes import VerifyOutcome, issue_code, verify_code
from models.roles import create_role, list_roles
from models.shops import owned_shop
from models.tables import PhoneBinding, Role, SubAccount, User, VerificationCode
from tests import scratch_db
from tests.harness import Harness, Person

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
PG_SKIP = "PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1/test)"


requires_pg = pytest.mark.skipif(not PG_URL, reason=PG_SKIP)


def pytest_report_header() -> str:
    return f"PostgreSQL: {'on (TEST_DATABASE_URL)' if PG_URL else 'off — ' + PG_SKIP}"

OWNER = Person(1001, "Olivia", "en", "olivia")
HOLDER = Person(2002, "Hank", "en", "hank")
OTHER_OWNER = Person(3003, "Oscar", "en", "oscar")
STRANGER = Person(4004, "Sam", "en")
OWNER_PHONE = "+8613800138000"
HOLDER_PHONE = "+8613900139000"
OTHER_PHONE = "+8613700137000"
STRANGER_PHONE = "+8613600136000"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated with Alembic; every test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    db.migrate_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, migrated once.

    It is created beside the one TEST_DATABASE_URL names (so that runs in parallel never share
    tables) and dropped at the end; without CREATEDB rights the named database is used itself.
    """
    base = scratch_db.server_url(PG_URL)
    name = scratch_db.scratch_name("subaccount_test")
    try:
        asyncio.run(scratch_db.admin(base, f"CREATE DATABASE {name}"))
        created = True
    except DBAPIError:
        created = False
    if created:
        url = base.set(database=name).render_as_string(hide_password=False)
        db.migrate_sync(url)
        yield url
        asyncio.run(scratch_db.admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        return

    async def reset() -> None:
        engine = create_async_engine(base)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())
    url = base.render_as_string(hide_password=False)
    db.migrate_sync(url)
    yield url


async def truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    names = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a fresh SQLite file, or the truncated PostgreSQL one."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "bot.db"
        shutil.copy(template, target)
        yield f"sqlite+aiosqlite:///{target}"
    else:
        url: str = request.getfixturevalue("pg_migrated")
        asyncio.run(truncate_all(url))
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        environ={"BOT_TOKEN": "123456:TEST-TOKEN", "DATABASE_URL": database_url}
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(settings.database.url)
    yield engine
    await engine.dispose()


@pytest.fixture
def api() -> FakeBotApi:
    return FakeBotApi()


@pytest.fixture
async def harness(
    settings: Settings, engine: AsyncEngine, api: FakeBotApi, clock: ManualClock
) -> AsyncIterator[Harness]:
    """The real Application, started, over the fake Bot API."""
    h = await start_harness(settings, engine, api, clock)
    yield h
    await stop_harness(h)


async def start_harness(
    settings: Settings, engine: AsyncEngine, api: FakeBotApi, clock: ManualClock
) -> Harness:
    app = build_application(
        settings, engine=engine, clock=clock, request=FakeRequest(api),
        get_updates_request=FakeRequest(api), rate_limit=False,
    )
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    await app.start()
    return Harness(app, api, clock)


async def stop_harness(h: Harness) -> None:
    await h.app.stop()
    await h.app.shutdown()


async def onboard(h: Harness, who: Person, phone: str) -> None:
    """``who`` sends /start and shares their own phone."""
    await h.command(who, "/start")
    await h.contact(who, phone)


async def make_owner(h: Harness, who: Person = OWNER, phone: str = OWNER_PHONE,
                     shop: str = "Tea House") -> None:
    """``who`` links their phone and creates a shop."""
    await onboard(h, who, phone)
    await h.command(who, "/newshop")
    await h.text(who, shop)


async def standard_setup(h: Harness) -> None:
    """Olivia owns Tea House; Hank has linked his phone."""
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)


async def open_new_role(h: Harness) -> None:
    """The owner opens /roles and taps New role: the preset step of role creation."""
    await h.command(OWNER, "/roles")
    await h.click(OWNER, "New role")


# --- /newaccount ------------------------------------------------------------------------------

CODE = re.compile(r"Verification code: (\d{6})")


async def add_role(h: Harness, owner: Person = OWNER, name: str = "Customer service",
                   modules: tuple[str, ...] = ("home", "orders", "customer_service")) -> int:
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, owner.id)
        assert shop is not None
        role = await create_role(session, deps.policy, shop_id=shop.id, actor_id=owner.id,
                                 name=name, description="", modules=modules, now=h.clock.now())
        await session.commit()
        assert role.id is not None
        return role.id


def holder_code(h: Harness, who: Person = HOLDER) -> str:
    for message in reversed(h.messages(who)):
        found = CODE.search(message.text)
        if found:
            return found.group(1)
    raise AssertionError(f"no code in {who.first_name}'s chat")


async def to_code_step(h: Harness, *, owner: Person = OWNER, phone: str = HOLDER_PHONE) -> int:
    """Owner and holder onboarded, role chosen, phone entered: the owner waits for the code."""
    role_id = await add_role(h, owner)
    await h.command(owner, "/newaccount")
    await h.press(owner, f"na:role:{role_id}")
    await h.text(owner, phone)
    return role_id


async def to_confirm_step(h: Harness, owner: Person = OWNER, holder: Person = HOLDER) -> None:
    await h.text(owner, holder_code(h, holder))
    await h.click(owner, "Use “")
    await h.press(owner, "na:im:1")


# --- sub-accounts made through the domain -----------------------------------------------------

OPERATIONS_MODULES = ("home", "products", "orders")
SERVICE = ("home", "orders", "after_sales", "customer_service")


async def ensure_role(h: Harness, owner: Person, name: str,
                      modules: Iterable[str] = OPERATIONS_MODULES) -> int:
    """The id of the owner's role ``name``, created if missing."""
    async with h.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, owner.id)
        assert shop is not None and shop.id is not None
        for role, _ in await list_roles(session, shop.id):
            if role.name == name:
                return role.id or 0
    return await add_role(h, owner, name, tuple(modules))


async def add_sub_account(
    h: Harness,
    holder: Person,
    phone: str,
    *,
    owner: Person = OWNER,
    role: str = "Operations",
    modules: Iterable[str] = OPERATIONS_MODULES,
    nickname: str | None = None,
    im: bool = False,
    onboarded: bool = False,
) -> int:
    """Bind ``holder`` (phone linked through the harness) as a sub-account of ``owner``'s shop."""
    if not onboarded:
        await onboard(h, holder, phone)
    role_id = await ensure_role(h, owner, role, modules)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, owner.id)
        assert shop is not None and shop.id is not None
        issued = await issue_code(session, deps.policy, shop_id=shop.id, owner_id=owner.id,
                                  role_id=role_id, phone=phone, now=h.clock.now())
        result = await verify_code(session, deps.policy, code_id=issued.code.id or 0,
                                   owner_id=owner.id, entered=issued.plain, now=h.clock.now())
        assert result.outcome == VerifyOutcome.OK
        account = await confirm_sub_account(
            session, shop=shop, owner_id=owner.id, code_id=issued.code.id or 0,
            role_id=role_id, nickname=nickname or holder.first_name, im_enabled=im,
            now=h.clock.now(),
        )
        await session.commit()
        return account.id or 0


async def setup_hank(h: Harness, **kw: Any) -> int:
    """Olivia's shop Tea House with Hank as an Operations sub-account."""
    await make_owner(h)
    return await add_sub_account(h, HOLDER, HOLDER_PHONE, **kw)


async def open_hank(h: Harness) -> None:
    """The owner opens Hank's account from /accounts."""
    await h.command(OWNER, "/accounts")
    await h.click(OWNER, "Hank")


async def write_sub_account(session: AsyncSession, role: Role, holder_id: int, phone: str, *,
                            owner_id: int, now: datetime) -> None:
    """A sub-account row "Hank" using ``role``, written straight to the database (as the
    provisioning flow would leave it, with a used code)."""
    if await session.get(User, holder_id) is None:
        session.add(User(id=holder_id, phone=phone, first_name="Hank", created_at=now))
    session.add(PhoneBinding(phone=phone, shop_id=role.shop_id, kind="sub", created_at=now))
    code = VerificationCode(
        shop_id=role.shop_id, owner_id=owner_id, role_id=role.id, phone=phone, salt="00",
        code_hash="0" * 64, status="used", created_at=now,
        expires_at=now + timedelta(minutes=5), holder_id=holder_id,
    )
    session.add(code)
    await session.flush()
    session.add(SubAccount(
        shop_id=role.shop_id, phone=phone, holder_id=holder_id, nickname="Hank",
        role_id=role.id or 0, code_id=code.id or 0, created_at=now, updated_at=now,
    ))
    await session.commit()
