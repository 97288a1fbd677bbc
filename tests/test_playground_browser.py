"""The playground page in a real headless Chromium (the system's, /usr/bin/chromium, through
Playwright): the owner 王芳 (简体中文) links her phone with the contact button, creates a shop and a
role, adds Alice by phone, opens the invite link as Alice, Alice shares her contact and gets the
code, the owner types it, picks the nickname and IM, confirms — Authorized in the owner's
column, "added" in Alice's. Then Alice goes online, the owner makes the shop's entry in /service
(its link on the card and its QR code photo), the customer Chris opens that link from the owner's
column and chats with Alice. Each part of the story is a function.

The page's parts one by one (sanitised HTML, callback queries and their toasts and alerts,
edits in place, photos, documents, deletions, deep links opened as a chosen person, reply
keyboards, adding and changing people, the language switch) are driven against the page's
server with the local Bot API fed directly, no bot.

Set ``PLAYGROUND_SCREENSHOT=docs/playground.png`` to save the page at the end of the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.localapi import LocalBotApiServer, Upload, plain
from bot.localapi.http import HttpServer
from bot.playground.web import Playground as WebPlayground
from handlers.i18n import label, t, template
from models.service.entries import hash_token
from tests.fake_server import bot_env, free_port, wait_listening
from tests.test_playground_localapi import png

try:
    from playwright.async_api import Locator, Page, async_playwright, expect
except ImportError:  # the dev extra brings it
    async_playwright = None

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    async_playwright is None or not Path(CHROMIUM).exists(),
    reason="no browser: install the chromium package (and playwright, in the dev extra)",
)

ZH, EN = "zh-Hans", "en"
OWNER, ALICE, ZHANG, CHRIS = 1001, 2001, 2002, 3001  # the page's people at start
SHOP = "茶香小铺"
ENTRY = "官网"
WAIT_MS = 20_000


def said(locale: str, key: str, **params: Any) -> str:
    """A text of the bot as the person reads it."""
    return plain(t(locale, key, **params))


def opening(locale: str, key: str) -> str:
    """The words a text starts with, up to its first parameter."""
    text = template(locale, key)
    assert text is not None, key
    return plain(text.split("{", 1)[0]).strip().splitlines()[0]


def preset_name(locale: str, key: str = "customer_service") -> str:
    return next(p.names[locale] for p in Settings().policy().presets if p.key == key)


@dataclass
class Chat:
    """One person's column on the page."""

    page: Page
    person: int
    locale: str

    @property
    def column(self) -> Locator:
        return self.page.locator(f'section.column[data-person="{self.person}"]')

    def bot_says(self, text: str) -> Locator:
        return self.column.locator(".msg.bot", has_text=text).last

    async def sees(self, text: str) -> Locator:
        message = self.bot_says(text)
        await expect(message).to_be_visible(timeout=WAIT_MS)
        return message

    async def types(self, text: str) -> None:
        box = self.column.locator(".composer input")
        await box.fill(text)
        await box.press("Enter")

    async def presses(self, label_text: str) -> None:
        """Press the inline button with this label on the newest message showing it."""
        button = self.column.locator(".inline button", has_text=label_text).last
        await expect(button).to_be_visible(timeout=WAIT_MS)
        await button.click()

    async def taps_key(self, label_text: str) -> None:
        """Tap a reply-keyboard button (e.g. share my contact)."""
        key = self.column.locator(".keyboard button", has_text=label_text)
        await expect(key).to_be_visible(timeout=WAIT_MS)
        await key.click()


@dataclass
class Playground:
    url: str
    db_path: Path

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as conn:
            return list(conn.execute(sql).fetchall())


