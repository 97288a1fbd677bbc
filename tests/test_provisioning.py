"""/newaccount end to end: owner and holder in their own chats, codes, expiry, restarts, races."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.localapi import LocalBotApi as FakeBotApi
from models.clock import ManualClock
from models.tables import AuditEvent, CodeStatus, Draft, PhoneBinding, SubAccount, VerificationCode
from tests.harness import Harness, Person, rows
from tests.support.app import start_harness, stop_harness
from tests.support.domain import CODE, add_role, holder_code
from tests.support.flows import (
    card,
    make_owner,
    onboard,
    standard_setup,
    to_code_step,
    to_confirm_step,
)
from tests.support.people import (
    HOLDER,
    HOLDER_PHONE,
    OTHER_OWNER,
    OTHER_PHONE,
    OWNER,
    OWNER_PHONE,
    STRANGER,
    STRANGER_PHONE,
)

# --- the happy path ---------------------------------------------------------------------------


async def test_happy_path_ends_in_an_authorized_sub_account(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)
    await h.click(OWNER, "New account")
    shown = h.last(OWNER)
    assert "Step 1 of 6" in shown.text and "Customer service" in shown.labels
    assert "➕ Create new role" in shown.labels
    await h.click(OWNER, "Customer service")
    assert "Step 2 of 6" in h.last(OWNER).text

    await h.text(OWNER, "139 0013 9000")
    holder_msg = h.last(HOLDER)
    assert "Tea House" in holder_msg.text and "Olivia" in holder_msg.text
    assert "Customer service" in holder_msg.text
    assert "Give this code to Olivia only" in holder_msg.text
    assert holder_msg.labels == ["🙅 Not me"]
    owner_msg = h.last(OWNER)
    assert "sent to the Telegram chat of +86 139****9000" in owner_msg.text
    assert "Hank" not in owner_msg.text  # the name is shown only once the code is verified
    assert owner_msg.labels == ["📱 Change number", "🔁 Resend code", "✖️ Cancel"]

    code = holder_code(h)
    await h.text(OWNER, code)
    assert "Step 4 of 6" in h.last(OWNER).text
    assert "Use “Hank”" in h.last(OWNER).labels
    await h.click(OWNER, "Use “Hank”")
    im = h.last(OWNER)
    assert "Step 5 of 6" in im.text
    assert im.labels[:2] == ["💬 On (recommended)", "🚫 Off"]
    await h.click(OWNER, "On (recommended)")
    summary = h.last(OWNER).text
    for part in ("Customer service", "Home, Orders, Customer service", "+86 139****9000",
                 "Nickname: Hank", "IM permission: on"):
        assert part in summary
    await h.click(OWNER, "Confirm")

    accounts = await rows(h, SubAccount)
    assert [(a.phone, a.holder_id, a.nickname, a.role_id, a.im_enabled, a.status)
            for a in accounts] == [(HOLDER_PHONE, HOLDER.id, "Hank", role_id, True, "authorized")]
    bindings = {b.phone: b.kind for b in await rows(h, PhoneBinding)}
    assert bindings == {OWNER_PHONE: "owner", HOLDER_PHONE: "sub"}
    (code_row,) = await rows(h, VerificationCode)
    assert code_row.status == CodeStatus.USED.value
    assert code not in (code_row.code_hash, code_row.salt)
    assert await rows(h, Draft) == []
    owner_texts = [m.text for m in h.messages(OWNER)]
    assert any("Sub-account created: Hank (+86 139****9000)" in t and "Authorized" in t
               for t in owner_texts)
    assert "You are now a sub-account of Tea House" in h.last(HOLDER).text
    assert "Modules: Home, Orders, Customer service" in h.last(HOLDER).text
    assert "IM permission: on" in h.last(HOLDER).text
    actions = [e.action for e in await rows(h, AuditEvent)]
    assert actions[-3:] == ["code.issued", "code.verified", "account.created"]
    audit_text = str([e.detail for e in await rows(h, AuditEvent)])
    assert code not in audit_text and HOLDER_PHONE not in audit_text


async def test_im_is_not_recommended_without_customer_service_module(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h, name="Warehouse", modules=("logistics",))
    await h.command(OWNER, "/newaccount")
    await h.press(OWNER, f"na:role:{role_id}")
    await h.text(OWNER, HOLDER_PHONE)
    await h.text(OWNER, holder_code(h))
    await h.text(OWNER, "  Hank  the   packer ")
    assert h.last(OWNER).labels[:2] == ["💬 On", "🚫 Off"]
    await h.press(OWNER, "na:im:0")
    await h.click(OWNER, "Confirm")
    (account,) = await rows(h, SubAccount)
    assert (account.nickname, account.im_enabled) == ("Hank the packer", False)


async def test_chinese_owner_and_holder_see_chinese(harness: Harness) -> None:
    h = harness
    owner = Person(6006, "王", "zh-hans")
    holder = Person(7007, "李", "zh-hans")
    await make_owner(h, owner, "+8613500135000", "茶馆")
    await onboard(h, holder, "+8613400134000")
    await to_code_step(h, owner=owner, phone="13400134000")
    assert "验证码有效期为5分钟" in h.last(owner).text
    text = h.last(holder).text
    assert "验证码" in text and "茶馆" in text and "不是我" in h.last(holder).labels[0]
    code = re.search(r"验证码：(\d{6})", text)
    assert code
    await h.text(owner, code.group(1))
    await h.click(owner, "使用“李”")
    assert h.last(owner).labels[:2] == ["💬 开通（推荐）", "🚫 暂不开通"]
    await h.click(owner, "开通")
    assert "IM权限（飞鸽）：已开通" in h.last(owner).text
    assert "✅ 确认新建" in h.last(owner).labels
    await h.click(owner, "确认新建")
    assert "已授权" in " ".join(m.text for m in h.messages(owner))
    assert "您已成为" in h.last(holder).text
    assert "模块：首页、订单、客服" in h.last(holder).text
    assert "IM权限（飞鸽）：已开通" in h.last(holder).text


# --- the phone step ---------------------------------------------------------------------------


async def test_invalid_phones_are_refused_and_asked_again(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.press(OWNER, f"na:role:{role_id}")
    card_id = h.last(OWNER).message_id
    for bad in ("abc", "123", "+1 555", "1" * 40, "☎️"):
        shown = await h.text(OWNER, bad)
        # one edit of the card: the reason above the same prompt, no new message
        assert [m.message_id for m in shown] == [card_id]
        assert "doesn't look like a valid phone number" in shown[0].text
        assert "Step 2 of 6" in shown[0].text.split("\n\n", 1)[1]
    shown = await h.sticker(OWNER)
    assert [m.message_id for m in shown] == [card_id]
    assert shown[0].text.startswith("⚠️ Please answer with a text message.\n\nStep 2 of 6")
    assert await rows(h, VerificationCode) == []


async def test_the_three_conflicts_and_own_phone(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    # the holder becomes a sub-account of the first shop
    await to_code_step(h)
    await to_confirm_step(h)
    await h.click(OWNER, "Confirm")
    # 1. already a sub-account of this shop
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    shown = await h.text(OWNER, HOLDER_PHONE)
    assert shown[0].text.startswith("⚠️ «+8613900139000» — This phone number is already bound "
                                    "to this shop; no need to add it again.\n\nStep 2 of 6")
    # 3. the main account of any shop: another shop's, and this shop's own
    shown = await h.text(OWNER, OTHER_PHONE)
    assert "— This phone number is already a shop's main account; use another number." \
        in shown[0].text
    shown = await h.text(OWNER, OWNER_PHONE)
    assert "— This is your own phone number — the shop's main account" in shown[0].text
    # 2. a sub-account of another shop
    other_role = await add_role(h, OTHER_OWNER)
    await h.command(OTHER_OWNER, "/newaccount")
    await h.press(OTHER_OWNER, f"na:role:{other_role}")
    shown = await h.text(OTHER_OWNER, HOLDER_PHONE)
    assert ("This phone number is already a sub-account of another shop. The person can leave "
            "that shop (/me → 🚪 Leave shop) or that shop can unbind it; or use another "
            "number.") in shown[0].text
    assert "Step 2 of 6" in shown[0].text
    assert len(await rows(h, SubAccount)) == 1
    assert len(await rows(h, VerificationCode)) == 1


async def test_seat_cap_is_enforced_and_named(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        from models.shops import owned_shop

        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        shop.max_sub_accounts = 1
        session.add(shop)
        await session.commit()
    await to_code_step(h)
    await to_confirm_step(h)
    await h.click(OWNER, "Confirm")
    await h.command(OWNER, "/newaccount")
    assert "reached its limit of 1 sub-account." in h.last(OWNER).text


# --- delivery ---------------------------------------------------------------------------------


async def test_unlinked_holder_gets_the_code_through_a_single_use_invite(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await to_code_step(h)
    invite = h.last(OWNER).text
    assert "+86 139****9000 has not used this bot yet" in invite
    token = re.search(r"\?start=([A-Za-z0-9_-]+)", invite)
    assert token
    # a stranger with another phone opens the forwarded link
    await h.command(STRANGER, f"/start {token.group(1)}")
    assert "share your phone number" in " ".join(m.text for m in h.messages(STRANGER))
    await h.contact(STRANGER, STRANGER_PHONE)
    assert "This invitation is for another phone number (+86 139****9000)" in h.last(STRANGER).text
    assert not CODE.search(" ".join(m.text for m in h.messages(STRANGER)))
    # the right person opens it
    await h.command(HOLDER, f"/start {token.group(1)}")
    await h.contact(HOLDER, "+86 139 0013 9000")
    code = holder_code(h)
    assert "The person with +86 139****9000 opened your link" in h.last(OWNER).text
    # the link is single-use
    await h.command(STRANGER, f"/start {token.group(1)}")
    assert "no longer valid" in h.last(STRANGER).text
    await h.text(OWNER, code)
    assert "Use “Hank”" in h.last(OWNER).labels
    await h.click(OWNER, "Use “Hank”")
    await h.press(OWNER, "na:im:1")
    await h.click(OWNER, "Confirm")
    (account,) = await rows(h, SubAccount)
    assert account.holder_id == HOLDER.id
    (code_row,) = await rows(h, VerificationCode)
    assert code_row.invite_token_hash is None


async def test_linked_holder_opening_invite_meant_for_other_phone_is_refused(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, STRANGER, STRANGER_PHONE)
    await to_code_step(h)
    token = re.search(r"\?start=([A-Za-z0-9_-]+)", h.last(OWNER).text)
    assert token
    await h.command(STRANGER, f"/start {token.group(1)}")
    assert "for another phone number" in h.last(STRANGER).text


async def test_holder_who_blocked_the_bot_is_reported_plainly(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    h.api.blocked.add(HOLDER.id)
    await to_code_step(h)
    assert "could not be delivered" in h.last(OWNER).text
    assert "blocked this bot" in h.last(OWNER).text
    (code_row,) = await rows(h, VerificationCode)
    assert (code_row.status, code_row.delivery) == ("cancelled", "failed")
    # once unblocked, resending (after the cooldown) delivers
    h.api.blocked.clear()
    h.clock.advance(61)
    await h.click(OWNER, "Resend code")
    assert CODE.search(h.last(HOLDER).text)


# --- entering the code ------------------------------------------------------------------------


async def test_wrong_code_five_times_locks_it(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    code = holder_code(h)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    shown = await h.text(OWNER, "12ab")
    assert "The code is 6 digits" in shown[0].text
    for left in (4, 3, 2, 1):
        shown = await h.text(OWNER, wrong)
        assert f"{left} tries left" in shown[0].text
    await h.text(OWNER, wrong)
    assert "this code is locked" in h.last(OWNER).text
    assert "locked after too many wrong entries" in h.last(HOLDER).text
    assert code not in h.last(HOLDER).text
    await h.text(OWNER, code)
    assert "this code is locked" in h.last(OWNER).text
    (row,) = await rows(h, VerificationCode)
    assert (row.status, row.attempts) == ("locked", 5)
    assert await rows(h, SubAccount) == []


async def test_resend_cooldown_then_accepted_and_old_code_replaced(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    first_message = h.last(HOLDER).message_id
    first = holder_code(h)
    h.clock.advance(30)
    await h.click(OWNER, "Resend code")
    assert "You can send a new one in 30 s" in " ".join(m.text for m in h.messages(OWNER)[-2:])
    assert len(await rows(h, VerificationCode)) == 1
    h.clock.advance(31)
    await h.click(OWNER, "Resend code")
    assert "replaced by a newer one" in h.message(HOLDER, first_message).text
    second = holder_code(h)
    statuses = sorted(c.status for c in await rows(h, VerificationCode))
    assert statuses == ["pending", "superseded"]
    if first != second:
        await h.text(OWNER, first)
        assert "not right" in h.last(OWNER).text
    await h.text(OWNER, second)
    assert "Step 4 of 6" in h.last(OWNER).text


async def test_hourly_cap_per_phone(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    for _ in range(4):
        h.clock.advance(61)
        await h.click(OWNER, "Resend code")
    assert len(await rows(h, VerificationCode)) == 5
    h.clock.advance(61)
    await h.click(OWNER, "Resend code")
    assert "has had 5 codes in the last hour. Try again in 55 min" in " ".join(
        m.text for m in h.messages(OWNER)[-2:])
    assert len(await rows(h, VerificationCode)) == 5


async def test_not_me_kills_the_code_and_tells_the_owner(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    code = holder_code(h)
    await h.click(HOLDER, "Not me")
    assert "You declined" in h.last(HOLDER).text
    assert code not in h.last(HOLDER).text
    # one short alert, and the card says what happened, "Change number" first
    assert h.last(OWNER).text == "🙅 +86 139****9000 tapped “Not me”: see the card above."
    shown = card(h, OWNER)
    assert shown.text == ("🙅 The person using +86 139****9000 tapped “Not me” — they don't "
                          "recognise this request. Check the number.")
    assert shown.labels == ["📱 Change number", "🔁 Send again to this number", "✖️ Cancel"]
    await h.text(OWNER, code)
    assert "tapped “Not me”" in card(h, OWNER).text
    (row,) = await rows(h, VerificationCode)
    assert row.status == "declined"
    await h.press(HOLDER, f"hc:no:{row.id}")
    assert h.answers()[-1] == "This menu is no longer valid."


async def test_someone_else_pressing_not_me_changes_nothing(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await onboard(h, STRANGER, STRANGER_PHONE)
    await to_code_step(h)
    (row,) = await rows(h, VerificationCode)
    await h.press(STRANGER, f"hc:no:{row.id}")
    assert h.answers()[-1] == "This menu is no longer valid."
    (row,) = await rows(h, VerificationCode)
    assert row.status == "pending"


# --- expiry -----------------------------------------------------------------------------------


async def test_code_expires_through_the_scheduler(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    code = holder_code(h)
    holder_message = h.last(HOLDER).message_id
    h.clock.advance(299)
    assert await h.run_due_jobs() == 0
    h.clock.advance(2)
    assert await h.run_due_jobs() == 1
    (row,) = await rows(h, VerificationCode)
    assert row.status == "expired"
    assert "The code for +86 139****9000 expired" in h.last(OWNER).text
    assert "Send a new code" in h.last(OWNER).labels[1]
    assert "has expired" in h.message(HOLDER, holder_message).text
    assert code not in h.message(HOLDER, holder_message).text
    await h.text(OWNER, code)
    assert "expired" in h.last(OWNER).text
    await h.click(OWNER, "Send a new code")
    assert holder_code(h) and (await rows(h, VerificationCode))[-1].status == "pending"


async def test_deadline_in_the_database_wins_even_if_no_job_ran(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    h.clock.advance(300)
    await h.text(OWNER, holder_code(h))
    assert "has expired" in h.last(OWNER).text
    assert "has expired" in h.last(HOLDER).text
    (row,) = await rows(h, VerificationCode)
    assert row.status == "expired"


async def test_restart_reconciles_codes(
    harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi
) -> None:
    h = harness
    await standard_setup(h)
    await onboard(h, STRANGER, STRANGER_PHONE)
    await to_code_step(h)  # first code, will be past due
    first_deadline = (await rows(h, VerificationCode))[0].expires_at
    await stop_harness(h)

    h.clock.advance(200)
    # a second owner issues a code while the first is still pending
    h2 = await start_harness(settings, engine, api, h.clock)
    await make_owner(h2, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    await to_code_step(h2, owner=OTHER_OWNER, phone=STRANGER_PHONE)
    second_deadline = (await rows(h2, VerificationCode))[1].expires_at
    await stop_harness(h2)

    h.clock.advance(150)  # the first is past due, the second is not
    h3 = await start_harness(settings, engine, api, h.clock)
    try:
        statuses = [c.status for c in await rows(h3, VerificationCode)]
        assert statuses == ["expired", "pending"]
        assert "The code for +86 139****9000 expired" in h3.last(OWNER).text
        jobs = h3.app.job_queue.get_jobs_by_name("code-expiry")
        assert len(jobs) == 1
        assert jobs[0].next_t.replace(tzinfo=None) == second_deadline
        assert first_deadline < second_deadline
        h3.clock.advance(151)
        assert await h3.run_due_jobs() == 1
        assert [c.status for c in await rows(h3, VerificationCode)] == ["expired", "expired"]
        assert "The code for +86 136****6000 expired" in h3.last(OTHER_OWNER).text
    finally:
        await stop_harness(h3)
        await start_again_for_teardown(h, settings, engine, api)


async def start_again_for_teardown(
    h: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi
) -> None:
    """The fixture stops ``harness`` at teardown; give it a running app to stop."""
    fresh = await start_harness(settings, engine, api, h.clock)
    h.app = fresh.app


async def test_state_survives_a_restart_mid_flow(
    harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi
) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    code = holder_code(h)
    await h.app.stop()  # abrupt: no flush of anything, the draft is already in the DB
    await h.app.shutdown()
    h2 = await start_harness(settings, engine, api, h.clock)
    h.app = h2.app
    await h2.text(OWNER, code)
    assert "Step 4 of 6" in h2.last(OWNER).text
    await h2.text(OWNER, "Hank")
    await h2.press(OWNER, "na:im:1")
    await h2.click(OWNER, "Confirm")
    assert len(await rows(h2, SubAccount)) == 1


# --- cancelling and stale buttons -------------------------------------------------------------


async def test_cancel_at_every_step_writes_nothing(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)

    async def walk(to: str) -> None:
        await h.command(OWNER, "/newaccount")
        if to == "role":
            return
        await h.press(OWNER, f"na:role:{role_id}")
        if to == "phone":
            return
        h.clock.advance(61)
        await h.text(OWNER, HOLDER_PHONE)
        if to == "code":
            return
        await h.text(OWNER, holder_code(h))
        if to == "nickname":
            return
        await h.text(OWNER, "Hank")
        if to == "im":
            return
        await h.press(OWNER, "na:im:1")

    for step_name in ("role", "phone", "code", "nickname", "im", "confirm"):
        await walk(step_name)
        await h.command(OWNER, "/cancel")
        assert h.last(OWNER).text == "Cancelled. Nothing was saved."
        assert await rows(h, SubAccount) == []
        assert await rows(h, Draft) == []
        assert all(c.status == "cancelled" for c in await rows(h, VerificationCode))
    assert "no longer needed" in h.last(HOLDER).text
    await walk("confirm")
    await h.click(OWNER, "Cancel")
    assert await rows(h, SubAccount) == [] and await rows(h, Draft) == []


async def test_stale_and_foreign_buttons_get_a_short_answer(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)
    for data in ("na:ok", "na:resend", f"na:role:{role_id}", "na:im:1", "na:nick", "na:cancel"):
        await h.press(OWNER, data)
        assert h.answers()[-1] == "This menu is no longer valid."
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    await h.command(OTHER_OWNER, "/newaccount")
    assert any("has no roles yet" in m.text for m in h.messages(OTHER_OWNER))
    await h.command(OTHER_OWNER, "/cancel")
    other_role = await add_role(h, OTHER_OWNER, name="Ops")
    await h.command(OTHER_OWNER, "/newaccount")
    await h.press(OTHER_OWNER, f"na:role:{role_id}")  # the first shop's role: forged
    assert h.answers()[-1] == "This menu is no longer valid."
    await h.press(OTHER_OWNER, f"na:role:{other_role}")
    assert "Step 2 of 6" in h.last(OTHER_OWNER).text
    await h.command(HOLDER, "/newaccount")
    assert "no shop to manage" in h.last(HOLDER).text


# --- races ------------------------------------------------------------------------------------


async def test_two_owners_confirming_the_same_phone_at_once(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    await to_code_step(h)
    await to_confirm_step(h)
    await to_code_step(h, owner=OTHER_OWNER)
    await to_confirm_step(h, owner=OTHER_OWNER)
    assert "Step 6 of 6" in h.last(OWNER).text and "Step 6 of 6" in h.last(OTHER_OWNER).text
    await asyncio.gather(h.click(OWNER, "Confirm"), h.click(OTHER_OWNER, "Confirm"))
    accounts = await rows(h, SubAccount)
    assert len(accounts) == 1
    winner, loser = (OWNER, OTHER_OWNER) if accounts[0].shop_id == 1 else (OTHER_OWNER, OWNER)
    assert "Sub-account created" in " ".join(m.text for m in h.messages(winner))
    loser_texts = " ".join(m.text for m in h.messages(loser)[-3:])
    assert "a sub-account of another shop" in loser_texts
    assert "was not created" in loser_texts


async def test_with_no_roles_the_flow_starts_with_role_creation_and_comes_back(
    harness: Harness,
) -> None:
    h = harness
    await standard_setup(h)
    await h.command(OWNER, "/newaccount")
    # the explanation first, then the screen it explains
    assert "has no roles yet" in h.messages(OWNER)[-2].text
    assert "Create new role" in h.last(OWNER).text
    await h.click(OWNER, "Back")
    assert h.last(OWNER).text == "Cancelled. Nothing was saved."
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Warehouse")
    await h.click(OWNER, "Call it")
    await h.click(OWNER, "Skip")
    await h.click(OWNER, "Done")
    text = h.last(OWNER).text  # the role editor's card has become the flow's card
    assert text.startswith("✅ Role Warehouse created — back to the new account.\n\n"
                           "Step 2 of 6 — role: Warehouse")
    (draft,) = await rows(h, Draft)
    assert (draft.flow, draft.step) == ("newaccount", "phone")
    await h.text(OWNER, HOLDER_PHONE)
    assert "sent to the Telegram chat of" in h.last(OWNER).text


async def test_create_new_role_button_then_back_returns_to_role_choice(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Create new role")
    await h.click(OWNER, "Back")
    assert "Step 1 of 6" in h.last(OWNER).text
    assert "Customer service" in h.last(OWNER).labels


async def test_the_holders_name_on_the_nickname_button_is_not_html_escaped(
    harness: Harness,
) -> None:
    """Button labels are plain text: "Tom & Jerry", not "Tom &amp; Jerry"."""
    tom = Person(5005, "Tom & Jerry", "en")
    await make_owner(harness)
    await onboard(harness, tom, STRANGER_PHONE)
    await to_code_step(harness, phone=STRANGER_PHONE)
    await harness.text(OWNER, holder_code(harness, tom))
    assert "Use “Tom & Jerry”" in harness.last(OWNER).labels
    await harness.click(OWNER, "Use “Tom & Jerry”")
    await harness.press(OWNER, "na:im:1")
    assert "Nickname: Tom & Jerry" in harness.last(OWNER).text  # the summary, as shown


async def test_code_texts_say_the_configured_lifetime(
    settings: Settings, engine: AsyncEngine, api: FakeBotApi, clock: ManualClock
) -> None:
    """With codes valid for 10 minutes, the owner and the holder are both told 10, not 5."""
    longer = settings.model_copy(update={"verification": settings.verification.model_copy(
        update={"code_ttl_seconds": 600})})
    h = await start_harness(longer, engine, api, clock)
    try:
        await standard_setup(h)
        await to_code_step(h)
        assert "It is valid for 10 minutes" in h.last(OWNER).text
        assert "valid for 10 minutes" in h.last(HOLDER).text
        h.clock.advance(601)
        await h.text(OWNER, holder_code(h))
        assert "codes are valid for 10 minutes" in h.last(OWNER).text
    finally:
        await stop_harness(h)
