"""Where chats go, through the Application: queue and offline hand-outs, sticky return,
least_busy, break, transfer with history, going offline, permissions mid-chat, service levels
with the injected clock, and a restart over the same database."""

from __future__ import annotations

from sqlmodel import col, select

from handlers.service_levels import SERVICE_JOB
from models.service.tables import Agent, Conversation
from models.tables import SubAccount
from tests.harness import Harness, rows
from tests.service_chat_world import (
    AMY,
    ANN,
    BOB,
    CAT,
    add_entry,
    add_group,
    agent_id,
    configure,
    conversation_of,
    copies,
    setup_shop,
    texts,
)
from tests.support.app import start_harness, stop_harness
from tests.support.people import HOLDER, OWNER


async def test_nobody_online_offline_message_handed_out_on_coming_online(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, offline_text_en="We answer within the day.",
                    hours_text_en="9:00–18:00")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    assert "offline" in h.last(ANN).text and "9:00–18:00" in h.last(ANN).text
    assert "We answer within the day." in h.last(ANN).text
    await h.text(ANN, "Do you ship to Lyon?")
    assert "Received" in h.last(ANN).text
    await h.text(ANN, "And to Nice?")
    assert (await conversation_of(h, ANN)).state == "offline"
    await h.command(HOLDER, "/online")
    assert [c["text"] for c in copies(h, HOLDER)] == ["Do you ship to Lyon?", "And to Nice?"]
    assert "Hank CS" in h.last(ANN).text and "taken your chat" in h.last(ANN).text
    # the history copies are mapped: a reply to one reaches Ann
    await h.send(HOLDER, text="Yes to both.",  # type: ignore[call-overload]
                 reply_to=int(copies(h, HOLDER)[1]["message_id"]))
    assert texts(h, ANN)[-1] == "Yes to both."


async def test_cap_full_queue_place_told_then_handed_out(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, default_cap=1)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    await h.command(BOB, f"/start {token}")
    assert "number 1 in the queue" in h.last(BOB).text
    await h.command(CAT, f"/start {token}")
    assert "number 2 in the queue" in h.last(CAT).text
    await h.text(BOB, "waiting here")
    assert "number 1 in the queue" in h.last(BOB).text
    await h.click(ANN, "End chat")
    bob = await conversation_of(h, BOB)
    assert bob.state == "assigned" and bob.agent_id == await agent_id(h, HOLDER)
    assert copies(h, HOLDER)[-1]["text"] == "waiting here"
    assert "taken your chat" in h.last(BOB).text
    assert (await conversation_of(h, CAT)).state == "queued"


async def test_sticky_return_and_least_busy(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await configure(h, shop, mode="least_busy")
    await h.command(HOLDER, "/online")
    await h.command(AMY, "/online")
    await add_group(h, shop, "All", {HOLDER: 1, AMY: 1})
    token = await add_entry(h, shop, "Website", "All")
    await h.command(ANN, f"/start {token}")
    await h.command(BOB, f"/start {token}")
    ann, bob = await conversation_of(h, ANN), await conversation_of(h, BOB)
    assert {ann.agent_id, bob.agent_id} == {await agent_id(h, HOLDER), await agent_id(h, AMY)}
    await h.click(ANN, "End chat")
    await h.command(CAT, f"/start {token}")  # least busy: Ann's agent is free again
    assert (await conversation_of(h, CAT)).agent_id == ann.agent_id
    await h.command(ANN, f"/start {token}")  # sticky: back to the same agent
    assert (await conversation_of(h, ANN)).agent_id == ann.agent_id


async def test_break_keeps_chats_takes_transfers_and_history_follows(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(AMY, "/online")
    await add_group(h, shop, "Hank only", {HOLDER: 1})
    await add_group(h, shop, "Amy only", {AMY: 1})
    token = await add_entry(h, shop, "Website", "Hank only")
    await h.command(ANN, f"/start {token}")
    await h.text(ANN, "first question")
    await h.command(AMY, "/break")
    assert "Break" in h.last(AMY).text
    conversation = await conversation_of(h, ANN)
    await h.press(HOLDER, f"ag:tr:{conversation.id}")
    await h.click(HOLDER, "Amy CS")
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert [c["text"] for c in copies(h, AMY)] == ["first question"]
    assert "colleague" in h.last(ANN).text and "Amy CS" in h.last(ANN).text
    # and on to a group
    await h.command(AMY, "/online")
    await h.press(AMY, f"ag:tr:{conversation.id}")
    await h.click(AMY, "Group: Hank only")
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, HOLDER)
    assert [c["text"] for c in copies(h, HOLDER)] == ["first question", "first question"]
    # Amy on break kept nothing she lost; a break gets no new chats
    await h.command(AMY, "/break")
    await h.command(BOB, f"/start {await add_entry(h, shop, 'Amy page', 'Amy only')}")
    assert (await conversation_of(h, BOB)).state == "offline"


async def test_offline_refused_with_chats_unless_handed_back(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "hello")
    await h.command(AMY, "/online")
    await h.command(HOLDER, "/offline")
    assert "1 open chat" in h.last(HOLDER).text
    await h.click(HOLDER, "Hand them back")
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert [c["text"] for c in copies(h, AMY)] == ["hello"]
    assert "colleague" in h.last(ANN).text


async def _chat_with_hank(h: Harness) -> int:
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "my order is late")
    await h.command(AMY, "/online")
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, HOLDER)
    accounts = await rows(h, SubAccount)
    return next(a.id for a in accounts if a.holder_id == HOLDER.id) or 0


