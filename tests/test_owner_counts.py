"""/newaccount as one card: what the owner receives (new messages vs edits) and how many
actions adding staff takes; Back, the summary's edits, a restart that keeps the code; the
discard question of the router (for /newaccount and /roles) and /start's Continue."""

from __future__ import annotations

from typing import Any

from models.tables import Draft, SubAccount, VerificationCode
from tests.harness import Harness, Person, rows
from tests.support.domain import add_role, holder_code
from tests.support.flows import card, flow_card, make_owner, onboard, open_new_role
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER


def owner_output(h: Harness, who: Person, since: int) -> tuple[int, int]:
    """(new messages, edits) the bot made in ``who``'s chat since call number ``since``."""
    new = edits = 0
    for call in h.api.calls[since:]:
        if int(call.params.get("chat_id", 0) or 0) != who.id:
            continue
        if call.method == "sendMessage":
            new += 1
        elif call.method in ("editMessageText", "editMessageReplyMarkup"):
            edits += 1
    return new, edits


class Counter:
    """Counts the owner's actions (each text, command or press)."""

    def __init__(self, h: Harness, who: Person) -> None:
        self.h, self.who, self.actions = h, who, 0

    async def text(self, text: str) -> Any:
        self.actions += 1
        return await self.h.text(self.who, text)

    async def command(self, text: str) -> Any:
        self.actions += 1
        return await self.h.command(self.who, text)

    async def click(self, label: str) -> Any:
        self.actions += 1
        return await self.h.click(self.who, label)


async def test_one_clean_add_of_a_linked_staff_member_sends_at_most_three_messages(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    since = len(h.api.calls)
    owner = Counter(h, OWNER)
    await owner.command("/newaccount")
    await owner.click("Customer service")
    await owner.text(HOLDER_PHONE)
    await owner.text(holder_code(h))
    await owner.click("Use “Hank”")
    await owner.click("On (recommended)")
    await owner.click("Confirm")
    new, edits = owner_output(h, OWNER, since)
    print(f"\nclean add: {owner.actions} owner actions, {new} new messages, {edits} edits")
    assert new <= 3
    assert len(await rows(h, SubAccount)) == 1
    done = h.last(OWNER)
    assert "Sub-account created: Hank" in done.text
    assert done.labels == ["➕ Add another (role: Customer service)", "👥 Accounts"]


async def test_twenty_staff_with_add_another(harness: Harness) -> None:
    """After a first add, twenty more with "➕ Add another": each is Add another, the phone,
    the code and Confirm (the holder's name and IM as before, on the summary)."""
    h = harness
    await make_owner(h)
    await add_role(h)
    staff = [Person(8000 + i, f"Staff{i}", "en") for i in range(21)]
    phones = [f"+861380000{i:04d}" for i in range(21)]
    for who, phone in zip(staff, phones, strict=True):
        await onboard(h, who, phone)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, phones[0])
    await h.text(OWNER, holder_code(h, staff[0]))
    await h.click(OWNER, "Use “Staff0”")
    await h.click(OWNER, "On (recommended)")
    await h.click(OWNER, "Confirm")
    since = len(h.api.calls)
    owner = Counter(h, OWNER)
    for who, phone in zip(staff[1:], phones[1:], strict=True):
        await owner.click("Add another (role: Customer service)")
        await owner.text(phone)
        await owner.text(holder_code(h, who))
        assert f"Nickname: {who.first_name}" in h.last(OWNER).text
        await owner.click("Confirm")
    new, edits = owner_output(h, OWNER, since)
    print(f"\n20 staff: {owner.actions} owner actions, {new} new messages, {edits} edits")
    accounts = await rows(h, SubAccount)
    assert len(accounts) == 21 and all(a.im_enabled for a in accounts)
    assert owner.actions <= 80
    assert new <= 60
    # only the new account is shown, not the whole list
    assert "Staff20" in h.last(OWNER).text and "Staff19" not in h.last(OWNER).text


