"""Customer-service notices are durable (handlers/service_relay.py through models/outbox.py):
an idle close's "chat ended" (customer and agent), an end's, and a hand-out's header (with the
history copied after it) and the customer's "… has taken your chat" are written in the
transaction of the change; a process that dies between that commit and the send loses none
of them — once the lease has passed, the next service-level pass (any process's) sends each
once, the history included; a notice whose news changed meanwhile is dropped. The normal path
sends each message once."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import context as context_module
from handlers import outbox as outbox_handlers
from handlers import service_notices, service_relay
from handlers.service_levels import run_service_levels
from models.outbox import LEASE, OutboxNotice
from models.tables import SubAccount
from tests.harness import Harness, rows
from tests.service_chat_world import (
    AMY,
    ANN,
    BOB,
    add_entry,
    agent_id,
    configure,
    conversation_of,
    copies,
    links,
    setup_shop,
    texts,
)
from tests.support.people import HOLDER, OWNER

IDLE = "long quiet time"
NEW_CHAT = "New chat: Bob"
TAKEN = "has taken your chat"


class Crash(Exception):
    """The process dies here (kill -9 between the commit and the send)."""


async def crash(*_args: Any, **_kw: Any) -> None:
    raise Crash


def crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message the relay or the outbox would send or copy next kills the process."""
    monkeypatch.setattr(outbox_handlers, "send_safely", crash)
    monkeypatch.setattr(service_relay, "send_safely", crash)
    monkeypatch.setattr(service_relay, "copy", crash)
    monkeypatch.setattr(service_notices, "copy", crash)


async def owed(h: Harness) -> list[OutboxNotice]:
    return await rows(h, OutboxNotice)


def count(h: Harness, who: Any, part: str) -> int:
    return sum(part in text for text in texts(h, who))


async def pass_(h: Harness) -> None:
    await run_service_levels(h.app.bot, h.app.bot_data["deps"], h.app.bot_data)


async def _quiet_chat_and_a_queued_one(h: Harness) -> None:
    """Hank (one seat) answered Ann; Bob waits in the queue with a question."""
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, idle_close_hours=1, default_cap=1)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    await h.text(ANN, "hi")
    await h.text(HOLDER, "Hello!")
    await h.command(BOB, f"/start {token}")
    await h.text(BOB, "waiting here")
    assert (await conversation_of(h, BOB)).state == "queued"


async def test_an_idle_close_and_its_hand_out_survive_a_crash_before_the_send(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    await _quiet_chat_and_a_queued_one(h)
    ann, bob = await conversation_of(h, ANN), await conversation_of(h, BOB)
    h.clock.advance(3601)
    crashing(monkeypatch)
    with pytest.raises(Crash):
        await pass_(h)
    monkeypatch.undo()
    # committed: Ann's chat closed, Bob's handed to Hank; what they are owed is in the outbox
    assert (await conversation_of(h, ANN)).state == "closed"
    assert (await conversation_of(h, BOB)).agent_id == await agent_id(h, HOLDER)
    topics = [n.topic for n in await owed(h)]
    assert f"service.ended:{ann.id}:customer" in topics
    assert f"service.ended:{ann.id}:agent" in topics
    assert any(t.startswith(f"service.handout:{bob.id}:") for t in topics)
    assert any(t.startswith(f"service.placed:{bob.id}:assigned:") for t in topics)
    assert count(h, ANN, IDLE) == count(h, HOLDER, IDLE) == count(h, HOLDER, NEW_CHAT) == 0
    assert [c["text"] for c in copies(h, HOLDER)] == ["hi"] and count(h, BOB, TAKEN) == 0

    await pass_(h)  # within the dead writer's lease: nothing sent twice
    assert count(h, ANN, IDLE) == 0 and count(h, HOLDER, NEW_CHAT) == 0

    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)  # any process's next pass sends them, the history after the header
    assert count(h, ANN, IDLE) == 1 and count(h, HOLDER, IDLE) == 1
    ended = next(m for m in h.messages(ANN) if IDLE in m.text)
    assert ended.data == [f"cs:rate:{ann.id}:{n}" for n in range(1, 6)]
    assert count(h, HOLDER, NEW_CHAT) == 1 and count(h, BOB, TAKEN) == 1
    assert [c["text"] for c in copies(h, HOLDER)] == ["hi", "waiting here"]
    assert await owed(h) == []
    # the history copy is mapped by the process that sent it: a reply to it reaches Bob
    await h.send(HOLDER, text="Now I can help.",  # type: ignore[call-overload]
                 reply_to=int(copies(h, HOLDER)[1]["message_id"]))
    assert texts(h, BOB)[-1] == "Now I can help."

    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, ANN, IDLE) == 1 and count(h, HOLDER, NEW_CHAT) == 1
    assert count(h, BOB, TAKEN) == 1 and len(copies(h, HOLDER)) == 2


