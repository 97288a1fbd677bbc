"""The agent's side as a 客服 uses it, through the Application: a taken-over chat's history
says who wrote what (and is bounded), the End / Transfer buttons of a chat that left an agent
are removed and a press on a stale one answers with a pop-up, the transfer menu has Back, the
confirmation names the colleague or group, and an answer to a customer's message is threaded
under it in the customer's chat."""

from __future__ import annotations

import json
from typing import Any

from handlers.i18n import t
from tests.harness import Harness, Shown
from tests.service_chat_world import (
    AMY,
    ANN,
    add_entry,
    add_group,
    agent_id,
    conversation_of,
    copies,
    links,
    setup_shop,
    texts,
)
from tests.support.people import HOLDER


async def _hank_with_ann(h: Harness) -> int:
    """Hank and Amy online; Ann's chat is Hank's (entry without group, Amy comes later)."""
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.command(AMY, "/online")
    conversation = await conversation_of(h, ANN)
    assert conversation.agent_id == await agent_id(h, HOLDER)
    return conversation.id or 0


def after(h: Harness, who: Any, part: str) -> list[str]:
    """The texts in ``who``'s chat after the last message containing ``part``."""
    shown = texts(h, who)
    start = max(i for i, text in enumerate(shown) if part in text)
    return shown[start + 1:]


def answers(h: Harness) -> list[tuple[str, bool]]:
    return [(str(c.params.get("text") or ""), c.params.get("show_alert") in (True, "true"))
            for c in h.api.methods("answerCallbackQuery")]


def with_buttons(h: Harness, who: Any, conversation_id: int) -> list[Shown]:
    """``who``'s messages still showing End / Transfer of the conversation."""
    mine = {f"ag:end:{conversation_id}", f"ag:tr:{conversation_id}"}
    return [m for m in h.messages(who) if mine & set(m.data)]


async def test_transferred_history_says_who_wrote_what_and_stays_mapped(
        harness: Harness) -> None:
    h = harness
    conversation_id = await _hank_with_ann(h)
    await h.text(ANN, "Is the oolong in stock?")
    await h.text(ANN, "The 250 g tin")
    await h.send(HOLDER, text="Yes, it ships today.",  # type: ignore[call-overload]
                 reply_to=int(copies(h, HOLDER)[0]["message_id"]))
    await h.text(ANN, "And a green tea sample?")
    await h.text(HOLDER, "Amy handles samples.")
    await h.press(HOLDER, f"ag:tr:{conversation_id}")
    await h.click(HOLDER, "Amy CS")
    assert after(h, AMY, "Chat handed to you") == [
        "👤 Ann:", "Is the oolong in stock?", "The 250 g tin",
        "🎧 Hank CS:", "Yes, it ships today.",
        "👤 Ann:", "And a green tea sample?",
        "🎧 Hank CS:", "Amy handles samples."]
    # no content stored: the history is copies by id, each mapped for Amy's replies
    assert all(c["_copy_of"][0] == ANN.id for c in copies(h, AMY))
    mapped = [link for link in await links(h, conversation_id) if link.agent_chat_id == AMY.id]
    assert len(mapped) == 5
    first = copies(h, AMY)[0]
    await h.send(AMY, text="Hi Ann, Amy here.",  # type: ignore[call-overload]
                 reply_to=int(first["message_id"]))
    assert texts(h, ANN)[-1] == "Hi Ann, Amy here."
    # Ann's next message does not read as Hank's (under his label): it has her header
    await h.text(ANN, "Thanks!")
    assert texts(h, AMY)[-2:] == ["👤 Ann · Website · Tea House", "Thanks!"]


async def test_a_new_chat_from_the_queue_needs_no_labels(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "Do you ship to Lyon?")
    await h.command(HOLDER, "/online")
    assert after(h, HOLDER, "New chat: Ann") == ["Do you ship to Lyon?"]


async def test_a_long_history_is_bounded_with_a_note(harness: Harness) -> None:
    h = harness
    conversation_id = await _hank_with_ann(h)
    for n in range(40):
        if n and n % 15 == 0:
            h.clock.advance(61)  # the customer's flood limit
        await h.text(ANN, f"m{n}")
    await h.press(HOLDER, f"ag:tr:{conversation_id}")
    await h.click(HOLDER, "Amy CS")
    shown = after(h, AMY, "Chat handed to you")
    assert shown[0] == "⋯ 15 earlier messages not shown."
    assert shown[1:] == [f"m{n}" for n in range(15, 40)]
    # the live relay header follows (the next message is Ann's, below the history)
    await h.text(ANN, "still there?")
    assert texts(h, AMY)[-1] == "still there?"


