"""The customer relay through the Application: entry links, routing, relaying both ways,
reply routing without guessing, end and rating, media, flood limit."""

from __future__ import annotations

from models.service.tables import Conversation, MessageLink, Rating
from tests.harness import Harness, rows
from tests.service_chat_world import (
    AMY,
    ANN,
    BOB,
    CAT,
    MEI,
    add_entry,
    add_group,
    conversation_of,
    copies,
    links,
    regenerate,
    setup_shop,
    texts,
)
from tests.support.people import HOLDER, OWNER


async def test_entry_link_opens_a_chat_and_messages_go_both_ways(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    assert "Online" in h.last(HOLDER).text
    token = await add_entry(h, shop, "Website")
    shown = await h.command(ANN, f"/start {token}")
    assert "Hank CS" in shown[-1].text and "Tea House" in shown[-1].text
    assert any("New chat: Ann · Website · Tea House" in t for t in texts(h, HOLDER))
    await h.text(ANN, "Is the oolong in stock?")
    copied = copies(h, HOLDER)
    assert [c["text"] for c in copied] == ["Is the oolong in stock?"]
    conversation = await conversation_of(h, ANN)
    assert conversation.state == "assigned" and conversation.nudge_at is not None
    # Hank answers by replying to the copy: Ann sees "Hank CS · Tea House", never Hank
    await h.send(HOLDER, text="Yes, 200 g tins.",
                 reply_to=int(copied[0]["message_id"]))  # type: ignore[call-overload]
    ann = texts(h, ANN)
    assert ann[-2] == "💬 Hank CS · Tea House" and ann[-1] == "Yes, 200 g tins."
    assert not any(t == "Hank" for t in ann) and "forward_origin" not in h.api.chat(ANN.id)[-1]
    after = await conversation_of(h, ANN)
    assert after.first_response_at is not None and after.nudge_at is None
    directions = [link.direction for link in await links(h, after.id or 0)]
    assert directions == ["in", "out"]
    # a second message of the same run gets no second header
    await h.text(ANN, "Great, and green tea?")
    assert [c["text"] for c in copies(h, HOLDER)][-1] == "Great, and green tea?"
    assert sum("Ann · Website" in t for t in texts(h, HOLDER)) == 1


async def test_first_message_routed_by_group_and_weight(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(AMY, "/online")
    await add_group(h, shop, "Pre-sales", {HOLDER: 1, AMY: 3})
    token = await add_entry(h, shop, "Store page", "Pre-sales")
    for who in (ANN, BOB, CAT, MEI):
        await h.command(who, f"/start {token}")
    owners = [(await conversation_of(h, who)).agent_id for who in (ANN, BOB, CAT, MEI)]
    from tests.service_chat_world import agent_id

    hank, amy = await agent_id(h, HOLDER), await agent_id(h, AMY)
    assert sorted(owners, key=lambda a: a or 0).count(amy) == 3 and owners.count(hank) == 1
    # Mei reads Chinese
    assert "您正在与" in h.last(MEI).text


async def test_three_open_chats_no_guess_and_the_message_is_kept(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    for who in (ANN, BOB, CAT):
        await h.command(who, f"/start {token}")
        await h.text(who, f"hello from {who.first_name}")
    before = len(h.api.methods("copyMessage"))
    shown = await h.text(HOLDER, "Which size do you need?")
    assert "3 open chats" in shown[-1].text
    assert len(h.api.methods("copyMessage")) == before  # nothing sent on a guess
    await h.click(HOLDER, "Bob")
    assert texts(h, BOB)[-1] == "Which size do you need?"
    assert "Which size" not in " ".join(texts(h, ANN) + texts(h, CAT))
    # the pick holds for the next plain message; a reply still wins
    await h.text(HOLDER, "We have 100 g and 200 g.")
    assert texts(h, BOB)[-1] == "We have 100 g and 200 g."
    cat_copy = next(c for c in copies(h, HOLDER) if c["text"] == "hello from Cat")
    await h.send(HOLDER, text="Hi Cat!",
                 reply_to=int(cat_copy["message_id"]))  # type: ignore[call-overload]
    assert texts(h, CAT)[-1] == "Hi Cat!"


async def test_one_open_chat_plain_message_goes_to_it(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(HOLDER, "Welcome!")
    assert texts(h, ANN)[-1] == "Welcome!"


async def test_customer_ends_and_rates_once(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "thanks, bye")
    await h.click(ANN, "End chat")
    assert "has ended" in h.last(ANN).text
    assert "Ann ended the chat" in h.last(HOLDER).text
    conversation = await conversation_of(h, ANN)
    await h.press(ANN, f"cs:rate:{conversation.id}:5")
    assert "5/5" in h.last(ANN).text
    await h.press(ANN, f"cs:rate:{conversation.id}:1")
    assert "already rated" in h.answers()[-1]  # a short answer, no new message
    assert "5/5" in h.last(ANN).text
    assert [r.score for r in await rows(h, Rating)] == [5]
    # a message after the end is not lost silently
    await h.text(ANN, "one more thing")
    assert "no open chat" in h.last(ANN).text


async def test_media_relayed_both_ways_and_what_cannot_be_copied(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.photo(ANN, "this one")
    await h.sticker(ANN)
    await h.voice(ANN)
    kinds = [next(k for k in ("photo", "sticker", "voice") if k in c) for c in copies(h, HOLDER)]
    assert kinds == ["photo", "sticker", "voice"]
    assert copies(h, HOLDER)[0]["caption"] == "this one"
    await h.photo(HOLDER, "our tins")
    await h.voice(HOLDER)
    assert ["photo" in c or "voice" in c for c in copies(h, ANN)] == [True, True]
    calls = h.api.methods("copyMessage")
    assert all(int(c.params["from_chat_id"]) in (ANN.id, HOLDER.id) for c in calls)
    await h.send(ANN, poll={"id": "p", "question": "?", "options": [], "total_voter_count": 0,
                            "is_closed": False, "is_anonymous": True, "type": "regular",
                            "allows_multiple_answers": False, "allows_revoting": False,
                            "members_only": False})
    assert "can't be passed on" in h.last(ANN).text
    await h.send(ANN, dice={"emoji": "🎲", "value": 3})
    assert "can't be passed on" in h.last(ANN).text
    conversation = await conversation_of(h, ANN)
    assert len([link for link in await links(h, conversation.id or 0)
                if link.direction == "in"]) == 3


async def test_flood_limit_refuses_with_a_notice(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    for n in range(20):
        await h.text(ANN, f"m{n}")
    await h.text(ANN, "m20")
    assert "not</b>" not in h.last(ANN).text and "was not passed on" in h.last(ANN).text
    assert [c["text"] for c in copies(h, HOLDER)] == [f"m{n}" for n in range(20)]
    h.clock.advance(61)
    await h.text(ANN, "m20 again")
    assert copies(h, HOLDER)[-1]["text"] == "m20 again"


async def test_forged_buttons_and_a_regenerated_link(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    conversation = await conversation_of(h, ANN)
    await h.press(BOB, f"cs:end:{conversation.id}")
    assert "not yours" in h.last(BOB).text
    await h.press(BOB, f"ag:end:{conversation.id}")
    await h.press(BOB, f"ag:tr:{conversation.id}")
    await h.press(BOB, "cs:rate:99999999999:5")
    assert (await conversation_of(h, ANN)).state == "assigned"
    await regenerate(h, shop, "Website")
    await h.command(BOB, f"/start {token}")
    assert "no longer works" in h.last(BOB).text
    assert [c.customer_id for c in await rows(h, Conversation)] == [ANN.id]
    assert OWNER.id not in [c.customer_id for c in await rows(h, Conversation)]
    assert len(await rows(h, MessageLink)) == 0