@pytest.fixture
async def playground(tmp_path: Path) -> AsyncIterator[Playground]:
    port = free_port()
    db_path = tmp_path / "playground.db"
    log = (tmp_path / "playground.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "playground", "--port", str(port),
        "--database", f"sqlite+aiosqlite:///{db_path}", "--log-level", "WARNING",
        cwd=tmp_path, env=bot_env(), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
    )
    try:
        await wait_listening(port, within=30)
        yield Playground(f"http://127.0.0.1:{port}", db_path)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
        log.close()
    output = (tmp_path / "playground.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in output, output


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    assert async_playwright is not None
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            tab = await browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            yield tab
            assert errors == [], errors
        finally:
            await browser.close()


# --- the story, part by part ------------------------------------------------------------------


async def owner_links_phone(owner: Chat) -> None:
    await owner.types("/start")
    await owner.sees(opening(ZH, "onboarding.ask_phone"))
    await owner.taps_key(label(ZH, "onboarding.share_button"))
    await owner.sees(said(ZH, "onboarding.linked"))


async def owner_creates_shop(owner: Chat) -> None:
    await owner.types("/newshop")
    await owner.sees(opening(ZH, "newshop.ask_name"))
    await owner.types(SHOP)
    await owner.sees(said(ZH, "newshop.created", shop=SHOP))


async def owner_creates_role_in_newaccount(owner: Chat) -> None:
    """No role yet: /newaccount creates one first (from the customer-service preset)."""
    await owner.types("/newaccount")
    # wait for the presets: the home menu's "💬 客服分流" also contains the preset's name
    await owner.sees(opening(ZH, "roles.preset_hint"))
    await owner.presses(preset_name(ZH))
    await owner.sees(opening(ZH, "roles.ask_name"))
    await owner.presses(label(ZH, "roles.use_name_button", name=preset_name(ZH)))
    await owner.presses(label(ZH, "roles.skip_button"))
    await owner.presses(label(ZH, "roles.done_button"))
    await owner.sees(opening(ZH, "newaccount.ask_phone"))


async def owner_adds_alice_by_invite(page: Page, owner: Chat, alice: Chat) -> str:
    """Alice never talked to the bot: the owner gets an invite link and opens it as Alice;
    Alice shares her contact and the code arrives in her column. Returns the code."""
    await owner.types("139 0013 9000")
    invite = await owner.sees(opening(ZH, "newaccount.invite"))
    await invite.locator("a[href*='?start=']").click()
    chooser = page.locator("#chooser")
    await expect(chooser).to_be_visible()
    await chooser.locator(f'button[data-person="{alice.person}"]').click()
    # the welcome names the main account, the shop and the role before asking for the contact
    await alice.sees(said(EN, "holder_code.invite_welcome", owner="王芳", shop=SHOP,
                          role=preset_name(ZH)))
    await alice.taps_key(label(EN, "onboarding.share_button"))
    message = await alice.sees(opening(EN, "holder_code.message"))
    found = re.search(r"\b(\d{6})\b", await message.inner_text())
    assert found, await message.inner_text()
    await owner.sees(opening(ZH, "newaccount.invite_opened"))
    return found.group(1)


async def owner_confirms(owner: Chat, alice: Chat, code: str) -> None:
    await owner.types(code)
    await owner.sees(opening(ZH, "newaccount.ask_nickname"))
    await owner.presses(label(ZH, "newaccount.use_name", name="Alice"))
    await owner.sees(opening(ZH, "newaccount.ask_im"))
    await owner.presses(label(ZH, "newaccount.im_on_recommended"))
    await owner.sees(opening(ZH, "newaccount.summary"))
    await owner.presses(label(ZH, "newaccount.confirm"))
    created = await owner.sees(opening(ZH, "newaccount.created"))
    await expect(created).to_contain_text("已授权")
    await alice.sees(said(EN, "holder_code.added", shop=SHOP, role="", modules="", im="")
                     .split("\n")[0])
    await owner.types("/accounts")
    await owner.sees(plain(label(ZH, "accounts.status_authorized")))


async def customer_switches_language(chris: Chat) -> None:
    """A language switch on the page is the language_code of the person's updates."""
    await chris.column.locator("select.language").select_option(ZH)
    await expect(chris.column).to_have_attribute("data-language", ZH)  # the server has it
    await chris.types("/start")
    await chris.sees(opening(ZH, "onboarding.ask_phone"))


async def test_owner_adds_alice_in_the_browser(playground: Playground, page: Page) -> None:
    await page.goto(playground.url)
    await expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    owner, alice = Chat(page, OWNER, ZH), Chat(page, ALICE, EN)
    await expect(owner.column.locator(".head .name")).to_have_text("王芳")

    await owner_links_phone(owner)
    await owner_creates_shop(owner)
    await owner_creates_role_in_newaccount(owner)
    code = await owner_adds_alice_by_invite(page, owner, alice)
    await owner_confirms(owner, alice, code)
    await customer_switches_language(Chat(page, CHRIS, ZH))
    await customer_chats_with_alice(playground, page, owner, Chat(page, CHRIS, ZH), alice)

    assert playground.rows("SELECT phone, holder_id, nickname, im_enabled, status "
                           "FROM sub_account") == [("+8613900139000", ALICE, "Alice", 1,
                                                    "authorized")]
    shot = os.environ.get("PLAYGROUND_SCREENSHOT")
    if shot:
        await page.locator(".toast").evaluate_all("toasts => toasts.forEach(t => t.remove())")
        # taller, for the owner's entry card and QR code together; each chat at its end (the
        # page scrolled before the QR image had its height)
        await page.set_viewport_size({"width": 1400, "height": 1150})
        await page.locator(".messages").evaluate_all(
            "lists => lists.forEach(l => { l.scrollTop = l.scrollHeight; })")
        await page.screenshot(path=shot)


async def owner_creates_entry(owner: Chat) -> Locator:
    """The owner makes the shop's entry in /service: entries → new entry → a name → no group
    (any agent: /service needs no group for an entry). The card shows the link, once, and the
    QR code follows as a photo with the link as its caption. Returns the card."""
    await owner.types("/service")
    await owner.presses(label(ZH, "service_admin.entries_button"))
    await owner.sees(said(ZH, "service_admin.entries_empty"))
    await owner.presses(label(ZH, "service_admin.new_entry_button"))
    await owner.sees(opening(ZH, "service_admin.ask_entry_name"))
    await owner.types(ENTRY)
    await owner.sees(said(ZH, "service_admin.ask_entry_group", name=ENTRY))
    await owner.presses(label(ZH, "service_admin.no_group_button"))
    card = await owner.sees(said(ZH, "service_admin.entry_created", name=ENTRY))
    await expect(card).to_contain_text(opening(ZH, "service_admin.link_now"))
    qr = await owner.sees(said(ZH, "service_admin.qr_caption", name=ENTRY, link=""))
    image = qr.locator("img")
    await expect(image).to_be_visible()
    assert await image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    link = await card.locator("a[href*='?start=cs_']").get_attribute("href")
    assert link and await qr.locator("a").get_attribute("href") == link  # the same link
    return card


async def customer_chats_with_alice(playground: Playground, page: Page, owner: Chat,
                                    chris: Chat, alice: Chat) -> None:
    """Customer service: Alice (IM on) goes online; the owner makes the shop's entry in
    /service; Chris opens its link from the owner's column and writes; Alice answers; Chris
    reads "Alice · 茶香小铺" and the answer, never Alice's Telegram identity."""
    await alice.types("/online")
    await alice.sees(plain(label(EN, "ag.status_online")))
    card = await owner_creates_entry(owner)
    link = card.locator("a[href*='?start=cs_']")
    await expect(link).to_have_count(1)
    token = (await link.get_attribute("href") or "").split("?start=", 1)[1]
    assert playground.rows("SELECT name, group_id, token_hash FROM service_entry") == [
        (ENTRY, None, hash_token(token))]
    await link.click()
    chooser = page.locator("#chooser")
    await expect(chooser).to_be_visible()
    await chooser.locator(f'button[data-person="{chris.person}"]').click()
    await expect(chris.column.locator(".msg.person", has_text=f"/start {token}")).to_be_visible()
    await chris.sees(opening(ZH, "cs.opened_assigned"))
    await alice.sees(opening(EN, "ag.header_new"))
    await chris.types("请问乌龙茶有货吗？")
    await alice.sees("请问乌龙茶有货吗？")
    await alice.types("有的，200 克一罐。")
    await chris.sees(said(ZH, "cs.reply_header", agent="Alice", shop=SHOP))
    await chris.sees("有的，200 克一罐。")
    # ids only, never the content (the answer's row may still be committing)
    assert playground.rows("SELECT direction FROM service_message ORDER BY id")[:1] == [("in",)]
    assert "乌龙" not in str(playground.rows("SELECT * FROM service_message"))


# --- the page's parts, one by one, with the local API fed directly (no bot) ---------------------


async def queued(server: LocalBotApiServer, predicate: Any) -> Any:
    """Wait until an update the page sent is queued for the bot and ``predicate()`` holds."""
    return await server.wait_for(lambda _calls: predicate())


async def changed(playground: WebPlayground, predicate: Any, within: float = 10.0) -> Any:
    """Wait until the page's change reached the server (every change is a feed event)."""
    feed = playground.events()
    try:
        async with asyncio.timeout(within):
            async for _event in feed:  # the state first, then each change
                if found := predicate():
                    return found
    finally:
        await feed.aclose()
    raise AssertionError("the feed ended")


@pytest.fixture
async def bare_page(page: Page) -> AsyncIterator[tuple[Page, LocalBotApiServer, WebPlayground]]:
    async with LocalBotApiServer() as server:
        playground = WebPlayground(server)
        web = HttpServer(playground.handle)
        await web.start()
        try:
            await page.goto(f"http://127.0.0.1:{web.port}")
            await expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
            yield page, server, playground
        finally:
            playground.close()
            await web.stop()


def last_update(server: LocalBotApiServer) -> dict[str, Any]:
    return server.pending[-1] if server.pending else {}


async def test_the_page_shows_what_telegram_would(
    bare_page: tuple[Page, LocalBotApiServer, WebPlayground],
) -> None:
    page, server, _playground = bare_page
    api = server.api
    owner, chris = Chat(page, OWNER, ZH), Chat(page, CHRIS, EN)
    link = f"https://t.me/{api.bot_user['username']}?start=tok123"
    inline = {"inline_keyboard": [[{"text": "Go", "callback_data": "h:go"}]]}
    sent = api.handle("sendMessage", {
        "chat_id": OWNER, "parse_mode": "HTML", "reply_markup": inline,
        "text": f'<b>bold</b> <script>window.hacked = 1</script>'
                f'<a href="javascript:window.hacked = 2">bad</a> open {link}',
    })
    message = await owner.sees("bold")
    await expect(message.locator("b")).to_have_text("bold")
    await expect(message.locator("a", has_text="bad")).not_to_have_attribute(
        "href", re.compile("."))
    assert await page.evaluate("window.hacked") is None

    await owner.presses("Go")  # a callback query for that message, from that person
    query = await queued(server, lambda: last_update(server).get("callback_query"))
    assert query["from"]["id"] == OWNER and query["message"]["message_id"] == sent["message_id"]
    api.handle("answerCallbackQuery", {"callback_query_id": query["id"], "text": "Saved"})
    await expect(owner.column.locator(".toast", has_text="Saved")).to_be_visible()
    await owner.presses("Go")
    query = await queued(server, lambda: (q := last_update(server).get("callback_query")) and
                        q["id"] != query["id"] and q)
    api.handle("answerCallbackQuery", {"callback_query_id": query["id"], "text": "Sure?",
                                       "show_alert": True})
    alert = owner.column.locator(".alert")
    await expect(alert).to_contain_text("Sure?")
    await alert.locator("button").click()
    await expect(alert).to_have_count(0)

    api.handle("editMessageText", {"chat_id": OWNER, "message_id": sent["message_id"],
                                   "text": "<i>changed</i>", "parse_mode": "HTML"})
    edited = await owner.sees("changed")
    await expect(edited.locator(".edited")).to_be_visible()
    await expect(owner.column.locator(".msg.bot")).to_have_count(1)  # in place
    await expect(owner.column.locator(".inline button")).to_have_count(0)

    api.handle("sendPhoto", {"chat_id": OWNER, "photo": Upload("qr.png", "image/png", png(2, 2)),
                             "caption": "scan me"})
    image = (await owner.sees("scan me")).locator("img")
    await expect(image).to_be_visible()
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 2
    api.handle("sendDocument", {"chat_id": OWNER, "document": Upload("a.csv", "text/csv",
                                                                     b"x,y\n")})
    await expect(owner.column.locator("a.document", has_text="a.csv")).to_have_attribute(
        "download", "a.csv")
    api.handle("deleteMessage", {"chat_id": OWNER, "message_id": sent["message_id"]})
    await expect(owner.column.locator(".msg.bot", has_text="changed")).to_have_count(0)

    api.handle("sendMessage", {"chat_id": OWNER, "text": f"invite: {link}"})
    await (await owner.sees("invite:")).locator("a").click()
    await page.locator(f'#chooser button[data-person="{CHRIS}"]').click()
    update = await queued(server, lambda: last_update(server).get("message"))
    assert (update["from"]["id"], update["text"]) == (CHRIS, "/start tok123")
    await expect(chris.column.locator(".msg.person", has_text="/start tok123")).to_be_visible()

    keys = {"keyboard": [[{"text": "Yes"}], [{"text": "📱 Share", "request_contact": True}]],
            "one_time_keyboard": True}
    api.handle("sendMessage", {"chat_id": CHRIS, "text": "Sure?", "reply_markup": keys})
    await chris.taps_key("Yes")
    await queued(server, lambda: last_update(server).get("message", {}).get("text") == "Yes")
    await expect(chris.column.locator(".keyboard")).to_be_hidden()  # one-time


async def test_people_are_added_and_changed_on_the_page(
    bare_page: tuple[Page, LocalBotApiServer, WebPlayground],
) -> None:
    page, server, playground = bare_page
    await page.locator("#add-person").click()
    form = page.locator("#add-form")
    await form.locator("input[name=name]").fill("李娜")
    await form.locator("input[name=id]").fill("4001")
    await form.locator("input[name=phone]").fill("+86 135 0013 5000")
    await form.locator("select[name=language]").select_option(ZH)
    await form.locator("button[type=submit]").click()
    lina = Chat(page, 4001, ZH)
    await expect(lina.column.locator(".head .name")).to_have_text("李娜")
    assert playground.people[4001].phone == "+86 135 0013 5000"

    await lina.column.locator(".gear").click()
    await lina.column.locator(".settings input[name=phone]").fill("+86 135 0013 5999")
    await lina.column.locator(".settings button[type=submit]").click()
    await changed(playground, lambda: playground.people[4001].phone == "+86 135 0013 5999")
    api_keys = {"keyboard": [[{"text": "📱 Share", "request_contact": True}]]}
    server.api.handle("sendMessage", {"chat_id": 4001, "text": "share", "reply_markup": api_keys})
    await lina.taps_key("Share")
    contact = await queued(server, lambda: last_update(server).get("message", {}).get("contact"))
    assert contact == {"phone_number": "8613500135999", "first_name": "李娜", "user_id": 4001}

    alice = Chat(page, ALICE, EN)
    await alice.column.locator("select.language").select_option(ZH)
    await changed(playground, lambda: playground.people[ALICE].language == ZH)
    await alice.types("你好")
    update = await queued(server, lambda: last_update(server).get("message"))
    assert update["from"]["language_code"] == ZH and update["text"] == "你好"
