"""Customer-service groups (客服分组): members with weights (权重) and an overflow group."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.paging import paging
from models.service.results import LIST_PAGE_SIZE, ListPage
from models.service.tables import Agent, GroupMember, ServiceGroup
from models.text import clean_line

GROUP_NAME_MAX = 30
WEIGHT_RANGE = (1, 100)


def clean_group_name(raw: str) -> str:
    return clean_line(raw, limit=GROUP_NAME_MAX, empty="service_group_name_empty",
                      too_long="service_group_name_too_long")


def name_key(name: str) -> str:
    """What makes two names the same (case and width folded)."""
    return name.casefold()


def check_weight(weight: int) -> int:
    low, high = WEIGHT_RANGE
    if isinstance(weight, bool) or not isinstance(weight, int) or not low <= weight <= high:
        raise DomainError("service_weight_invalid", min=low, max=high)
    return weight


async def get_group(session: AsyncSession, *, shop_id: int, group_id: int) -> ServiceGroup:
    group = await session.get(ServiceGroup, group_id)
    if group is None or group.shop_id != shop_id:
        raise DomainError("service_group_not_found")
    return group


#: a page of the shop's groups by name with their member counts, each row with the total
_GROUPS_PAGE = (
    select(ServiceGroup, func.count(col(GroupMember.id)), func.count().over())
    .outerjoin(GroupMember, col(GroupMember.group_id) == ServiceGroup.id)
    .where(col(ServiceGroup.shop_id) == bindparam("shop"))
    .group_by(col(ServiceGroup.id))
    .order_by(col(ServiceGroup.name_key), col(ServiceGroup.id))
    .offset(bindparam("offset")).limit(bindparam("limit"))
)
_GROUPS_BEFORE = select(func.count()).select_from(ServiceGroup).where(
    col(ServiceGroup.shop_id) == bindparam("shop"),
    or_(col(ServiceGroup.name_key) < bindparam("key"),
        and_(col(ServiceGroup.name_key) == bindparam("key"),
             col(ServiceGroup.id) < bindparam("group"))))
_GROUPS_COUNT = select(func.count()).select_from(ServiceGroup).where(
    col(ServiceGroup.shop_id) == bindparam("shop"))


async def groups_page(
    session: AsyncSession, *, shop_id: int, page: int, size: int = LIST_PAGE_SIZE
) -> ListPage[tuple[ServiceGroup, int]]:
    """Page ``page`` of the shop's groups by name with their member counts (clamped: a page
    past the end, as a stale button may ask for, is the last one)."""
    page = max(page, 0)
    rows = list((await session.exec(_GROUPS_PAGE, params={
        "shop": shop_id, "offset": page * size, "limit": size})).all())
    total = int(rows[0][2]) if rows else 0
    if not rows and page > 0:
        total = int((await session.exec(_GROUPS_COUNT, params={"shop": shop_id})).one())
        last, _pages = paging(page, total, size)
        if last < page:
            return await groups_page(session, shop_id=shop_id, page=last, size=size)
    page, pages = paging(page, total, size)
    return ListPage([(group, int(count)) for group, count, _n in rows], total, page, pages, size)


async def group_page_of(session: AsyncSession, group: ServiceGroup, *,
                        size: int = LIST_PAGE_SIZE) -> int:
    """The page of the groups list the group is on (for the card's Back button)."""
    before = (await session.exec(_GROUPS_BEFORE, params={
        "shop": group.shop_id, "key": group.name_key, "group": group.id})).one()
    return int(before) // size


async def list_groups(session: AsyncSession, *, shop_id: int) -> list[tuple[ServiceGroup, int]]:
    """The shop's groups with their member counts, by name."""
    rows = await session.exec(
        select(ServiceGroup, func.count(col(GroupMember.id)))
        .outerjoin(GroupMember, col(GroupMember.group_id) == ServiceGroup.id)
        .where(col(ServiceGroup.shop_id) == shop_id)
        .group_by(col(ServiceGroup.id))
        .order_by(col(ServiceGroup.name_key))
    )
    return [(group, int(count)) for group, count in rows.all()]


@dataclass(frozen=True)
class Member:
    member: GroupMember
    agent: Agent


async def members(session: AsyncSession, *, shop_id: int, group_id: int) -> list[Member]:
    await get_group(session, shop_id=shop_id, group_id=group_id)
    rows = await session.exec(
        select(GroupMember, Agent).join(Agent, col(Agent.id) == GroupMember.agent_id)
        .where(col(GroupMember.group_id) == group_id).order_by(col(GroupMember.id))
    )
    return [Member(m, a) for m, a in rows.all()]


def _audit(session: AsyncSession, group: ServiceGroup, *, actor_id: int, action: str,
           now: datetime, **detail: object) -> None:
    audit.record(session, now=now, shop_id=group.shop_id, actor_id=actor_id, action=action,
                 object_type="service_group", object_id=group.id, name=group.name, **detail)


async def _save_name(session: AsyncSession, group: ServiceGroup, name: str) -> None:
    try:
        async with session.begin_nested():
            session.add(group)
    except IntegrityError as exc:
        raise DomainError("service_group_name_taken", name=name) from exc


async def create_group(
    session: AsyncSession, *, shop_id: int, actor_id: int, name: str, now: datetime
) -> ServiceGroup:
    """A new group; names are unique in the shop (case folded)."""
    clean = clean_group_name(name)
    group = ServiceGroup(shop_id=shop_id, name=clean, name_key=name_key(clean), created_at=now)
    await _save_name(session, group, clean)
    _audit(session, group, actor_id=actor_id, action="service.group_created", now=now)
    return group


async def rename_group(
    session: AsyncSession, *, shop_id: int, actor_id: int, group_id: int, name: str,
    now: datetime,
) -> ServiceGroup:
    clean = clean_group_name(name)
    group = await get_group(session, shop_id=shop_id, group_id=group_id)
    if group.name == clean:
        raise DomainError("nothing_changed")
    before = group.name
    group.name, group.name_key = clean, name_key(clean)
    await _save_name(session, group, clean)
    _audit(session, group, actor_id=actor_id, action="service.group_renamed", now=now,
           before=before)
    return group


async def set_overflow(
    session: AsyncSession, *, shop_id: int, actor_id: int, group_id: int,
    overflow_id: int | None, now: datetime,
) -> ServiceGroup:
    """Set (or clear) the group's overflow group: another group of the shop, never itself,
    and never closing a cycle (A → B → A)."""
    group = await get_group(session, shop_id=shop_id, group_id=group_id)
    if overflow_id is not None:
        if overflow_id == group_id:
            raise DomainError("service_overflow_self")
        step: int | None = overflow_id
        seen: set[int] = set()
        while step is not None and step not in seen:
            seen.add(step)
            target = await get_group(session, shop_id=shop_id, group_id=step)
            if target.overflow_group_id == group_id:
                raise DomainError("service_overflow_cycle")
            step = target.overflow_group_id
    if group.overflow_group_id == overflow_id:
        raise DomainError("nothing_changed")
    before, group.overflow_group_id = group.overflow_group_id, overflow_id
    session.add(group)
    await session.flush()
    _audit(session, group, actor_id=actor_id, action="service.group_overflow", now=now,
           before=before, after=overflow_id)
    return group


async def delete_group(
    session: AsyncSession, *, shop_id: int, actor_id: int, group_id: int, now: datetime
) -> ServiceGroup:
    """Delete a group: its members go, entries bound to it and groups overflowing into it are
    left without one (their conversations then go to any agent of the shop)."""
    group = await get_group(session, shop_id=shop_id, group_id=group_id)
    _audit(session, group, actor_id=actor_id, action="service.group_deleted", now=now)
    await session.exec(
        update(ServiceGroup).where(col(ServiceGroup.overflow_group_id) == group_id)
        .values(overflow_group_id=None).execution_options(synchronize_session=False)
    )
    await session.delete(group)
    await session.flush()
    return group


async def _agent_of_shop(session: AsyncSession, shop_id: int, agent_id: int) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or agent.shop_id != shop_id:
        raise DomainError("service_agent_not_found")
    return agent


async def add_member(
    session: AsyncSession, *, shop_id: int, actor_id: int, group_id: int, agent_id: int,
    weight: int, now: datetime,
) -> GroupMember:
    """Put an active agent of the shop in the group with a weight 1–100."""
    check_weight(weight)
    group = await get_group(session, shop_id=shop_id, group_id=group_id)
    agent = await _agent_of_shop(session, shop_id, agent_id)
    if not agent.active:
        raise DomainError("service_not_agent")
    member = GroupMember(group_id=group_id, agent_id=agent_id, weight=weight)
    try:
        async with session.begin_nested():
            session.add(member)
    except IntegrityError as exc:
        raise DomainError("service_member_exists") from exc
    _audit(session, group, actor_id=actor_id, action="service.member_added", now=now,
           agent=agent_id, weight=weight)
    return member


async def _member(session: AsyncSession, group_id: int, agent_id: int) -> GroupMember:
    member = (await session.exec(
        select(GroupMember).where(col(GroupMember.group_id) == group_id,
                                  col(GroupMember.agent_id) == agent_id))).first()
    if member is None:
        raise DomainError("service_member_not_found")
    return member


async def set_weight(
    session: AsyncSession, *, shop_id: int, actor_id: int, group_id: int, agent_id: int,
    weight: int, now: datetime,
) -> GroupMember:
    check_weight(weight)
    group = await get_group(session, shop_id=shop_id, group_id=group_id)
    member = await _member(session, group_id, agent_id)
    if member.weight == weight:
        raise DomainError("nothing_changed")
    before, member.weight = member.weight, weight
    session.add(member)
    await session.flush()
    _audit(session, group, actor_id=actor_id, action="service.member_weight", now=now,
           agent=agent_id, before=before, after=weight)
    return member


async def remove_member(
    session: AsyncSession, *, shop_id: int, actor_id: int, group_id: int, agent_id: int,
    now: datetime,
) -> None:
    """Take an agent out of a group (their open chats stay theirs)."""
    group = await get_group(session, shop_id=shop_id, group_id=group_id)
    member = await _member(session, group_id, agent_id)
    await session.delete(member)
    await session.flush()
    _audit(session, group, actor_id=actor_id, action="service.member_removed", now=now,
           agent=agent_id)
