"""Roles (岗位): per-shop named module sets, with the rules that guard them.

A name is kept as typed (spaces folded, NFC, invisible format characters removed); names are
compared by ``name_key``: NFKC case-folded with spaces folded and format characters removed, so
"Ops", " OPS ", "ｏｐｓ", "Ops\u200b" and "O\u00adps" are the same role name.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.policy import Policy
from models.savepoint import savepoint
from models.tables import Role, SubAccount, User
from models.text import clean_line, drop_controls, drop_format, visible

ROLE_NAME_MAX = 30
ROLE_DESCRIPTION_MAX = 200
#: the width of the ``role.name_key`` column
NAME_KEY_MAX = 30


def clean_role_name(raw: str) -> str:
    """Trim a role name (spaces folded) and check it is 1–30 characters."""
    return clean_line(raw, limit=ROLE_NAME_MAX, empty="role_name_empty",
                      too_long="role_name_too_long")


def role_name_key(name: str) -> str:
    """The form names are compared in: without format characters (even a joiner between
    emoji) or emoji variation selectors, spaces folded, NFKC case-folded.

    Case folding can lengthen a name ("ß" → "ss"); a key longer than the column is replaced by
    a digest rather than cut, so two different names never share a key. The digest starts with
    an upper-case letter, which a case-folded name never contains, so it cannot equal a plain key.
    """
    plain = drop_format(name, keep_emoji_joiners=False).replace("\ufe0e", "").replace("\ufe0f", "")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", plain).casefold())
    key = " ".join(folded.split())
    if len(key) <= NAME_KEY_MAX:
        return key
    return "H" + hashlib.sha256(key.encode()).hexdigest()[: NAME_KEY_MAX - 1]


def clean_description(raw: str) -> str:
    """Trim a description (line breaks kept) and check it fits 200 characters."""
    text = unicodedata.normalize("NFC", drop_controls(raw, keep="\n").strip())
    if not visible(text):
        return ""
    if len(text) > ROLE_DESCRIPTION_MAX:
        raise DomainError("role_description_too_long", max=ROLE_DESCRIPTION_MAX, length=len(text))
    return text


def clean_modules(policy: Policy, modules: Iterable[str]) -> list[str]:
    """Check module keys against the catalogue; at least one is needed. Catalogue order."""
    wanted = list(modules)
    unknown = [m for m in wanted if m not in policy.module_keys]
    if unknown:
        raise DomainError("role_module_unknown", module=unknown[0])
    cleaned = policy.sorted_modules(wanted)
    if not cleaned:
        raise DomainError("role_needs_module")
    return cleaned


# built once (building a statement costs more than running it; this one runs on most screens)
_USAGE = (
    select(SubAccount.role_id, func.count().label("n"))
    .where(col(SubAccount.shop_id) == bindparam("shop_id"))
    .group_by(col(SubAccount.role_id))
    .subquery()
)
_ROLES_WITH_USAGE = (
    select(Role, func.coalesce(_USAGE.c.n, 0))
    .outerjoin(_USAGE, _USAGE.c.role_id == Role.id)
    .where(col(Role.shop_id) == bindparam("shop_id"))
    .order_by(col(Role.id))
)


async def list_roles(session: AsyncSession, shop_id: int) -> list[tuple[Role, int]]:
    """The shop's roles in creation order, each with how many sub-accounts use it."""
    result = await session.exec(_ROLES_WITH_USAGE, params={"shop_id": shop_id})
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


async def role_holders(
    session: AsyncSession, shop_id: int, role_id: int
) -> list[tuple[SubAccount, User]]:
    """Every sub-account of the shop holding the role (suspended ones too) with its holder,
    oldest first: the people to tell when the role's name or modules change."""
    result = await session.exec(
        select(SubAccount, User)
        .join(User, col(User.id) == SubAccount.holder_id)
        .where(col(SubAccount.shop_id) == shop_id, col(SubAccount.role_id) == role_id)
        .order_by(col(SubAccount.id))
    )
    return [(account, user) for account, user in result.all()]


#: the role (other than ``exclude_id``; 0 excludes none) holding a name key in a shop
_NAME_HOLDER = select(Role.id).where(
    col(Role.shop_id) == bindparam("shop_id"),
    col(Role.name_key) == bindparam("name_key"),
    col(Role.id) != bindparam("exclude_id"),
)


