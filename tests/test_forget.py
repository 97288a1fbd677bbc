"""/forget through the Application (docs/product.md, "Retention and /forget"): a user deletes
what the bot keeps about them."""

from __future__ import annotations

import json

from sqlmodel import select

from handlers.i18n import t
from models.tables import AuditEvent, Draft, PhoneBinding, SubAccount, User, VerificationCode
from tests.harness import Harness, Person, rows
from tests.support.domain import add_sub_account, holder_code
from tests.support.flows import make_owner, onboard, setup_hank, to_code_step
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, OWNER_PHONE, STRANGER

HANK_MASKED = "+86 139****9000"
NOT_IN_FLOW = t("en", "common.not_in_flow")
CHEN = Person(5005, "陈", "zh-hans", "chen")


async def snapshot(h: Harness) -> list[str]:
    """Every row the bot keeps, as text (to see that nothing changed)."""
    out: list[str] = []
    for model in (User, SubAccount, PhoneBinding, VerificationCode, AuditEvent, Draft):
        out += [repr(row) for row in await rows(h, model)]
    return out


async def user_row(h: Harness, who: Person) -> User:
    async with h.app.bot_data["deps"].sessions() as session:
        user = await session.get(User, who.id)
        assert user is not None
        return user


def audit_text(events: list[AuditEvent]) -> str:
    return json.dumps([e.detail for e in events], ensure_ascii=False)


async def test_forget_explains_and_cancel_writes_nothing(harness: Harness) -> None:
    await setup_hank(harness)
    before = await snapshot(harness)
    await harness.command(HOLDER, "/forget")
    ask = harness.last(HOLDER)
    assert "Delete your data" in ask.text
    assert f"your phone number {HANK_MASKED}" in ask.text
    assert "your sub-account in Tea House: you leave the shop" in ask.text
    assert "a deleted user" in ask.text and "cannot be undone" in ask.text
    assert ask.labels == ["✅ Delete my data", "✖️ Cancel"]
    assert await snapshot(harness) == before
    await harness.click(HOLDER, "Cancel")
    assert harness.last(HOLDER).text == "Nothing was deleted."
    assert await snapshot(harness) == before


async def test_staff_member_forgets_leaves_shop_and_frees_phone(harness: Harness) -> None:
    await setup_hank(harness)
    await harness.command(HOLDER, "/forget")
    await harness.click(HOLDER, "Delete my data")
    assert harness.last(HOLDER).text.startswith("✅ Your data is deleted")
    hank = await user_row(harness, HOLDER)
    assert (hank.phone, hank.first_name, hank.username, hank.locale) == (None, "", None, "en")
    assert await rows(harness, SubAccount) == []
    assert [b.phone for b in await rows(harness, PhoneBinding)] == [OWNER_PHONE]
    assert [c for c in await rows(harness, VerificationCode) if c.phone == HOLDER_PHONE] == []
    owner_sees = harness.last(OWNER).text
    assert owner_sees == (f"🚪 Hank ({HANK_MASKED}) left Tea House. The sub-account is deleted "
                          "and the phone number is free.")
    # the audit rows stay, without the person's name or phone
    events = await rows(harness, AuditEvent)
    assert {"account.created", "account.left"} <= {e.action for e in events}
    assert "Hank" not in audit_text(events) and HANK_MASKED not in audit_text(events)
    assert all(e.actor_id != HOLDER.id for e in events)
    # the owner's log names a deleted user
    await harness.command(OWNER, "/log")
    log = harness.last(OWNER).text
    assert "a deleted user (—) left the shop" in log
    assert "Added the sub-account a deleted user (—) as Operations" in log
    assert "Hank" not in log and "139" not in log
    # the number is free for its next owner, in any shop
    await onboard(harness, STRANGER, HOLDER_PHONE)
    assert (await user_row(harness, STRANGER)).phone == HOLDER_PHONE


async def test_owner_is_refused_with_nothing_changed(harness: Harness) -> None:
    await setup_hank(harness)
    before = await snapshot(harness)
    await harness.command(OWNER, "/forget")
    refusal = harness.last(OWNER)
    assert "main account of Tea House" in refusal.text
    assert "Hand the shop over or delete it first" in refusal.text
    assert refusal.labels == []
    # a forged or old "Delete my data" button is refused too
    await harness.press(OWNER, "fg:yes")
    assert "Hand the shop over or delete it first" in harness.last(OWNER).text
    assert await snapshot(harness) == before


