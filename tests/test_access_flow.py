"""Time-limited access (访问期限) through the Application, with the harness clock: the Access end
card of /accounts (choices, a typed date, confirm, the holder told), the reminder with its
Extend buttons, the expiry (suspended and shown as expired, the holder and owner told, the open
customer chat re-routed), the same after a restart past the end, resume refused while expired,
and stale or foreign buttons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import outbox as outbox_handlers
from handlers.access_screens import ACCESS_JOB, run_access
from models.outbox import LEASE, OutboxNotice
from models.tables import AuditEvent, SubAccount
from tests.harness import Harness, Person, rows
from tests.service_chat_world import (
    AMY,
    ANN,
    add_entry,
    agent_id,
    conversation_of,
    copies,
    setup_shop,
)
from tests.support.app import start_harness, stop_harness
from tests.support.flows import make_owner, onboard, open_hank, setup_hank
from tests.support.people import (
    HOLDER,
    OTHER_OWNER,
    OTHER_PHONE,
    OWNER,
    STRANGER,
    STRANGER_PHONE,
)

ENDED = "access has ended"


async def hank(h: Harness) -> SubAccount:
    return next(a for a in await rows(h, SubAccount) if a.holder_id == HOLDER.id)


async def actions(h: Harness) -> list[str]:
    return [e.action for e in await rows(h, AuditEvent)]


def count(h: Harness, who: Person, part: str) -> int:
    """How many messages sent to ``who`` said ``part`` (edited since or not)."""
    return sum(part in str(c.params.get("text")) for c in h.api.methods("sendMessage")
               if int(c.params["chat_id"]) == who.id)


async def give_days(h: Harness, choice: str) -> None:
    """The owner opens Hank, Access end, chooses ``choice`` and confirms."""
    await open_hank(h)
    await h.click(OWNER, "Access end")
    await h.click(OWNER, choice)
    await h.click(OWNER, "Confirm")


# --- choosing an end -------------------------------------------------------------------------


async def test_an_end_chosen_on_the_card_is_written_only_after_confirm(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await open_hank(h)
    assert "⏳ Access end: none" in h.last(OWNER).labels
    await h.click(OWNER, "Access end")
    card = h.last(OWNER)
    assert "Now: no end date" in card.text
    assert {"1 day", "7 days", "30 days", "♾ No end", "📅 Type a date…"} <= set(card.labels)
    await h.click(OWNER, "7 days")
    until = (h.clock.now() + timedelta(days=7)).replace(microsecond=0)
    confirm = h.last(OWNER)
    assert "End the access of <b>Hank</b>" not in confirm.text  # the reader sees plain text
    assert f"End the access of Hank (+86 139****9000) on {until:%Y-%m-%d} at {until:%H:%M} (UTC)?" \
        in confirm.text
    assert (await hank(h)).access_until is None  # nothing written before Confirm
    await h.click(OWNER, "Confirm")
    account = await hank(h)
    assert account.access_until == until
    assert account.access_remind_at is not None  # a third of the term before: under 72 h
    assert timedelta(hours=55) < until - account.access_remind_at <= timedelta(hours=56)
    assert "your sub-account's access now ends on" in h.last(HOLDER).text
    screen = h.last(OWNER)
    assert "✅ The access of Hank now ends on" in screen.text
    assert f"⏳ Access end: until {until:%Y-%m-%d %H:%M}" in screen.labels
    assert "account.access_until" in await actions(h)
    assert h.app.job_queue is not None and h.app.job_queue.get_jobs_by_name(ACCESS_JOB)


async def test_a_typed_date_bad_then_past_then_good_and_removing_the_end(
    harness: Harness,
) -> None:
    h = harness
    await setup_hank(h)
    await open_hank(h)
    await h.click(OWNER, "Access end")
    await h.click(OWNER, "Type a date")
    assert "as YYYY-MM-DD" in h.last(OWNER).text
    await h.text(OWNER, "next friday")
    said = [m.text for m in h.messages(OWNER)[-2:]]
    assert "Please type the end date as YYYY-MM-DD" in said[0] and "as YYYY-MM-DD" in said[1]
    yesterday = h.clock.now() - timedelta(days=1)
    await h.text(OWNER, f"{yesterday:%Y-%m-%d}")
    assert "is already over" in h.messages(OWNER)[-2].text
    day = h.clock.now() + timedelta(days=40)
    await h.text(OWNER, f"{day:%Y/%m/%d}")
    assert f"at the end of {day:%Y-%m-%d} (UTC)" in h.last(OWNER).text
    assert (await hank(h)).access_until is None
    await h.click(OWNER, "Confirm")
    end = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert (await hank(h)).access_until == end
    assert f"⏳ Access end: until {day:%Y-%m-%d}" in h.last(OWNER).labels
    # typing a date is over: back in the /accounts list, a text is a filter, not a date
    await h.text(OWNER, "2030-01-01")
    assert "No sub-account matches this filter" in h.last(OWNER).text
    assert (await hank(h)).access_until == end
    # no end
    await h.click(OWNER, "Access end")
    shown = await h.click(OWNER, "No end")
    assert "Remove the access end of Hank" in shown[-1].text
    await h.click(OWNER, "Confirm")
    assert (await hank(h)).access_until is None
    assert "no longer has an end date" in h.last(HOLDER).text
    assert "account.access_unlimited" in await actions(h)


async def test_cancel_while_typing_changes_nothing(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await open_hank(h)
    await h.click(OWNER, "Access end")
    await h.click(OWNER, "Type a date")
    await h.click(OWNER, "Cancel")
    assert "No date was set; nothing changed." in h.last(OWNER).text
    assert (await hank(h)).access_until is None


# --- reminded, extended, expired ---------------------------------------------------------------


async def test_reminded_extended_then_expired_with_the_open_chat_rerouted(
    harness: Harness,
) -> None:
    h = harness
    shop = await setup_shop(h)
    await give_days(h, "1 day")
    account = await hank(h)
    assert account.access_until is not None and account.access_remind_at is not None
    # a third of a one-day term before its end
    lead = account.access_until - account.access_remind_at
    assert timedelta(hours=8) - timedelta(seconds=1) < lead <= timedelta(hours=8)
    h.clock.advance(16 * 3600 + 1)
    assert await h.run_due_jobs()
    reminder = h.last(OWNER)
    assert "The access of <b>Hank CS</b>" not in reminder.text
    assert "The access of Hank CS (+86 139****9000) to Tea House ends on" in reminder.text
    assert reminder.labels == ["+7 days", "+30 days", "Choose…"]
    assert count(h, OWNER, "Extend it?") == 1
    await h.run_due_jobs()
    assert count(h, OWNER, "Extend it?") == 1  # once
    await h.click(OWNER, "+7 days")
    new_end = (account.access_until + timedelta(days=7)).replace(microsecond=0)
    assert f"on {new_end:%Y-%m-%d} at {new_end:%H:%M} (UTC)" in h.last(OWNER).text
    await h.click(OWNER, "Confirm")
    extended = await hank(h)
    assert extended.access_until == new_end and extended.access_remind_at is not None
    # the next reminder: a third of the new term before its end (under 72 h)
    assert extended.access_remind_at > new_end - timedelta(hours=72)
    await h.run_due_jobs()
    assert count(h, OWNER, "Extend it?") == 1
    h.clock.advance((extended.access_remind_at - h.clock.now()).total_seconds() + 1)
    await h.run_due_jobs()
    assert count(h, OWNER, "Extend it?") == 2
    # a customer chats with Hank just before the end; Amy is online too
    h.clock.advance((new_end - h.clock.now()).total_seconds() - 30)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "my order is late")
    await h.command(AMY, "/online")
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, HOLDER)
    h.clock.advance(31)
    await h.run_due_jobs()
    expired = await hank(h)
    assert expired.status == "suspended" and expired.expired_at is not None
    assert ENDED in h.last(HOLDER).text
    told = next(m for m in reversed(h.messages(OWNER)) if "ended" in m.text)
    assert "The sub-account is suspended and shown as expired" in told.text
    assert "1 open customer chat was handed on to a colleague." in told.text
    assert told.labels == ["+7 days", "+30 days", "Choose…"]
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert [c["text"] for c in copies(h, AMY)] == ["my order is late"]
    assert "colleague" in h.last(ANN).text
    assert "account.expired" in await actions(h)
    await h.run_due_jobs()
    assert count(h, HOLDER, ENDED) == 1
    # the list and the card say expired; resuming is refused until it is extended
    await h.command(OWNER, "/accounts")
    assert "⌛ Expired" in h.last(OWNER).text
    assert h.last(OWNER).labels[0].startswith("⌛ Hank CS")
    await h.click(OWNER, "Hank CS")
    assert "Status: ⌛ Expired" in h.last(OWNER).text
    await h.click(OWNER, "Resume")
    assert "access has expired. Set a new end date" in h.last(OWNER).text
    assert (await hank(h)).status == "suspended"
    assert "account.resumed" not in await actions(h)
    shown = await h.press(OWNER, f"ax:ex:{expired.id}:30")
    assert "It has expired: confirming authorizes it again." in shown[-1].text
    await h.press(OWNER, shown[-1].button("Confirm"), message_id=shown[-1].message_id)
    again = await hank(h)
    assert again.status == "authorized" and again.expired_at is None
    assert again.access_until == (h.clock.now() + timedelta(days=30)).replace(microsecond=0)
    assert "authorized again" in h.last(HOLDER).text
    assert "✅ Hank CS is authorized again." in h.message(OWNER, shown[-1].message_id).text


async def test_after_a_restart_past_the_end_it_expires_and_tells_once(
    harness: Harness, engine: AsyncEngine,
) -> None:
    h = harness
    await setup_hank(h)
    await give_days(h, "1 day")
    await stop_harness(h)
    h.clock.advance(2 * 86400)
    from bot.config import load_settings

    url = str(engine.url.render_as_string(hide_password=False))
    settings = load_settings(environ={"BOT_TOKEN": "123456:TEST-TOKEN", "DATABASE_URL": url})
    again = await start_harness(settings, engine, h.api, h.clock)
    try:
        account = await hank(again)
        assert account.status == "suspended" and account.expired_at is not None
        assert count(again, HOLDER, ENDED) == 1
        assert count(again, OWNER, "The sub-account is suspended and shown as expired") == 1
        await again.run_due_jobs()
    finally:
        await stop_harness(again)
    third = await start_harness(settings, engine, h.api, h.clock)
    try:
        assert count(third, HOLDER, ENDED) == 1
        assert [a for a in await actions(third) if a == "account.expired"] == ["account.expired"]
    finally:
        await stop_harness(third)
        await h.app.initialize()  # the fixture stops ``harness`` at the end
        await h.app.start()


# --- stale and foreign buttons -----------------------------------------------------------------


async def test_foreign_stale_and_outdated_buttons(harness: Harness) -> None:
    h = harness
    account_id = await setup_hank(h)
    await onboard(h, STRANGER, STRANGER_PHONE)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    for who, data in ((OTHER_OWNER, f"ax:op:{account_id}"), (STRANGER, f"ax:op:{account_id}"),
                      (OTHER_OWNER, f"ax:ok:{account_id}:none"),
                      (OWNER, f"ax:ok:{account_id}:tbad"), (OWNER, f"ax:ch:{account_id}:2d"),
                      (OWNER, f"ax:ex:{account_id}:8"), (OWNER, "ax:op:999999")):
        await h.press(who, data)
        assert h.answers()[-1] == "This menu is no longer valid.", (who, data)
    assert (await hank(h)).access_until is None
    # a confirm pressed again: nothing to change, the card as it is now
    await open_hank(h)
    await h.click(OWNER, "Access end")
    shown = await h.click(OWNER, "30 days")
    confirm = shown[-1].button("Confirm")
    await h.press(OWNER, confirm)
    shown = await h.press(OWNER, confirm)
    assert h.answers()[-1] == "Nothing to change."
    assert "Now: ends on" in shown[-1].text
    # a one-day choice confirmed two days later is over
    shown = await h.press(OWNER, f"ax:ch:{account_id}:1d")
    h.clock.advance(2 * 86400)
    await h.press(OWNER, shown[-1].button("Confirm"))
    assert "is already over" in h.answers()[-1]


# --- the notices are durable (the outbox) ------------------------------------------------------


class Crash(Exception):
    """The process dies here (kill -9 between the commit and the send)."""


async def test_an_expiry_crashed_before_its_notices_tells_both_once_after_the_lease(
    harness: Harness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = harness
    deps = h.app.bot_data["deps"]
    await setup_hank(h)
    await give_days(h, "1 day")
    h.clock.advance(2 * 86400)

    async def crash(*_args: object, **_kw: object) -> None:
        raise Crash

    monkeypatch.setattr(outbox_handlers, "send_safely", crash)
    with pytest.raises(Crash):
        await run_access(h.app.bot, deps, h.app.bot_data)
    monkeypatch.undo()
    assert (await hank(h)).expired_at is not None  # committed
    assert sorted(n.topic.split(":")[0] for n in await rows(h, OutboxNotice)) == [
        "access.expired", "access.expired_holder"]
    assert count(h, HOLDER, ENDED) == 0
    await run_access(h.app.bot, deps, h.app.bot_data)  # within the lease: not sent twice
    assert count(h, HOLDER, ENDED) == 0
    h.clock.advance(LEASE.total_seconds() + 1)
    await run_access(h.app.bot, deps, h.app.bot_data)
    assert count(h, HOLDER, ENDED) == 1
    assert count(h, OWNER, "The sub-account is suspended and shown as expired") == 1
    assert await rows(h, OutboxNotice) == []
