"""Access reviews (权限复核) through the Application, with the harness clock: the review message
every ``review_days``, decisions item by item (Keep / Suspend / Unbind, "Keep all remaining"),
partly answered then reminded, unanswered with each no-response rule (a suspended holder's
open customer chat re-routed), the settings, /log, and stale or foreign buttons."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.localapi import LocalBotApi
from handlers.auditlog import describe
from handlers.i18n import LOCALES, catalogue
from models.clock import ManualClock
from models.lifecycle.tables import ReviewItem, ReviewRound
from models.policy import Policy
from models.tables import AuditEvent, PhoneBinding, Shop, SubAccount
from tests.harness import Harness, Person, rows
from tests.service_chat_world import AMY, ANN, add_entry, agent_id, conversation_of, setup_shop
from tests.support.app import start_harness, stop_harness
from tests.support.domain import add_sub_account
from tests.support.flows import make_owner, onboard, setup_hank
from tests.support.people import HOLDER, OTHER_OWNER, OTHER_PHONE, OWNER

MIA = Person(2003, "Mia", "zh-Hans")
MIA_PHONE = "+8613900139222"
DAY = 86400


async def two_staff(h: Harness) -> None:
    """Tea House with Hank (IM on) and Mia (IM off, reads Chinese)."""
    await setup_hank(h, im=True)
    await onboard(h, MIA, MIA_PHONE)
    await add_sub_account(h, holder=MIA, phone=MIA_PHONE)


def sent(h: Harness, who: Person, part: str) -> int:
    """How many messages sent to ``who`` said ``part`` (edited since or not)."""
    return sum(part in str(c.params.get("text")) for c in h.api.methods("sendMessage")
               if int(c.params["chat_id"]) == who.id)


async def accounts(h: Harness) -> dict[str, SubAccount]:
    return {a.nickname: a for a in await rows(h, SubAccount)}


async def actions(h: Harness) -> list[str]:
    return [e.action for e in await rows(h, AuditEvent)]


async def review_due(h: Harness, days: int = 90) -> None:
    h.clock.advance(days * DAY + 1)
    await h.run_due_jobs()


# --- the review message, answered ---------------------------------------------------------------


async def test_the_review_comes_every_review_days_and_is_answered_item_by_item(
    harness: Harness,
) -> None:
    h = harness
    await two_staff(h)
    started = h.clock.now().strftime("%Y-%m-%d")  # the holders linked their phones today
    await review_due(h, 89)
    assert sent(h, OWNER, "access review") == 0
    await review_due(h, 1)
    review = h.last(OWNER)
    assert "Time for the access review of Tea House" in review.text
    assert "Still to decide: 2 of 2" in review.text
    # last active: the day each holder last used the bot
    assert ("1. Hank · +86 139****9000\n     Operations · IM on · ✅ Authorized · "
            f"last active: {started}") in review.text
    assert "2. Mia · +86 139****9222" in review.text and "13900139222" not in review.text
    assert review.labels == ["✅ Keep Hank", "⏸ Suspend", "🗑 Unbind", "✅ Keep Mia", "⏸ Suspend",
                             "🗑 Unbind", "✅ Keep all remaining (2)", "⚙️ Review settings"]
    await review_due(h, 0)
    assert sent(h, OWNER, "Time for the access review") == 1  # once
    shown = await h.click(OWNER, "Keep Hank")
    assert "✅ Hank is kept." in shown[-1].text and "→ ✅ kept" in shown[-1].text
    assert "Still to decide: 1 of 2" in shown[-1].text
    assert "✅ Keep Hank" not in shown[-1].labels
    mia = (await accounts(h))["Mia"]
    item = next(i for i in await rows(h, ReviewItem) if i.account_id == mia.id)
    shown = await h.press(OWNER, f"rv:s:{item.id}:0")
    assert "⏸ Mia is suspended." in shown[-1].text
    assert "✅ The access review is complete. Thank you!" in shown[-1].text
    assert "店铺主账号已暂停您的子账号" in h.last(MIA).text
    assert (await accounts(h))["Mia"].status == "suspended"
    round_ = (await rows(h, ReviewRound))[0]
    assert round_.closed_at is not None and round_.outcome == "answered"
    done = await actions(h)
    assert {"review.started", "review.keep", "review.suspend", "account.suspended",
            "review.answered"} <= set(done)
    # the same decision again, from the old screen: already closed
    await h.press(OWNER, f"rv:s:{item.id}:0")
    assert h.answers()[-1] == "This access review is already closed."
    await h.command(OWNER, "/log")
    log = h.last(OWNER).text
    assert "Access review: kept Hank (+86 139****9000)" in log
    assert "Access review: suspended Mia (+86 139****9222)" in log
    assert "Access review started: 2 to review" in log
    assert "Access review answered in full" in log


async def test_unbind_from_the_review_is_confirmed_and_keep_all_closes_it(
    harness: Harness,
) -> None:
    h = harness
    await two_staff(h)
    await review_due(h)
    shown = await h.click(OWNER, "Unbind")
    assert "Unbind <b>Hank</b>" not in shown[-1].text
    assert "Unbind Hank (+86 139****9000)?" in shown[-1].text
    assert "Hank" in (await accounts(h))  # nothing before the confirm
    shown = await h.press(OWNER, shown[-1].button("Yes, unbind"), message_id=shown[-1].message_id)
    assert "🗑 Hank (+86 139****9000) is unbound; the phone number is free." in shown[-1].text
    assert "Hank" not in await accounts(h)
    assert all(b.phone != "+8613900139000" for b in await rows(h, PhoneBinding))
    assert "unbound your sub-account" in h.last(HOLDER).text
    assert "Still to decide: 1 of 1" in shown[-1].text
    shown = await h.press(OWNER, shown[-1].button("Keep all remaining"),
                          message_id=shown[-1].message_id)
    assert "✅ 1 remaining sub-account kept." in shown[-1].text
    assert "complete" in shown[-1].text
    assert {"review.unbind", "account.unbound", "review.keep"} <= set(await actions(h))


# --- reminded, and unanswered -------------------------------------------------------------------


async def test_partly_answered_then_reminded_once_then_kept_by_the_default_rule(
    harness: Harness,
) -> None:
    h = harness
    await two_staff(h)
    await review_due(h)
    await h.click(OWNER, "Keep Hank")
    await review_due(h, 7)
    reminder = h.last(OWNER)
    assert "Reminder: the access review of Tea House still has 1 sub-account to decide." \
        in reminder.text
    assert "after that the sub-accounts not decided are kept" in reminder.text
    await review_due(h, 0)
    assert sent(h, OWNER, "Reminder: the access review") == 1
    shown = await h.click(OWNER, "Open the review")
    assert "✅ Keep Mia" in shown[-1].labels and "✅ Keep Hank" not in shown[-1].labels
    await review_due(h, 7)
    assert "was not answered in time: 1 sub-account kept as they were." in h.last(OWNER).text
    assert {a.status for a in (await accounts(h)).values()} == {"authorized"}
    assert (await rows(h, ReviewRound))[0].outcome == "kept"
    await h.command(OWNER, "/log")
    assert ("Access review not answered in time: the sub-accounts not decided are kept"
            " (kept: 1, suspended: 0)") in h.last(OWNER).text


async def test_unanswered_with_the_suspend_rule_suspends_and_reroutes_the_open_chat(
    harness: Harness,
) -> None:
    h = harness
    shop = await setup_shop(h)  # Hank CS and Amy CS, both with IM
    await h.command(OWNER, "/review")
    await h.click(OWNER, "Review settings")
    shown = await h.click(OWNER, "Unanswered: suspend")
    assert "✅ Saved." in shown[-1].text and "✓ Unanswered: suspend" in shown[-1].labels
    async with h.app.bot_data["deps"].sessions() as session:
        row = await session.get(Shop, shop.shop_id)
        assert row is not None and row.review_no_response == "suspend"
    await review_due(h)
    assert "If not answered by then: the sub-accounts not kept are suspended." in h.last(OWNER).text
    await h.click(OWNER, "Keep Amy CS")
    h.clock.advance(14 * DAY - 60)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "my order is late")
    await h.command(AMY, "/online")
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, HOLDER)
    await review_due(h, 0)
    h.clock.advance(61)
    await h.run_due_jobs()
    told = h.last(OWNER).text
    assert "was not answered in time: 1 sub-account suspended (Hank CS)." in told
    assert "access review was not answered in time" in h.last(HOLDER).text
    states = {n: a.status for n, a in (await accounts(h)).items()}
    assert states == {"Hank CS": "suspended", "Amy CS": "authorized"}
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert "colleague" in h.last(ANN).text
    await review_due(h, 0)
    assert sent(h, HOLDER, "access review was not answered") == 1


# --- settings -----------------------------------------------------------------------------------


async def test_settings_off_and_a_period_of_the_shop(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await h.command(OWNER, "/review")
    idle = h.last(OWNER).text
    assert "A review every 90 days; the next one on" in idle
    assert "If a review is not answered within 14 days" in idle
    await h.click(OWNER, "Review settings")
    assert "How often: every 90 days (the default)" in h.last(OWNER).text
    shown = await h.click(OWNER, "Off")
    assert "How often: off" in shown[-1].text
    await h.press(OWNER, "rv:sd:0")
    assert h.answers()[-1] == "Nothing to change."
    await review_due(h, 100)
    assert await rows(h, ReviewRound) == []
    await h.command(OWNER, "/review")
    assert "Reviews are off." in h.last(OWNER).text
    await h.click(OWNER, "Review settings")
    await h.click(OWNER, "Every 30 days")  # 100 days old: due at once
    await h.run_due_jobs()
    assert "Time for the access review of Tea House" in h.last(OWNER).text
    assert "shop.reviews" in await actions(h)
    await h.command(OWNER, "/log")
    assert "Changed the access review settings: every 30 days" in h.last(OWNER).text


async def test_staff_and_strangers(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await h.command(HOLDER, "/review")
    assert "Access reviews are for the shop's main account" in h.last(HOLDER).text


async def test_foreign_and_stale_buttons(harness: Harness) -> None:
    h = harness
    await two_staff(h)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    await review_due(h)
    round_ = (await rows(h, ReviewRound))[0]
    item = (await rows(h, ReviewItem))[0]
    for who, data in ((OTHER_OWNER, f"rv:k:{item.id}:0"), (OTHER_OWNER, f"rv:pg:{round_.id}:0"),
                      (OTHER_OWNER, f"rv:ka:{round_.id}"), (HOLDER, f"rv:k:{item.id}:0"),
                      (OTHER_OWNER, f"rv:uy:{item.id}:0"), (OWNER, "rv:k:999999:0"),
                      (OWNER, "rv:sd:45"), (OWNER, "rv:sr:maybe"), (OWNER, "rv:pg:999999:0")):
        await h.press(who, data)
        assert h.answers()[-1] == "This menu is no longer valid.", (who, data)
    assert all(i.decision is None for i in await rows(h, ReviewItem))
    await h.press(OWNER, f"rv:k:{item.id}:0")
    await h.press(OWNER, f"rv:k:{item.id}:0")
    assert h.answers()[-1] == "You have already decided about Hank in this review."


# --- /log texts ---------------------------------------------------------------------------------

LIFECYCLE_ACTIONS: dict[str, dict[str, Any]] = {
    "account.access_until": {"nickname": "Hank", "phone": "+86 139****9000",
                             "until": "2027-03-31T16:00", "before": ""},
    "account.access_unlimited": {"nickname": "Hank", "phone": "+86 139****9000"},
    "account.expired": {"nickname": "Hank", "phone": "+86 139****9000",
                        "until": "2027-03-31T16:00"},
    "review.started": {"items": 3},
    "review.keep": {"nickname": "Hank", "phone": "+86 139****9000"},
    "review.suspend": {"nickname": "Hank", "phone": "+86 139****9000"},
    "review.unbind": {"nickname": "Hank", "phone": "+86 139****9000"},
    "review.answered": {},
    "review.no_response": {"rule": "suspend", "kept": 0, "suspended": 2},
    "shop.reviews": {"days": 30, "rule": "keep"},
    "shop.time_zone": {"before": "UTC", "after": "Asia/Shanghai"},
}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_lifecycle_action_has_its_own_text_in_both_languages(locale: str) -> None:
    from handlers.i18n import t

    reader: Any = SimpleNamespace(locale=locale, policy=Policy(),
                                  t=lambda key, **params: t(locale, key, **params))
    seen = set()
    for action, detail in LIFECYCLE_ACTIONS.items():
        assert "log.actions." + action.replace(".", "_") in catalogue(locale)
        text = describe(reader, AuditEvent(action=action, object_type="x", detail=detail))
        assert "{" not in text and "—" not in text and "T16" not in text, (action, text)
        assert "keep" not in text, (action, text)
        seen.add(text)
    assert len(seen) == len(LIFECYCLE_ACTIONS)


async def test_a_long_review_is_paged_and_decisions_keep_the_page(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    for n in range(1, 8):
        person, phone = Person(6100 + n, f"Staff{n}", "en"), f"+86139001391{n:02d}"
        await onboard(h, person, phone)
        await add_sub_account(h, holder=person, phone=phone)
    await review_due(h)
    first = h.last(OWNER)
    assert "Page 1 of 2" in first.text and "Staff6" not in first.text
    shown = await h.click(OWNER, "Next")
    assert "Page 2 of 2" in shown[-1].text and "6. Staff6" in shown[-1].text
    shown = await h.click(OWNER, "Keep Staff7")
    assert "Page 2 of 2" in shown[-1].text and "Still to decide: 6 of 7" in shown[-1].text


async def test_the_review_in_chinese_says_im_in_the_glossarys_words(harness: Harness) -> None:
    h = harness
    await two_staff(h)
    await h.command(OWNER, "/language")
    await h.click(OWNER, "简体中文")
    await review_due(h, 90)
    review = h.last(OWNER).text
    assert "权限复核" in review
    assert "IM权限（飞鸽）：已开通" in review and "IM权限（飞鸽）：未开通" in review
    assert "IM：" not in review


# --- dates in the shop's time zone --------------------------------------------------------------

#: a year on from the wall clock (the scheduler must not see the jobs as missed), 20:00 UTC: 04:00
#: the next day in Shanghai; 90 days on, Y-06-01 20:00 UTC is Y-06-02 04:00 there
YEAR = datetime.now(UTC).year + 1
SHANGHAI_EVENING = datetime(YEAR, 3, 3, 20, 0)


async def test_review_dates_are_the_shops_days_not_utcs(
    engine: AsyncEngine, api: LocalBotApi, settings: Settings,
) -> None:
    h = await start_harness(settings, engine, api, ManualClock(SHANGHAI_EVENING))
    try:
        await setup_hank(h)
        await h.command(OWNER, "/timezone")
        await h.click(OWNER, "Asia/Shanghai")
        await h.command(OWNER, "/review")
        # due 90 days after the shop was made: 06-01 20:00 UTC, 06-02 in Shanghai
        assert f"the next one on {YEAR}-06-02." in h.last(OWNER).text
        await review_due(h)
        review = h.last(OWNER).text
        assert f"access review of {YEAR}-06-02" in review
        assert f"decide by {YEAR}-06-16" in review  # 14 days on: 06-15 20:00 UTC
        assert f"last active: {YEAR}-03-04" in review  # Hank linked his phone at 04:00 there
        assert f"{YEAR}-06-01" not in review and f"{YEAR}-06-15" not in review
        await h.command(OWNER, "/review")
        assert f"access review of {YEAR}-06-02" in h.last(OWNER).text
        await review_due(h, 7)
        reminder = h.last(OWNER).text
        assert "Reminder: the access review of Tea House" in reminder
        assert f"Decide by {YEAR}-06-16;" in reminder
    finally:
        await stop_harness(h)
