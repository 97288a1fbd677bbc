"""Onboarding through the Application: phone linking, /newshop, language, /cancel, groups."""

from __future__ import annotations

import pytest

from models.tables import PhoneBinding, Shop, User
from tests.harness import Harness, Person, rows
from tests.support.flows import make_owner, onboard, to_code_step, to_confirm_step
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, OWNER_PHONE, STRANGER, STRANGER_PHONE


async def test_start_asks_for_own_contact_with_a_request_contact_button(harness: Harness) -> None:
    await harness.command(OWNER, "/start")
    last = harness.last(OWNER)
    assert "Share my phone number" in last.text
    assert last.reply_keyboard is not None
    assert last.reply_keyboard[0][0]["request_contact"] is True


async def test_own_contact_is_linked_in_e164_and_home_is_shown(harness: Harness) -> None:
    await harness.command(OWNER, "/start")
    shown = await harness.contact(OWNER, "8613800138000")
    assert any("phone number is linked" in s.text for s in shown)
    assert "/newshop" in harness.last(OWNER).text
    users = await rows(harness, User)
    assert [(u.id, u.phone) for u in users] == [(OWNER.id, OWNER_PHONE)]


async def test_someone_elses_contact_is_refused(harness: Harness) -> None:
    await harness.command(OWNER, "/start")
    await harness.contact(OWNER, "8613900139000", user_id=HOLDER.id)
    assert "address book can't be verified" in harness.last(OWNER).text
    assert harness.last(OWNER).reply_keyboard[0][0]["request_contact"] is True
    assert (await rows(harness, User))[0].phone is None


async def test_malformed_phone_is_refused_and_asked_again(harness: Harness) -> None:
    await harness.command(OWNER, "/start")
    shown = await harness.contact(OWNER, "12345")
    assert "valid phone number" in shown[0].text
    assert harness.last(OWNER).reply_keyboard is not None
    assert (await rows(harness, User))[0].phone is None


async def test_typed_phone_is_not_accepted(harness: Harness) -> None:
    await harness.command(OWNER, "/start")
    await harness.text(OWNER, "+86 138 0013 8000")
    assert "don't type the number" in harness.last(OWNER).text
    assert (await rows(harness, User))[0].phone is None


async def test_phone_of_another_telegram_user_is_refused(harness: Harness) -> None:
    await onboard(harness, OWNER, OWNER_PHONE)
    await harness.command(STRANGER, "/start")
    await harness.contact(STRANGER, "8613800138000")
    assert "another Telegram account" in harness.last(STRANGER).text


async def test_newshop_creates_shop_and_binds_the_main_account(harness: Harness) -> None:
    await make_owner(harness, shop="  Tea   House ")
    texts = [m.text for m in harness.messages(OWNER)]
    assert any("Shop Tea House created" in t for t in texts)
    assert "Tea House — main account" in harness.last(OWNER).text
    assert "Sub-accounts: 0 of 50" in harness.last(OWNER).text
    shops = await rows(harness, Shop)
    assert [(s.name, s.owner_id) for s in shops] == [("Tea House", OWNER.id)]
    bindings = await rows(harness, PhoneBinding)
    assert [(b.phone, b.kind) for b in bindings] == [(OWNER_PHONE, "owner")]


async def test_newshop_name_too_long_and_empty_are_asked_again(harness: Harness) -> None:
    await onboard(harness, OWNER, OWNER_PHONE)
    await harness.command(OWNER, "/newshop")
    shown = await harness.text(OWNER, "x" * 41)
    assert "too long (41 characters); 40 at most" in shown[0].text
    assert "What is your shop called?" in shown[1].text
    shown = await harness.text(OWNER, "   ")
    assert "can't be empty" in shown[0].text
    await harness.sticker(OWNER)
    assert "What is your shop called?" in harness.last(OWNER).text
    assert await rows(harness, Shop) == []
    await harness.text(OWNER, "y" * 40)
    assert [s.name for s in await rows(harness, Shop)] == ["y" * 40]


