"""Conversation drafts: the step a user is at and what they entered, kept in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Draft


async def get_draft(session: AsyncSession, user_id: int) -> Draft | None:
    """The user's conversation in progress, if any."""
    return await session.get(Draft, user_id)


async def save_draft(
    session: AsyncSession,
    user_id: int,
    flow: str,
    step: str,
    data: dict[str, Any],
    now: datetime,
    *,
    known_absent: bool = False,
) -> Draft:
    """Write the user's position and entries (replacing any earlier draft).

    ``known_absent``: the caller has just looked in this session and the user has no draft, so
    it is not looked up again.
    """
    draft = None if known_absent else await session.get(Draft, user_id)
    if draft is None:
        draft = Draft(user_id=user_id, flow=flow, step=step, data=dict(data), updated_at=now)
    else:
        draft.flow, draft.step, draft.data, draft.updated_at = flow, step, dict(data), now
    session.add(draft)
    return draft


async def clear_draft(session: AsyncSession, user_id: int) -> Draft | None:
    """Forget the user's conversation; returns what it was."""
    draft = await session.get(Draft, user_id)
    if draft is not None:
        await session.delete(draft)
    return draft
