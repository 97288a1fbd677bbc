"""Access reviews (权限复核, docs/lifecycle.md): every ``review_days`` the owner reviews every sub-account.

A shop's next round starts at ``shop.review_due_at``; a shop never reviewed yet is due
``review_days`` after it was created (the shop's own ``review_days``, or the configured
default when it has none; 0 is off). A round holds one item per sub-account (a snapshot:
nickname, masked phone, role, IM, status, last activity); one round is open per shop at a
time (a unique partial index). Unanswered, the owner is reminded once after
``review_reminder_days``; after ``review_deadline_days`` the shop's no-response rule (keep, or
suspend those not kept) decides what is left and the round closes. The owner's decisions are
in ``models.lifecycle.review_decisions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.lifecycle.access import account_state
from models.lifecycle.common import decision, lock_shop
from models.lifecycle.policy import LifecyclePolicy, NoResponse
from models.lifecycle.tables import ReviewDecision, ReviewItem, ReviewOutcome, ReviewRound
from models.phones import mask_phone
from models.tables import AccountStatus, Role, Shop, SubAccount, User

MAX_REVIEW_DAYS = 3650
#: a round still open, an item still undecided
OPEN = col(ReviewRound.closed_at).is_(None)
UNDECIDED = col(ReviewItem.decision).is_(None)


def review_days(shop: Shop, policy: LifecyclePolicy) -> int:
    """Days between the shop's reviews (0: off)."""
    return policy.review_days if shop.review_days is None else shop.review_days


def no_response_rule(shop: Shop, policy: LifecyclePolicy) -> NoResponse:
    """What silence means for the shop."""
    if shop.review_no_response in (NoResponse.KEEP.value, NoResponse.SUSPEND.value):
        return NoResponse(shop.review_no_response)
    return policy.review_no_response


def _never_reviewed(policy: LifecyclePolicy, now: datetime) -> Any:
    """Shops on the default period that have had no round: due ``review_days`` after creation."""
    if policy.review_days <= 0:
        return col(Shop.id).is_(None)
    return and_(col(Shop.review_due_at).is_(None), col(Shop.review_days).is_(None),
                col(Shop.created_at) <= now - timedelta(days=policy.review_days))


async def open_round(session: AsyncSession, shop_id: int) -> ReviewRound | None:
    """The shop's open review round, if any."""
    return (await session.exec(
        select(ReviewRound).where(col(ReviewRound.shop_id) == shop_id, OPEN)
    )).first()


async def undecided_count(session: AsyncSession, round_id: int) -> int:
    """How many items of the round still wait for a decision."""
    return int((await session.exec(
        select(func.count()).select_from(ReviewItem)
        .where(col(ReviewItem.round_id) == round_id, UNDECIDED)
    )).one())


async def set_review_settings(
    session: AsyncSession, *, policy: LifecyclePolicy, shop_id: int, owner_id: int,
    days: int | None, no_response: str | None, now: datetime,
) -> Shop:
    """The shop's own review period (``None``: the default; 0: off) and no-response rule
    (``"keep"`` | ``"suspend"``; ``None``: the default). The next round is scheduled from the
    last one's start (or the shop's creation)."""
    if days is not None and not 0 <= days <= MAX_REVIEW_DAYS:
        raise DomainError("review_days_invalid", max=MAX_REVIEW_DAYS)
    if no_response is not None and no_response not in (NoResponse.KEEP, NoResponse.SUSPEND):
        raise DomainError("review_rule_invalid")
    async with decision(session, "nothing_changed"):
        shop = await lock_shop(session, shop_id)
        if shop is None or shop.owner_id != owner_id:
            raise DomainError("no_shop")
        if (shop.review_days, shop.review_no_response) == (days, no_response):
            raise DomainError("nothing_changed")
        shop.review_days, shop.review_no_response = days, no_response
        period = review_days(shop, policy)
        last = (await session.exec(
            select(func.max(ReviewRound.started_at)).where(col(ReviewRound.shop_id) == shop_id)
        )).one()
        base = last if isinstance(last, datetime) else shop.created_at
        shop.review_due_at = base + timedelta(days=period) if period > 0 else None
        session.add(shop)
        await session.flush()
    audit.record(session, now=now, shop_id=shop_id, actor_id=owner_id, action="shop.reviews",
                 object_type="shop", object_id=shop_id, days=period,
                 rule=no_response_rule(shop, policy).value)
    return shop


