"""Webhook mode: the bot process behind PTB's webhook server, with a secret token."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import load_settings
from bot.localapi import LocalBotApiServer as FakeBotApiServer
from bot.secret_files import webhook_secret, webhook_secret_path
from tests.fake_server import free_port, running_bot, wait_listening
from tests.support.people import OWNER, STRANGER

SECRET = "s3cret_Token-for-tests"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def server() -> AsyncIterator[FakeBotApiServer]:
    async with FakeBotApiServer() as running:
        yield running


def webhook_config(port: int, secret: str = SECRET) -> dict[str, Any]:
    # INFO: at DEBUG, PTB logs each rejected request with the HTTPError's traceback
    return {"telegram": {"mode": "webhook", "webhook": {
        "listen": "127.0.0.1", "port": port, "url": f"http://127.0.0.1:{port}/",
        "path": "hook", "secret_token": secret,
    }}, "logging": {"level": "INFO"}}


def start_update(update_id: int, who: Any) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_700_000_000,
        "chat": {"id": who.id, "type": "private", "first_name": who.first_name},
        "from": who.as_dict(), "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }}


async def test_webhook_accepts_only_the_secret_token(
    tmp_path: Path, server: FakeBotApiServer
) -> None:
    port = free_port()
    async with running_bot(tmp_path, server, webhook_config(port)) as bot:
        hook = server.api.methods("setWebhook")[-1]
        assert hook.params["url"] == f"http://127.0.0.1:{port}/hook"
        assert hook.params["secret_token"] == SECRET
        assert "callback_query" in hook.params["allowed_updates"]
        assert server.api.methods("getUpdates") == []
        await wait_listening(port)

        url = f"http://127.0.0.1:{port}/hook"
        async with httpx.AsyncClient(timeout=10) as client:
            missing = await client.post(url, json=start_update(1, STRANGER))
            wrong = await client.post(url, json=start_update(2, STRANGER),
                                      headers={HEADER: "not-the-secret"})
            mark = server.mark()
            right = await client.post(url, json=start_update(3, OWNER), headers={HEADER: SECRET})
        assert missing.status_code == 403
        assert wrong.status_code == 403
        assert right.status_code == 200

        await server.wait_message(OWNER, "Share my phone number", since=mark)
        sent_to = {c.params["chat_id"] for c in server.api.methods("sendMessage")}
        assert sent_to == {OWNER.id}
        assert bot.rows("SELECT id FROM app_user") == [(OWNER.id,)]
        assert await bot.stop() == 0
    assert "Traceback" not in bot.log()
    assert SECRET not in bot.log()


async def test_a_generated_secret_is_kept_beside_the_database(
    tmp_path: Path, server: FakeBotApiServer
) -> None:
    port = free_port()
    async with running_bot(tmp_path, server, webhook_config(port, secret="")) as bot:
        secret_file = bot.db_path.parent / "webhook_secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        secret = secret_file.read_text().strip()
        assert len(secret) >= 43
        assert server.api.methods("setWebhook")[-1].params["secret_token"] == secret
        await wait_listening(port)
        async with httpx.AsyncClient(timeout=10) as client:
            url = f"http://127.0.0.1:{port}/hook"
            assert (await client.post(url, json=start_update(1, OWNER))).status_code == 403
            mark = server.mark()
            ok = await client.post(url, json=start_update(2, OWNER), headers={HEADER: secret})
            assert ok.status_code == 200
        await server.wait_message(OWNER, "Share my phone number", since=mark)
        assert await bot.stop() == 0


def test_webhook_secret_is_generated_once_and_reused(tmp_path: Path) -> None:
    settings = load_settings(environ={"DATABASE_URL": f"sqlite:///{tmp_path}/db/bot.db"})
    path = webhook_secret_path(settings)
    assert path == tmp_path / "db" / "webhook_secret"
    first = webhook_secret(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert webhook_secret(settings) == first
    path.chmod(0o644)
    assert webhook_secret(settings) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not a valid token!\n")
    replaced = webhook_secret(settings)
    assert replaced != first and len(replaced) >= 43


def test_configured_secret_wins_and_postgres_keeps_a_generated_one_under_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[telegram.webhook]\nsecret_token = "{SECRET}"\n')
    assert webhook_secret(load_settings(config, environ={})) == SECRET
    assert not (tmp_path / "data").exists()
    postgres = load_settings(environ={"DATABASE_URL": "postgresql://u:p@127.0.0.1/db"})
    assert webhook_secret_path(postgres) == Path("data") / "webhook_secret"
