"""Agents' status (online / break / offline), permissions taking effect at once, transfer
(转接), end and rating, and where an agent's message goes."""

from __future__ import annotations

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.errors import DomainError
from models.service.agents import enroll_agent, release_agent, set_status
from models.service.conversations import end, open_or_resume, rate, transfer
from models.service.messages import (
    history,
    link_copy,
    record_agent_message,
    record_customer_message,
    resolve_reply_target,
)
from models.service.results import Placement, Via
from models.service.tables import Agent, Conversation
from models.tables import AuditEvent, SubAccount
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

engine, session = service_support.engine, service_support.session
CUSTOMER = 60_000


async def shop_with(session: AsyncSession, caps: dict[int, int | None]) -> World:
    world = await make_shop(session)
    for uid, cap in caps.items():
        await add_staff(session, world, uid, cap=cap)
    await add_group(session, world, "Pre-sales", dict.fromkeys(caps, 1))
    await add_group(session, world, "After-sales", {})
    await add_entry(session, world, "Product page", "Pre-sales")
    return world


async def arrive(session: AsyncSession, world: World, n: int) -> Placement:
    await add_user(session, CUSTOMER + n)
    opened = await open_or_resume(session, POLICY, customer_id=CUSTOMER + n,
                                  token=world.tokens["Product page"], now=world.now())
    await session.commit()
    assert opened.placement is not None
    return opened.placement


async def agent_row(session: AsyncSession, agent_id: int) -> Agent:
    row = await session.get(Agent, agent_id, populate_existing=True)
    assert row is not None
    return row


async def test_break_keeps_open_chats_takes_no_new_ones_but_takes_transfers(
    session: AsyncSession,
) -> None:
    world = await shop_with(session, {1: None, 2: None})
    a, b = world.agents[1], world.agents[2]
    mine = await arrive(session, world, 1)
    assert mine.agent_id == a
    await set_status(session, POLICY, shop_id=world.shop_id, agent_id=a, status="break",
                     actor_id=1, now=world.now())
    await session.commit()
    for n in (2, 3):
        assert (await arrive(session, world, n)).agent_id == b
    assert (await agent_row(session, a)).open_chats == 1  # kept
    moved = await transfer(session, POLICY, conversation_id=(await arrive(session, world, 4))
                           .conversation_id, actor_id=2, to_agent_id=a, now=world.now())
    await session.commit()
    assert moved.placement.agent_id == a and moved.placement.via == Via.TRANSFER
    assert moved.placement.previous_agent_user_id == 2
    assert (await agent_row(session, a)).open_chats == 2


async def test_offline_refused_with_open_chats_unless_handed_back(session: AsyncSession) -> None:
    world = await shop_with(session, {1: None, 2: None})
    a, b = world.agents[1], world.agents[2]
    first = await arrive(session, world, 1)
    assert first.agent_id == a
    with pytest.raises(DomainError) as refused:
        await set_status(session, POLICY, shop_id=world.shop_id, agent_id=a,
                         status="offline", actor_id=1, now=world.now())
    assert refused.value.key == "service_offline_has_chats"
    assert refused.value.params == {"count": 1}
    await session.rollback()
    change = await set_status(session, POLICY, shop_id=world.shop_id, agent_id=a,
                              status="offline", actor_id=1, now=world.now(), hand_back=True)
    await session.commit()
    assert [(m.conversation_id, m.agent_id, m.previous_agent_id) for m in change.moved] == [
        (first.conversation_id, b, a)]
    assert (await agent_row(session, a)).open_chats == 0
    with pytest.raises(DomainError, match="nothing_changed"):
        await set_status(session, POLICY, shop_id=world.shop_id, agent_id=a,
                         status="offline", actor_id=1, now=world.now())