@dataclass
class StartedReview:
    """A review round that began: the owner is to get its first page."""

    round_id: int
    shop_id: int
    owner_id: int
    items: int
    deadline_at: datetime


def _last_activity(account: SubAccount, holder: User | None) -> datetime | None:
    """When the holder last used the bot: the later of what the account noted and when the
    holder was last seen (``User.seen_at``, kept to the day by every update)."""
    moments = [m for m in (account.last_activity_at, holder.seen_at if holder else None) if m]
    return max(moments) if moments else None


async def _snapshot(session: AsyncSession, round_: ReviewRound) -> int:
    rows = (await session.exec(
        select(SubAccount, Role, User).join(Role, col(Role.id) == SubAccount.role_id)
        .outerjoin(User, col(User.id) == SubAccount.holder_id)
        .where(col(SubAccount.shop_id) == round_.shop_id).order_by(col(SubAccount.id))
    )).all()
    for account, role, holder in rows:
        session.add(ReviewItem(
            round_id=round_.id or 0, account_id=account.id or 0, nickname=account.nickname,
            phone_masked=mask_phone(account.phone), role_name=role.name,
            im_enabled=account.im_enabled, status=account_state(account).value,
            last_activity_at=_last_activity(account, holder),
        ))
    return len(rows)


async def _start(session: AsyncSession, policy: LifecyclePolicy, shop_id: int,
                 now: datetime) -> StartedReview | None:
    shop = await lock_shop(session, shop_id)
    if shop is None:
        return None
    period = review_days(shop, policy)
    if period <= 0:
        shop.review_due_at = None
        session.add(shop)
        return None
    if shop.review_due_at is not None and shop.review_due_at > now:
        return None  # another session started it first
    current = await open_round(session, shop_id)
    if current is not None:  # the next round waits for this one to close
        shop.review_due_at = current.deadline_at
        session.add(shop)
        return None
    shop.review_due_at = now + timedelta(days=period)
    session.add(shop)
    round_ = ReviewRound(
        shop_id=shop_id, started_at=now,
        remind_at=now + timedelta(days=policy.review_reminder_days),
        deadline_at=now + timedelta(days=policy.review_deadline_days),
    )
    session.add(round_)
    await session.flush()
    items = await _snapshot(session, round_)
    if items == 0:  # nobody to review: nothing to ask the owner
        await session.delete(round_)
        await session.flush()
        return None
    await session.flush()
    audit.record(session, now=now, shop_id=shop_id, actor_id=None, action="review.started",
                 object_type="review", object_id=round_.id, items=items)
    return StartedReview(round_.id or 0, shop_id, shop.owner_id, items, round_.deadline_at)


async def start_due_reviews(
    session: AsyncSession, *, policy: LifecyclePolicy, now: datetime, limit: int = 50
) -> list[StartedReview]:
    """Start a round for every shop whose review is due; each round is returned once."""
    due = (await session.exec(
        select(Shop.id).where(or_(col(Shop.review_due_at) <= now, _never_reviewed(policy, now)))
        .order_by(col(Shop.id)).limit(limit)
    )).all()
    started = []
    for shop_id in due:
        try:
            async with decision(session, "review_open"):
                begun = await _start(session, policy, int(shop_id or 0), now)
        except DomainError:  # another process opened it meanwhile: theirs to announce
            continue
        if begun is not None:
            started.append(begun)
    return started


@dataclass
class ReviewReminder:
    """An open round the owner has not finished: they are to be reminded, once."""

    round_id: int
    shop_id: int
    owner_id: int
    undecided: int
    deadline_at: datetime


async def due_review_reminders(
    session: AsyncSession, *, now: datetime, limit: int = 100
) -> list[ReviewReminder]:
    """Open rounds whose reminder is due (marked sent: each is returned once)."""
    rows = (await session.exec(
        select(ReviewRound, Shop.owner_id).join(Shop, col(Shop.id) == ReviewRound.shop_id)
        .where(OPEN, col(ReviewRound.remind_at) <= now)
        .order_by(col(ReviewRound.remind_at)).limit(limit)
    )).all()
    due = []
    for round_, owner_id in rows:
        result = await session.exec(
            update(ReviewRound)
            .where(col(ReviewRound.id) == round_.id, OPEN,
                   col(ReviewRound.remind_at).is_not(None))
            .values(remind_at=None).execution_options(synchronize_session=False)
        )
        left = await undecided_count(session, round_.id or 0)
        if result.rowcount == 1 and left > 0:
            due.append(ReviewReminder(round_.id or 0, round_.shop_id, int(owner_id), left,
                                      round_.deadline_at))
    return due


