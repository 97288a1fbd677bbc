"""Fixtures only: a migrated database (SQLite always, PostgreSQL with TEST_DATABASE_URL), a
domain session on it, the real Application over the local Bot API, and a manual clock.

Helpers are in ``tests/support`` (people, databases, the Application, domain rows, chat flows).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from bot.config import Settings, load_settings
from bot.localapi import LocalBotApi
from models.clock import ManualClock, SystemClock
from tests.harness import Harness
from tests.support import db as test_db
from tests.support.app import start_harness, stop_harness


def pytest_report_header() -> str:
    on = test_db.PG_URL
    return f"PostgreSQL: {'on (TEST_DATABASE_URL)' if on else 'off — ' + test_db.PG_SKIP}"


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
    base = test_db.server_url(test_db.PG_URL)
    name = test_db.scratch_name("subaccount_test")
    try:
        asyncio.run(test_db.admin(base, f"CREATE DATABASE {name}"))
    except DBAPIError:
        asyncio.run(test_db.reset_schema(base))
        url = base.render_as_string(hide_password=False)
        db.migrate_sync(url)
        yield url
        return
    url = base.set(database=name).render_as_string(hide_password=False)
    db.migrate_sync(url)
    yield url
    asyncio.run(test_db.admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=test_db.requires_pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a fresh SQLite file, or the truncated PostgreSQL one."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "bot.db"
        shutil.copy(template, target)
        yield f"sqlite+aiosqlite:///{target}"
    else:
        url: str = request.getfixturevalue("pg_migrated")
        asyncio.run(test_db.truncate_all(url))
        yield url


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session for domain tests, as the bot makes them (``bot.db``: foreign keys on for
    SQLite, savepoints inside the transaction), on ``database_url`` — SQLite and PostgreSQL."""
    engine = db.create_engine(database_url)
    async with db.sessionmaker(engine)() as s:
        yield s
    await engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    """The next 04:00 UTC (noon in Shanghai): a test's minutes never straddle midnight in UTC or
    in Asia/Shanghai, whatever the time the suite runs at ("today" figures, "yesterday")."""
    now = SystemClock().now()
    start = now.replace(hour=4, minute=0, second=0, microsecond=0)
    return ManualClock(start if start > now else start + timedelta(days=1))


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
def api() -> LocalBotApi:
    return LocalBotApi()


@pytest.fixture
async def harness(
    settings: Settings, engine: AsyncEngine, api: LocalBotApi, clock: ManualClock
) -> AsyncIterator[Harness]:
    """The real Application, started, over the local Bot API."""
    h = await start_harness(settings, engine, api, clock)
    yield h
    await stop_harness(h)
