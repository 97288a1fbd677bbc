"""The bot as a real process (``python -m bot run``) against the HTTP fake Bot API."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from telegram.error import NetworkError

from bot.localapi import ApiError, Upload
from bot.localapi import LocalBotApiServer as FakeBotApiServer
from tests.fake_server import BotProcess, running_bot
from tests.support.people import OWNER, OWNER_PHONE


@pytest.fixture
async def server() -> AsyncIterator[FakeBotApiServer]:
    async with FakeBotApiServer() as running:
        yield running


@pytest.fixture
async def bot(tmp_path: Path, server: FakeBotApiServer) -> AsyncIterator[BotProcess]:
    async with running_bot(tmp_path, server) as process:
        yield process


async def test_start_up_registers_commands_and_long_polls(
    tmp_path: Path, server: FakeBotApiServer, record_property: pytest.RecordProperty
) -> None:
    async with running_bot(tmp_path, server, wait_ready=False) as bot:
        await server.wait_call("getUpdates", within=30)
        elapsed = time.monotonic() - bot.started_at
        print(f"\nstart-up (spawn → first getUpdates): {elapsed:.2f} s")
        record_property("startup_seconds", round(elapsed, 3))
        methods = [c.method for c in server.api.calls]
        assert methods.index("getMe") < methods.index("getUpdates")
        commands = server.api.methods("setMyCommands")
        languages = sorted((c.params.get("language_code") or "") for c in commands)
        assert languages == ["", "zh"]  # the default menu (no language_code) and Chinese
        assert "language_code" not in min(commands, key=lambda c: len(c.params)).params
        for call in commands:
            names = [c["command"] for c in call.params["commands"]]
            assert {"start", "newshop", "help", "cancel"} <= set(names)
        polls = server.api.methods("getUpdates")
        assert polls[0].params["timeout"] == 5
        assert "callback_query" in polls[0].params["allowed_updates"]
        assert await bot.stop() == 0
    log = bot.log()
    assert "Traceback" not in log
    assert "PROCESS-TEST-TOKEN" not in log


async def test_start_newshop_over_http_creates_the_shop(
    server: FakeBotApiServer, bot: BotProcess
) -> None:
    mark = server.mark()
    server.push_command(OWNER, "/start")
    prompt = await server.wait_message(OWNER, "Share my phone number", since=mark)
    keyboard = prompt.params["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_contact"] is True

    mark = server.mark()
    server.push_contact(OWNER, OWNER_PHONE.lstrip("+"))
    await server.wait_message(OWNER, "phone number is linked", since=mark)
    assert bot.rows("SELECT id, phone FROM app_user") == [(OWNER.id, OWNER_PHONE)]

    mark = server.mark()
    server.push_command(OWNER, "/newshop")
    await server.wait_message(OWNER, "What is your shop called?", since=mark)
    mark = server.mark()
    server.push_text(OWNER, "Tea House")
    await server.wait_message(OWNER, "Tea House", since=mark)
    assert bot.rows("SELECT name, owner_id FROM shop") == [("Tea House", OWNER.id)]
    assert bot.rows("SELECT phone, kind FROM phone_binding") == [(OWNER_PHONE, "owner")]

    # every update was confirmed with an offset, so nothing is left for a restart to replay
    last = await server.wait_call("getUpdates", lambda c: c.params.get("offset", 0) > 4,
                                  since=mark)
    assert last.params["offset"] == 5
    assert await bot.stop() == 0
    log = bot.log()
    assert "Traceback" not in log
    assert "13800138000" not in log  # DEBUG logs hold the update payloads, phone masked


async def test_sigterm_and_sigint_stop_cleanly(tmp_path: Path, server: FakeBotApiServer) -> None:
    for number, sig in enumerate((signal.SIGTERM, signal.SIGINT)):
        async with running_bot(tmp_path / str(number), server) as bot:
            started = time.monotonic()
            assert await bot.stop(sig, within=10) == 0
            assert time.monotonic() - started < 10
        assert "Traceback" not in bot.log()


async def test_updates_sent_while_stopped_are_answered_after_a_restart(
    tmp_path: Path, server: FakeBotApiServer
) -> None:
    async with running_bot(tmp_path, server) as bot:
        assert await bot.stop() == 0
    mark = server.mark()
    server.push_command(OWNER, "/start")
    async with running_bot(tmp_path, server):
        await server.wait_message(OWNER, "Share my phone number", since=mark)


async def test_a_refused_token_is_one_line_exit_2(tmp_path: Path, server: FakeBotApiServer) -> None:
    wrong = {"telegram": {"token": "999:WRONG"}, "logging": {"level": "ERROR"}}
    async with running_bot(tmp_path, server, wrong, wait_ready=False) as bot:
        assert await asyncio.wait_for(bot.process.wait(), 30) == 2
    assert bot.log().splitlines() == [
        f"subaccount-bot: the Bot API at {server.base_url} refused the token "
        "(check BOT_TOKEN or telegram.token)"
    ]
    assert [c.method for c in server.api.calls] == []  # 401 before any method ran


# --- the fake server itself -------------------------------------------------------------------


async def test_fake_server_long_polls_until_an_update_and_honours_offset(
    server: FakeBotApiServer,
) -> None:
    url = f"{server.base_url}/bot{server.token}/getUpdates"
    async with httpx.AsyncClient(timeout=10) as client:
        empty = await client.post(url, data={"timeout": "0"})
        assert empty.json() == {"ok": True, "result": []}

        mark = server.mark()
        held = asyncio.create_task(client.post(url, data={"timeout": "5", "offset": "0"}))
        await server.wait_call("getUpdates", since=mark)
        assert not held.done()
        update_id = server.push_command(OWNER, "/start")
        answer = (await asyncio.wait_for(held, 2)).json()
        assert [u["update_id"] for u in answer["result"]] == [update_id]
        assert answer["result"][0]["message"]["text"] == "/start"

        again = await client.post(url, json={"offset": update_id, "timeout": 0})
        assert [u["update_id"] for u in again.json()["result"]] == [update_id]
        confirmed = await client.post(url, data={"offset": str(update_id + 1), "timeout": "0"})
        assert confirmed.json()["result"] == []
        assert server.pending == []


async def test_fake_server_parses_forms_json_and_multipart(server: FakeBotApiServer) -> None:
    base = f"{server.base_url}/bot{server.token}"
    markup = '{"inline_keyboard": [[{"text": "Go", "callback_data": "h:go"}]]}'
    async with httpx.AsyncClient(timeout=10) as client:
        form = await client.post(f"{base}/sendMessage", data={
            "chat_id": str(OWNER.id), "text": "<b>Hi</b>", "parse_mode": "HTML",
            "reply_markup": markup, "disable_notification": "true",
        })
        body = await client.post(f"{base}/sendMessage", json={"chat_id": OWNER.id, "text": "J"})
        multipart = await client.post(f"{base}/sendDocument", data={"chat_id": str(OWNER.id)},
                                      files={"document": ("a.csv", b"x,y\n", "text/csv")})
    assert form.json()["result"]["text"] == "Hi"
    assert form.json()["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "h:go"
    assert body.json()["result"]["text"] == "J"
    assert multipart.json()["result"]["document"]["file_name"] == "a.csv"
    first, second, document = server.api.calls
    assert first.params["chat_id"] == OWNER.id and first.params["disable_notification"] is True
    assert second.params == {"chat_id": OWNER.id, "text": "J"}
    assert document.params == {"chat_id": OWNER.id,
                               "document": Upload("a.csv", "text/csv", b"x,y\n")}


async def test_fake_server_errors_wrong_token_and_dropped_connections(
    server: FakeBotApiServer,
) -> None:
    base = f"{server.base_url}/bot{server.token}"
    server.api.fail_next("sendMessage", ApiError(403, "Forbidden: bot was blocked by the user"))
    server.api.fail_next("getMe", NetworkError("connection reset"))
    async with httpx.AsyncClient(timeout=10) as client:
        blocked = await client.post(f"{base}/sendMessage", data={"chat_id": "1", "text": "x"})
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{base}/getMe")
        me = await client.get(f"{base}/getMe")
        wrong = await client.post(f"{server.base_url}/bot1:nope/getMe")
        lost = await client.get(f"{server.base_url}/favicon.ico")
    assert (blocked.status_code, blocked.json()["description"]) == (
        403, "Forbidden: bot was blocked by the user")
    assert me.json()["result"]["is_bot"] is True
    assert (wrong.status_code, wrong.json()["error_code"]) == (401, 401)
    assert lost.status_code == 404