@dataclass
class NoResponseApplied:
    """A round whose time ran out: what the shop's rule did with the undecided accounts."""

    round_id: int
    shop_id: int
    owner_id: int
    rule: NoResponse
    kept: int = 0
    #: (account id, holder id, nickname) of each account suspended (its holder is to be told)
    suspended: list[tuple[int, int, str]] = field(default_factory=list)


async def apply_no_response(
    session: AsyncSession, *, policy: LifecyclePolicy, now: datetime, limit: int = 50
) -> list[NoResponseApplied]:
    """Close the open rounds past their deadline, applying each shop's rule to the items
    still undecided (audited); each round is returned once."""
    rows = (await session.exec(
        select(ReviewRound, Shop).join(Shop, col(Shop.id) == ReviewRound.shop_id)
        .where(OPEN, col(ReviewRound.deadline_at) <= now)
        .order_by(col(ReviewRound.deadline_at)).limit(limit)
    )).all()
    applied = []
    for round_, shop in rows:
        async with decision(session, "review_closed"):
            done = await _apply(session, round_, shop, no_response_rule(shop, policy), now)
        if done is not None:
            applied.append(done)
    return applied


async def _apply(session: AsyncSession, round_: ReviewRound, shop: Shop, rule: NoResponse,
                 now: datetime) -> NoResponseApplied | None:
    outcome = ReviewOutcome.KEPT if rule == NoResponse.KEEP else ReviewOutcome.SUSPENDED
    closed = await session.exec(
        update(ReviewRound).where(col(ReviewRound.id) == round_.id, OPEN)
        .values(closed_at=now, outcome=outcome.value, remind_at=None)
        .execution_options(synchronize_session=False)
    )
    if closed.rowcount != 1:
        return None
    done = NoResponseApplied(round_.id or 0, shop.id or 0, shop.owner_id, rule)
    items = (await session.exec(
        select(ReviewItem, SubAccount).join(SubAccount, col(SubAccount.id) == ReviewItem.account_id)
        .where(col(ReviewItem.round_id) == round_.id, UNDECIDED)
    )).all()
    for item, account in items:
        item.decided_at, item.decided_by_owner = now, False
        item.decision = (ReviewDecision.KEEP if rule == NoResponse.KEEP
                         else ReviewDecision.SUSPEND).value
        session.add(item)
        if rule == NoResponse.KEEP:
            done.kept += 1
            continue
        suspended = await session.exec(
            update(SubAccount).where(col(SubAccount.id) == account.id,
                                     col(SubAccount.status) == AccountStatus.AUTHORIZED.value)
            .values(status=AccountStatus.SUSPENDED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if suspended.rowcount == 1:
            done.suspended.append((account.id or 0, account.holder_id, account.nickname))
            audit.record(session, now=now, shop_id=shop.id, actor_id=None,
                         action="account.suspended", object_type="account",
                         object_id=account.id, phone=mask_phone(account.phone),
                         nickname=account.nickname, via="review_no_response")
    await session.flush()
    audit.record(session, now=now, shop_id=shop.id, actor_id=None, action="review.no_response",
                 object_type="review", object_id=round_.id, rule=rule.value, kept=done.kept,
                 suspended=len(done.suspended))
    return done


async def next_review_deadline(session: AsyncSession, policy: LifecyclePolicy) -> datetime | None:
    """The earliest moment a review starts, is reminded or reaches its deadline."""
    due, remind, deadline = (await session.exec(  # type: ignore[call-overload]
        select(
            select(func.min(Shop.review_due_at)).scalar_subquery(),
            select(func.min(ReviewRound.remind_at)).where(OPEN).scalar_subquery(),
            select(func.min(ReviewRound.deadline_at)).where(OPEN).scalar_subquery(),
        )
    )).one()
    times = [t for t in (due, remind, deadline) if isinstance(t, datetime)]
    if policy.review_days > 0:
        first = (await session.exec(
            select(func.min(Shop.created_at))
            .where(col(Shop.review_due_at).is_(None), col(Shop.review_days).is_(None))
        )).one()
        if isinstance(first, datetime):
            times.append(first + timedelta(days=policy.review_days))
    return min(times) if times else None