async def test_a_pending_code_for_them_dies_and_the_owner_is_told(harness: Harness) -> None:
    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await to_code_step(harness)
    code = holder_code(harness)
    code_message = harness.last(HOLDER).message_id
    await harness.command(HOLDER, "/forget")
    assert "verification codes sent to you that are still waiting" in harness.last(HOLDER).text
    await harness.click(HOLDER, "Delete my data")
    assert await rows(harness, VerificationCode) == []
    assert harness.message(HOLDER, code_message).text.startswith(
        "This verification code was withdrawn")
    assert harness.message(HOLDER, code_message).buttons == []
    assert harness.last(OWNER).text.startswith(
        f"ℹ️ The verification code for {HANK_MASKED} was withdrawn")
    assert "start again with /newaccount" in harness.last(OWNER).text
    assert [d.user_id for d in await rows(harness, Draft)] == []
    await harness.text(OWNER, code)  # the owner's flow is over: the code goes nowhere
    assert harness.last(OWNER).text == NOT_IN_FLOW
    assert await rows(harness, SubAccount) == []
    events = await rows(harness, AuditEvent)
    assert HANK_MASKED not in audit_text(events)
    await harness.command(OWNER, "/log")
    log = harness.last(OWNER).text
    assert "Code for a deleted user cancelled" in log
    assert "Issued a verification code for a deleted user" in log


async def test_their_own_draft_ends_and_they_can_start_again(harness: Harness) -> None:
    await harness.command(STRANGER, "/start")  # at "share your phone"
    assert [d.user_id for d in await rows(harness, Draft)] == [STRANGER.id]
    await harness.command(STRANGER, "/forget")
    assert "your phone number" not in harness.last(STRANGER).text
    await harness.click(STRANGER, "Delete my data")
    assert await rows(harness, Draft) == []
    await harness.command(STRANGER, "/help")
    assert "/forget — delete what this bot keeps about you" in harness.last(STRANGER).text


async def test_chinese_texts_and_log(harness: Harness) -> None:
    await make_owner(harness)
    await onboard(harness, CHEN, "+8613500135000")
    await add_sub_account(harness, holder=CHEN, phone="+8613500135000", nickname="小陈")
    await harness.command(CHEN, "/forget")
    ask = harness.last(CHEN)
    assert "删除我的数据" in ask.text and "您在 Tea House 的子账号" in ask.text
    assert ask.labels == ["✅ 删除我的数据", "✖️ 取消"]
    await harness.click(CHEN, "删除我的数据")
    assert harness.last(CHEN).text.startswith("✅ 您的数据已删除")
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "简体中文")
    await harness.command(OWNER, "/log")
    log = harness.last(OWNER).text
    assert "已删除的用户" in log and "小陈" not in log


async def test_forget_is_in_the_command_menu_and_help(harness: Harness) -> None:
    menus = harness.api.methods("setMyCommands")
    assert menus and all(
        "forget" in [c["command"] for c in json.loads(m.params["commands"])]
        if isinstance(m.params["commands"], str)
        else "forget" in [c["command"] for c in m.params["commands"]]
        for m in menus
    )
    await setup_hank(harness)
    for who in (OWNER, HOLDER):
        await harness.command(who, "/help")
        assert "/forget" in harness.last(who).text


async def test_pressing_delete_twice_is_harmless(harness: Harness) -> None:
    await setup_hank(harness)
    await harness.command(HOLDER, "/forget")
    await harness.click(HOLDER, "Delete my data")
    await harness.press(HOLDER, "fg:yes")
    assert harness.last(HOLDER).text.startswith("✅ Your data is deleted")
    owner_notices = [m for m in harness.messages(OWNER) if "left Tea House" in m.text]
    assert len(owner_notices) == 1
    async with harness.app.bot_data["deps"].sessions() as session:
        assert (await session.exec(select(User).where(User.id == HOLDER.id))).one().phone is None


async def test_an_owner_flow_on_an_ended_code_goes_on_without_their_name(
    harness: Harness,
) -> None:
    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await to_code_step(harness)
    await harness.text(OWNER, holder_code(harness))  # verified: the owner now sees the name
    (draft,) = await rows(harness, Draft)
    assert draft.user_id == OWNER.id and draft.data.get("holder_name") == "Hank"
    harness.clock.advance(301)
    assert await harness.run_due_jobs() >= 1  # the verified code expired; the owner may resend
    told = len(harness.messages(OWNER))
    await harness.command(HOLDER, "/forget")
    await harness.click(HOLDER, "Delete my data")
    (draft,) = await rows(harness, Draft)
    assert draft.user_id == OWNER.id and draft.step == "code"
    assert not draft.data.get("holder_name")
    assert len(harness.messages(OWNER)) == told  # nothing withdrawn: nothing to tell
