"""Conversation drafts: the step a user is at and what they entered, kept in the database.

Every update reads its user's draft and most write it, so drafts are plain values read and
written with Core statements built once (no ORM object to track and flush); the ``Draft``
table model stays the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Draft


@dataclass
class DraftState:
    """A user's conversation in progress: flow, step and entries (a copy, not a live row)."""

    user_id: int
    flow: str
    step: str
    data: dict[str, Any]
    updated_at: datetime


DRAFTS: Table = Draft.__table__  # type: ignore[attr-defined]
# (SQLModel's ``exec`` is typed for its own ``select`` of up to four things; these Core
# statements run through it unchanged, hence the ``call-overload`` ignores below.)

#: the draft's columns, for selecting them beside other things (see ``models.users``)
COLUMNS = (DRAFTS.c.user_id, DRAFTS.c.flow, DRAFTS.c.step, DRAFTS.c.data, DRAFTS.c.updated_at)

_GET = select(*COLUMNS).where(DRAFTS.c.user_id == bindparam("user_id"))
_INSERT = insert(DRAFTS)
_UPDATE = (
    update(DRAFTS)
    .where(DRAFTS.c.user_id == bindparam("b_user_id"))
    .values(flow=bindparam("b_flow"), step=bindparam("b_step"), data=bindparam("b_data"),
            updated_at=bindparam("b_updated_at"))
)
_DELETE = delete(DRAFTS).where(DRAFTS.c.user_id == bindparam("user_id"))


def from_row(user_id: Any, flow: Any, step: Any, data: Any, updated_at: Any) -> DraftState | None:
    """A draft from its columns (``None`` when an outer join found none)."""
    if flow is None:
        return None
    return DraftState(int(user_id), str(flow), str(step), dict(data or {}), updated_at)


async def get_draft(session: AsyncSession, user_id: int) -> DraftState | None:
    """The user's conversation in progress, if any."""
    row = (await session.exec(_GET, params={"user_id": user_id})).first()  # type: ignore[call-overload]
    return from_row(*row) if row is not None else None


async def save_draft(
    session: AsyncSession,
    user_id: int,
    flow: str,
    step: str,
    data: dict[str, Any],
    now: datetime,
    *,
    known_absent: bool = False,
) -> DraftState:
    """Write the user's position and entries (replacing any earlier draft).

    ``known_absent``: the caller has just looked in this transaction and the user has no draft,
    so it is inserted without trying an update first.
    """
    draft = DraftState(user_id, flow, step, dict(data), now)
    if not known_absent:
        result = await session.exec(_UPDATE, params={  # type: ignore[call-overload]
            "b_user_id": user_id, "b_flow": flow, "b_step": step, "b_data": draft.data,
            "b_updated_at": now,
        })
        if result.rowcount:
            return draft
    await session.exec(_INSERT, params={  # type: ignore[call-overload]
        "user_id": user_id, "flow": flow, "step": step, "data": draft.data, "updated_at": now,
    })
    return draft


async def clear_draft(session: AsyncSession, user_id: int) -> None:
    """Forget the user's conversation."""
    await session.exec(_DELETE, params={"user_id": user_id})  # type: ignore[call-overload]
