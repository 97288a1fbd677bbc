"""Access reviews (权限复核) in the domain, on SQLite and PostgreSQL: when a round starts, its
snapshot, decisions item by item, "keep all remaining", the reminder, the no-response rules,
paging, the shop's own settings, and two processes starting the same round."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from models.accounts import set_suspended, unbind
from models.errors import DomainError
from models.lifecycle.access import expire_due_access, record_activity, set_access
from models.lifecycle.policy import LifecyclePolicy, NoResponse
from models.lifecycle.review_decisions import decide, keep_all_remaining, review_page
from models.lifecycle.reviews import (
    StartedReview,
    apply_no_response,
    due_review_reminders,
    next_review_deadline,
    open_round,
    set_review_settings,
    start_due_reviews,
)
from models.lifecycle.tables import ReviewDecision, ReviewItem, ReviewRound
from models.tables import AccountStatus, PhoneBinding, Shop, SubAccount
from tests.lifecycle_world import (
    HANK,
    LIFE,
    MIA,
    NOW,
    OLIVIA,
    OSCAR,
    PHONES,
    World,
    actions,
    events,
    make_world,
)

DUE = NOW + timedelta(days=90)


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await make_world(engine)


async def start(w: World, *, at: object = DUE,
                policy: LifecyclePolicy = LIFE) -> list[StartedReview]:
    async with w.session() as s:
        started = await start_due_reviews(s, policy=policy, now=at)  # type: ignore[arg-type]
        await s.commit()
        return started


async def items(w: World, round_id: int) -> dict[int, ReviewItem]:
    async with w.session() as s:
        rows = (await s.exec(select(ReviewItem).where(col(ReviewItem.round_id) == round_id))).all()
        return {row.account_id: row for row in rows}


async def account(w: World, account_id: int) -> SubAccount | None:
    async with w.session() as s:
        return await s.get(SubAccount, account_id)


async def test_a_round_starts_review_days_after_creation_with_a_snapshot(world: World) -> None:
    async with world.session() as s:  # Mia used the bot; her activity is in the snapshot
        mia = await s.get(SubAccount, world.mia)
        assert mia is not None and record_activity(mia, now=NOW + timedelta(days=3))
        s.add(mia)
        await s.commit()
        assert await next_review_deadline(s, LIFE) == DUE
    assert await start(world, at=DUE - timedelta(seconds=1)) == []
    [started] = await start(world)
    assert (started.shop_id, started.owner_id, started.items) == (world.shop_id, OLIVIA, 2)
    assert started.deadline_at == DUE + timedelta(days=14)
    snapshot = await items(world, started.round_id)
    hank, mia_item = snapshot[world.hank], snapshot[world.mia]
    assert (hank.nickname, hank.phone_masked, hank.role_name, hank.im_enabled) == (
        "Hank", "+86 139****9000", "Operations", False)
    assert (mia_item.im_enabled, mia_item.last_activity_at) == (True, NOW + timedelta(days=3))
    assert hank.decision is None and hank.last_activity_at is None
    assert (hank.status, mia_item.status) == ("authorized", "authorized")
    assert await start(world, at=DUE + timedelta(days=1)) == []  # once
    async with world.session() as s:
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.review_due_at == DUE + timedelta(days=90)
        # the next moment: the reminder in 7 days (Noodle Bar has no staff: it got no round)
        assert await next_review_deadline(s, LIFE) == DUE + timedelta(days=7)
        assert (await actions(s, world.shop_id))[-1] == "review.started"
        assert await open_round(s, world.other_shop_id) is None


async def test_decisions_item_by_item_audited_and_the_round_closes(world: World) -> None:
    [started] = await start(world)
    snapshot = await items(world, started.round_id)
    async with world.session() as s:
        kept = await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                            item_id=snapshot[world.hank].id or 0, choice=ReviewDecision.KEEP,
                            now=DUE)
        await s.commit()
    assert (kept.changed, kept.round_closed, kept.holder_id) == (False, False, HANK)
    async with world.session() as s:
        with pytest.raises(DomainError) as caught:
            await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                         item_id=snapshot[world.hank].id or 0, choice=ReviewDecision.SUSPEND,
                         now=DUE)
        assert caught.value.key == "review_item_decided"
        with pytest.raises(DomainError) as caught:
            await decide(s, shop_id=world.other_shop_id, owner_id=OSCAR,
                         item_id=snapshot[world.mia].id or 0, choice=ReviewDecision.UNBIND,
                         now=DUE)
        assert caught.value.key == "review_not_found"
    async with world.session() as s:
        suspended = await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                                 item_id=snapshot[world.mia].id or 0,
                                 choice=ReviewDecision.SUSPEND, now=DUE)
        await s.commit()
    assert (suspended.changed, suspended.round_closed, suspended.holder_id) == (True, True, MIA)
    mia = await account(world, world.mia)
    assert mia is not None and mia.status == AccountStatus.SUSPENDED.value
    async with world.session() as s:
        row = await s.get(ReviewRound, started.round_id)
        assert row is not None and row.closed_at == DUE and row.outcome == "answered"
        assert (await actions(s, world.shop_id))[-4:] == [
            "review.keep", "review.suspend", "account.suspended", "review.answered"]
        assert await due_review_reminders(s, now=DUE + timedelta(days=7)) == []
        assert await apply_no_response(s, policy=LIFE, now=DUE + timedelta(days=14)) == []
        with pytest.raises(DomainError) as caught:
            await keep_all_remaining(s, shop_id=world.shop_id, owner_id=OLIVIA,
                                     round_id=started.round_id, now=DUE)
        assert caught.value.key == "review_closed"


async def test_unbind_from_the_review_frees_the_phone_and_the_item_goes(world: World) -> None:
    [started] = await start(world)
    snapshot = await items(world, started.round_id)
    async with world.session() as s:
        done = await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                            item_id=snapshot[world.hank].id or 0, choice=ReviewDecision.UNBIND,
                            now=DUE)
        await s.commit()
    assert (done.changed, done.round_closed, done.nickname) == (True, False, "Hank")
    assert await account(world, world.hank) is None
    assert set(await items(world, started.round_id)) == {world.mia}
    async with world.session() as s:
        assert await s.get(PhoneBinding, PHONES[HANK]) is None
        assert (await actions(s, world.shop_id))[-2:] == ["review.unbind", "account.unbound"]
        with pytest.raises(DomainError) as caught:
            await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                         item_id=snapshot[world.hank].id or 0, choice=ReviewDecision.KEEP,
                         now=DUE)
        assert caught.value.key == "review_item_gone"


async def test_keep_all_remaining(world: World) -> None:
    [started] = await start(world)
    snapshot = await items(world, started.round_id)
    async with world.session() as s:
        await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                     item_id=snapshot[world.hank].id or 0, choice=ReviewDecision.SUSPEND,
                     now=DUE)
        assert await keep_all_remaining(s, shop_id=world.shop_id, owner_id=OLIVIA,
                                        round_id=started.round_id, now=DUE) == 1
        await s.commit()
        [kept] = (await events(s, world.shop_id, "review.keep"))
        assert kept.detail["via"] == "keep_all" and kept.object_id == str(world.mia)
    decided = await items(world, started.round_id)
    assert decided[world.mia].decision == "keep" and decided[world.mia].decided_by_owner
    async with world.session() as s:
        assert await open_round(s, world.shop_id) is None


async def test_partly_answered_the_owner_is_reminded_once(world: World) -> None:
    [started] = await start(world)
    snapshot = await items(world, started.round_id)
    async with world.session() as s:
        await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                     item_id=snapshot[world.hank].id or 0, choice=ReviewDecision.KEEP, now=DUE)
        await s.commit()
    async with world.session() as s:
        assert await due_review_reminders(s, now=DUE + timedelta(days=7, seconds=-1)) == []
        [reminder] = await due_review_reminders(s, now=DUE + timedelta(days=7))
        await s.commit()
    assert (reminder.owner_id, reminder.undecided, reminder.round_id) == (
        OLIVIA, 1, started.round_id)
    async with world.session() as s:
        assert await due_review_reminders(s, now=DUE + timedelta(days=8)) == []
        assert await next_review_deadline(s, LIFE) == DUE + timedelta(days=14)


@pytest.mark.parametrize("rule", [NoResponse.KEEP, NoResponse.SUSPEND])
async def test_unanswered_the_shop_rule_applies_after_14_days(world: World,
                                                              rule: NoResponse) -> None:
    async with world.session() as s:
        await set_review_settings(s, policy=LIFE, shop_id=world.shop_id, owner_id=OLIVIA,
                                  days=None, no_response=rule.value, now=NOW)
        await s.commit()
    [started] = await start(world)
    snapshot = await items(world, started.round_id)
    async with world.session() as s:  # Hank kept; Mia left unanswered
        await decide(s, shop_id=world.shop_id, owner_id=OLIVIA,
                     item_id=snapshot[world.hank].id or 0, choice=ReviewDecision.KEEP, now=DUE)
        await s.commit()
    deadline = DUE + timedelta(days=14)
    async with world.session() as s:
        assert await apply_no_response(s, policy=LIFE, now=deadline - timedelta(seconds=1)) == []
        [applied] = await apply_no_response(s, policy=LIFE, now=deadline)
        await s.commit()
    assert (applied.rule, applied.owner_id) == (rule, OLIVIA)
    mia, hank = await account(world, world.mia), await account(world, world.hank)
    assert mia is not None and hank is not None and hank.status == "authorized"
    decided = await items(world, started.round_id)
    assert not decided[world.mia].decided_by_owner
    if rule == NoResponse.KEEP:
        assert (applied.kept, applied.suspended) == (1, [])
        assert mia.status == "authorized" and decided[world.mia].decision == "keep"
    else:
        assert (applied.kept, applied.suspended) == (0, [(world.mia, MIA, "Mia")])
        assert mia.status == "suspended" and decided[world.mia].decision == "suspend"
    async with world.session() as s:
        row = await s.get(ReviewRound, started.round_id)
        assert row is not None and row.outcome == ("kept" if rule == NoResponse.KEEP
                                                   else "suspended")
        [event] = await events(s, world.shop_id, "review.no_response")
        assert event.detail["rule"] == rule.value and event.actor_id is None
        assert await apply_no_response(s, policy=LIFE, now=deadline + timedelta(days=1)) == []
        # the next round is 90 days after this one started
        assert await next_review_deadline(s, LIFE) == DUE + timedelta(days=90)


async def test_the_suspend_rule_leaves_an_already_suspended_account_alone(world: World) -> None:
    policy = LifecyclePolicy(review_no_response=NoResponse.SUSPEND)
    [started] = await start(world, policy=policy)
    async with world.session() as s:
        await set_suspended(s, shop_id=world.shop_id, actor_id=OLIVIA, account_id=world.hank,
                            suspended=True, now=DUE)
        await s.commit()
    async with world.session() as s:
        [applied] = await apply_no_response(s, policy=policy, now=DUE + timedelta(days=14))
        await s.commit()
    assert [a for a, _h, _n in applied.suspended] == [world.mia]
    assert applied.round_id == started.round_id


async def test_pages_of_items(world: World) -> None:
    [started] = await start(world)
    async with world.session() as s:
        first = await review_page(s, shop_id=world.shop_id, round_id=started.round_id, page=0,
                                  size=1)
        assert (first.total, first.undecided, first.page, first.pages) == (2, 2, 0, 2)
        assert [i.account_id for i in first.items] == [world.hank]
        last = await review_page(s, shop_id=world.shop_id, round_id=started.round_id, page=9,
                                 size=1)
        assert (last.page, [i.account_id for i in last.items]) == (1, [world.mia])
        with pytest.raises(DomainError) as caught:
            await review_page(s, shop_id=world.other_shop_id, round_id=started.round_id,
                              page=0)
        assert caught.value.key == "review_not_found"


async def test_the_shop_own_period_off_and_invalid(world: World) -> None:
    async with world.session() as s:
        shop = await set_review_settings(s, policy=LIFE, shop_id=world.shop_id,
                                         owner_id=OLIVIA, days=30, no_response=None, now=NOW)
        await s.commit()
        assert shop.review_due_at == NOW + timedelta(days=30)
        for days, rule, key in ((-1, None, "review_days_invalid"),
                                (4000, None, "review_days_invalid"),
                                (30, "maybe", "review_rule_invalid"),
                                (30, None, "nothing_changed")):
            with pytest.raises(DomainError) as caught:
                await set_review_settings(s, policy=LIFE, shop_id=world.shop_id,
                                          owner_id=OLIVIA, days=days, no_response=rule, now=NOW)
            assert caught.value.key == key
    assert [r.shop_id for r in await start(world, at=NOW + timedelta(days=30))] == [world.shop_id]
    async with world.session() as s:
        current = await open_round(s, world.shop_id)
        await keep_all_remaining(s, shop_id=world.shop_id, owner_id=OLIVIA,
                                 round_id=current.id or 0,  # type: ignore[union-attr]
                                 now=NOW + timedelta(days=30))
        await set_review_settings(s, policy=LIFE, shop_id=world.shop_id, owner_id=OLIVIA,
                                  days=0, no_response=None, now=NOW + timedelta(days=30))
        await s.commit()
        assert await next_review_deadline(s, LIFE) == DUE  # only Noodle Bar, by default
    assert await start(world, at=NOW + timedelta(days=400)) == []


async def test_reviews_off_by_configuration(world: World) -> None:
    off = LifecyclePolicy(review_days=0)
    assert await start(world, at=NOW + timedelta(days=1000), policy=off) == []
    async with world.session() as s:
        assert await next_review_deadline(s, off) is None


async def test_two_processes_starting_reviews_at_once_start_one_round(world: World) -> None:
    results = await asyncio.gather(start(world), start(world))
    assert sorted(len(r) for r in results) == [0, 1]
    async with world.session() as s:
        rounds = (await s.exec(select(ReviewRound))).all()
        assert len(rounds) == 1


async def test_a_round_of_a_shop_with_an_open_round_waits_for_it(world: World) -> None:
    async with world.session() as s:
        await set_review_settings(s, policy=LIFE, shop_id=world.shop_id, owner_id=OLIVIA,
                                  days=20, no_response=None, now=NOW)
        await s.commit()
    [first] = await start(world, at=NOW + timedelta(days=20))
    # configured below the deadline: the next round would start before this one closes
    async with world.session() as s:
        await set_review_settings(s, policy=LIFE, shop_id=world.shop_id, owner_id=OLIVIA,
                                  days=5, no_response=None, now=NOW + timedelta(days=21))
        await s.commit()
    assert await start(world, at=NOW + timedelta(days=25)) == []
    async with world.session() as s:
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.review_due_at == first.deadline_at
        await apply_no_response(s, policy=LIFE, now=first.deadline_at)
        await s.commit()
    assert len(await start(world, at=first.deadline_at)) == 1


async def test_an_account_unbound_elsewhere_leaves_the_round(world: World) -> None:
    [started] = await start(world)
    async with world.session() as s:
        await unbind(s, shop_id=world.shop_id, actor_id=OLIVIA, account_id=world.hank, now=DUE)
        await s.commit()
    assert set(await items(world, started.round_id)) == {world.mia}


async def test_the_snapshot_shows_an_expired_account_as_expired(world: World) -> None:
    async with world.session() as s:
        await set_access(s, policy=LIFE, shop_id=world.shop_id, actor_id=OLIVIA,
                         account_id=world.hank, until=NOW + timedelta(days=1), now=NOW)
        await expire_due_access(s, now=NOW + timedelta(days=1))
        await set_suspended(s, shop_id=world.shop_id, actor_id=OLIVIA, account_id=world.mia,
                            suspended=True, now=NOW)
        await s.commit()
    [started] = await start(world)
    snapshot = await items(world, started.round_id)
    assert (snapshot[world.hank].status, snapshot[world.mia].status) == ("expired", "suspended")