async def test_the_notices_are_owed_from_the_commit_until_sent_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    await _quiet_chat_and_a_queued_one(h)
    bob = await conversation_of(h, BOB)
    seen: list[tuple[list[str], str, int | None]] = []
    real = outbox_handlers.send_safely

    async def spy(bot: Any, chat_id: int, text: str, markup: Any = None) -> Any:
        if not seen:  # the first send: what was committed by then, read by another session
            conversation = await conversation_of(h, BOB)
            seen.append(([n.topic.split(":")[0] for n in await owed(h)], conversation.state,
                         conversation.agent_id))
        return await real(bot, chat_id, text, markup)

    monkeypatch.setattr(outbox_handlers, "send_safely", spy)
    h.clock.advance(3601)
    await pass_(h)
    topics, state, agent = seen[0]
    assert {"service.ended", "service.handout", "service.placed"} <= set(topics)
    assert (state, agent) == ("assigned", await agent_id(h, HOLDER))
    # the normal path: each message once, nothing left owed
    assert count(h, ANN, IDLE) == 1 and count(h, HOLDER, IDLE) == 1
    assert count(h, HOLDER, NEW_CHAT) == 1 and count(h, BOB, TAKEN) == 1
    assert [c["text"] for c in copies(h, HOLDER)] == ["hi", "waiting here"]
    assert await owed(h) == []
    assert [link.agent_chat_id for link in await links(h, bob.id or 0)] == [None, HOLDER.id]
    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, ANN, IDLE) == 1 and count(h, HOLDER, NEW_CHAT) == 1
    assert len(copies(h, HOLDER)) == 2


async def test_a_chat_handed_out_on_coming_online_survives_a_crash_before_the_send(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "Do you ship to Lyon?")
    assert (await conversation_of(h, ANN)).state == "offline"

    crashing(monkeypatch)  # the handler dies after its commit (its update's error is logged)
    await h.command(HOLDER, "/online")
    monkeypatch.undo()
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, HOLDER)
    assert sorted(n.topic.split(":")[0] for n in await owed(h)) == [
        "service.handout", "service.placed"]
    assert count(h, HOLDER, "New chat: Ann") == 0 and copies(h, HOLDER) == []
    assert count(h, ANN, TAKEN) == 0

    # within the lease Ann writes again: the relay brings it to Hank as it comes
    await h.text(ANN, "And to Nice?")
    assert [c["text"] for c in copies(h, HOLDER)] == ["And to Nice?"]
    await pass_(h)
    assert count(h, HOLDER, "New chat: Ann") == 0

    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, HOLDER, "New chat: Ann") == 1 and count(h, ANN, TAKEN) == 1
    # the history as of the hand-out; what the relay brought meanwhile is not copied again
    assert [c["text"] for c in copies(h, HOLDER)] == ["And to Nice?", "Do you ship to Lyon?"]
    assert await owed(h) == []
    await h.send(HOLDER, text="Yes.",  # type: ignore[call-overload]
                 reply_to=int(copies(h, HOLDER)[1]["message_id"]))
    assert texts(h, ANN)[-1] == "Yes."
    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, HOLDER, "New chat: Ann") == 1 and len(copies(h, HOLDER)) == 2


