"""Roles (岗位): per-shop named module sets, with the rules that guard them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.policy import Policy
from models.tables import Role, SubAccount

ROLE_NAME_MAX = 30
ROLE_DESCRIPTION_MAX = 200


def clean_role_name(raw: str) -> str:
    """Trim a role name and check it is 1–30 characters."""
    name = " ".join(raw.split())
    if not name:
        raise DomainError("role_name_empty")
    if len(name) > ROLE_NAME_MAX:
        raise DomainError("role_name_too_long", max=ROLE_NAME_MAX, length=len(name))
    return name


def role_name_key(name: str) -> str:
    """The form names are compared in: trimmed, spaces folded, case-insensitive."""
    return " ".join(name.split()).casefold()[:ROLE_NAME_MAX]


def clean_description(raw: str) -> str:
    """Trim a description and check it fits 200 characters."""
    text = raw.strip()
    if len(text) > ROLE_DESCRIPTION_MAX:
        raise DomainError("role_description_too_long", max=ROLE_DESCRIPTION_MAX, length=len(text))
    return text


def clean_modules(policy: Policy, modules: Iterable[str]) -> list[str]:
    """Check module keys against the catalogue; at least one is needed."""
    wanted = list(modules)
    unknown = [m for m in wanted if m not in policy.module_keys]
    if unknown:
        raise DomainError("role_module_unknown", module=unknown[0])
    cleaned = policy.sorted_modules(wanted)
    if not cleaned:
        raise DomainError("role_needs_module")
    return cleaned


async def list_roles(session: AsyncSession, shop_id: int) -> list[tuple[Role, int]]:
    """The shop's roles in creation order, each with how many sub-accounts use it."""
    usage = (
        select(SubAccount.role_id, func.count().label("n"))
        .where(SubAccount.shop_id == shop_id)
        .group_by(col(SubAccount.role_id))
        .subquery()
    )
    result = await session.exec(
        select(Role, func.coalesce(usage.c.n, 0))
        .outerjoin(usage, usage.c.role_id == Role.id)
        .where(Role.shop_id == shop_id)
        .order_by(col(Role.id))
    )
    return [(role, int(n)) for role, n in result.all()]


async def get_role(session: AsyncSession, shop_id: int, role_id: int) -> Role:
    """A role of this shop, or ``role_not_found`` (also for another shop's role)."""
    role = await session.get(Role, role_id)
    if role is None or role.shop_id != shop_id:
        raise DomainError("role_not_found")
    return role


async def role_usage(session: AsyncSession, role_id: int) -> int:
    """How many sub-accounts hold this role."""
    result = await session.exec(
        select(func.count()).select_from(SubAccount).where(SubAccount.role_id == role_id)
    )
    return int(result.one())


async def ensure_name_free(
    session: AsyncSession, shop_id: int, name: str, *, exclude_id: int | None = None
) -> str:
    """Clean ``name`` and refuse it if another role of the shop has the same name."""
    cleaned = clean_role_name(name)
    query = select(Role.id).where(Role.shop_id == shop_id, Role.name_key == role_name_key(cleaned))
    if exclude_id is not None:
        query = query.where(Role.id != exclude_id)
    if (await session.exec(query)).first() is not None:
        raise DomainError("role_name_taken", name=cleaned)
    return cleaned


async def _flush_or_name_taken(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise DomainError("role_name_taken", name=name) from exc


async def create_role(
    session: AsyncSession,
    policy: Policy,
    *,
    shop_id: int,
    actor_id: int,
    name: str,
    description: str,
    modules: Iterable[str],
    now: datetime,
) -> Role:
    """Create a role; the name must be free in the shop and at least one module ticked."""
    cleaned = await ensure_name_free(session, shop_id, name)
    role = Role(
        shop_id=shop_id,
        name=cleaned,
        name_key=role_name_key(cleaned),
        description=clean_description(description),
        modules=clean_modules(policy, modules),
        created_at=now,
        updated_at=now,
    )
    session.add(role)
    await _flush_or_name_taken(session, cleaned)
    audit.record(
        session,
        now=now,
        shop_id=shop_id,
        actor_id=actor_id,
        action="role.created",
        object_type="role",
        object_id=role.id,
        name=cleaned,
        modules=role.modules,
    )
    return role


async def rename_role(
    session: AsyncSession, *, shop_id: int, actor_id: int, role_id: int, name: str, now: datetime
) -> Role:
    """Give a role a new name, unique in the shop."""
    role = await get_role(session, shop_id, role_id)
    cleaned = await ensure_name_free(session, shop_id, name, exclude_id=role_id)
    before = role.name
    role.name, role.name_key, role.updated_at = cleaned, role_name_key(cleaned), now
    session.add(role)
    await _flush_or_name_taken(session, cleaned)
    audit.record(
        session,
        now=now,
        shop_id=shop_id,
        actor_id=actor_id,
        action="role.renamed",
        object_type="role",
        object_id=role_id,
        before=before,
        after=cleaned,
    )
    return role


async def set_description(
    session: AsyncSession,
    *,
    shop_id: int,
    actor_id: int,
    role_id: int,
    description: str,
    now: datetime,
) -> Role:
    """Replace a role's description (empty clears it)."""
    role = await get_role(session, shop_id, role_id)
    role.description, role.updated_at = clean_description(description), now
    session.add(role)
    audit.record(
        session,
        now=now,
        shop_id=shop_id,
        actor_id=actor_id,
        action="role.described",
        object_type="role",
        object_id=role_id,
        name=role.name,
    )
    return role


async def set_modules(
    session: AsyncSession,
    policy: Policy,
    *,
    shop_id: int,
    actor_id: int,
    role_id: int,
    modules: Iterable[str],
    now: datetime,
) -> Role:
    """Replace a role's permitted modules (at least one)."""
    role = await get_role(session, shop_id, role_id)
    before = list(role.modules)
    role.modules, role.updated_at = clean_modules(policy, modules), now
    session.add(role)
    audit.record(
        session,
        now=now,
        shop_id=shop_id,
        actor_id=actor_id,
        action="role.permissions",
        object_type="role",
        object_id=role_id,
        name=role.name,
        before=before,
        after=role.modules,
    )
    return role


async def delete_role(
    session: AsyncSession, *, shop_id: int, actor_id: int, role_id: int, now: datetime
) -> str:
    """Delete an unused role; refused with the count while sub-accounts use it."""
    role = await get_role(session, shop_id, role_id)
    used = await role_usage(session, role_id)
    if used:
        raise DomainError("role_in_use", name=role.name, count=used)
    name = role.name
    await session.delete(role)
    audit.record(
        session,
        now=now,
        shop_id=shop_id,
        actor_id=actor_id,
        action="role.deleted",
        object_type="role",
        object_id=role_id,
        name=name,
    )
    await session.flush()
    return name