async def test_second_shop_is_refused(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/newshop")
    assert "already own a shop" in harness.last(OWNER).text
    assert len(await rows(harness, Shop)) == 1


async def test_newshop_before_linking_asks_for_the_phone(harness: Harness) -> None:
    await harness.command(OWNER, "/newshop")
    assert "link your phone number first" in harness.messages(OWNER)[-2].text
    assert harness.last(OWNER).reply_keyboard is not None


async def test_cancel_mid_flow_writes_nothing(harness: Harness) -> None:
    await onboard(harness, OWNER, OWNER_PHONE)
    await harness.command(OWNER, "/newshop")
    await harness.command(OWNER, "/cancel")
    assert "Cancelled. Nothing was saved." in harness.last(OWNER).text
    await harness.text(OWNER, "Tea House")
    assert "not waiting for anything" in harness.last(OWNER).text
    assert await rows(harness, Shop) == []
    await harness.command(OWNER, "/cancel")
    assert "nothing to cancel" in harness.last(OWNER).text


async def test_language_switch_changes_texts_and_chat_menu(harness: Harness) -> None:
    await onboard(harness, OWNER, OWNER_PHONE)
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "简体中文")
    assert "语言：简体中文" in harness.last(OWNER).text
    await harness.command(OWNER, "/help")
    assert "可用功能" in harness.last(OWNER).text
    menus = harness.api.methods("setMyCommands")
    assert menus[-1].params["scope"] == {"type": "chat", "chat_id": OWNER.id}
    assert (await rows(harness, User))[0].locale == "zh-Hans"


async def test_chinese_telegram_users_start_in_chinese(harness: Harness) -> None:
    from tests.harness import Person

    chen = Person(5005, "陈", "zh-hans")
    await harness.command(chen, "/start")
    assert "分享我的手机号" in harness.last(chen).text


async def test_commands_in_a_group_point_to_the_private_chat(harness: Harness) -> None:
    await harness.command(OWNER, "/newshop", group=True)
    sent = harness.api.methods("sendMessage")[-1]
    assert sent.params["chat_id"] == -100123
    assert "only in a private chat" in harness.api.chat(-100123)[-1]["text"]
    assert "https://t.me/subaccount_test_bot" in harness.api.chat(-100123)[-1]["text"]
    assert await rows(harness, Shop) == []


async def test_commands_are_registered_in_both_languages_at_start(harness: Harness) -> None:
    menus = harness.api.methods("setMyCommands")
    codes = {m.params.get("language_code") for m in menus}
    assert codes == {None, "zh"}


async def test_help_depends_on_who_asks(harness: Harness) -> None:
    await harness.command(OWNER, "/help")
    assert "/start — link your phone" in harness.last(OWNER).text
    await make_owner(harness)
    await harness.command(OWNER, "/help")
    text = harness.last(OWNER).text
    assert "/newaccount" in text and "/roles" in text and "/newshop" not in text


async def test_unknown_command_edits_and_stickers_get_polite_answers(harness: Harness) -> None:
    await onboard(harness, OWNER, OWNER_PHONE)
    await harness.command(OWNER, "/frobnicate")
    assert "don't know that command" in harness.last(OWNER).text
    await harness.sticker(OWNER)
    assert "not waiting for anything" in harness.last(OWNER).text
    await harness.edited(OWNER, "hello")
    assert "edited messages" in harness.last(OWNER).text


async def test_forged_callback_data_gets_a_short_answer(harness: Harness) -> None:
    await onboard(harness, OWNER, OWNER_PHONE)
    for data in ("lang:set:klingon", "nope", "m:roles:1", "lang:set", "x" * 64):
        await harness.press(OWNER, data)
    assert harness.answers()[-5:] == ["This menu is no longer valid."] * 5


# --- newcomers (issue 15, point 9) --------------------------------------------------------------

