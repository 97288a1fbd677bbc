"""Issue 12, the Telegram-layer and naming defects: a failed send after a commit, forged huge
ids, invisible characters in names, edited commands, a role deleted mid-flow, double escaping
in /log and a double Confirm. Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.error import NetworkError

from bot.config import ModuleSettings, Settings
from handlers import router
from models.roles import delete_role, set_modules
from models.shops import owned_shop
from models.tables import (
    AccountStatus,
    AuditEvent,
    Draft,
    Role,
    Shop,
    SubAccount,
    VerificationCode,
)
from tests.conftest import (
    HOLDER,
    HOLDER_PHONE,
    OWNER,
    add_role,
    holder_code,
    make_owner,
    onboard,
    open_hank,
    setup_hank,
    start_harness,
    stop_harness,
    to_code_step,
    to_confirm_step,
)
from tests.fake_api import Call, FakeBotApi
from tests.harness import Harness, Shown, rows

STALE = "This menu is no longer valid."
WENT_WRONG = "Sorry, something went wrong"
ADDED = "You are now a sub-account of"


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def said(h: Harness, who: object, part: str) -> list[Shown]:
    """The bot's messages in ``who``'s chat (as they are now) containing ``part``."""
    return [m for m in h.messages(who) if part in m.text]  # type: ignore[arg-type]


async def at_summary(h: Harness) -> Shown:
    """Olivia's Tea House, Hank linked, /newaccount walked to the summary (step 6)."""
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await to_code_step(h)
    await to_confirm_step(h)
    summary = h.last(OWNER)
    assert "Step 6 of 6" in summary.text
    return summary


# --- 10. an edited message is never run as a command ------------------------------------------


async def test_an_edit_into_a_command_runs_nothing(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await to_code_step(h)
    for command in ("/cancel", "/newaccount", "/start", "/roles"):
        message = h._message(OWNER, text=command, edit_date=int(time.time()),
                             entities=[{"type": "bot_command", "offset": 0,
                                        "length": len(command)}])
        shown = await h.feed({"edited_message": message})
        assert "I don't read edited messages" in shown[0].text, command
    (code,) = await rows(h, VerificationCode)
    assert code.status == "pending"
    (draft,) = await rows(h, Draft)
    assert (draft.flow, draft.step) == ("newaccount", "code")
    await h.text(OWNER, holder_code(h))
    assert "Code verified" in " ".join(m.text for m in h.messages(OWNER)[-3:])
