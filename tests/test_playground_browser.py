"""The playground page in a real headless Chromium (the system's, /usr/bin/chromium, through
Playwright): the owner 王芳 (简体中文) links her phone with the contact button, creates a shop and a
role, adds Alice by phone, opens the invite link as Alice, Alice shares her contact and gets the
code, the owner types it, picks the nickname and IM, confirms — Authorized in the owner's
column, "added" in Alice's. Each part of the story is a function, so the customer's part (an
entry link and a chat with an agent) joins as one more when customer service exists.

Set ``PLAYGROUND_SCREENSHOT=docs/playground.png`` to save the page at the end.
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
from bot.localapi import plain
from handlers.i18n import label, t, template
from tests.fake_server import bot_env, free_port, wait_listening

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
    await alice.sees(said(EN, "holder_code.invite_welcome"))
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

    assert playground.rows("SELECT phone, holder_id, nickname, im_enabled, status "
                           "FROM sub_account") == [("+8613900139000", ALICE, "Alice", 1,
                                                    "authorized")]
    shot = os.environ.get("PLAYGROUND_SCREENSHOT")
    if shot:
        await page.locator(".toast").evaluate_all("toasts => toasts.forEach(t => t.remove())")
        await page.screenshot(path=shot)
