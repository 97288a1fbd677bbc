"""``subaccount-bot playground`` without a browser: the page's HTML made safe, what a person does
becoming updates, the feed, the guard against a real Telegram, and the command as a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli_common import Failure
from bot.config import Settings
from bot.localapi import LocalBotApiServer, plain
from bot.localapi.http import Request, Response, Stream
from bot.playground.render import telegram_html, view
from bot.playground.run import PLAYGROUND_TOKEN, Options, ensure_local, playground_settings
from bot.playground.web import Playground
from handlers.i18n import label
from tests.fake_server import bot_env, free_port, wait_listening
from tests.test_playground_browser import opening, preset_name, said
from tests.test_playground_localapi import png

# --- Telegram's HTML, made safe -------------------------------------------------------------


def test_only_telegram_tags_survive_and_text_is_escaped() -> None:
    raw = ('<b>bold</b> <strong>s</strong> <i>i</i> <u>u</u> <s>x</s> <code>c</code> '
           '<pre>p</pre> <tg-spoiler>sp</tg-spoiler> <span class="tg-spoiler">sp2</span> '
           '<blockquote>q</blockquote> <script>alert(1)</script><img src=x onerror=alert(2)>'
           '<b onclick="evil()">a &lt;tag&gt;</b>')
    assert telegram_html(raw) == (
        "<b>bold</b> <b>s</b> <i>i</i> <u>u</u> <s>x</s> <code>c</code> <pre>p</pre> "
        "<tg-spoiler>sp</tg-spoiler> <tg-spoiler>sp2</tg-spoiler> <blockquote>q</blockquote> "
        "alert(1)<b>a &lt;tag&gt;</b>"
    )


def test_links_keep_safe_hrefs_only_and_bare_urls_become_links() -> None:
    assert telegram_html('<a href="javascript:alert(1)">x</a>') == "<a>x</a>"
    assert telegram_html('<a href="https://e.com/?a=1&amp;b=&quot;2">e</a>') == (
        '<a href="https://e.com/?a=1&amp;b=&quot;2">e</a>')
    link = "https://t.me/subaccount_playground_bot?start=abc_DEF-1"
    assert telegram_html(f"open {link}.") == f'open <a href="{link}">{link}</a>.'
    assert telegram_html(f"<b>{link}</b>", None) == (
        f'&lt;b&gt;<a href="{link}">{link}</a>&lt;/b&gt;')  # no parse mode: all text


def test_unclosed_and_stray_tags_are_balanced() -> None:
    assert telegram_html("<b>open <i>both") == "<b>open <i>both</i></b>"
    assert telegram_html("</b>stray <i>x</b>y</i>") == "stray <i>xy</i>"


def test_a_message_view_has_buttons_keyboards_and_files() -> None:
    inline = {"inline_keyboard": [[{"text": "Go", "callback_data": "h:go"},
                                   {"text": "Open", "url": "https://t.me/x"}]]}
    contact = {"keyboard": [[{"text": "📱 Share", "request_contact": True}], ["Plain"]],
               "one_time_keyboard": True, "input_field_placeholder": "Tap below"}
    message = {"message_id": 7, "_raw": "<b>hi</b>", "_parse_mode": "HTML",
               "reply_markup": inline, "_keyboard": contact,
               "photo": [{"file_id": "file1"}], "edit_date": 1}
    shown = view(message)
    assert shown["html"] == "<b>hi</b>" and shown["edited"] is True
    assert shown["inline"] == [[{"text": "Go", "data": "h:go"},
                                {"text": "Open", "url": "https://t.me/x"}]]
    assert shown["keyboard"] == {"rows": [[{"text": "📱 Share", "contact": True}],
                                          [{"text": "Plain", "contact": False}]],
                                 "one_time": True, "placeholder": "Tap below"}
    assert shown["photo"] == "/files/file1"
    removed = view({"message_id": 8, "_raw": "x", "_keyboard": {"remove_keyboard": True},
                    "document": {"file_id": "file2", "file_name": "a.csv", "file_size": 3}})
    assert removed["keyboard"] == {"remove": True}
    assert removed["document"] == {"url": "/files/file2", "name": "a.csv", "size": 3}


# --- never a real Telegram ----------------------------------------------------------------------


def test_the_settings_are_the_local_api_and_the_fake_token_only() -> None:
    base = Settings.model_validate({"telegram": {"token": "999:REAL-TOKEN-FROM-BOTFATHER"}})
    settings = playground_settings(base, Options(code_ttl=30), "http://127.0.0.1:5555")
    assert settings.telegram.token == PLAYGROUND_TOKEN
    assert settings.telegram.base_url == "http://127.0.0.1:5555"
    assert settings.verification.code_ttl_seconds == 30
    assert settings.database.url == "sqlite+aiosqlite:///data/playground/playground.db"
    with pytest.raises(Failure, match="only talks to its own local Bot API"):
        playground_settings(base, Options(), "https://api.telegram.org")
    with pytest.raises(Failure, match="only talks to its own local Bot API"):
        ensure_local(base)
    with pytest.raises(Failure, match=r"code_ttl_seconds \(--code-ttl\)"):
        playground_settings(base, Options(code_ttl=0), "http://127.0.0.1:5555")


# --- the page's server side, in-process ---------------------------------------------------------


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    async with LocalBotApiServer() as server:
        yield Playground(server)


async def post(playground: Playground, path: str, body: Any,
               content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = await playground.handle(
        Request("POST", path, "", {"content-type": content_type}, raw))
    assert isinstance(answer, Response)
    return answer.status, json.loads(answer.body)


async def test_what_a_person_does_becomes_their_updates(playground: Playground) -> None:
    server = playground.server
    assert await post(playground, "/api/people/2001", {"language": "zh-Hans"}) == (
        200, {"ok": True})
    assert await post(playground, "/api/people/2001/send", {"text": "/start abc"}) == (
        200, {"ok": True})
    assert await post(playground, "/api/people/2001/contact", {}) == (200, {"ok": True})
    command, contact = (u["message"] for u in server.pending)
    assert command["text"] == "/start abc" and command["from"]["language_code"] == "zh-Hans"
    assert command["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert contact["contact"] == {"phone_number": "8613900139000", "first_name": "Alice",
                                  "user_id": 2001}
    own = [m["html"] for m in playground.chats[2001]]
    assert own == ["/start abc", "📱 <i>Alice</i> · +8613900139000"]


async def test_bad_requests_get_a_reason(playground: Playground) -> None:
    assert await post(playground, "/api/people", {"id": 1001, "name": "Twin"}) == (
        400, {"error": "there is already a person with id 1001"})
    assert (await post(playground, "/api/people", {"id": "x", "name": "N"}))[0] == 400
    assert (await post(playground, "/api/people/1001", {"phone": "call me"}))[0] == 400
    assert (await post(playground, "/api/people/1001/send", {"text": "  "}))[0] == 400
    assert await post(playground, "/api/people/1001/press", {"message_id": 1, "data": "x"}) == (
        400, {"error": "that button is no longer there"})
    assert (await post(playground, "/api/people/9/send", {"text": "hi"}))[0] == 404
    assert (await post(playground, "/api/people/1001/send", b"text=hi",
                       "application/x-www-form-urlencoded"))[0] == 415
    await post(playground, "/api/people/1001", {"phone": ""})
    assert (await post(playground, "/api/people/1001/contact", {}))[0] == 400
    assert playground.server.pending == []


async def test_the_feed_starts_with_the_state_then_follows_the_bot(playground: Playground) -> None:
    api = playground.server.api
    assert (await post(playground, "/api/people",
                       {"id": 4001, "name": "李娜", "phone": "+86 135 0013 5000"}))[0] == 200
    feed = playground.events()
    first = json.loads((await anext(feed)).decode().removeprefix("data: "))
    assert first["type"] == "state" and [p["id"] for p in first["people"]][-1] == 4001
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "h:go"}]]}
    sent = api.handle("sendMessage", {"chat_id": 4001, "text": "<b>hi</b>", "parse_mode": "HTML",
                                      "reply_markup": markup})
    api.handle("editMessageText", {"chat_id": 4001, "message_id": sent["message_id"],
                                   "text": "bye"})
    assert (await post(playground, "/api/people/4001/press",
                       {"message_id": sent["message_id"], "data": "h:go"}))[0] == 400  # edited
    api.handle("sendPhoto", {"chat_id": 4001, "photo": _upload()})
    events = [json.loads((await anext(feed)).decode().removeprefix("data: ")) for _ in range(3)]
    assert [(e["type"], e["message"]["html"]) for e in events] == [
        ("message", "<b>hi</b>"), ("edit", "bye"), ("message", "")]
    photo = events[2]["message"]["photo"]
    answer = await playground.handle(Request("GET", photo, "", {}, b""))
    assert isinstance(answer, Response) and answer.content_type == "image/png"
    assert answer.body == png(2, 2)
    assert [m["html"] for m in playground.chats[4001]] == ["bye", ""]  # edited in place
    playground.close()
    with pytest.raises(StopAsyncIteration):
        await anext(feed)


async def test_a_callback_answer_goes_to_the_person_who_pressed(playground: Playground) -> None:
    api = playground.server.api
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "h:go"}]]}
    sent = api.handle("sendMessage", {"chat_id": 1001, "text": "menu", "reply_markup": markup})
    feed = playground.events()
    await anext(feed)  # the state
    assert (await post(playground, "/api/people/1001/press",
                       {"message_id": sent["message_id"], "data": "h:go"}))[0] == 200
    query = playground.server.pending[-1]["callback_query"]
    api.handle("answerCallbackQuery", {"callback_query_id": query["id"], "text": "Done",
                                       "show_alert": True})
    event = json.loads((await anext(feed)).decode().removeprefix("data: "))
    assert event == {"type": "answer", "person": 1001, "text": "Done", "alert": True}
    await feed.aclose()


async def test_the_page_and_its_files_are_served(playground: Playground) -> None:
    for path, kind in (("/", "text/html"), ("/static/playground.js", "text/javascript"),
                       ("/static/playground.css", "text/css")):
        answer = await playground.handle(Request("GET", path, "", {}, b""))
        assert isinstance(answer, Response) and answer.status == 200
        assert answer.content_type.startswith(kind) and answer.body
    for path in ("/static/../web.py", "/static/other.js", "/files/nope"):
        answer = await playground.handle(Request("GET", path, "", {}, b""))
        assert isinstance(answer, Response) and answer.status == 404
    assert isinstance(await playground.handle(Request("GET", "/api/events", "", {}, b"")), Stream)


def _upload() -> Any:
    from bot.localapi import Upload

    return Upload("qr.png", "image/png", png(2, 2))


# --- the command as a process -------------------------------------------------------------------


async def read_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))


async def test_the_command_serves_the_page_and_the_bot_answers_start(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "playground", "--port", str(port),
        "--log-level", "WARNING", cwd=tmp_path, env=bot_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_listening(port, within=30)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=20) as client:
            page = await client.get(f"{base}/")
            assert page.status_code == 200 and "subaccount-bot playground" in page.text
            async with client.stream("GET", f"{base}/api/events") as feed:
                events = read_events(feed)
                state = await anext(events)
                assert [p["name"] for p in state["people"]] == ["王芳", "Alice", "张伟", "Chris"]
                sent = await client.post(f"{base}/api/people/2001/send", json={"text": "/start"})
                assert sent.json() == {"ok": True}
                async with asyncio.timeout(20):
                    async for event in events:
                        shown = event.get("message", {})
                        if event["person"] == 2001 and shown.get("from") == "bot" \
                                and shown.get("keyboard"):
                            break
        assert shown["keyboard"]["rows"][0][0]["contact"] is True  # share my phone number
        assert (tmp_path / "data" / "playground" / "playground.db").exists()
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = await asyncio.wait_for(process.communicate(), 20)
    text = out.decode()
    assert process.returncode == 0, text
    assert f"playground: open http://127.0.0.1:{port}" in text
    assert text.rstrip().endswith("playground: stopped") and "Traceback" not in text


async def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    taken = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = taken.sockets[0].getsockname()[1]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "playground", "--port", str(port), "--log-level",
            "WARNING", cwd=tmp_path, env=bot_env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        taken.close()
        await taken.wait_closed()
    lines = err.decode().strip().splitlines()
    assert process.returncode == 2, err.decode()  # something the operator can fix
    assert len(lines) == 1 and lines[0].startswith(
        f"subaccount-bot: cannot serve the page on 127.0.0.1:{port}:"), lines
    assert "choose another --port" in lines[0] and out == b""


class PageClient:
    """What the page does, over HTTP: follows the feed, sends what people do."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client, self.base = client, base
        self.chats: dict[int, list[dict[str, Any]]] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PageClient:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self) -> None:
        async with self.client.stream("GET", f"{self.base}/api/events") as feed:
            async for event in read_events(feed):
                if event["type"] == "state":
                    self.chats = {int(k): v for k, v in event["chats"].items()}
                elif event["type"] in ("message", "edit"):
                    chat = self.chats.setdefault(event["person"], [])
                    old = [i for i, m in enumerate(chat) if m["id"] == event["message"]["id"]]
                    if event["type"] == "edit" and old:
                        chat[old[0]] = event["message"]
                    else:
                        chat.append(event["message"])
                async with self._changed:
                    self._changed.notify_all()

    async def do(self, person: int, action: str, body: dict[str, Any]) -> None:
        answer = await self.client.post(f"{self.base}/api/people/{person}{action}", json=body)
        assert answer.status_code == 200, answer.text

    async def press(self, person: int, label_part: str, within: float = 20) -> None:
        """Press the newest button whose label has ``label_part`` (waiting for it to appear)."""

        def button() -> tuple[int, str] | None:
            for message in reversed(self.chats.get(person, [])):
                for shown in (b for row in message.get("inline", []) for b in row):
                    if label_part in shown["text"] and "data" in shown:
                        return message["id"], shown["data"]
            return None

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: button() is not None),
                                       within)
            except TimeoutError:
                raise AssertionError(f"no button {label_part!r} in {person}'s chat") from None
        found = button()
        assert found is not None
        await self.do(person, "/press", {"message_id": found[0], "data": found[1]})

    async def sees(self, person: int, fragment: str, within: float = 20) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in reversed(self.chats.get(person, []))
                         if m["from"] == "bot" and fragment in plain(m["html"])), None)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None),
                                       within)
            except TimeoutError:
                seen = [plain(m["html"])[:60] for m in self.chats.get(person, [])]
                raise AssertionError(f"{person} never saw {fragment!r}: {seen}") from None
        message = found()
        assert message is not None
        return message