async def test_any_message_before_linking_gets_the_share_prompt_with_its_button(
        harness: Harness) -> None:
    await harness.text(STRANGER, "hello? how do I add my staff")
    last = harness.last(STRANGER)
    assert "link your phone number" in last.text
    assert last.reply_keyboard is not None and last.reply_keyboard[0][0]["request_contact"]
    for send in (harness.sticker, harness.photo, harness.voice):
        shown = await send(STRANGER)
        assert len(shown) == 1
        assert "tap the <b>📱 Share my phone number</b> button below" not in shown[0].text
        assert "tap the 📱 Share my phone number button below" in shown[0].text
        assert shown[0].reply_keyboard[0][0]["request_contact"] is True
    await harness.text(STRANGER, "+86 139 5555 0006")
    assert "don't type the number" in harness.last(STRANGER).text


async def test_a_sticker_at_the_share_step_says_tap_the_button_in_chinese(harness: Harness) -> None:
    from tests.harness import Person

    chen = Person(5005, "陈", "zh-hans")
    await harness.command(chen, "/start")
    shown = await harness.sticker(chen)
    assert shown[0].text == "请点击下方 📱 分享我的手机号 按钮（无需输入号码）。"
    assert shown[0].reply_keyboard is not None


async def test_a_saved_contact_without_user_id_is_explained(harness: Harness) -> None:
    await harness.command(STRANGER, "/start")
    await harness.send(STRANGER, contact={"phone_number": "+8613600136000", "first_name": "Sam"})
    last = harness.last(STRANGER)
    assert "A contact from your address book can't be verified" in last.text
    assert last.reply_keyboard[0][0]["request_contact"] is True
    assert (await rows(harness, User))[0].phone is None


async def test_start_welcomes_once_then_only_asks_again(harness: Harness) -> None:
    first = await harness.command(STRANGER, "/start")
    assert [("Hello, Sam!" in s.text) for s in first] == [True, False]
    again = await harness.command(STRANGER, "/start")
    assert len(again) == 1 and "link your phone number" in again[0].text
    assert again[0].reply_keyboard is not None


async def test_start_shows_a_linked_user_the_home_not_the_welcome(harness: Harness) -> None:
    await onboard(harness, STRANGER, STRANGER_PHONE)
    shown = await harness.command(STRANGER, "/start")
    assert len(shown) == 1
    assert "Hello" not in shown[0].text and "You have no shop yet" in shown[0].text


async def test_owner_commands_before_linking_say_to_link_first(harness: Harness) -> None:
    for command in ("/accounts", "/roles", "/log", "/newaccount", "/timezone"):
        shown = await harness.command(STRANGER, command)
        text = " ".join(s.text for s in shown)
        assert "link your phone number first" in text, command
        assert "/newshop" not in text, command


# --- per-chat command menus -----------------------------------------------------------------------

def chat_menu(harness: Harness, who: Person) -> list[str]:
    """The commands Telegram would show in ``who``'s chat."""
    return harness.api.menu(who.id, who.language_code)


async def test_the_default_menu_is_a_newcomers(harness: Harness) -> None:
    assert chat_menu(harness, STRANGER)[:2] == ["start", "newshop"]
    assert not {"newaccount", "accounts", "roles", "log", "me", "timezone"} & set(
        chat_menu(harness, STRANGER))
    zh = harness.api.menu(STRANGER.id, "zh-hans")
    assert zh == chat_menu(harness, STRANGER)
    descriptions = harness.api.menus[(("default",), "zh")]
    assert descriptions[0]["description"] == "开始，或查看可用功能"


AGENT_COMMANDS = {"status", "online", "break", "offline", "chats"}


async def test_the_customer_service_commands_are_in_owners_and_staffs_menus_only(
        harness: Harness) -> None:
    assert not AGENT_COMMANDS & set(chat_menu(harness, STRANGER))  # a newcomer, a customer
    await onboard(harness, STRANGER, "+8613700137000")
    assert not AGENT_COMMANDS & set(chat_menu(harness, STRANGER))  # linked, neither
    await make_owner(harness)
    assert set(chat_menu(harness, OWNER)) >= AGENT_COMMANDS
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await to_code_step(harness)
    await to_confirm_step(harness)
    await harness.click(OWNER, "Confirm")
    assert set(chat_menu(harness, HOLDER)) >= AGENT_COMMANDS


