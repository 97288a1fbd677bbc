"""The audit log: every change to a shop, its roles, accounts and codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AuditEvent, User


def record(
    session: AsyncSession,
    *,
    now: datetime,
    shop_id: int | None,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: object = "",
    **detail: Any,
) -> AuditEvent:
    """Add one audit event to the session (committed with the change it describes)."""
    event = AuditEvent(
        shop_id=shop_id,
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        detail=detail,
        created_at=now,
    )
    session.add(event)
    return event


async def recent(
    session: AsyncSession, shop_id: int, *, limit: int = 10, offset: int = 0
) -> list[AuditEvent]:
    """A shop's events, newest first."""
    rows = await session.exec(
        select(AuditEvent)
        .where(AuditEvent.shop_id == shop_id)
        .order_by(col(AuditEvent.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all())


async def count(session: AsyncSession, shop_id: int) -> int:
    """How many events a shop has."""
    result = await session.exec(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.shop_id == shop_id)
    )
    return int(result.one())


async def actors(session: AsyncSession, events: list[AuditEvent]) -> dict[int, User]:
    """The users who acted in ``events`` (for naming them in the log), by id."""
    ids = {e.actor_id for e in events if e.actor_id is not None}
    if not ids:
        return {}
    rows = await session.exec(select(User).where(col(User.id).in_(ids)))
    return {user.id: user for user in rows.all()}
