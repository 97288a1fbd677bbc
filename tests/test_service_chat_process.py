"""The local Bot API copies messages (copyMessage → MessageId, from/to recorded, refusals as
Telegram's), and the bot as a real process relays a customer and an agent over long polling."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot
from telegram.error import BadRequest

from bot.localapi import LocalBotApi, LocalRequest
from bot.localapi import LocalBotApiServer as FakeBotApiServer
from models.clock import SystemClock
from models.service.entries import hash_token, new_token
from tests.fake_server import running_bot
from tests.service_chat_world import ANN
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, OWNER_PHONE


@pytest.fixture
async def local_bot() -> AsyncIterator[tuple[Bot, LocalBotApi]]:
    api = LocalBotApi()
    bot = Bot("123:local", request=LocalRequest(api))
    async with bot:
        yield bot, api


async def test_copy_message_returns_a_message_id_and_records_both_chats(
    local_bot: tuple[Bot, LocalBotApi]
) -> None:
    bot, api = local_bot
    api.incoming[10] = {7: {"message_id": 7, "chat": {"id": 10, "type": "private"},
                            "photo": [{"file_id": "p", "file_unique_id": "u", "width": 1,
                                       "height": 1}], "caption": "tea"}}
    sent = await bot.copy_message(20, 10, 7)
    copy = api.messages[20][sent.message_id]
    assert copy["caption"] == "tea" and copy["photo"][0]["file_id"] == "p"
    assert copy["_copy_of"] == (10, 7) and "forward_origin" not in copy
    call = api.methods("copyMessage")[0]
    assert (int(call.params["from_chat_id"]), int(call.params["chat_id"]),
            int(call.params["message_id"])) == (10, 20, 7)
    with pytest.raises(BadRequest, match="not found"):
        await bot.copy_message(20, 10, 8)
    api.blocked.add(30)
    with pytest.raises(Exception, match="blocked"):
        await bot.copy_message(30, 10, 7)


def _seed_entry(db_path: Path) -> str:
    """An entry of the owner's shop, written to the bot's database (the owner's /service
    screens are another flow)."""
    token = new_token()
    now = SystemClock().now().isoformat(sep=" ")
    with sqlite3.connect(db_path) as conn:
        shop_id = conn.execute("SELECT id FROM shop").fetchone()[0]
        conn.execute("INSERT INTO service_entry (shop_id, name, name_key, token_hash, "
                     "created_at, token_at) VALUES (?, 'Website', 'website', ?, ?, ?)",
                     (shop_id, hash_token(token), now, now))
    return token


async def test_customer_and_agent_over_long_polling(tmp_path: Path) -> None:
    async with FakeBotApiServer() as server, running_bot(tmp_path, server) as bot:
        for who, phone in ((OWNER, OWNER_PHONE), (HOLDER, HOLDER_PHONE)):
            mark = server.mark()
            server.push_command(who, "/start")
            await server.wait_message(who, "Share my phone number", since=mark)
            mark = server.mark()
            server.push_contact(who, phone.lstrip("+"))
            await server.wait_message(who, "linked", since=mark)
        mark = server.mark()
        server.push_command(OWNER, "/newshop")
        await server.wait_message(OWNER, "shop called", since=mark)
        mark = server.mark()
        server.push_text(OWNER, "Tea House")
        await server.wait_message(OWNER, "Tea House", since=mark)
        db_path = bot.db_path
        with sqlite3.connect(db_path) as conn:
            conn.execute("INSERT INTO service_agent (shop_id, user_id, kind, active, status, "
                         "open_chats, status_changed_at, created_at) SELECT id, owner_id, "
                         "'owner', 1, 'offline', 0, created_at, created_at FROM shop")
        token = _seed_entry(db_path)
        mark = server.mark()
        server.push_command(OWNER, "/online")
        await server.wait_message(OWNER, "Online", since=mark)
        mark = server.mark()
        server.push_command(ANN, f"/start {token}")
        await server.wait_message(ANN, "Tea House", since=mark)
        mark = server.mark()
        server.push_text(ANN, "Hello, is anyone there?")
        copied = await server.wait_call(
            "copyMessage", lambda c: int(c.params["chat_id"]) == OWNER.id, since=mark)
        mark = server.mark()
        server.push_text(OWNER, "Yes, how can I help?")
        back = await server.wait_call(
            "copyMessage", lambda c: int(c.params["chat_id"]) == ANN.id, since=mark)
        # updates are handled one after another: once Ann's next message is copied, the
        # answer before it is committed
        mark = server.mark()
        server.push_text(ANN, "Thanks!")
        await server.wait_call(
            "copyMessage", lambda c: int(c.params["chat_id"]) == OWNER.id, since=mark)
        assert int(back.params["from_chat_id"]) == OWNER.id
        assert int(copied.params["from_chat_id"]) == ANN.id
        assert any(m.get("text") == "Yes, how can I help?" for m in server.api.chat(ANN.id))
        rows = bot.rows("SELECT direction FROM service_message ORDER BY id")
        assert rows[:2] == [("in",), ("out",)]
        assert await bot.stop() == 0
        assert "Traceback" not in bot.log()
