"""Restart at every step, many owners racing for one phone, and Telegram failing under us."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from telegram.error import NetworkError

from bot import db
from bot.config import Settings
from bot.localapi import LocalBotApi as FakeBotApi
from models.tables import AccountStatus, Draft, SubAccount, VerificationCode
from tests.harness import Harness, Person, rows
from tests.support.app import start_harness, stop_harness
from tests.support.domain import add_role, holder_code
from tests.support.flows import make_owner, onboard, standard_setup, to_code_step
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER

STEPS = ("role", "phone", "code", "nickname", "im", "confirm")


async def walk(h: Harness, role_id: int, until: str) -> None:
    """Drive /newaccount from the start up to (not through) ``until``."""
    await h.command(OWNER, "/newaccount")
    actions = [
        ("phone", lambda: h.press(OWNER, f"na:role:{role_id}")),
        ("code", lambda: h.text(OWNER, HOLDER_PHONE)),
        ("nickname", lambda: h.text(OWNER, holder_code(h))),
        ("im", lambda: h.text(OWNER, "Hank")),
        ("confirm", lambda: h.press(OWNER, "na:im:1")),
        ("done", lambda: h.click(OWNER, "Confirm")),
    ]
    reached = "role"
    for next_step, act in actions:
        if reached == until:
            return
        await act()
        reached = next_step


@pytest.mark.parametrize("step", STEPS)
async def test_abrupt_restart_at_each_step_then_authorized(
    step: str, harness: Harness, settings: Settings, api: FakeBotApi
) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)
    await walk(h, role_id, step)
    draft_before = (await rows(h, Draft))[0]
    assert draft_before.step == step
    codes_before = [(c.id, c.expires_at) for c in await rows(h, VerificationCode)]
    pending = [c.expires_at for c in await rows(h, VerificationCode)
               if c.status in ("pending", "verified")]

    # The process dies: nothing is stopped, flushed or disposed. A new process starts with a
    # new engine over the same database file.
    h.clock.advance(20)
    engine2 = db.create_engine(settings.database.url)
    h2 = await start_harness(settings, engine2, api, h.clock)
    try:
        (draft_after,) = await rows(h2, Draft)
        assert (draft_after.step, draft_after.data) == (draft_before.step, draft_before.data)
        assert [(c.id, c.expires_at) for c in await rows(h2, VerificationCode)] == codes_before
        jobs = h2.app.job_queue.get_jobs_by_name("code-expiry")
        assert [j.next_t.replace(tzinfo=None) for j in jobs if j.next_t] == pending
        remaining = STEPS[STEPS.index(step):]
        if "role" in remaining:
            await h2.press(OWNER, f"na:role:{role_id}")
        if "phone" in remaining:
            await h2.text(OWNER, HOLDER_PHONE)
        if "code" in remaining:
            await h2.text(OWNER, holder_code(h2))
        if "nickname" in remaining:
            await h2.text(OWNER, "Hank")
        if "im" in remaining:
            await h2.press(OWNER, "na:im:1")
        await h2.click(OWNER, "Confirm")
        accounts = await rows(h2, SubAccount)
        assert [(a.phone, a.status) for a in accounts] == [
            (HOLDER_PHONE, AccountStatus.AUTHORIZED.value)
        ]
    finally:
        await stop_harness(h2)
        await engine2.dispose()


def roomy(settings: Settings) -> Settings:
    """Settings that let 50 shops each send a code to one phone within the hour."""
    verification = settings.verification.model_copy(update={
        "codes_per_phone_per_hour": 100, "codes_per_phone_all_shops_per_hour": 200})
    return settings.model_copy(update={"verification": verification})


async def test_fifty_shops_confirming_the_same_phone_at_once(
    settings: Settings, engine: AsyncEngine, api: FakeBotApi, harness: Harness
) -> None:
    await stop_harness(harness)
    h = await start_harness(roomy(settings), engine, api, harness.clock)
    harness.app = h.app
    owners = [Person(10_000 + i, f"Owner{i}", "en") for i in range(50)]
    await onboard(h, HOLDER, HOLDER_PHONE)
    for i, owner in enumerate(owners):
        await make_owner(h, owner, f"+86135{i:08d}", f"Shop {i}")
        await to_code_step(h, owner=owner)
        await h.text(owner, holder_code(h))
        await h.text(owner, "Hank")
        await h.press(owner, "na:im:0")
        assert "Step 6 of 6" in h.last(owner).text
    await asyncio.gather(*(h.click(owner, "Confirm") for owner in owners))
    accounts = await rows(h, SubAccount)
    assert len(accounts) == 1
    winners = [o for o in owners
               if any("Sub-account created" in m.text for m in h.messages(o))]
    losers = [o for o in owners
              if any("a sub-account of another shop" in m.text for m in h.messages(o)[-3:])]
    assert len(winners) == 1 and len(losers) == 49
    from models.shops import owned_shop

    async with h.app.bot_data["deps"].sessions() as session:
        winning_shop = await owned_shop(session, winners[0].id)
    assert winning_shop is not None and winning_shop.id == accounts[0].shop_id
    used = [c for c in await rows(h, VerificationCode) if c.status == "used"]
    assert len(used) == 1 and used[0].id == accounts[0].code_id


async def test_network_errors_are_retried_and_never_lose_the_step(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    await make_owner(h)
    await add_role(h)
    h.api.fail_next("sendMessage", NetworkError("connection reset"))
    await h.command(OWNER, "/newaccount")
    assert "Step 1 of 6" in h.last(OWNER).text  # delivered on the retry
    assert "retrying" in caplog.text
    for _ in range(3):
        h.api.fail_next("sendMessage", NetworkError("connection reset"))
    await h.press(OWNER, h.last(OWNER).data[0])  # the role: the prompt is lost for good…
    (draft,) = await rows(h, Draft)
    assert draft.step == "phone"  # …but the step was written before sending
    await h.text(OWNER, HOLDER_PHONE)
    assert "has not used this bot yet" in h.last(OWNER).text


async def test_telegram_edit_refusals_are_ignored_quietly(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.localapi import ApiError

    h = harness
    await make_owner(h)
    await h.command(OWNER, "/language")
    menu = h.last(OWNER)
    h.api.fail_next("editMessageText", ApiError(400, "Bad Request: message is not modified"))
    await h.press(OWNER, "lang:set:en", message_id=menu.message_id)
    h.api.fail_next("editMessageText", ApiError(400, "Bad Request: message to edit not found"))
    sent = len(h.api.methods("sendMessage"))
    await h.press(OWNER, "lang:set:en", message_id=menu.message_id)
    assert len(h.api.methods("sendMessage")) == sent + 1  # shown as a new message instead
    assert "Language: English" in h.last(OWNER).text
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


async def test_unreachable_holder_during_confirm_is_reported(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)
    await walk(h, role_id, "confirm")
    h.api.blocked.add(HOLDER.id)
    await h.click(OWNER, "Confirm")
    assert "could not be told" in " ".join(m.text for m in h.messages(OWNER)[-3:])
    assert len(await rows(h, SubAccount)) == 1


async def test_drafts_are_one_row_per_user_and_gone_after_confirm(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)
    await walk(h, role_id, "done")
    async with h.app.bot_data["deps"].sessions() as session:
        assert (await session.exec(select(Draft))).all() == []


async def test_an_unexpected_error_asks_the_user_to_try_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug or an outage must not leave the user with no answer: a message for a message, an
    alert for a button, in the language Telegram reports for them; the error is logged."""
    from handlers import language
    from handlers.router import Router

    h = harness
    await make_owner(h)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Router, "show_home", broken)
    await h.command(OWNER, "/start")
    assert h.last(OWNER).text == ("⚠️ Sorry, something went wrong on our side."
                                  " Please try again in a moment.")
    assert "error while handling update" in caplog.text and "the database went away" in caplog.text

    await h.command(OWNER, "/language")
    monkeypatch.setattr(language, "set_locale", broken)
    sent = len(h.api.methods("sendMessage"))
    await h.press(OWNER, "lang:set:en")
    (alert,) = [c for c in h.api.methods("answerCallbackQuery") if c.params.get("show_alert")]
    assert alert.params["text"].startswith("⚠️ Sorry, something went wrong")
    assert len(h.api.methods("sendMessage")) == sent  # the alert said it; no extra message

    chinese = Person(5005, "Wei", "zh-hans")
    await onboard(h, chinese, "+8613600136000")  # linked; then the home screen breaks
    assert h.last(chinese).text == "⚠️ 抱歉，系统出了点问题，请稍后重试。"