async def test_menus_follow_what_the_person_is(harness: Harness) -> None:
    await onboard(harness, OWNER, OWNER_PHONE)
    assert "newshop" in chat_menu(harness, OWNER)
    assert "newaccount" not in chat_menu(harness, OWNER)
    await harness.command(OWNER, "/newshop")
    await harness.text(OWNER, "Tea House")
    menu = chat_menu(harness, OWNER)
    assert {"newaccount", "accounts", "roles", "log", "timezone"} <= set(menu)
    assert "newshop" not in menu and "me" not in menu


async def test_a_new_sub_account_gets_the_staff_menu_and_loses_it_when_unbound(
        harness: Harness) -> None:
    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    assert "newshop" in chat_menu(harness, HOLDER) and "me" not in chat_menu(harness, HOLDER)
    await to_code_step(harness)
    await to_confirm_step(harness)
    await harness.click(OWNER, "Confirm")
    menu = chat_menu(harness, HOLDER)
    assert "me" in menu and "newshop" not in menu and "newaccount" not in menu
    await harness.command(OWNER, "/accounts")
    await harness.click(OWNER, "Hank")
    await harness.click(OWNER, "Unbind")
    await harness.click(OWNER, "Yes, unbind")
    menu = chat_menu(harness, HOLDER)
    assert "newshop" in menu and "me" not in menu


async def test_the_chat_menu_is_in_the_persons_language(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "简体中文")
    menu = harness.api.menus[(("chat", OWNER.id), "")]
    assert {c["command"]: c["description"] for c in menu}["newaccount"] == "新建子账号"


async def test_leaving_then_forget_give_the_default_menu_back(harness: Harness) -> None:
    from tests.support.domain import add_sub_account

    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await add_sub_account(harness, holder=HOLDER, phone=HOLDER_PHONE)
    await harness.command(HOLDER, "/start")  # /start sets the menu for what they are
    assert "me" in chat_menu(harness, HOLDER)
    await harness.command(HOLDER, "/me")
    await harness.click(HOLDER, "Leave shop")
    await harness.click(HOLDER, "Yes, leave")
    assert "me" not in chat_menu(harness, HOLDER) and "newshop" in chat_menu(harness, HOLDER)
    await harness.command(HOLDER, "/forget")
    await harness.click(HOLDER, "Delete my data")
    assert (("chat", HOLDER.id), "") not in harness.api.menus


async def test_the_local_api_answers_command_menus_like_telegram(harness: Harness) -> None:
    from bot.localapi.core import ApiError

    api = harness.api
    with pytest.raises(ApiError, match="BOT_COMMAND_INVALID"):
        api.handle("setMyCommands", {"commands": [{"command": "Bad-Name", "description": "x"}]})
    with pytest.raises(ApiError, match="description"):
        api.handle("setMyCommands", {"commands": [{"command": "ok", "description": ""}]})
    with pytest.raises(ApiError, match="scope"):
        api.handle("setMyCommands", {"commands": [], "scope": {"type": "planet"}})
    with pytest.raises(ApiError, match="language code"):
        api.handle("deleteMyCommands", {"language_code": "zh-Hans"})
    api.handle("setMyCommands", {"commands": [{"command": "a", "description": "A"}],
                                 "scope": {"type": "chat", "chat_id": 42}, "language_code": "en"})
    assert api.handle("getMyCommands", {"scope": {"type": "chat", "chat_id": 42},
                                        "language_code": "en"}) == [
        {"command": "a", "description": "A"}]
    assert api.menu(42, "en") == ["a"]
    assert api.menu(42, "de") == chat_menu(harness, STRANGER)  # the default for other languages
    assert api.handle("deleteMyCommands", {"scope": {"type": "chat", "chat_id": 42},
                                           "language_code": "en"}) is True
    assert api.menu(42, "en") == chat_menu(harness, STRANGER)
