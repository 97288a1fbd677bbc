"""Alembic builds the whole schema on an empty database, and it matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from bot import db
from tests.support.db import PG_URL, admin, head_revision, requires_pg, scratch_name, server_url

TABLES = {"app_user", "shop", "phone_binding", "role", "sub_account", "verification_code",
          "audit_event", "draft", "alembic_version", "code_phone_lock", "phone_lookup",
          "service_settings", "service_agent", "service_group", "service_group_member",
          "service_entry", "service_conversation", "service_message", "service_rating",
          "owner_transfer", "review_round", "review_item", "app_setting", "outbox"}


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, SQLModel.metadata))


async def _check(url: str) -> None:
    await db.migrate(url)
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert names == TABLES
        assert await conn.run_sync(_diff) == []
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert version == head_revision()
    await engine.dispose()
    await db.migrate(url)  # running it again is a no-op


async def test_upgrade_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh/bot.db"
    await _check(url)
    assert (tmp_path / "fresh" / "bot.db").exists()


@requires_pg
async def test_upgrade_on_an_empty_postgresql_database() -> None:
    base = server_url(PG_URL)
    name = scratch_name("subaccount_migration_check")
    await admin(base, f"CREATE DATABASE {name}")
    try:
        await _check(base.set(database=name).render_as_string(hide_password=False))
    finally:
        await admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
