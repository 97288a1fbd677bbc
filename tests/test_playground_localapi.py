"""The local Bot API's parts that the playground added: photos and documents (uploads kept,
sent again by file id), caption edits, deletions, listeners, and streamed HTTP answers."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import Bot
from telegram.error import BadRequest

from bot.localapi import Call, LocalBotApi, LocalBotApiServer, LocalRequest, Upload
from bot.localapi.http import HttpServer, Request, Response, Stream

CHAT = 1001


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of the given size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
async def local_bot() -> AsyncIterator[tuple[Bot, LocalBotApi]]:
    api = LocalBotApi()
    bot = Bot("123:local", request=LocalRequest(api))
    async with bot:
        yield bot, api


@pytest.fixture
async def http_bot() -> AsyncIterator[tuple[Bot, LocalBotApiServer]]:
    async with LocalBotApiServer() as server:
        bot = Bot(server.token, base_url=f"{server.base_url}/bot")
        async with bot:
            yield bot, server


async def test_send_photo_in_process_keeps_the_image_and_its_size(
    local_bot: tuple[Bot, LocalBotApi],
) -> None:
    bot, api = local_bot
    image = png(3, 2)
    sent = await bot.send_photo(CHAT, photo=image, caption="<b>QR</b> code", parse_mode="HTML")
    assert (sent.photo[-1].width, sent.photo[-1].height) == (3, 2)
    assert sent.caption == "QR code"
    stored = api.messages[CHAT][sent.message_id]
    assert stored["_raw"] == "<b>QR</b> code" and stored["_parse_mode"] == "HTML"
    assert api.files[sent.photo[-1].file_id].data == image
    again = await bot.send_photo(CHAT, photo=sent.photo[-1].file_id)  # by file id
    assert again.photo[-1].file_id == sent.photo[-1].file_id and len(api.files) == 1


async def test_send_photo_and_document_over_http_multipart(
    http_bot: tuple[Bot, LocalBotApiServer],
) -> None:
    bot, server = http_bot
    image = png(5, 4)
    photo = await bot.send_photo(CHAT, photo=image, filename="qr.png")
    document = await bot.send_document(CHAT, document=b"a,b\n1,2\n", filename="export.csv",
                                       caption="the export")
    assert (photo.photo[-1].width, photo.photo[-1].height) == (5, 4)
    assert server.api.files[photo.photo[-1].file_id] == Upload("qr.png", "image/png", image)
    assert document.document is not None and document.document.file_name == "export.csv"
    assert server.api.files[document.document.file_id].data == b"a,b\n1,2\n"
    assert document.caption == "the export"
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_photo(CHAT, photo="no-such-file-id")


async def test_caption_edits_and_deletions_answer_like_telegram(
    local_bot: tuple[Bot, LocalBotApi],
) -> None:
    bot, api = local_bot
    sent = await bot.send_photo(CHAT, photo=png(1, 1), caption="first")
    edited = await bot.edit_message_caption(CHAT, sent.message_id, caption="<i>second</i>",
                                            parse_mode="HTML")
    assert not isinstance(edited, bool) and edited.caption == "second"
    assert api.messages[CHAT][sent.message_id]["_raw"] == "<i>second</i>"
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_caption(CHAT, sent.message_id, caption="<i>second</i>",
                                       parse_mode="HTML")
    with pytest.raises(BadRequest, match="no text in the message"):
        await bot.edit_message_text("text", chat_id=CHAT, message_id=sent.message_id)
    text = await bot.send_message(CHAT, "plain")
    with pytest.raises(BadRequest, match="no caption"):
        await bot.edit_message_caption(CHAT, text.message_id, caption="x")
    assert await bot.delete_message(CHAT, sent.message_id) is True
    assert sent.message_id not in api.messages[CHAT]
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)


async def test_listeners_hear_every_call_that_succeeded(
    local_bot: tuple[Bot, LocalBotApi],
) -> None:
    bot, api = local_bot
    heard: list[Call] = []
    api.listeners.append(heard.append)
    await bot.send_message(CHAT, "one")
    with pytest.raises(BadRequest):
        await bot.send_message(CHAT, "x" * 5000)  # refused: not heard
    assert [(c.method, c.result["text"]) for c in heard] == [("sendMessage", "one")]


async def test_a_failing_listener_does_not_fail_the_call(
    local_bot: tuple[Bot, LocalBotApi], caplog: pytest.LogCaptureFixture,
) -> None:
    bot, api = local_bot

    def broken(_call: Call) -> None:
        raise RuntimeError("page bug")

    api.listeners.append(broken)
    sent = await bot.send_message(CHAT, "still sent")
    assert sent.text == "still sent" and api.chat(CHAT)[-1]["text"] == "still sent"
    assert "a listener of the local Bot API failed on sendMessage" in caplog.text


async def test_press_on_a_given_message_and_who_pressed(
    http_bot: tuple[Bot, LocalBotApiServer],
) -> None:
    _bot, server = http_bot
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "h:go"}]]}
    first = server.api.handle("sendMessage", {"chat_id": CHAT, "text": "a", "reply_markup": markup})
    server.api.handle("sendMessage", {"chat_id": CHAT, "text": "b", "reply_markup": markup})

    class Who:
        id, first_name = CHAT, "Olivia"

        def as_dict(self) -> dict[str, object]:
            return {"id": CHAT, "is_bot": False, "first_name": "Olivia"}

    server.push_press(Who(), "h:go", message_id=first["message_id"])
    update = server.pending[-1]["callback_query"]
    assert update["message"]["message_id"] == first["message_id"]  # not the latest one
    assert server.pressed_by[update["id"]] == CHAT
    with pytest.raises(LookupError):
        server.push_press(Who(), "h:other")


async def test_a_stream_answer_is_written_as_it_comes_and_ends_with_the_server() -> None:
    gate = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: one\n\n"
        await gate.wait()
        yield b"data: two\n\n"

    async def handler(request: Request) -> Response | Stream:
        if request.path == "/events":
            return Stream(chunks())
        return Response(404, b"{}")

    server = HttpServer(handler)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client, client.stream(
            "GET", f"http://127.0.0.1:{server.port}/events"
        ) as response:
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["cache-control"] == "no-store"
            lines = response.aiter_lines()
            assert await anext(lines) == "data: one"  # before the second chunk exists
            gate.set()
            assert [await anext(lines), await anext(lines)] == ["", "data: two"]
    finally:
        await server.stop()