async def test_buttons_of_a_chat_transferred_away_are_removed_and_stale_presses_pop_up(
        harness: Harness) -> None:
    h = harness
    conversation_id = await _hank_with_ann(h)
    await h.text(ANN, "hello")
    assert len(with_buttons(h, HOLDER, conversation_id)) == 1  # the new-chat header
    await h.press(HOLDER, f"ag:tr:{conversation_id}")
    await h.click(HOLDER, "Amy CS")
    assert with_buttons(h, HOLDER, conversation_id) == []
    # a press on a stale header (e.g. one another process sent): a pop-up, no new message
    before = len(h.messages(HOLDER))
    await h.press(HOLDER, f"ag:end:{conversation_id}", message_id=1)
    await h.press(HOLDER, f"ag:tr:{conversation_id}", message_id=1)
    amy = await agent_id(h, AMY)
    await h.press(HOLDER, f"ag:ta:{conversation_id}:{amy}", message_id=1)
    assert len(h.messages(HOLDER)) == before
    assert answers(h)[-3:] == [("This chat was transferred to Amy CS.", False)] * 3
    assert (await conversation_of(h, ANN)).agent_id == amy
    # Amy ends it: her headers' buttons go too (the hand-out's and the run's before Ann's
    # next message); a press on a stale one says it ended
    await h.text(ANN, "thanks")
    assert len(with_buttons(h, AMY, conversation_id)) == 2
    await h.press(AMY, f"ag:end:{conversation_id}")
    assert with_buttons(h, AMY, conversation_id) == []
    before = len(h.messages(AMY))
    await h.press(AMY, f"ag:tr:{conversation_id}", message_id=1)
    assert answers(h)[-1] == ("This chat has ended.", False)
    assert len(h.messages(AMY)) == before


async def test_buttons_go_when_the_customer_ends_or_the_chat_is_handed_back(
        harness: Harness) -> None:
    h = harness
    conversation_id = await _hank_with_ann(h)
    await h.text(ANN, "hello")
    await h.command(HOLDER, "/offline")
    await h.click(HOLDER, "Hand them back")
    assert with_buttons(h, HOLDER, conversation_id) == []
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    await h.click(ANN, "End chat")
    assert with_buttons(h, AMY, conversation_id) == []
    await h.press(HOLDER, f"ag:end:{conversation_id}", message_id=1)
    assert answers(h)[-1] == ("This chat has ended.", False)


async def test_transfer_menu_has_back_and_the_confirmation_names_the_colleague(
        harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.command(AMY, "/online")
    await add_group(h, shop, "Pre-sales", {AMY: 1})
    conversation_id = (await conversation_of(h, ANN)).id or 0
    header = with_buttons(h, HOLDER, conversation_id)[-1].message_id
    before = len(h.messages(HOLDER))
    await h.press(HOLDER, f"ag:tr:{conversation_id}", message_id=header)
    assert len(h.messages(HOLDER)) == before  # the header turns into the menu
    menu = h.message(HOLDER, header)
    assert "Transfer this chat to:" in menu.text and "Ann" in menu.text
    assert menu.labels == ["🟢 Amy CS", "👥 Group: Pre-sales", "⬅️ Back"]
    await h.press(HOLDER, menu.button("Back"), message_id=header)
    back = h.message(HOLDER, header)
    assert back.text == "👤 Ann · Website · Tea House"
    assert back.data == [f"ag:end:{conversation_id}", f"ag:tr:{conversation_id}"]
    await h.press(HOLDER, f"ag:tr:{conversation_id}", message_id=header)
    await h.press(HOLDER, h.message(HOLDER, header).button("Amy CS"), message_id=header)
    assert h.message(HOLDER, header).text == (
        "🔀 The chat with Ann was transferred to Amy CS. They have the messages so far.")
    assert h.message(HOLDER, header).buttons == []


async def test_the_confirmation_names_the_group_and_its_colleague(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.command(AMY, "/online")
    await add_group(h, shop, "Pre-sales", {AMY: 1})
    conversation = await conversation_of(h, ANN)
    await h.press(HOLDER, f"ag:tr:{conversation.id}")
    await h.click(HOLDER, "Group: Pre-sales")
    assert texts(h, HOLDER)[-1] == (
        "🔀 The chat with Ann was transferred to Amy CS (group “Pre-sales”). They have the "
        "messages so far.")
    assert "转接给 <b>小张</b>" in t("zh-Hans", "ag.transferred_to", customer="陈女士",
                                    agent="小张")


async def test_an_answer_to_a_customer_message_is_threaded_under_it(harness: Harness) -> None:
    h = harness
    await _hank_with_ann(h)
    await h.text(ANN, "Is the oolong in stock?")
    await h.text(ANN, "And black tea?")
    ann_first = max(m for m in h.api.incoming[ANN.id] if
                    h.api.incoming[ANN.id][m].get("text") == "Is the oolong in stock?")
    await h.send(HOLDER, text="Oolong: yes.",  # type: ignore[call-overload]
                 reply_to=int(copies(h, HOLDER)[0]["message_id"]))
    call = h.api.methods("copyMessage")[-1]
    assert int(call.params["chat_id"]) == ANN.id
    assert json.loads(call.params["reply_parameters"]) == {
        "message_id": ann_first, "allow_sending_without_reply": True}
    # a plain message (no reply) is not threaded
    await h.text(HOLDER, "Anything else?")
    assert "reply_parameters" not in h.api.methods("copyMessage")[-1].params
    assert texts(h, ANN)[-1] == "Anything else?"
