"""Groups, entries and settings (validated, every change audited), links and their tokens,
the live view and a day's figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.errors import DomainError
from models.service.conversations import end, open_or_resume, rate
from models.service.entries import (
    create_entry,
    hash_token,
    is_entry_token,
    regenerate_token,
    set_entry_group,
)
from models.service.groups import (
    add_member,
    create_group,
    delete_group,
    list_groups,
    members,
    remove_member,
    rename_group,
    set_overflow,
    set_weight,
)
from models.service.messages import record_agent_message, record_customer_message
from models.service.policy import ServicePolicy
from models.service.settings import get_settings, update_settings
from models.service.tables import Entry, ServiceSettings
from models.service.views import day_figures, live_view, nearest_rank
from models.tables import AuditEvent
from tests import service_support
from tests.service_support import (
    NOW,
    POLICY,
    add_entry,
    add_group,
    add_staff,
    add_user,
    make_shop,
)

engine, session = service_support.engine, service_support.session


async def actions(session: AsyncSession) -> list[str]:
    return list((await session.exec(
        select(AuditEvent.action).where(col(AuditEvent.action).startswith("service."))
        .order_by(col(AuditEvent.id)))).all())


async def refused(key: str, call: object) -> None:
    with pytest.raises(DomainError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.key == key


async def test_groups_are_validated_and_audited(session: AsyncSession) -> None:
    world = await make_shop(session)
    await add_staff(session, world, 1)
    shop, owner, now = world.shop_id, world.owner_id, world.now()
    group = await create_group(session, shop_id=shop, actor_id=owner,
                               name="  Pre\tsales \n ", now=now)
    assert group.name == "Pre sales"
    await session.commit()
    gid = group.id or 0
    await refused("service_group_name_taken", create_group(
        session, shop_id=shop, actor_id=owner, name="PRE SALES", now=now))
    await session.rollback()
    await refused("service_group_name_empty", create_group(
        session, shop_id=shop, actor_id=owner, name=" \x00 ", now=now))
    await refused("service_group_name_too_long", create_group(
        session, shop_id=shop, actor_id=owner, name="x" * 31, now=now))
    for bad in (0, 101):
        await refused("service_weight_invalid", add_member(
            session, shop_id=shop, actor_id=owner, group_id=gid, agent_id=world.agents[1],
            weight=bad, now=now))
    await add_member(session, shop_id=shop, actor_id=owner, group_id=gid,
                     agent_id=world.agents[1], weight=30, now=now)
    await session.commit()
    await refused("service_member_exists", add_member(
        session, shop_id=shop, actor_id=owner, group_id=gid, agent_id=world.agents[1],
        weight=3, now=now))
    await session.rollback()
    await set_weight(session, shop_id=shop, actor_id=owner, group_id=gid,
                     agent_id=world.agents[1], weight=100, now=now)
    assert [m.member.weight for m in await members(session, shop_id=shop, group_id=gid)] == [100]
    b = await create_group(session, shop_id=shop, actor_id=owner, name="B", now=now)
    c = await create_group(session, shop_id=shop, actor_id=owner, name="C", now=now)
    await refused("service_overflow_self", set_overflow(
        session, shop_id=shop, actor_id=owner, group_id=gid, overflow_id=gid, now=now))
    await set_overflow(session, shop_id=shop, actor_id=owner, group_id=gid,
                       overflow_id=b.id, now=now)
    await set_overflow(session, shop_id=shop, actor_id=owner, group_id=b.id or 0,
                       overflow_id=c.id, now=now)
    await refused("service_overflow_cycle", set_overflow(
        session, shop_id=shop, actor_id=owner, group_id=c.id or 0, overflow_id=gid, now=now))
    other = await make_shop(session, owner_id=2000, name="Noodle Bar")
    await refused("service_group_not_found", set_overflow(
        session, shop_id=other.shop_id, actor_id=2000, group_id=gid, overflow_id=None,
        now=now))
    await rename_group(session, shop_id=shop, actor_id=owner, group_id=gid, name="Sales",
                       now=now)
    await remove_member(session, shop_id=shop, actor_id=owner, group_id=gid,
                        agent_id=world.agents[1], now=now)
    await delete_group(session, shop_id=shop, actor_id=owner, group_id=b.id or 0, now=now)
    await session.commit()
    assert [(g.name, n) for g, n in await list_groups(session, shop_id=shop)] == [
        ("C", 0), ("Sales", 0)]
    got = await actions(session)
    for action in ("service.group_created", "service.member_added", "service.member_weight",
                   "service.group_overflow", "service.group_renamed", "service.member_removed",
                   "service.group_deleted"):
        assert action in got


async def test_entry_tokens_are_hashed_and_regenerating_kills_the_old_link(
    session: AsyncSession,
) -> None:
    world = await make_shop(session)
    await add_staff(session, world, 1)
    await add_group(session, world, "Pre-sales", {1: 1})
    entry, token = await create_entry(session, shop_id=world.shop_id, actor_id=world.owner_id,
                                      name="Product page", group_id=world.groups["Pre-sales"],
                                      now=world.now())
    await session.commit()
    entry_id = entry.id or 0
    assert is_entry_token(token) and len(token) <= 64
    assert all(ch.isalnum() or ch in "-_" for ch in token)
    stored = await session.get(Entry, entry_id, populate_existing=True)
    assert stored is not None and stored.token_hash == hash_token(token)
    assert token not in repr(stored.model_dump())
    await refused("service_entry_name_taken", create_entry(
        session, shop_id=world.shop_id, actor_id=world.owner_id, name="product PAGE",
        group_id=None, now=world.now()))
    await session.rollback()
    await add_user(session, 90_001)
    opened = await open_or_resume(session, POLICY, customer_id=90_001, token=token,
                                  now=world.now())
    await session.commit()
    _entry, fresh = await regenerate_token(session, shop_id=world.shop_id,
                                           actor_id=world.owner_id, entry_id=entry_id,
                                           now=world.now())
    await session.commit()
    await add_user(session, 90_002)
    await refused("service_entry_link_invalid", open_or_resume(
        session, POLICY, customer_id=90_002, token=token, now=world.now()))
    again = await open_or_resume(session, POLICY, customer_id=90_001, token=fresh,
                                 now=world.now())
    assert again.conversation.id == opened.conversation.id  # the open chat goes on
    await refused("service_staff_not_customer", open_or_resume(
        session, POLICY, customer_id=1, token=fresh, now=world.now()))
    await refused("service_staff_not_customer", open_or_resume(
        session, POLICY, customer_id=world.owner_id, token=fresh, now=world.now()))
    await set_entry_group(session, shop_id=world.shop_id, actor_id=world.owner_id,
                          entry_id=entry_id, group_id=None, now=world.now())
    assert {"service.entry_created", "service.entry_regenerated",
            "service.entry_group"} <= set(await actions(session))


async def test_settings_default_from_the_policy_validated_and_audited(
    session: AsyncSession,
) -> None:
    world = await make_shop(session)
    policy = ServicePolicy(default_cap=8, sticky_days=1, offline_text_zh="我们稍后回复您")
    assert (await get_settings(session, policy, shop_id=world.shop_id)).default_cap == 8
    cases = [("mode", "random", "service_mode_invalid"),
             ("default_cap", 0, "service_cap_invalid"),
             ("sticky_days", 91, "service_sticky_days_invalid"),
             ("reply_seconds", 5, "service_seconds_invalid"),
             ("idle_close_hours", 0, "service_idle_hours_invalid"),
             ("offline_text_en", "x" * 501, "service_text_too_long"),
             ("colour", "red", "service_setting_unknown")]
    for name, value, key in cases:
        await refused(key, update_settings(session, policy, shop_id=world.shop_id,
                                           actor_id=world.owner_id, now=world.now(),
                                           **{name: value}))
    settings = await update_settings(session, policy, shop_id=world.shop_id,
                                     actor_id=world.owner_id, now=world.now(),
                                     mode="least_busy", hours_text_en=" 9:00–18:00\x07 ")
    await session.commit()
    assert settings.hours_text_en == "9:00–18:00"
    stored = await session.get(ServiceSettings, world.shop_id, populate_existing=True)
    assert stored is not None and stored.mode == "least_busy" and stored.default_cap == 8
    assert stored.offline_text_zh == "我们稍后回复您"
    await refused("nothing_changed", update_settings(
        session, policy, shop_id=world.shop_id, actor_id=world.owner_id, now=world.now(),
        mode="least_busy"))
    event = (await session.exec(select(AuditEvent).where(
        col(AuditEvent.action) == "service.settings"))).one()
    assert event.detail["after"]["mode"] == "least_busy"
    assert event.detail["before"]["mode"] == "weighted"
    with pytest.raises(ValueError):
        ServicePolicy(mode="random")


async def test_live_view_and_a_days_figures(session: AsyncSession) -> None:
    world = await make_shop(session)
    await add_staff(session, world, 1, cap=2)
    await add_staff(session, world, 2, cap=1, online=False)
    await add_group(session, world, "Pre-sales", {1: 1, 2: 1})
    await add_entry(session, world, "Product page", "Pre-sales")
    chats = []
    for n in range(4):
        await add_user(session, 91_000 + n)
        opened = await open_or_resume(session, POLICY, customer_id=91_000 + n,
                                      token=world.tokens["Product page"], now=world.now())
        await record_customer_message(session, POLICY, conversation_id=opened.conversation.id
                                      or 0, customer_message_id=1, now=world.now())
        chats.append(opened.placement)
        world.advance(10)
    await session.commit()
    view = await live_view(session, POLICY, shop_id=world.shop_id, now=world.now())
    assert (view.online, view.queued, view.offline_waiting) == (1, 2, 0)
    assert [(a.user_id, a.open_chats, a.cap) for a in view.agents] == [(1, 2, 2), (2, 0, 1)]
    assert view.longest_wait_seconds == 20  # the third customer, since 20 s
    for delay, chat in zip((30, 90), chats[:2], strict=True):
        assert chat is not None
        await record_agent_message(session, POLICY, conversation_id=chat.conversation_id,
                                   agent_user_id=1, agent_message_id=9, customer_message_id=9,
                                   now=NOW + timedelta(seconds=delay))
        await end(session, POLICY, conversation_id=chat.conversation_id, by="agent",
                  actor_id=1, now=world.now())
    await session.commit()
    assert chats[0] is not None and chats[1] is not None
    await rate(session, conversation_id=chats[0].conversation_id, customer_id=91_000, score=5,
               now=world.now())
    await rate(session, conversation_id=chats[1].conversation_id, customer_id=91_001, score=2,
               now=world.now())
    await session.commit()
    figures = await day_figures(session, shop_id=world.shop_id, start=NOW,
                                end=NOW + timedelta(days=1))
    assert (figures.chats, figures.answered, figures.ratings) == (4, 2, 2)
    assert (figures.first_response_p50, figures.first_response_p90) == (30.0, 80.0)
    assert figures.rating_average == 3.5 and figures.open_now == 2
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([float(i) for i in range(1, 11)], 0.9) == 9.0