async def test_back_and_the_summary_edits_return_to_the_summary(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    other = await add_role(h, name="Warehouse", modules=("logistics",))
    await h.command(OWNER, "/newaccount")
    card_id = h.last(OWNER).message_id
    await h.click(OWNER, "Customer service")
    await h.click(OWNER, "Back")
    assert "Step 1 of 6" in h.last(OWNER).text
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    await h.text(OWNER, holder_code(h))
    await h.click(OWNER, "Use “Hank”")
    await h.click(OWNER, "Back")
    assert "Step 4 of 6" in h.last(OWNER).text
    await h.click(OWNER, "Use “Hank”")
    await h.click(OWNER, "On (recommended)")
    assert "Step 6 of 6" in h.last(OWNER).text
    await h.click(OWNER, "Change nickname")
    await h.text(OWNER, "Hank the packer")
    assert "Nickname: Hank the packer" in card(h, OWNER).text
    await h.click(OWNER, "Change role")
    await h.press(OWNER, f"na:role:{other}")
    summary = card(h, OWNER)
    assert "Step 6 of 6" in summary.text and "Role: <b>Warehouse" not in summary.text
    assert "Role: Warehouse" in summary.text
    await h.click(OWNER, "IM permission: on — turn off")
    assert "IM permission: off" in card(h, OWNER).text
    # everything happened on the one card
    assert card(h, OWNER).message_id == card_id
    await h.click(OWNER, "Confirm")
    (account,) = await rows(h, SubAccount)
    assert (account.nickname, account.role_id, account.im_enabled) == (
        "Hank the packer", other, False)


async def test_change_number_and_a_restart_keep_the_live_code(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    code = holder_code(h)
    await h.click(OWNER, "Change number")
    assert "Step 2 of 6" in h.last(OWNER).text
    await h.text(OWNER, HOLDER_PHONE)  # the same number: the code goes on, no cooldown
    assert "still valid" in h.last(OWNER).text
    # /newaccount again, after saying to start over: the old card loses its buttons
    old_card = h.last(OWNER).message_id
    await h.command(OWNER, "/newaccount")
    assert "unsaved work" in h.last(OWNER).text
    await h.click(OWNER, "Discard")
    assert h.message(OWNER, old_card).buttons == []
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    assert "still valid" in h.last(OWNER).text
    (row,) = await rows(h, VerificationCode)
    assert row.status == "pending"
    await h.text(OWNER, code)
    assert "Step 4 of 6" in h.last(OWNER).text


async def test_a_command_mid_flow_asks_before_discarding(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    await h.command(OWNER, "/roles")
    question = h.last(OWNER)
    assert question.text == ("You have unsaved work: a new sub-account for +86 139****9000 "
                             "(step 3 of 6).\nDiscard it?")
    assert question.labels == ["🗑 Discard", "▶️ Continue"]
    # Continue: the flow as it was, its card where the question was
    await h.click(OWNER, "Continue")
    assert "Step 3 of 6" in h.last(OWNER).text
    (draft,) = await rows(h, Draft)
    assert draft.step == "code"
    # an old home-menu button asks too; Discard does what was pressed
    await h.press(OWNER, "m:roles")
    await h.click(OWNER, "Discard")
    assert "Role management" in h.last(OWNER).text
    assert await rows(h, Draft) == []
    (row,) = await rows(h, VerificationCode)
    assert row.status == "cancelled"


async def test_start_offers_to_continue_a_waiting_flow(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    await h.command(OWNER, "/start")
    home = h.last(OWNER)
    assert home.labels[0] == "▶️ Continue: a new sub-account for +86 139****9000 (step 3 of 6)"
    await h.click(OWNER, "Continue")
    assert "Step 3 of 6" in h.last(OWNER).text
    assert (await flow_card(h)).message_id == home.message_id


async def test_an_unsaved_role_is_not_discarded_silently(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await open_new_role(h)
    await h.click(OWNER, "Blank")
    await h.text(OWNER, "Packers")
    await h.click(OWNER, "Skip")
    await h.command(OWNER, "/newaccount")
    assert "You have unsaved work: the new role “Packers” (step 3 of 3)" in h.last(OWNER).text
    await h.click(OWNER, "Continue")
    assert "Step 3 of 3" in h.last(OWNER).text
    (draft,) = await rows(h, Draft)
    assert (draft.flow, draft.step) == ("roles", "perms")
    await h.command(OWNER, "/cancel")  # /cancel says so itself: no question
    assert h.last(OWNER).text == "Cancelled. Nothing was saved."


async def test_chinese_not_me_and_discard_question(harness: Harness) -> None:
    h = harness
    owner = Person(6006, "王", "zh-hans")
    holder = Person(7007, "李", "zh-hans")
    await make_owner(h, owner, "+8613500135000", "茶馆")
    await onboard(h, holder, "+447911123456")
    await add_role(h, owner)
    await h.command(owner, "/newaccount")
    await h.click(owner, "Customer service")
    await h.text(owner, "+44 7911 123456")
    await h.click(holder, "不是我")
    assert card(h, owner).text == ("🙅 对方（+44 791****3456）点了“不是我”，表示不认识这次添加，"
                                   "验证码已作废。请核对手机号。")
    assert card(h, owner).labels == ["📱 更换手机号", "🔁 仍发给此号码", "✖️ 取消"]
    await h.command(owner, "/roles")
    assert h.last(owner).text.startswith("您有未完成的操作：为 +44 791****3456 新建子账号")


async def test_phone_errors_say_how_to_fix_them(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, "07911 123456")
    text = h.last(OWNER).text
    assert "A number from another country needs its country code, e.g. +44 7911 123456" in text
    assert "Step 2 of 6" in text
    await h.text(OWNER, "+86 138 0013 8000")  # Olivia's own phone
    assert "This is your own phone number — the shop's main account" in h.last(OWNER).text
    assert await rows(h, VerificationCode) == []


async def test_several_numbers_in_one_message_are_taken_on_one_checklist(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await add_role(h)
    staff = [Person(8100 + i, f"Crew{i}", "en") for i in range(3)]
    phones = [f"+86137000{i:05d}" for i in range(3)]
    for who, phone in zip(staff, phones, strict=True):
        await onboard(h, who, phone)
    await h.command(OWNER, "/newaccount")
    card_id = h.last(OWNER).message_id
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, f"{phones[0]}\nnot a phone\n{phones[1]}")
    assert "These lines are not phone numbers: «not a phone»" in h.last(OWNER).text
    await h.text(OWNER, "\n".join([*phones, phones[0], "+86 138 0013 8000"]))
    assert "Step 5 of 6" in h.last(OWNER).text  # IM once for all of them
    await h.click(OWNER, "On (recommended)")
    for i, who in enumerate(staff):
        text = card(h, OWNER).text
        assert f"{i}/4 confirmed" in text and "▶️ +86 137****" in text
        await h.text(OWNER, holder_code(h, who))
        assert f"Nickname: {who.first_name}" in card(h, OWNER).text
        await h.click(OWNER, "Confirm")
    done = card(h, OWNER)
    assert done.message_id == card_id
    assert "3/4 confirmed" in done.text and "⛔ +86 138****8000" in done.text
    assert "Add another (role: Customer service)" in done.labels[0]
    accounts = await rows(h, SubAccount)
    assert sorted(a.nickname for a in accounts) == ["Crew0", "Crew1", "Crew2"]
    assert all(a.im_enabled for a in accounts)
    assert await rows(h, Draft) == []


async def test_an_invite_lasts_shows_the_same_link_and_names_who_asks(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)  # Hank has not used the bot yet
    first = h.last(OWNER).text
    assert "The link is valid for 48 hours" in first
    link = first.split("start=")[1].split()[0]
    for _ in range(6):  # an invite not yet opened holds no cooldown and no cap
        await h.click(OWNER, "Show the link again")
        assert link in h.last(OWNER).text and "The same link is still valid" in h.last(OWNER).text
    (row,) = await rows(h, VerificationCode)
    h.clock.advance(3 * 3600)  # far longer than a code's 5 minutes
    assert await h.run_due_jobs() == 0
    await h.command(HOLDER, f"/start {link}")
    welcome = h.messages(HOLDER)[-2].text
    assert welcome.startswith("Hello! Olivia, main account of the shop Tea House, invites you "
                              "to be a sub-account with the role Customer service.")
    await h.contact(HOLDER, HOLDER_PHONE)
    linked = h.messages(HOLDER)[-2]
    assert linked.text == "✅ Your phone number is linked."
    code_message = h.last(HOLDER)
    assert "valid for 5 minutes" in code_message.text
    assert "opened your link and received the code" in card(h, OWNER).text
    await h.text(OWNER, holder_code(h))
    assert "Step 4 of 6" in h.last(OWNER).text
    (row,) = await rows(h, VerificationCode)
    assert row.status == "verified" and row.invite_token_hash is None


async def test_the_access_end_is_chosen_at_the_summary(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    await h.text(OWNER, holder_code(h))
    await h.click(OWNER, "Use “Hank”")
    await h.click(OWNER, "On (recommended)")
    assert "⏳ Access end: none" in h.last(OWNER).text
    await h.click(OWNER, "Access end: none")
    await h.text(OWNER, "2020-01-01")
    shown = h.last(OWNER).text
    assert shown.startswith("⚠️ «2020-01-01» — 2020-01-01 is already over.")
    assert "Access end for this sub-account" in shown
    await h.text(OWNER, "next week")
    assert "Please type the end date as YYYY-MM-DD" in h.last(OWNER).text
    await h.click(OWNER, "7 days")
    assert "⏳ Access end: 7 days" in h.last(OWNER).text
    await h.click(OWNER, "Access end: 7 days")
    year = h.clock.now().year + 1
    await h.text(OWNER, f"{year}-03-31")
    assert f"⏳ Access end: {year}-03-31" in h.last(OWNER).text
    await h.click(OWNER, "Confirm")
    (account,) = await rows(h, SubAccount)
    assert account.access_until is not None
    assert account.access_until.date().isoformat() == f"{year}-04-01"  # the end of that day, UTC


async def test_consent_by_button_when_the_shop_chooses_it(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    assert "⚙️ Staff confirm by: typed code — change" in h.last(OWNER).labels  # the default
    await h.click(OWNER, "Staff confirm by")
    assert "⚙️ Staff confirm by: ✅ button — change" in h.last(OWNER).labels
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    request = h.last(HOLDER)
    assert "wants to add you as a sub-account with the role Customer service" in request.text
    assert "Verification code" not in request.text  # no digits to relay
    assert request.labels == ["✅ Join Tea House", "🙅 Not me"]
    assert "was asked in their own Telegram chat to accept" in h.last(OWNER).text
    await h.click(HOLDER, "Join Tea House")
    assert "You accepted" in h.last(HOLDER).text and h.last(HOLDER).buttons == []
    shown = card(h, OWNER)
    assert shown.text.startswith("✅ Hank accepted.\n\nStep 4 of 6")
    await h.click(OWNER, "Use “Hank”")
    await h.click(OWNER, "On (recommended)")
    await h.click(OWNER, "Confirm")
    (account,) = await rows(h, SubAccount)
    assert account.holder_id == HOLDER.id
    (row,) = await rows(h, VerificationCode)
    assert row.status == "used"
    await h.press(HOLDER, f"hc:ok:{row.id}")  # pressed again: no longer valid
    assert h.answers()[-1] == "This menu is no longer valid."


async def test_a_cooldown_keeps_the_number_and_sends_when_ready(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    await h.text(OWNER, HOLDER_PHONE)
    await h.command(OWNER, "/cancel")  # the code was sent: its cooldown runs on
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Customer service")
    h.clock.advance(20)
    await h.text(OWNER, HOLDER_PHONE)
    shown = h.last(OWNER)
    assert "You can send a new one in 40 s" in shown.text
    assert "The number +86 139****9000 is kept" in shown.text
    assert "⏳ Send when ready" in shown.labels
    h.clock.advance(10)
    await h.click(OWNER, "Send when ready")  # too early: the same refusal, seconds left
    assert "You can send a new one in 30 s" in h.last(OWNER).text
    h.clock.advance(31)
    await h.click(OWNER, "Send when ready")
    assert "Step 3 of 6" in h.last(OWNER).text
    assert [c.status for c in await rows(h, VerificationCode)] == ["cancelled", "pending"]
