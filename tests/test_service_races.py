"""Races enforced by the database (SPEC §8): many customers arriving and many agents freeing
up at once, each in its own session and transaction, on SQLite and PostgreSQL. No agent ever
has more open chats than their cap, no conversation is assigned twice, nothing is lost."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.service.agents import set_status
from models.service.conversations import end, open_or_resume
from models.service.results import Placement
from models.service.tables import Agent, Conversation
from models.tables import AuditEvent
from tests import service_support
from tests.service_support import (
    POLICY,
    World,
    add_entry,
    add_group,
    add_staff,
    add_user,
    make_shop,
)

engine, session, sessions = (service_support.engine, service_support.session,
                             service_support.sessions)
CUSTOMER = 70_000


async def check_invariants(session: AsyncSession, world: World) -> list[Conversation]:
    """Caps hold, ``open_chats`` is the true count, assignments are audited once each."""
    agents = {a.id: a for a in (await session.exec(
        select(Agent).where(col(Agent.shop_id) == world.shop_id)
        .execution_options(populate_existing=True))).all()}
    conversations = list((await session.exec(
        select(Conversation).where(col(Conversation.shop_id) == world.shop_id)
        .execution_options(populate_existing=True))).all())
    per_agent = Counter(c.agent_id for c in conversations if c.state == "assigned")
    for agent_id, agent in agents.items():
        cap = agent.cap if agent.cap is not None else POLICY.default_cap
        assert per_agent[agent_id] == agent.open_chats <= cap, agent_id
    assigned_events = Counter(
        e.object_id for e in (await session.exec(select(AuditEvent).where(
            col(AuditEvent.action) == "service.assigned"))).all())
    assert all(n == 1 for n in assigned_events.values())
    return conversations


async def arrive(sessions: async_sessionmaker[AsyncSession], world: World, n: int) -> Placement:
    async with sessions() as s:
        opened = await open_or_resume(s, POLICY, customer_id=CUSTOMER + n,
                                      token=world.tokens["Product page"], now=world.now())
        await s.commit()
        assert opened.placement is not None
        return opened.placement


async def test_many_customers_at_once_never_exceed_a_cap(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    world = await make_shop(session)
    for uid in range(1, 6):
        await add_staff(session, world, uid, cap=2)
    await add_group(session, world, "Pre-sales", dict.fromkeys(range(1, 6), 1))
    await add_entry(session, world, "Product page", "Pre-sales")
    for n in range(30):
        await add_user(session, CUSTOMER + n)
    await session.commit()
    placements = await asyncio.gather(*(arrive(sessions, world, n) for n in range(30)))
    states = Counter(p.state for p in placements)
    assert states == {"assigned": 10, "queued": 20}
    assert sorted(p.place or 0 for p in placements if p.state == "queued") == list(range(1, 21))
    conversations = await check_invariants(session, world)
    assert len(conversations) == 30


async def test_many_agents_freeing_up_at_once_take_distinct_queued_chats(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await make_shop(session)
    for uid in range(1, 11):
        await add_staff(session, world, uid, cap=1)
    await add_group(session, world, "Pre-sales", dict.fromkeys(range(1, 11), 1))
    await add_entry(session, world, "Product page", "Pre-sales")
    for n in range(25):
        await add_user(session, CUSTOMER + n)
    await session.commit()
    first = [await arrive(sessions, world, n) for n in range(25)]
    served = [p for p in first if p.state == "assigned"]
    assert len(served) == 10

    async def finish(p: Placement) -> list[Placement]:
        async with sessions() as s:
            ended = await end(s, POLICY, conversation_id=p.conversation_id, by="agent",
                              actor_id=p.agent_user_id or 0, now=world.now())
            await s.commit()
            return ended.handouts

    async def come_online(uid: int) -> list[Placement]:
        async with sessions() as s:
            change = await set_status(s, POLICY, shop_id=world.shop_id,
                                      agent_id=world.agents[uid], status="online",
                                      actor_id=uid, now=world.now())
            await s.commit()
            return change.handouts

    # two late agents arrive while the ten free their slots and five more customers write
    for uid in (11, 12):
        await add_staff(session, world, uid, cap=1, online=False)
        await add_group_member(session, world, uid)
    for n in range(25, 30):
        await add_user(session, CUSTOMER + n)
    await session.commit()
    results = await asyncio.gather(
        *(finish(p) for p in served), *(come_online(uid) for uid in (11, 12)),
        *(arrive(sessions, world, n) for n in range(25, 30)))
    handed = [h for r in results if isinstance(r, list) for h in r]
    taken = Counter(h.conversation_id for h in handed)
    assert all(n == 1 for n in taken.values())
    conversations = await check_invariants(session, world)
    assigned = [c for c in conversations if c.state == "assigned"]
    assert len(assigned) == 12  # every one of the 12 agents has one chat again
    assert len([c for c in conversations if c.state == "queued"]) == 30 - 10 - 12
    # the queue was served oldest first: everything still waiting came after what was taken
    waiting = [c.id or 0 for c in conversations if c.state == "queued"]
    assert min(waiting) > max(taken)


async def add_group_member(session: AsyncSession, world: World, uid: int) -> None:
    from models.service.groups import add_member

    await add_member(session, shop_id=world.shop_id, actor_id=world.owner_id,
                     group_id=world.groups["Pre-sales"], agent_id=world.agents[uid], weight=1,
                     now=world.now())
    await session.commit()
