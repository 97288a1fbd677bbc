"""Service levels (docs/service.md): nudge at the time, owner alert at twice it (and a re-route
if the shop says so), each exactly once, also with two processes claiming at once; idle ends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from models.service.conversations import open_or_resume
from models.service.levels import Due, close_idle, due_service_levels, next_deadline
from models.service.messages import record_agent_message, record_customer_message
from models.service.results import Placement
from models.service.tables import Conversation
from tests import service_support
from tests.service_support import (
    POLICY,
    World,
    add_entry,
    add_group,
    add_staff,
    add_user,
    configure,
    make_shop,
)

engine, session, sessions = (service_support.engine, service_support.session,
                             service_support.sessions)
CUSTOMER = 80_000


async def setup(session: AsyncSession, caps: dict[int, int | None]) -> World:
    world = await make_shop(session)
    for uid, cap in caps.items():
        await add_staff(session, world, uid, cap=cap)
    await add_group(session, world, "Pre-sales", dict.fromkeys(caps, 1))
    await add_entry(session, world, "Product page", "Pre-sales")
    return world


async def write(session: AsyncSession, world: World, n: int, message_id: int = 1) -> Placement:
    """Customer ``n`` opens the link and writes; where the conversation went when it was
    opened."""
    await add_user(session, CUSTOMER + n)
    opened = await open_or_resume(session, POLICY, customer_id=CUSTOMER + n,
                                  token=world.tokens["Product page"], now=world.now())
    await record_customer_message(session, POLICY, conversation_id=opened.conversation.id or 0,
                                  customer_message_id=message_id, now=world.now())
    await session.commit()
    if opened.placement is None:  # resumed: where it was routed first
        return placements[opened.conversation.id or 0]
    placements[opened.placement.conversation_id] = opened.placement
    return opened.placement


placements: dict[int, Placement] = {}
NOTHING = Due(nudges=[], alerts=[])


async def test_first_response_nudge_then_owner_alert_each_once(session: AsyncSession) -> None:
    world = await setup(session, {1: None})
    chat = await write(session, world, 1)
    assert await next_deadline(session) == world.now() + timedelta(seconds=120)
    world.advance(119)
    assert await due_service_levels(session, POLICY, now=world.now()) == NOTHING
    world.advance(1)
    due = await due_service_levels(session, POLICY, now=world.now())
    await session.commit()
    assert [(n.conversation_id, n.agent_user_id, n.first_response) for n in due.nudges] == [
        (chat.conversation_id, 1, True)]
    assert due.alerts == []
    assert (await due_service_levels(session, POLICY, now=world.now())).nudges == []  # once
    world.advance(120)
    due = await due_service_levels(session, POLICY, now=world.now())
    await session.commit()
    assert due.nudges == []
    assert [(a.conversation_id, a.owner_id, a.agent_user_id, a.moved) for a in due.alerts] == [
        (chat.conversation_id, world.owner_id, 1, None)]
    world.advance(3600)
    assert await due_service_levels(session, POLICY, now=world.now()) == NOTHING


async def test_an_answer_clears_the_clock_and_the_next_wait_is_reply_seconds(
    session: AsyncSession,
) -> None:
    world = await setup(session, {1: None})
    chat = await write(session, world, 1)
    world.advance(30)
    await record_agent_message(session, POLICY, conversation_id=chat.conversation_id,
                               agent_user_id=1, agent_message_id=5, customer_message_id=6,
                               now=world.now())
    await session.commit()
    world.advance(1000)
    assert await due_service_levels(session, POLICY, now=world.now()) == NOTHING
    await write(session, world, 1, message_id=7)
    world.advance(10)
    await write(session, world, 1, message_id=8)  # still the first unanswered one's clock
    world.advance(POLICY.reply_seconds - 10)
    due = await due_service_levels(session, POLICY, now=world.now())
    assert [(n.conversation_id, n.first_response) for n in due.nudges] == [
        (chat.conversation_id, False)]
    conversation = await session.get(Conversation, chat.conversation_id)
    assert conversation is not None and conversation.first_response_at is not None


async def test_alert_reroutes_when_the_shop_says_so_and_a_colleague_is_free(
    session: AsyncSession,
) -> None:
    world = await setup(session, {1: None, 2: None})
    await configure(session, world, reroute_on_breach=True)
    chat = await write(session, world, 1)
    assert chat.agent_user_id == 1
    world.advance(240)
    due = await due_service_levels(session, POLICY, now=world.now())
    await session.commit()
    [alert] = due.alerts
    assert alert.moved is not None
    assert (alert.moved.agent_user_id, alert.moved.previous_agent_user_id) == (2, 1)
    # the nudge due since 1× (claimed in the same pass) goes to the agent who has it now
    assert [n.agent_user_id for n in due.nudges] == [2]


async def test_alert_without_a_free_colleague_leaves_the_chat(session: AsyncSession) -> None:
    world = await setup(session, {1: None})
    await configure(session, world, reroute_on_breach=True)
    chat = await write(session, world, 1)
    world.advance(240)
    [alert] = (await due_service_levels(session, POLICY, now=world.now())).alerts
    assert alert.moved is None and alert.agent_user_id == 1
    conversation = await session.get(Conversation, chat.conversation_id,
                                     populate_existing=True)
    assert conversation is not None and conversation.state == "assigned"


async def test_queued_chat_alerts_the_owner_and_its_nudge_waits_for_an_agent(
    session: AsyncSession,
) -> None:
    world = await setup(session, {1: 1})
    await write(session, world, 1)
    queued = await write(session, world, 2)
    assert queued.state == "queued"
    world.advance(240)
    due = await due_service_levels(session, POLICY, now=world.now())
    assert [n.customer_id for n in due.nudges] == [CUSTOMER + 1]
    assert sorted(a.customer_id for a in due.alerts) == [CUSTOMER + 1, CUSTOMER + 2]
    assert [a.agent_id for a in due.alerts if a.customer_id == CUSTOMER + 2] == [None]


async def test_two_processes_claiming_at_once_get_distinct_items(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await setup(session, dict.fromkeys(range(1, 5), 10))
    for n in range(40):
        await write(session, world, n)
    world.advance(240)

    async def claim() -> tuple[list[int], list[int]]:
        async with sessions() as s:
            due = await due_service_levels(s, POLICY, now=world.now())
            await s.commit()
            return ([n.conversation_id for n in due.nudges],
                    [a.conversation_id for a in due.alerts])

    results = await asyncio.gather(*(claim() for _ in range(4)))
    nudges = [i for r in results for i in r[0]]
    alerts = [i for r in results for i in r[1]]
    assert sorted(nudges) == sorted(set(nudges)) and len(nudges) == 40
    assert sorted(alerts) == sorted(set(alerts)) and len(alerts) == 40


async def test_idle_conversations_close_but_never_an_unanswered_one(
    session: AsyncSession,
) -> None:
    world = await setup(session, {1: 1})
    answered = await write(session, world, 1)
    await record_agent_message(session, POLICY, conversation_id=answered.conversation_id,
                               agent_user_id=1, agent_message_id=3, customer_message_id=4,
                               now=world.now())
    waiting = await write(session, world, 2)
    await session.commit()
    assert waiting.state == "queued"
    world.advance(24 * 3600 - 1)
    assert await close_idle(session, POLICY, now=world.now()) == []
    world.advance(1)
    ended = await close_idle(session, POLICY, now=world.now())
    await session.commit()
    assert [(e.conversation_id, e.by, e.agent_user_id) for e in ended] == [
        (answered.conversation_id, "idle", 1)]
    # the slot it freed took the customer who was still waiting
    assert [h.conversation_id for h in ended[0].handouts] == [waiting.conversation_id]
    world.advance(24 * 3600)
    assert await close_idle(session, POLICY, now=world.now()) == []  # still unanswered