@pytest.mark.parametrize("change", ["im_off", "suspend", "unbind"])
async def test_permissions_take_effect_at_once(session: AsyncSession, change: str) -> None:
    world = await shop_with(session, {1: None, 2: 1})
    a, b = world.agents[1], world.agents[2]
    chats = [await arrive(session, world, n) for n in range(3)]
    assert [c.agent_id for c in chats] == [a, b, a]
    account = (await session.exec(select(SubAccount).where(
        col(SubAccount.holder_id) == 1))).one()
    moved = await release_agent(session, POLICY, shop_id=world.shop_id, user_id=1,
                                reason=change, actor_id=world.owner_id, now=world.now())
    if change == "im_off":
        account.im_enabled = False
        session.add(account)
    elif change == "suspend":
        account.status = "suspended"
        session.add(account)
    else:
        await session.delete(account)
    await session.commit()
    # b has one seat and it is taken: both of a's chats wait in the queue, nothing dropped
    assert [(m.conversation_id, m.state, m.place, m.previous_agent_user_id) for m in moved] == [
        (chats[0].conversation_id, "queued", 1, 1), (chats[2].conversation_id, "queued", 2, 1)]
    row = await agent_row(session, a)
    assert not row.active and row.status == "offline" and row.open_chats == 0
    assert (await arrive(session, world, 9)).state == "queued"  # no new chats for a
    with pytest.raises(DomainError, match="service_not_agent"):
        await set_status(session, POLICY, shop_id=world.shop_id, agent_id=a, status="online",
                         actor_id=1, now=world.now())
    await session.rollback()
    ended = await end(session, POLICY, conversation_id=chats[1].conversation_id, by="agent",
                      actor_id=2, now=world.now())
    await session.commit()
    assert [h.conversation_id for h in ended.handouts] == [chats[0].conversation_id]
    events = (await session.exec(select(AuditEvent.action).where(
        col(AuditEvent.action) == "service.agent_released"))).all()
    assert events == ["service.agent_released"]


async def test_enroll_only_owner_or_im_sub_account(session: AsyncSession) -> None:
    world = await make_shop(session)
    await add_staff(session, world, 5, im=False, enroll=False)
    with pytest.raises(DomainError, match="service_not_agent"):
        await enroll_agent(session, POLICY, shop_id=world.shop_id, user_id=5,
                           actor_id=world.owner_id, now=world.now())
    await session.rollback()
    owner = await enroll_agent(session, POLICY, shop_id=world.shop_id,
                               user_id=world.owner_id, actor_id=world.owner_id,
                               now=world.now())
    assert owner.kind == "owner" and owner.status == "offline"


async def test_transfer_rules(session: AsyncSession) -> None:
    world = await shop_with(session, {1: None, 2: 1, 3: None})
    a, b, c = world.agents[1], world.agents[2], world.agents[3]
    first = await arrive(session, world, 1)
    second = await arrive(session, world, 2)
    assert (first.agent_id, second.agent_id) == (a, b)
    cases = [
        (dict(to_agent_id=a), 1, "service_transfer_same_agent"),
        (dict(to_agent_id=b), 1, "service_transfer_agent_full"),
        (dict(to_agent_id=c), 3, "service_not_your_conversation"),  # a forged button
        (dict(), 1, "service_transfer_target"),
        (dict(to_group_id=world.groups["After-sales"]), 1, "service_transfer_nobody"),
    ]
    for target, actor, key in cases:
        with pytest.raises(DomainError) as refused:
            await transfer(session, POLICY, conversation_id=first.conversation_id,
                           actor_id=actor, now=world.now(), **target)  # type: ignore[arg-type]
        assert refused.value.key == key
        await session.rollback()
    await set_status(session, POLICY, shop_id=world.shop_id, agent_id=c, status="offline",
                     actor_id=3, now=world.now())
    await session.commit()
    with pytest.raises(DomainError, match="service_transfer_agent_unavailable"):
        await transfer(session, POLICY, conversation_id=first.conversation_id, actor_id=1,
                       to_agent_id=c, now=world.now())
    await session.rollback()
    await set_status(session, POLICY, shop_id=world.shop_id, agent_id=c, status="online",
                     actor_id=3, now=world.now())
    await session.commit()
    # to a group: its available agents by mode, never back to the one handing it over
    moved = await transfer(session, POLICY, conversation_id=first.conversation_id,
                           actor_id=world.owner_id, to_group_id=world.groups["Pre-sales"],
                           now=world.now())
    await session.commit()
    assert moved.placement.agent_id == c and moved.placement.previous_agent_id == a
    conversation = await session.get(Conversation, first.conversation_id,
                                     populate_existing=True)
    assert conversation is not None and conversation.agent_id == c


