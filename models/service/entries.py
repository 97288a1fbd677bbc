"""Entries (绑定页面): named ways in, each bound to a group, each with a deep-link token.

The token is shown once (in the link) and kept only as its SHA-256; regenerating it kills the
old link at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.paging import paging
from models.service.groups import get_group, name_key
from models.service.results import LIST_PAGE_SIZE, ListPage
from models.service.tables import Entry
from models.text import clean_line

ENTRY_NAME_MAX = 30
#: every entry token starts with this, so /start can tell it from other deep links
TOKEN_PREFIX = "cs_"


def clean_entry_name(raw: str) -> str:
    return clean_line(raw, limit=ENTRY_NAME_MAX, empty="service_entry_name_empty",
                      too_long="service_entry_name_too_long")


def new_token() -> str:
    """An unguessable deep-link payload: 35 characters of ``[A-Za-z0-9_-]`` (Telegram: ≤ 64)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_entry_token(payload: str) -> bool:
    return payload.startswith(TOKEN_PREFIX)


async def entry_by_token(session: AsyncSession, token: str) -> Entry | None:
    """The entry a link's token opens (``None`` for an unknown or regenerated one)."""
    return (await session.exec(
        select(Entry).where(col(Entry.token_hash) == hash_token(token)))).first()


async def get_entry(session: AsyncSession, *, shop_id: int, entry_id: int) -> Entry:
    entry = await session.get(Entry, entry_id)
    if entry is None or entry.shop_id != shop_id:
        raise DomainError("service_entry_not_found")
    return entry


#: a page of the shop's entries by name, each row with the total (one query a page)
_ENTRIES_PAGE = (
    select(Entry, func.count().over())
    .where(col(Entry.shop_id) == bindparam("shop"))
    .order_by(col(Entry.name_key), col(Entry.id))
    .offset(bindparam("offset")).limit(bindparam("limit"))
)
_ENTRIES_BEFORE = select(func.count()).select_from(Entry).where(
    col(Entry.shop_id) == bindparam("shop"),
    or_(col(Entry.name_key) < bindparam("key"),
        and_(col(Entry.name_key) == bindparam("key"), col(Entry.id) < bindparam("entry"))))
_ENTRIES_COUNT = select(func.count()).select_from(Entry).where(
    col(Entry.shop_id) == bindparam("shop"))


async def entries_page(
    session: AsyncSession, *, shop_id: int, page: int, size: int = LIST_PAGE_SIZE
) -> ListPage[Entry]:
    """Page ``page`` of the shop's entries by name (clamped: a page past the end, as a stale
    button may ask for, is the last one)."""
    page = max(page, 0)
    rows = list((await session.exec(_ENTRIES_PAGE, params={
        "shop": shop_id, "offset": page * size, "limit": size})).all())
    total = int(rows[0][1]) if rows else 0
    if not rows and page > 0:
        total = int((await session.exec(_ENTRIES_COUNT, params={"shop": shop_id})).one())
        last, _pages = paging(page, total, size)
        if last < page:
            return await entries_page(session, shop_id=shop_id, page=last, size=size)
    page, pages = paging(page, total, size)
    return ListPage([entry for entry, _n in rows], total, page, pages, size)


async def entry_page_of(session: AsyncSession, entry: Entry, *, size: int = LIST_PAGE_SIZE
                        ) -> int:
    """The page of the entries list the entry is on (for the card's Back button)."""
    before = (await session.exec(_ENTRIES_BEFORE, params={
        "shop": entry.shop_id, "key": entry.name_key, "entry": entry.id})).one()
    return int(before) // size


async def list_entries(session: AsyncSession, *, shop_id: int) -> list[Entry]:
    rows = await session.exec(
        select(Entry).where(col(Entry.shop_id) == shop_id).order_by(col(Entry.name_key)))
    return list(rows.all())


def _audit(session: AsyncSession, entry: Entry, *, actor_id: int, action: str, now: datetime,
           **detail: object) -> None:
    audit.record(session, now=now, shop_id=entry.shop_id, actor_id=actor_id, action=action,
                 object_type="service_entry", object_id=entry.id, name=entry.name, **detail)


async def _save(session: AsyncSession, entry: Entry) -> None:
    try:
        async with session.begin_nested():
            session.add(entry)
    except IntegrityError as exc:
        raise DomainError("service_entry_name_taken", name=entry.name) from exc


async def create_entry(
    session: AsyncSession, *, shop_id: int, actor_id: int, name: str, group_id: int | None,
    now: datetime,
) -> tuple[Entry, str]:
    """A new entry bound to a group of the shop; returns it with its token (shown once)."""
    clean = clean_entry_name(name)
    if group_id is not None:
        await get_group(session, shop_id=shop_id, group_id=group_id)
    token = new_token()
    entry = Entry(shop_id=shop_id, name=clean, name_key=name_key(clean), group_id=group_id,
                  token_hash=hash_token(token), created_at=now, token_at=now)
    await _save(session, entry)
    _audit(session, entry, actor_id=actor_id, action="service.entry_created", now=now,
           group=group_id)
    return entry, token


async def rename_entry(
    session: AsyncSession, *, shop_id: int, actor_id: int, entry_id: int, name: str,
    now: datetime,
) -> Entry:
    clean = clean_entry_name(name)
    entry = await get_entry(session, shop_id=shop_id, entry_id=entry_id)
    if entry.name == clean:
        raise DomainError("nothing_changed")
    before = entry.name
    entry.name, entry.name_key = clean, name_key(clean)
    await _save(session, entry)
    _audit(session, entry, actor_id=actor_id, action="service.entry_renamed", now=now,
           before=before)
    return entry


async def set_entry_group(
    session: AsyncSession, *, shop_id: int, actor_id: int, entry_id: int,
    group_id: int | None, now: datetime,
) -> Entry:
    """Bind the entry to another group (new conversations from it route there)."""
    entry = await get_entry(session, shop_id=shop_id, entry_id=entry_id)
    if group_id is not None:
        await get_group(session, shop_id=shop_id, group_id=group_id)
    if entry.group_id == group_id:
        raise DomainError("nothing_changed")
    before, entry.group_id = entry.group_id, group_id
    session.add(entry)
    await session.flush()
    _audit(session, entry, actor_id=actor_id, action="service.entry_group", now=now,
           before=before, after=group_id)
    return entry


async def regenerate_token(
    session: AsyncSession, *, shop_id: int, actor_id: int, entry_id: int, now: datetime
) -> tuple[Entry, str]:
    """A new link for a leaked one: the old token stops working at once."""
    entry = await get_entry(session, shop_id=shop_id, entry_id=entry_id)
    token = new_token()
    entry.token_hash, entry.token_at = hash_token(token), now
    session.add(entry)
    await session.flush()
    _audit(session, entry, actor_id=actor_id, action="service.entry_regenerated", now=now)
    return entry, token


async def delete_entry(
    session: AsyncSession, *, shop_id: int, actor_id: int, entry_id: int, now: datetime
) -> Entry:
    """Delete an entry; its link stops working, open conversations from it go on."""
    entry = await get_entry(session, shop_id=shop_id, entry_id=entry_id)
    _audit(session, entry, actor_id=actor_id, action="service.entry_deleted", now=now)
    await session.delete(entry)
    await session.flush()
    return entry
