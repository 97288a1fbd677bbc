"""The whole provisioning flow against the real process: config file, SQLite file, long polling
over HTTP, the real JobQueue — and ``kill -9`` in the middle."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.localapi import LocalBotApiServer as FakeBotApiServer
from tests.fake_server import BotProcess, running_bot
from tests.harness import Person
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, OWNER_PHONE

CODE = re.compile(r"Verification code: (\d{6})")


@pytest.fixture
async def server() -> AsyncIterator[FakeBotApiServer]:
    async with FakeBotApiServer() as running:
        yield running


def button_data(server: FakeBotApiServer, who: Person, label_part: str) -> str:
    """The callback data of the newest button in ``who``'s chat whose label has ``label_part``."""
    for message in reversed(server.api.chat(who.id)):
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        for row in rows:
            for button in row:
                if label_part in button["text"]:
                    return str(button["callback_data"])
    raise AssertionError(f"no button {label_part!r} in {who.first_name}'s chat")


async def step(server: FakeBotApiServer, who: Person, expect: str, *, text: str | None = None,
               command: str | None = None, press: str | None = None,
               contact: str | None = None, within: float = 15) -> str:
    """``who`` does one thing; wait for the bot's message containing ``expect``."""
    mark = server.mark()
    if text is not None:
        server.push_text(who, text)
    elif command is not None:
        server.push_command(who, command)
    elif press is not None:
        server.push_press(who, button_data(server, who, press))
    elif contact is not None:
        server.push_contact(who, contact)
    call = await server.wait_message(who, expect, since=mark, within=within)
    return str(call.result["text"])


async def onboard_both_and_make_role(server: FakeBotApiServer) -> None:
    await step(server, OWNER, "Share my phone number", command="/start")
    await step(server, OWNER, "phone number is linked", contact=OWNER_PHONE.lstrip("+"))
    await step(server, HOLDER, "Share my phone number", command="/start")
    await step(server, HOLDER, "phone number is linked", contact=HOLDER_PHONE.lstrip("+"))
    await step(server, OWNER, "What is your shop called?", command="/newshop")
    await step(server, OWNER, "main account", text="Tea House")
    await step(server, OWNER, "Create new role", command="/newaccount")  # no roles: nested
    await step(server, OWNER, "Role name", press="Customer service")
    await step(server, OWNER, "description", press="Call it")
    await step(server, OWNER, "Permission configuration", press="Skip")
    await step(server, OWNER, "Step 2 of 6", press="Done")


async def to_code(server: FakeBotApiServer) -> str:
    await onboard_both_and_make_role(server)
    mark = server.mark()
    server.push_text(OWNER, "139 0013 9000")
    await server.wait_message(OWNER, "sent to the Telegram chat of", since=mark, within=15)
    message = await server.wait_message(HOLDER, "Verification code", since=mark, within=15)
    found = CODE.search(str(message.result["text"]))
    assert found
    return found.group(1)


async def finish(server: FakeBotApiServer, code: str) -> None:
    await step(server, OWNER, "Step 4 of 6", text=code)
    await step(server, OWNER, "Step 5 of 6", press="Use “Hank”")
    await step(server, OWNER, "Step 6 of 6", press="On (recommended)")
    mark = server.mark()
    server.push_press(OWNER, button_data(server, OWNER, "Confirm"))
    await server.wait_message(OWNER, "Sub-account created", since=mark, within=15)
    await server.wait_message(HOLDER, "You are now a sub-account of Tea House", since=mark)


def authorized(bot: BotProcess) -> list[tuple[object, ...]]:
    return bot.rows("SELECT phone, holder_id, nickname, im_enabled, status FROM sub_account")


async def test_happy_path_over_http_with_long_polling(
    tmp_path: Path, server: FakeBotApiServer
) -> None:
    async with running_bot(tmp_path, server) as bot:
        code = await to_code(server)
        await finish(server, code)
        assert authorized(bot) == [(HOLDER_PHONE, HOLDER.id, "Hank", 1, "authorized")]
        assert bot.rows("SELECT status FROM verification_code") == [("used",)]
        assert await bot.stop() == 0
    log = bot.log()
    assert "Traceback" not in log
    assert code not in log and "13900139000" not in log


async def test_the_real_scheduler_expires_a_code(tmp_path: Path, server: FakeBotApiServer) -> None:
    short = {"verification": {"code_ttl_seconds": 2}}
    async with running_bot(tmp_path, server, short) as bot:
        code = await to_code(server)
        mark = server.mark()
        await server.wait_message(OWNER, "expired before it was entered", since=mark, within=15)
        await server.wait_message(HOLDER, "has expired", since=mark, within=5)
        assert bot.rows("SELECT status FROM verification_code") == [("expired",)]
        await step(server, OWNER, "has expired", text=code)
        assert authorized(bot) == []


async def test_kill_minus_nine_at_the_code_step_then_authorized(
    tmp_path: Path, server: FakeBotApiServer
) -> None:
    async with running_bot(tmp_path, server) as bot:
        code = await to_code(server)
        deadline = bot.rows("SELECT expires_at FROM verification_code")
        assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
    async with running_bot(tmp_path, server) as again:
        assert again.rows("SELECT step FROM draft WHERE user_id = ?", OWNER.id) == [("code",)]
        assert again.rows("SELECT expires_at FROM verification_code") == deadline
        await finish(server, code)
        assert authorized(again) == [(HOLDER_PHONE, HOLDER.id, "Hank", 1, "authorized")]