async def test_codes_expire_for_real_with_code_ttl(tmp_path: Path) -> None:
    """The playground's JobQueue runs: a 2-second code expires and the owner is told."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "playground", "--port", str(port), "--code-ttl", "2",
        "--database", f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", "--log-level", "WARNING",
        cwd=tmp_path, env=bot_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    owner, alice, en = 1001, 2001, "en"
    try:
        await wait_listening(port, within=30)
        async with httpx.AsyncClient(timeout=20) as client, \
                PageClient(client, f"http://127.0.0.1:{port}") as page:
            await page.do(owner, "", {"language": en})
            for person in (owner, alice):
                await page.do(person, "/send", {"text": "/start"})
                await page.sees(person, opening(en, "onboarding.ask_phone"))
                await page.do(person, "/contact", {})
                await page.sees(person, said(en, "onboarding.linked"))
            await page.do(owner, "/send", {"text": "/newshop"})
            await page.sees(owner, opening(en, "newshop.ask_name"))
            await page.do(owner, "/send", {"text": "Tea House"})
            await page.sees(owner, said(en, "newshop.created", shop="Tea House"))
            await page.do(owner, "/send", {"text": "/newaccount"})
            await page.sees(owner, opening(en, "roles.create_title"))
            await page.press(owner, preset_name(en))
            await page.press(owner, opening(en, "roles.use_name_button"))
            await page.press(owner, label(en, "roles.skip_button"))
            await page.press(owner, label(en, "roles.done_button"))
            await page.sees(owner, opening(en, "newaccount.ask_phone"))
            await page.do(owner, "/send", {"text": "139 0013 9000"})
            await page.sees(alice, opening(en, "holder_code.message"))
            await page.sees(owner, opening(en, "newaccount.expired_notice"), within=30)
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, out.decode()


def test_help_documents_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    with pytest.raises(SystemExit) as done:
        main(["playground", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for part in ("--port PORT", "default 8080", "--host HOST", "default 127.0.0.1",
                 "--database URL", "./data/playground/", "--code-ttl SECONDS",
                 "No token; nothing is sent to Telegram"):
        assert part in text, part
    with pytest.raises(SystemExit) as bad:
        main(["playground", "--port", "70000"])
    assert bad.value.code == 2
    assert "'70000' is not a port (0-65535)" in capsys.readouterr().err