async def _moved_to_amy(h: Harness) -> None:
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert [c["text"] for c in copies(h, AMY)] == ["my order is late"]
    assert "colleague" in h.last(ANN).text
    await h.text(ANN, "still there?")
    assert copies(h, AMY)[-1]["text"] == "still there?"


async def test_im_off_mid_chat_reroutes(harness: Harness) -> None:
    h = harness
    account = await _chat_with_hank(h)
    await h.press(OWNER, f"a:im:{account}:0")
    await _moved_to_amy(h)
    hank = next(a for a in await rows(h, Agent) if a.user_id == HOLDER.id)
    assert not hank.active and hank.open_chats == 0


async def test_suspend_mid_chat_reroutes(harness: Harness) -> None:
    h = harness
    account = await _chat_with_hank(h)
    await h.press(OWNER, f"a:su:{account}:1")
    await _moved_to_amy(h)


async def test_unbind_mid_chat_reroutes(harness: Harness) -> None:
    h = harness
    account = await _chat_with_hank(h)
    await h.press(OWNER, f"a:uy:{account}")
    await _moved_to_amy(h)


async def test_leave_mid_chat_reroutes(harness: Harness) -> None:
    h = harness
    account = await _chat_with_hank(h)
    await h.press(HOLDER, f"me:ly:{account}")
    await _moved_to_amy(h)


async def test_nudge_then_owner_alert_with_the_clock(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, first_response_seconds=60)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "hello?")
    assert h.app.job_queue is not None
    h.clock.advance(61)
    await h.run_due_jobs()
    assert "waiting for your first answer" in h.last(HOLDER).text
    h.clock.advance(60)
    await h.run_due_jobs()
    assert "twice the service time" in h.last(OWNER).text
    assert (await conversation_of(h, ANN)).alert_at is None


async def test_restart_keeps_queue_assignments_and_deadlines(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, default_cap=1, first_response_seconds=60)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    await h.text(ANN, "hello?")
    await h.command(BOB, f"/start {token}")
    await h.text(BOB, "me too")
    await stop_harness(h)
    engine = h.app.bot_data["deps"].sessions.kw["bind"]
    from bot.config import load_settings

    url = str(engine.url.render_as_string(hide_password=False))
    again = await start_harness(
        load_settings(environ={"BOT_TOKEN": "123456:TEST-TOKEN", "DATABASE_URL": url}),
        engine, h.api, h.clock)
    try:
        assert again.app.job_queue is not None
        assert again.app.job_queue.get_jobs_by_name(SERVICE_JOB)
        async with again.app.bot_data["deps"].sessions() as session:
            states = dict((await session.exec(
                select(Conversation.customer_id, Conversation.state)
                .where(col(Conversation.customer_id).in_([ANN.id, BOB.id])))).all())
        assert states == {ANN.id: "assigned", BOB.id: "queued"}
        h.clock.advance(61)
        await again.run_due_jobs()
        assert "waiting for your first answer" in again.last(HOLDER).text
        await again.click(ANN, "End chat")
        assert copies(again, HOLDER)[-1]["text"] == "me too"
    finally:
        await stop_harness(again)
        await h.app.initialize()
        await h.app.start()