async def _name_holder(
    session: AsyncSession, shop_id: int, name: str, exclude_id: int | None
) -> int | None:
    params = {"shop_id": shop_id, "name_key": role_name_key(name), "exclude_id": exclude_id or 0}
    return (await session.exec(_NAME_HOLDER, params=params)).first()


async def ensure_name_free(
    session: AsyncSession, shop_id: int, name: str, *, exclude_id: int | None = None
) -> str:
    """Clean ``name`` and refuse it if another role of the shop has the same name."""
    cleaned = clean_role_name(name)
    if await _name_holder(session, shop_id, cleaned, exclude_id) is not None:
        raise DomainError("role_name_taken", name=cleaned)
    return cleaned


async def _write_named(
    session: AsyncSession, role: Role, *, name: str, exclude_id: int | None, now: datetime
) -> None:
    """Give ``role`` the name ``name`` and write it, in a savepoint: a unique-name race lost to
    another transaction undoes only this write and becomes ``role_name_taken``."""
    held = () if exclude_id is None else (role,)  # a new role is dropped, a renamed one re-read
    try:
        async with savepoint(session, *held):
            role.name, role.name_key, role.updated_at = name, role_name_key(name), now
            session.add(role)
    except IntegrityError as exc:
        if await _name_holder(session, role.shop_id, name, exclude_id) is not None:
            raise DomainError("role_name_taken", name=name) from exc
        raise


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
    await _write_named(session, role, name=cleaned, exclude_id=None, now=now)
    audit.record(
        session,
        now=now,
        shop_id=shop_id,
        actor_id=actor_id,
        action="role.created",
        object_type="role",
        object_id=role.id,
        name=cleaned,
        description=role.description,
        modules=list(role.modules),
    )
    return role


async def rename_role(
    session: AsyncSession, *, shop_id: int, actor_id: int, role_id: int, name: str, now: datetime
) -> Role:
    """Give a role a new name, unique in the shop (a change of case or spacing is allowed)."""
    role = await get_role(session, shop_id, role_id)
    cleaned = await ensure_name_free(session, shop_id, name, exclude_id=role_id)
    before = role.name
    if cleaned == before:
        raise DomainError("nothing_changed")
    await _write_named(session, role, name=cleaned, exclude_id=role_id, now=now)
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



def _changed(
    session: AsyncSession, role: Role, *, action: str, actor_id: int, before: object,
    after: object, now: datetime,
) -> Role:
    """Stamp and audit a change to one of the role's fields (already set on ``role``)."""
    role.updated_at = now
    session.add(role)
    audit.record(session, now=now, shop_id=role.shop_id, actor_id=actor_id, action=action,
                 object_type="role", object_id=role.id, name=role.name, before=before,
                 after=after)
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
    cleaned = clean_description(description)
    before = role.description
    if cleaned == before:
        raise DomainError("nothing_changed")
    role.description = cleaned
    return _changed(session, role, action="role.described", actor_id=actor_id, before=before,
                    after=cleaned, now=now)


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
    cleaned = clean_modules(policy, modules)
    before = list(role.modules)
    if cleaned == before:
        raise DomainError("nothing_changed")
    role.modules = cleaned
    return _changed(session, role, action="role.permissions", actor_id=actor_id, before=before,
                    after=cleaned, now=now)


async def delete_role(
    session: AsyncSession, *, shop_id: int, actor_id: int, role_id: int, now: datetime
) -> str:
    """Delete an unused role; refused with the count while sub-accounts use it.

    A sub-account added by another transaction between the count and the delete is caught by
    the foreign key (``ON DELETE RESTRICT``) and refused the same way.
    """
    role = await get_role(session, shop_id, role_id)
    name = role.name
    used = await role_usage(session, role_id)
    if used:
        raise DomainError("role_in_use", name=name, count=used)
    try:
        async with savepoint(session, role):  # the role is back (and re-read) if refused
            await session.delete(role)
    except IntegrityError as exc:
        used = await role_usage(session, role_id)
        if used:
            raise DomainError("role_in_use", name=name, count=used) from exc
        raise
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
    return name
