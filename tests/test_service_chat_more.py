"""More of the relay through the Application: /forget mid-chat, a customer of two shops
(every reply names its shop; switch shop), idle close, re-route on a breach, the owner as an
agent, /status and /me's button, agent's /chats."""

from __future__ import annotations

from models.service.tables import Conversation
from tests.harness import Harness, Person, rows
from tests.service_chat_world import (
    AMY,
    ANN,
    BOB,
    Shop,
    add_entry,
    agent_id,
    configure,
    conversation_of,
    copies,
    setup_shop,
    texts,
)
from tests.support.domain import add_sub_account
from tests.support.flows import make_owner, onboard
from tests.support.people import HOLDER, OTHER_OWNER, OTHER_PHONE, OWNER

OTTO = Person(3103, "Otto", "en")


async def test_forget_mid_chat_reroutes(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "my parcel")
    await h.command(AMY, "/online")
    await h.command(HOLDER, "/forget")
    await h.click(HOLDER, "Delete")
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert [c["text"] for c in copies(h, AMY)] == ["my parcel"]


async def test_customer_of_two_shops_sees_which_shop_and_switches(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    tea = await add_entry(h, shop, "Website")
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, shop="Book Nook")
    async with h.app.bot_data["deps"].sessions() as session:
        from models.shops import owned_shop

        other = await owned_shop(session, OTHER_OWNER.id)
    assert other is not None and other.id is not None
    await h.command(OTHER_OWNER, "/online")  # the owner opts in as the shop's agent
    books = await add_entry(h, Shop(other.id), "Shelf")
    await h.command(ANN, f"/start {tea}")
    await h.command(ANN, f"/start {books}")
    await h.text(ANN, "a novel please")
    assert copies(h, OTHER_OWNER)[-1]["text"] == "a novel please"
    await h.text(OTHER_OWNER, "Which author?")
    assert texts(h, ANN)[-2] == "💬 Customer service · Book Nook"
    await h.click(ANN, "Switch shop")
    await h.click(ANN, "Tea House")
    await h.text(ANN, "and green tea")
    assert copies(h, HOLDER)[-1]["text"] == "and green tea"
    await h.text(HOLDER, "Sure.")
    assert texts(h, ANN)[-2] == "💬 Hank CS · Tea House"


async def test_idle_chat_closes_and_the_customer_is_told(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, idle_close_hours=1)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "hi")
    await h.text(HOLDER, "Hello!")
    h.clock.advance(3601)
    await h.run_due_jobs()
    assert "long quiet time" in h.last(ANN).text
    assert (await conversation_of(h, ANN)).state == "closed"
    assert "long quiet time" in h.last(HOLDER).text


async def test_breach_reroutes_when_the_shop_says_so(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await configure(h, shop, first_response_seconds=60, reroute_on_breach=True)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "anyone?")
    await h.command(AMY, "/online")
    h.clock.advance(121)
    await h.run_due_jobs()
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert "moved to a colleague" in h.last(OWNER).text
    assert [c["text"] for c in copies(h, AMY)] == ["anyone?"]
    assert "colleague" in h.last(ANN).text


async def test_status_screen_me_button_and_chats(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/me")
    await h.click(HOLDER, "Customer service")
    assert "Offline" in h.last(HOLDER).text
    await h.click(HOLDER, "Online")
    assert "Online" in h.last(HOLDER).text
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    await h.command(BOB, f"/start {token}")
    await h.command(HOLDER, "/chats")
    assert "2" in h.last(HOLDER).text and len(h.last(HOLDER).data) == 2
    await h.command(HOLDER, "/break")
    assert "Break" in h.last(HOLDER).text
    assert [c.state for c in await rows(h, Conversation)] == ["assigned", "assigned"]
    # someone who is no agent is told why
    await h.command(ANN, "/online")
    assert "Only the main account" in h.last(ANN).text


async def test_a_sub_account_without_im_cannot_go_online(harness: Harness) -> None:
    h = harness
    await setup_shop(h, amy=False)
    await onboard(h, OTTO, "+8613900139222")
    await add_sub_account(h, holder=OTTO, phone="+8613900139222", nickname="Otto", im=False)
    await h.command(OTTO, "/online")
    assert "Only the main account" in h.last(OTTO).text


async def test_the_flood_limit_is_configurable(harness: Harness) -> None:
    h = harness
    h.app.bot_data["service_flood"] = 3  # what bot.app sets from [service] flood_per_minute
    h.app.bot_data.pop("service_relay", None)
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    for n in range(4):
        await h.text(ANN, f"m{n}")
    assert "more than 3 a minute" in h.last(ANN).text
    assert [c["text"] for c in copies(h, HOLDER)] == ["m0", "m1", "m2"]
