"""Routing (docs/service.md) on SQLite and PostgreSQL: sticky, weighted (smooth weighted
round-robin), least_busy, overflow, queue with places, offline messages, hand-outs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from models.service.conversations import end, open_or_resume, route
from models.service.results import Via
from models.service.tables import Agent, Conversation, GroupMember
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

engine, session = service_support.engine, service_support.session

CUSTOMER = 50_000


async def customer(session: AsyncSession, world: World, n: int, entry: str = "Product page"):
    """Customer ``n`` opens the entry's link (a new user each time); the open result."""
    await add_user(session, CUSTOMER + n)
    opened = await open_or_resume(session, POLICY, customer_id=CUSTOMER + n,
                                  token=world.tokens[entry], now=world.now())
    await session.commit()
    return opened


def nginx(weights: dict[str, int], rounds: int) -> list[str]:
    """nginx's smooth weighted round-robin, as a reference (ties: the first peer)."""
    current = dict.fromkeys(weights, 0)
    total = sum(weights.values())
    picks = []
    for _ in range(rounds):
        for name, weight in weights.items():
            current[name] += weight
        best = max(current, key=lambda name: current[name])  # first of the largest
        current[best] -= total
        picks.append(best)
    return picks


async def test_weighted_shares_over_any_100_assignments_are_25_and_75(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_shop(session)
    a = await add_staff(session, world, 1, cap=100)
    b = await add_staff(session, world, 2, cap=100)
    await add_group(session, world, "Pre-sales", {1: 1, 2: 3})
    await add_entry(session, world, "Product page", "Pre-sales")
    picks: list[int] = []
    other: AsyncEngine | None = None
    for n in range(300):
        if n == 150:  # a restart: a new engine over the same database goes on where it was
            await session.close()
            other = db.create_engine(engine.url.render_as_string(hide_password=False))
            session = db.sessionmaker(other)()
        opened = await customer(session, world, n)
        placement = opened.placement
        assert placement is not None and placement.via == Via.GROUP
        picks.append(placement.agent_id or 0)
        await end(session, POLICY, conversation_id=placement.conversation_id,
                  by="customer", actor_id=CUSTOMER + n, now=world.now())
        await session.commit()
    for start in range(len(picks) - 100 + 1):
        window = picks[start:start + 100]
        assert 24 <= window.count(a) <= 26, start
        assert 74 <= window.count(b) <= 76, start
    names = {a: "a", b: "b"}
    assert [names[p] for p in picks] == nginx({"a": 1, "b": 3}, 300)
    await session.close()
    assert other is not None
    await other.dispose()


async def test_least_busy_takes_fewest_open_chats_then_weight(session: AsyncSession) -> None:
    world = await make_shop(session)
    await configure(session, world, mode="least_busy")
    a = await add_staff(session, world, 1)
    b = await add_staff(session, world, 2)
    c = await add_staff(session, world, 3)
    await add_group(session, world, "Pre-sales", {1: 5, 2: 10, 3: 1})
    await add_entry(session, world, "Product page", "Pre-sales")
    got = [(await customer(session, world, n)).placement for n in range(6)]
    # all at 0: heaviest (b); then a (5) and c at 0, a heavier; then c; then all at 1: b, a, c
    assert [p.agent_id for p in got if p] == [b, a, c, b, a, c]


async def test_sticky_agent_within_sticky_days_if_online_and_under_cap(
    session: AsyncSession,
) -> None:
    world = await make_shop(session)
    a = await add_staff(session, world, 1)
    b = await add_staff(session, world, 2)
    await add_group(session, world, "Pre-sales", {1: 1, 2: 1})
    await add_entry(session, world, "Product page", "Pre-sales")
    first = (await customer(session, world, 7)).placement
    assert first is not None and first.agent_id == a
    await end(session, POLICY, conversation_id=first.conversation_id, by="customer",
              actor_id=CUSTOMER + 7, now=world.now())
    await session.commit()
    # round-robin alone would now give b; the customer comes back to a within 3 days
    world.advance(2 * 86_400)
    again = (await customer(session, world, 7)).placement
    assert again is not None and again.agent_id == a and again.via == Via.STICKY
    await end(session, POLICY, conversation_id=again.conversation_id, by="customer",
              actor_id=CUSTOMER + 7, now=world.now())
    await session.commit()
    world.advance(3 * 86_400 + 1)  # past sticky_days: routed by the group again
    late = (await customer(session, world, 7)).placement
    assert late is not None and late.via == Via.GROUP and late.agent_id == b


async def test_sticky_agent_who_is_full_is_passed_over(session: AsyncSession) -> None:
    world = await make_shop(session)
    a = await add_staff(session, world, 1, cap=1)
    b = await add_staff(session, world, 2)
    await add_group(session, world, "Pre-sales", {1: 1, 2: 1})
    await add_entry(session, world, "Product page", "Pre-sales")
    first = (await customer(session, world, 1)).placement
    assert first is not None and first.agent_id == a
    await end(session, POLICY, conversation_id=first.conversation_id, by="customer",
              actor_id=CUSTOMER + 1, now=world.now())
    await session.commit()
    other = (await customer(session, world, 2)).placement  # b by round-robin... or a
    assert other is not None
    busy = other.agent_id
    back = (await customer(session, world, 1)).placement
    assert back is not None
    if busy == a:  # a is full: the sticky rule gives way to the group
        assert back.agent_id == b and back.via == Via.GROUP
    else:
        assert back.agent_id == a and back.via == Via.STICKY


async def test_overflow_group_then_queue_with_places_then_hand_out_on_a_free_slot(
    session: AsyncSession,
) -> None:
    world = await make_shop(session)
    a = await add_staff(session, world, 1, cap=1)
    b = await add_staff(session, world, 2, cap=1)
    await add_group(session, world, "After-sales", {1: 1})
    overflow = await add_group(session, world, "Backup", {2: 1})
    from models.service.groups import set_overflow

    await set_overflow(session, shop_id=world.shop_id, actor_id=world.owner_id,
                       group_id=world.groups["After-sales"], overflow_id=overflow,
                       now=world.now())
    await session.commit()
    await add_entry(session, world, "Order page", "After-sales")
    p1 = (await customer(session, world, 1, "Order page")).placement
    p2 = (await customer(session, world, 2, "Order page")).placement
    assert p1 is not None and p1.agent_id == a and p1.via == Via.GROUP
    assert p2 is not None and p2.agent_id == b and p2.via == Via.OVERFLOW
    world.advance(1)
    p3 = (await customer(session, world, 3, "Order page")).placement
    world.advance(1)
    p4 = (await customer(session, world, 4, "Order page")).placement
    assert p3 is not None and p3.state == "queued" and p3.place == 1
    assert p4 is not None and p4.state == "queued" and p4.place == 2
    # routing it again keeps its place
    again = await route(session, POLICY, conversation_id=p4.conversation_id, now=world.now())
    assert again.state == "queued" and again.place == 2
    ended = await end(session, POLICY, conversation_id=p2.conversation_id, by="agent",
                      actor_id=2, now=world.now())
    await session.commit()
    assert [(h.conversation_id, h.agent_id, h.via) for h in ended.handouts] == [
        (p3.conversation_id, b, Via.HANDOUT)]
    left = await route(session, POLICY, conversation_id=p4.conversation_id, now=world.now())
    assert left.state == "queued" and left.place == 1


async def test_nobody_online_is_an_offline_message_handed_out_oldest_first(
    session: AsyncSession,
) -> None:
    from models.service.agents import set_status

    world = await make_shop(session)
    a = await add_staff(session, world, 1, online=False, cap=2)
    await add_group(session, world, "Pre-sales", {1: 1})
    await add_entry(session, world, "Product page", "Pre-sales")
    placed = []
    for n in range(3):
        placed.append((await customer(session, world, n)).placement)
        world.advance(60)
    assert [p.state for p in placed if p] == ["offline"] * 3
    change = await set_status(session, POLICY, shop_id=world.shop_id, agent_id=a,
                              status="online", actor_id=1, now=world.now())
    await session.commit()
    assert [h.conversation_id for h in change.handouts] == [
        placed[0].conversation_id, placed[1].conversation_id]  # type: ignore[union-attr]
    assert all(h.via == Via.HANDOUT and h.agent_user_id == 1 for h in change.handouts)
    row = await session.get(Agent, a, populate_existing=True)
    assert row is not None and row.open_chats == 2


async def test_entry_without_group_goes_to_any_agent_least_busy(session: AsyncSession) -> None:
    world = await make_shop(session)
    a = await add_staff(session, world, 1)
    await add_entry(session, world, "Anywhere", None)
    placement = (await customer(session, world, 1, "Anywhere")).placement
    assert placement is not None and placement.agent_id == a and placement.via == Via.SHOP


async def test_open_or_resume_one_open_conversation_per_customer_per_shop(
    session: AsyncSession,
) -> None:
    world = await make_shop(session)
    await add_staff(session, world, 1)
    await add_group(session, world, "Pre-sales", {1: 1})
    await add_entry(session, world, "Product page", "Pre-sales")
    await add_entry(session, world, "Order page", "Pre-sales")
    first = await customer(session, world, 1)
    again = await customer(session, world, 1, "Order page")
    assert first.created and not again.created
    assert again.conversation.id == first.conversation.id and again.placement is None
    other = await make_shop(session, owner_id=2000, name="Noodle Bar")
    await add_staff(session, other, 3)
    await add_group(session, other, "All", {3: 1})
    await add_entry(session, other, "Menu", "All")
    elsewhere = await customer(session, other, 1, "Menu")
    assert elsewhere.created and elsewhere.shop.id == other.shop_id
    rows = (await session.exec(select(Conversation).where(
        col(Conversation.customer_id) == CUSTOMER + 1))).all()
    assert len(rows) == 2
    members = (await session.exec(select(GroupMember))).all()
    assert len(members) == 2


async def test_sticky_looks_past_a_last_chat_that_nobody_took(session: AsyncSession) -> None:
    from models.service.agents import set_status

    world = await make_shop(session)
    a = await add_staff(session, world, 1)
    b = await add_staff(session, world, 2)
    await add_group(session, world, "Pre-sales", {1: 1, 2: 1})
    await add_entry(session, world, "Product page", "Pre-sales")
    served = (await customer(session, world, 5)).placement
    assert served is not None and served.agent_id == a
    await end(session, POLICY, conversation_id=served.conversation_id, by="customer",
              actor_id=CUSTOMER + 5, now=world.now())
    for agent_id, uid in ((a, 1), (b, 2)):
        await set_status(session, POLICY, shop_id=world.shop_id, agent_id=agent_id,
                         status="offline", actor_id=uid, now=world.now())
    await session.commit()
    waited = (await customer(session, world, 5)).placement
    assert waited is not None and waited.state == "offline"
    await end(session, POLICY, conversation_id=waited.conversation_id, by="customer",
              actor_id=CUSTOMER + 5, now=world.now())
    for agent_id, uid in ((b, 2), (a, 1)):
        await set_status(session, POLICY, shop_id=world.shop_id, agent_id=agent_id,
                         status="online", actor_id=uid, now=world.now())
    await session.commit()
    world.advance(3600)
    back = (await customer(session, world, 5)).placement
    assert back is not None and back.agent_id == a and back.via == Via.STICKY
