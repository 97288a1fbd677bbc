"""The owner's answers to an access review: Keep / Suspend / Unbind per item, "Keep all
remaining", and the pages of items the review screen shows. A round whose items are all
decided closes as answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.accounts import set_suspended, unbind
from models.errors import DomainError
from models.lifecycle.common import decision, lock_account, lock_shop
from models.lifecycle.reviews import OPEN, UNDECIDED, undecided_count
from models.lifecycle.tables import ReviewDecision, ReviewItem, ReviewOutcome, ReviewRound
from models.paging import paging

PAGE_SIZE = 5


@dataclass
class ReviewPage:
    """One page of a round's items (in the order of the accounts' creation)."""

    round: ReviewRound
    items: list[ReviewItem]
    total: int
    undecided: int
    page: int
    pages: int


async def _round_of(session: AsyncSession, shop_id: int, round_id: int) -> ReviewRound:
    round_ = await session.get(ReviewRound, round_id)
    if round_ is None or round_.shop_id != shop_id:
        raise DomainError("review_not_found")
    return round_


async def review_page(
    session: AsyncSession, *, shop_id: int, round_id: int, page: int, size: int = PAGE_SIZE
) -> ReviewPage:
    """Page ``page`` (clamped) of the round's items, with how many are left to decide."""
    round_ = await _round_of(session, shop_id, round_id)
    total = int((await session.exec(
        select(func.count()).select_from(ReviewItem).where(col(ReviewItem.round_id) == round_id)
    )).one())
    page, pages = paging(page, total, size)
    items = list((await session.exec(
        select(ReviewItem).where(col(ReviewItem.round_id) == round_id)
        .order_by(col(ReviewItem.account_id)).offset(page * size).limit(size)
    )).all())
    return ReviewPage(round_, items, total, await undecided_count(session, round_id), page, pages)


@dataclass
class Decided:
    """One decision: the account's holder is to be told when ``changed``."""

    item_id: int
    account_id: int
    holder_id: int
    nickname: str
    decision: ReviewDecision
    #: the account was suspended or unbound now (not already suspended)
    changed: bool
    round_closed: bool


async def _close_if_answered(session: AsyncSession, round_: ReviewRound, now: datetime) -> bool:
    if await undecided_count(session, round_.id or 0) > 0:
        return False
    result = await session.exec(
        update(ReviewRound).where(col(ReviewRound.id) == round_.id, OPEN)
        .values(closed_at=now, outcome=ReviewOutcome.ANSWERED.value, remind_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(round_)
    if result.rowcount == 1:
        audit.record(session, now=now, shop_id=round_.shop_id, actor_id=None,
                     action="review.answered", object_type="review", object_id=round_.id)
    return bool(result.rowcount == 1)


async def _open_item(session: AsyncSession, shop_id: int, owner_id: int,
                     item_id: int) -> tuple[ReviewRound, ReviewItem]:
    shop = await lock_shop(session, shop_id)
    if shop is None or shop.owner_id != owner_id:
        raise DomainError("no_shop")
    item = await session.get(ReviewItem, item_id, populate_existing=True)
    if item is None:
        raise DomainError("review_item_gone")
    round_ = await _round_of(session, shop_id, item.round_id)
    if round_.closed_at is not None:
        raise DomainError("review_closed")
    if item.decision is not None:
        raise DomainError("review_item_decided", nickname=item.nickname)
    return round_, item


async def decide(
    session: AsyncSession, *, shop_id: int, owner_id: int, item_id: int,
    choice: ReviewDecision, now: datetime,
) -> Decided:
    """Keep, suspend or unbind the account of one item (each audited as a review decision,
    and a suspend or unbind also as the change itself)."""
    async with decision(session, "review_item_decided"):
        round_, item = await _open_item(session, shop_id, owner_id, item_id)
        account = await lock_account(session, item.account_id)
        if account is None:
            raise DomainError("review_item_gone")
        done = Decided(item.id or 0, account.id or 0, account.holder_id, account.nickname,
                       choice, changed=False, round_closed=False)
        audit.record(session, now=now, shop_id=shop_id, actor_id=owner_id,
                     action=f"review.{choice.value}", object_type="account",
                     object_id=account.id, nickname=account.nickname,
                     phone=item.phone_masked, review=round_.id)
        if choice == ReviewDecision.UNBIND:
            session.expunge(item)  # the database deletes it with the account
            await unbind(session, shop_id=shop_id, actor_id=owner_id,
                         account_id=account.id or 0, now=now)
            done.changed = True
        else:
            if choice == ReviewDecision.SUSPEND:
                try:
                    await set_suspended(session, shop_id=shop_id, actor_id=owner_id,
                                        account_id=account.id or 0, suspended=True, now=now)
                    done.changed = True
                except DomainError as exc:
                    if exc.key != "nothing_changed":
                        raise
            item.decision, item.decided_at, item.decided_by_owner = choice.value, now, True
            session.add(item)
        await session.flush()
        done.round_closed = await _close_if_answered(session, round_, now)
    return done


async def keep_all_remaining(
    session: AsyncSession, *, shop_id: int, owner_id: int, round_id: int, now: datetime
) -> int:
    """Keep every item not decided yet (each audited); the round closes. Returns how many."""
    async with decision(session, "review_closed"):
        shop = await lock_shop(session, shop_id)
        if shop is None or shop.owner_id != owner_id:
            raise DomainError("no_shop")
        round_ = await _round_of(session, shop_id, round_id)
        if round_.closed_at is not None:
            raise DomainError("review_closed")
        items = list((await session.exec(
            select(ReviewItem).where(col(ReviewItem.round_id) == round_id, UNDECIDED)
            .execution_options(populate_existing=True)
        )).all())
        for item in items:
            item.decision, item.decided_at = ReviewDecision.KEEP.value, now
            item.decided_by_owner = True
            session.add(item)
            audit.record(session, now=now, shop_id=shop_id, actor_id=owner_id,
                         action="review.keep", object_type="account", object_id=item.account_id,
                         nickname=item.nickname, phone=item.phone_masked, review=round_id,
                         via="keep_all")
        await session.flush()
        await _close_if_answered(session, round_, now)
    return len(items)
