"""Fixtures: a migrated database (SQLite always, PostgreSQL with TEST_DATABASE_URL), the real
Application over a fake Bot API, a manual clock, and the people who talk to the bot."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from bot import db
from bot.app import build_application
from bot.config import Settings, load_settings
from models.clock import ManualClock
from tests.fake_api import FakeBotApi, FakeRequest
from tests.harness import Harness, Person

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
PG_SKIP = "PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1/test)"


def _normalise(url: str) -> str:
    from bot.config import DatabaseSettings

    return DatabaseSettings(url=url).url


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
    base = make_url(_normalise(PG_URL))
    name = f"subaccount_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(statement: str) -> bool:
        engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
            return True
        except DBAPIError:
            return False
        finally:
            await engine.dispose()

    if asyncio.run(admin(f"CREATE DATABASE {name}")):
        url = base.set(database=name).render_as_string(hide_password=False)
        db.migrate_sync(url)
        yield url
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
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
