"""Migration 0006 on a database with data (SQLite, and PostgreSQL with TEST_DATABASE_URL):
shops and sub-accounts survive, ``code_id`` may be NULL afterwards, a shop keeps one owner
binding, and the downgrade goes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bot import db
from tests.support.db import PG_URL, admin, requires_pg, scratch_name, server_url

T = datetime(2026, 1, 1)
#: the revision 0006 follows
REVISION_BEFORE = "0004"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_pg)])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
        db.ensure_sqlite_dir(url)
        yield url
        return
    base = server_url(PG_URL)
    name = scratch_name("subaccount_lifecycle_migration")
    await admin(base, f"CREATE DATABASE {name}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _to(url: str, revision: str, *, down: bool = False) -> None:
    run = command.downgrade if down else command.upgrade
    await asyncio.to_thread(run, db.alembic_config(url), revision)


async def _shop_with_hank(conn: AsyncConnection) -> None:
    for statement in (
        "INSERT INTO app_user (id, phone, first_name, created_at) VALUES "
        "(1, '+8613800138000', 'Olivia', :t), (2, '+8613900139000', 'Hank', :t)",
        "INSERT INTO shop (id, name, owner_id, max_sub_accounts, created_at) "
        "VALUES (1, 'Tea House', 1, 50, :t)",
        "INSERT INTO phone_binding (phone, shop_id, kind, created_at) VALUES "
        "('+8613800138000', 1, 'owner', :t), ('+8613900139000', 1, 'sub', :t)",
        "INSERT INTO role (id, shop_id, name, name_key, description, modules, created_at, "
        "updated_at) VALUES (1, 1, 'Ops', 'ops', '', '[\"home\"]', :t, :t)",
        "INSERT INTO verification_code (id, shop_id, owner_id, phone, salt, code_hash, status, "
        "attempts, created_at, expires_at, delivery) VALUES (1, 1, 1, '+8613900139000', '00', "
        "'00', 'used', 0, :t, :t, 'delivered')",
        "INSERT INTO sub_account (id, shop_id, phone, holder_id, nickname, role_id, im_enabled, "
        "status, code_id, created_at, updated_at) VALUES (1, 1, '+8613900139000', 2, 'Hank', 1, "
        "false, 'authorized', 1, :t, :t)",
    ):
        await conn.execute(text(statement), {"t": T})


async def test_upgrade_keeps_the_data_and_downgrade_goes_back(empty_url: str) -> None:
    await _to(empty_url, REVISION_BEFORE)
    engine = create_async_engine(empty_url)
    try:
        async with engine.begin() as conn:
            await _shop_with_hank(conn)
        await _to(empty_url, "0006")
        async with engine.begin() as conn:
            row = (await conn.execute(text(
                "SELECT nickname, code_id, access_until, expired_at, last_activity_at "
                "FROM sub_account"))).one()
            assert tuple(row) == ("Hank", 1, None, None, None)
            shop = (await conn.execute(text(
                "SELECT review_days, review_no_response, review_due_at, time_zone FROM shop"
            ))).one()
            assert tuple(shop) == (None, None, None, None)
            # a former owner's sub-account has no code
            await conn.execute(text("DELETE FROM sub_account"))
            await conn.execute(text(
                "INSERT INTO sub_account (id, shop_id, phone, holder_id, nickname, role_id, "
                "im_enabled, status, code_id, created_at, updated_at) VALUES (2, 1, "
                "'+8613900139000', 2, 'Hank', 1, false, 'authorized', NULL, :t, :t)"), {"t": T})
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text(
                    "UPDATE phone_binding SET kind = 'owner' WHERE phone = '+8613900139000'"))
        await _to(empty_url, REVISION_BEFORE, down=True)
        async with engine.connect() as conn:  # a row without a code cannot stay
            assert (await conn.execute(text("SELECT count(*) FROM sub_account"))).scalar() == 0
        await _to(empty_url, "head")
    finally:
        await engine.dispose()
