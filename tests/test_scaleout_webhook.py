"""/healthz and the webhook server of our own; the SQLite single-process lock; claims of due
duties across processes (SPEC §10)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from telegram.ext import Application
from tornado.httpserver import HTTPServer

from bot import db
from bot.localapi import LocalBotApiServer
from bot.webhook import HEALTH_PATH, SECRET_HEADER, database_answers, derive_secret, web_app
from handlers.context import Deps
from models import claims, codes
from models.clock import ManualClock
from models.settings_store import keep
from tests.fake_server import ROOT, bot_env, free_port, running_bot
from tests.harness import Harness
from tests.support.people import OWNER
from tests.test_webhook import start_update

SECRET = "hook-secret_for-tests"


def only_postgres(url: str) -> None:
    if db.sqlite_path(url) is not None:
        pytest.skip("several processes: PostgreSQL only (SQLite serves one process)")


async def serving(app: Application, deps: Deps) -> tuple[HTTPServer, str]:  # type: ignore[type-arg]
    port = free_port()
    server = web_app(app, SECRET, "hook", lambda: database_answers(deps)).listen(
        port, address="127.0.0.1")
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def served(harness: Harness) -> AsyncIterator[tuple[Harness, str]]:
    server, base = await serving(harness.app, harness.app.bot_data["deps"])
    yield harness, base
    server.stop()


async def test_healthz_answers_200_and_the_hook_checks_the_secret(
    served: tuple[Harness, str]
) -> None:
    h, base = served
    async with httpx.AsyncClient(timeout=10) as client:
        health = await client.get(base + HEALTH_PATH)
        assert (health.status_code, health.text) == (200, "ok\n")
        body = start_update(1, OWNER)
        assert (await client.post(base + "/hook", json=body)).status_code == 403
        wrong = await client.post(base + "/hook", json=body, headers={SECRET_HEADER: "nope"})
        assert wrong.status_code == 403
        bad = await client.post(base + "/hook", content=b"{", headers={SECRET_HEADER: SECRET})
        assert bad.status_code == 400
        assert h.api.chat(OWNER.id) == []  # nothing refused reached the bot
        ok = await client.post(base + "/hook", json=body, headers={SECRET_HEADER: SECRET})
        assert ok.status_code == 200
    # answered once handled: what the bot sent is there already
    assert "Share my phone number" in h.last(OWNER).text


async def test_healthz_answers_503_when_the_database_does_not(harness: Harness) -> None:
    deps = harness.app.bot_data["deps"]
    down = db.create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/nowhere")
    server, base = await serving(harness.app, replace(deps, sessions=db.sessionmaker(down)))
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            health = await client.get(base + HEALTH_PATH)
        assert health.status_code == 503
        assert "database unavailable" in health.text
    finally:
        server.stop()
        await down.dispose()


async def test_a_second_run_on_the_same_sqlite_file_is_refused_in_one_line(
    tmp_path: Path
) -> None:
    async with LocalBotApiServer() as api, running_bot(tmp_path, api) as first:
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(first.config_path),
            cwd=first.workdir, env=bot_env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 2
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1, err.decode()
        assert lines[0].startswith("subaccount-bot: another subaccount-bot process (pid ")
        assert "SQLite serves one process" in lines[0]
        assert first.process.returncode is None  # the first one goes on
        assert await first.stop() == 0
    assert ROOT.exists()


async def test_the_webhook_secret_seed_is_kept_once_and_keyed(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        sessions = db.sessionmaker(engine)
        now = ManualClock().now()
        async with sessions() as one, sessions() as two:
            first = await keep(one, key="k", make=lambda: "first", now=now)
            second = await keep(two, key="k", make=lambda: "second", now=now)
        assert first == second == "first"
    finally:
        await engine.dispose()
    token = derive_secret("seed", "c" * 32)
    assert token == derive_secret("seed", "c" * 32) != derive_secret("seed", "d" * 32)
    assert len(token) == 43 and "seed" not in token


async def test_two_sessions_expiring_at_once_each_take_other_codes(
    harness: Harness, database_url: str
) -> None:
    """SKIP LOCKED: a second process skips the codes the first is expiring."""
    only_postgres(database_url)
    from tests.support.flows import standard_setup, to_code_step
    from tests.support.people import HOLDER_PHONE

    h = harness
    await standard_setup(h)
    await to_code_step(h)
    deps = h.app.bot_data["deps"]
    h.clock.advance(400)
    async with deps.sessions() as first, deps.sessions() as second:
        won = await codes.expire_due(first, now=h.clock.now())
        assert [c.phone for c in won] == [HOLDER_PHONE]
        assert await codes.expire_due(second, now=h.clock.now()) == []  # skipped, not waiting
        await first.commit()
        assert await codes.expire_due(second, now=h.clock.now()) == []  # already expired


async def test_a_code_is_not_claimed_for_delivery_while_its_owner_has_an_update_in_flight(
    harness: Harness, database_url: str
) -> None:
    only_postgres(database_url)
    from tests.support.flows import standard_setup, to_code_step

    h = harness
    await standard_setup(h)
    await to_code_step(h)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        await session.exec(  # type: ignore[call-overload]
            text("UPDATE verification_code SET delivery = 'queued'"))
        await session.commit()
    async with deps.sessions() as busy, deps.sessions() as claimer:
        assert await claims.users_idle(busy, [OWNER.id])  # as the owner's update holds it
        assert await codes.claim_undelivered(claimer, now=h.clock.now()) == []
        await busy.rollback()
        claimed = await codes.claim_undelivered(claimer, now=h.clock.now())
        assert [c.delivery for c in claimed] == [codes.RESENDING]
        await claimer.commit()
    async with deps.sessions() as again:
        assert await codes.claim_undelivered(again, now=h.clock.now()) == []