async def test_end_then_rate_once(session: AsyncSession) -> None:
    world = await shop_with(session, {1: None})
    chat = await arrive(session, world, 1)
    with pytest.raises(DomainError, match="service_rate_not_ended"):
        await rate(session, conversation_id=chat.conversation_id, customer_id=CUSTOMER + 1,
                   score=5, now=world.now())
    with pytest.raises(DomainError, match="service_not_your_conversation"):
        await end(session, POLICY, conversation_id=chat.conversation_id, by="customer",
                  actor_id=CUSTOMER + 2, now=world.now())
    ended = await end(session, POLICY, conversation_id=chat.conversation_id, by="customer",
                      actor_id=CUSTOMER + 1, now=world.now())
    await session.commit()
    assert ended.agent_user_id == 1 and ended.by == "customer"
    with pytest.raises(DomainError, match="service_conversation_closed"):
        await end(session, POLICY, conversation_id=chat.conversation_id, by="agent",
                  actor_id=1, now=world.now())
    for bad in (0, 6):
        with pytest.raises(DomainError, match="service_rating_invalid"):
            await rate(session, conversation_id=chat.conversation_id,
                       customer_id=CUSTOMER + 1, score=bad, now=world.now())
    rating = await rate(session, conversation_id=chat.conversation_id,
                        customer_id=CUSTOMER + 1, score=4, now=world.now())
    await session.commit()
    assert rating.score == 4 and rating.agent_id == world.agents[1]
    with pytest.raises(DomainError, match="service_already_rated"):
        await rate(session, conversation_id=chat.conversation_id, customer_id=CUSTOMER + 1,
                   score=5, now=world.now())


async def test_reply_target_with_one_and_with_three_open_chats(session: AsyncSession) -> None:
    world = await shop_with(session, {1: None, 2: None})
    a = world.agents[1]
    chats = [await arrive(session, world, n) for n in range(5)]
    mine = [c for c in chats if c.agent_id == a]
    assert len(mine) == 3
    for i, chat in enumerate(mine):
        await record_customer_message(session, POLICY, conversation_id=chat.conversation_id,
                                      customer_message_id=10 + i, agent_chat_id=1,
                                      agent_message_id=100 + i, now=world.now())
    await session.commit()
    asked = await resolve_reply_target(session, agent_id=a, replied_to=None)
    assert asked.conversation_id is None  # never a guess
    assert asked.choices == [c.conversation_id for c in mine]
    target = await resolve_reply_target(session, agent_id=a, replied_to=101)
    assert target.conversation_id == mine[1].conversation_id
    with pytest.raises(DomainError, match="service_reply_unknown"):
        await resolve_reply_target(session, agent_id=a, replied_to=999)
    for chat in mine[1:]:
        await end(session, POLICY, conversation_id=chat.conversation_id, by="agent",
                  actor_id=1, now=world.now())
    await session.commit()
    only = await resolve_reply_target(session, agent_id=a, replied_to=None)
    assert only.conversation_id == mine[0].conversation_id
    with pytest.raises(DomainError, match="service_conversation_closed"):
        await resolve_reply_target(session, agent_id=a, replied_to=101)
    for chat in chats:
        if chat.agent_id == world.agents[2]:
            await end(session, POLICY, conversation_id=chat.conversation_id, by="agent",
                      actor_id=2, now=world.now())
    with pytest.raises(DomainError, match="service_no_open_chats"):
        await resolve_reply_target(session, agent_id=world.agents[2], replied_to=None)


async def test_history_is_ids_and_follows_the_chat_to_a_colleague(session: AsyncSession) -> None:
    world = await shop_with(session, {1: None, 2: None})
    chat = await arrive(session, world, 1)
    assert chat.agent_user_id == 1
    await record_customer_message(session, POLICY, conversation_id=chat.conversation_id,
                                  customer_message_id=11, agent_chat_id=1,
                                  agent_message_id=501, now=world.now())
    await record_agent_message(session, POLICY, conversation_id=chat.conversation_id,
                               agent_user_id=1, agent_message_id=502, customer_message_id=12,
                               now=world.now())
    await session.commit()
    with pytest.raises(DomainError, match="service_not_your_conversation"):
        await record_agent_message(session, POLICY, conversation_id=chat.conversation_id,
                                   agent_user_id=2, agent_message_id=9,
                                   customer_message_id=13, now=world.now())
    await session.rollback()
    moved = await transfer(session, POLICY, conversation_id=chat.conversation_id, actor_id=1,
                           to_agent_id=world.agents[2], now=world.now())
    past = await history(session, conversation_id=chat.conversation_id)
    assert [(m.direction, m.customer_message_id) for m in past] == [("in", 11), ("out", 12)]
    for i, message in enumerate(past):  # the handler copies them into b's chat
        await link_copy(session, link_id=message.id or 0, agent_chat_id=2,
                        agent_message_id=700 + i, now=world.now())
    await session.commit()
    assert moved.placement.agent_user_id == 2
    target = await resolve_reply_target(session, agent_id=world.agents[2], replied_to=700)
    assert target.conversation_id == chat.conversation_id
    with pytest.raises(DomainError, match="service_not_your_conversation"):
        await resolve_reply_target(session, agent_id=world.agents[1], replied_to=501)