async def test_an_end_by_the_agent_and_its_hand_out_survive_a_crash_before_the_send(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, default_cap=1)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    await h.command(BOB, f"/start {token}")
    await h.text(BOB, "waiting here")
    ann = await conversation_of(h, ANN)

    crashing(monkeypatch)  # the handler dies after its commit (its update's error is logged)
    await h.press(HOLDER, f"ag:end:{ann.id}")
    monkeypatch.undo()
    assert (await conversation_of(h, ANN)).state == "closed"
    assert (await conversation_of(h, BOB)).state == "assigned"
    assert count(h, ANN, "has ended the chat") == 0 and count(h, HOLDER, NEW_CHAT) == 0
    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, ANN, "has ended the chat") == 1
    assert count(h, HOLDER, NEW_CHAT) == 1 and count(h, BOB, TAKEN) == 1
    assert [c["text"] for c in copies(h, HOLDER)] == ["waiting here"]
    assert await owed(h) == []


async def test_a_hand_out_notice_owed_past_its_news_is_dropped(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-out whose notices were left behind, then the chat ended before the overdue pass:
    the end is told, the stale "new chat" / "has taken your chat" are not."""
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "Do you ship to Lyon?")

    crashing(monkeypatch)  # the handler dies after its commit (its update's error is logged)
    await h.command(HOLDER, "/online")
    monkeypatch.undo()
    await h.click(ANN, "End chat")
    assert (await conversation_of(h, ANN)).state == "closed"
    assert count(h, HOLDER, "ended the chat") == 1  # the end's own notice, sent at once
    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, HOLDER, "New chat: Ann") == 0 and copies(h, HOLDER) == []
    assert count(h, ANN, TAKEN) == 0
    assert await owed(h) == []


@pytest.mark.parametrize("press", ["a:im:{account}:0", "a:su:{account}:1", "a:uy:{account}"])
async def test_a_reroute_by_the_owner_survives_a_crash_after_its_commit(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, press: str
) -> None:
    """IM off / suspend / unbind mid-chat: the re-route and what it owes Amy and Ann are
    committed together, before the holder is told — a crash there loses neither."""
    h = harness
    shop = await setup_shop(h)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "my order is late")
    await h.command(AMY, "/online")
    account = next(a.id for a in await rows(h, SubAccount) if a.holder_id == HOLDER.id)

    # the handler dies at its first message, after the commit that carries the change
    monkeypatch.setattr(context_module, "send_safely", crash)
    await h.press(OWNER, press.format(account=account))
    monkeypatch.undo()
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, AMY)
    assert count(h, ANN, "colleague") == 0 and copies(h, AMY) == []
    assert len(await owed(h)) >= 2  # Amy's header, Ann's notice
    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, ANN, "colleague") == 1
    assert [c["text"] for c in copies(h, AMY)] == ["my order is late"]
    assert await owed(h) == []


async def test_a_new_chat_and_its_notices_are_one_commit(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann opens the link: her chat, Hank's header and her "… has taken your chat" are
    committed together — a crash before any send loses none."""
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    crashing(monkeypatch)
    await h.command(ANN, f"/start {token}")
    monkeypatch.undo()
    assert (await conversation_of(h, ANN)).agent_id == await agent_id(h, HOLDER)
    welcome = "will answer you here"
    assert count(h, ANN, welcome) == 0 and count(h, HOLDER, "New chat: Ann") == 0
    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, ANN, welcome) == 1 and count(h, HOLDER, "New chat: Ann") == 1
    assert await owed(h) == []


async def test_an_end_by_the_customer_survives_a_crash_after_its_commit(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann ends her chat while Bob waits: Hank's "chat ended", his new chat and Bob's notice
    are committed with the end — the commit that removes the End button comes first."""
    h = harness
    await _quiet_chat_and_a_queued_one(h)
    crashing(monkeypatch)
    # the End button comes off just after the commit: the process dies there
    monkeypatch.setattr(type(h.app.bot), "edit_message_reply_markup", crash)
    await h.click(ANN, "End chat")
    monkeypatch.undo()
    assert (await conversation_of(h, ANN)).state == "closed"
    assert (await conversation_of(h, BOB)).state == "assigned"
    assert count(h, HOLDER, NEW_CHAT) == 0 and count(h, BOB, TAKEN) == 0
    h.clock.advance(LEASE.total_seconds() + 1)
    await pass_(h)
    assert count(h, HOLDER, NEW_CHAT) == 1 and count(h, BOB, TAKEN) == 1
    assert await owed(h) == []
