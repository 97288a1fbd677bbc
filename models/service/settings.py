"""A shop's service settings, and the shop's routing lock (the settings row)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.service.policy import (
    CAP_RANGE,
    HOURS_TEXT_MAX,
    IDLE_HOURS_RANGE,
    OFFLINE_TEXT_MAX,
    SECONDS_RANGE,
    STICKY_DAYS_RANGE,
    ServicePolicy,
)
from models.service.tables import Conversation, Entry, RoutingMode, ServiceSettings
from models.text import drop_controls

_BUMP = (
    update(ServiceSettings)
    .where(col(ServiceSettings.shop_id) == bindparam("shop"))
    .values(route_seq=col(ServiceSettings.route_seq) + 1)
    .returning(ServiceSettings)
    .execution_options(synchronize_session=False, populate_existing=True)
)
_BUMP_OF_ENTRY = (
    update(ServiceSettings)
    .where(col(ServiceSettings.shop_id) == select(Entry.shop_id).where(
        col(Entry.token_hash) == bindparam("token_hash")).scalar_subquery())
    .values(route_seq=col(ServiceSettings.route_seq) + 1)
    .returning(ServiceSettings)
    .execution_options(synchronize_session=False, populate_existing=True)
)
_BUMP_OF_CONVERSATION = (
    update(ServiceSettings)
    .where(col(ServiceSettings.shop_id) == select(Conversation.shop_id).where(
        col(Conversation.id) == bindparam("conversation")).scalar_subquery())
    .values(route_seq=col(ServiceSettings.route_seq) + 1)
    .returning(ServiceSettings)
    .execution_options(synchronize_session=False, populate_existing=True)
)


def _defaults(policy: ServicePolicy, shop_id: int, now: datetime) -> ServiceSettings:
    return ServiceSettings(
        shop_id=shop_id, mode=policy.mode, default_cap=policy.default_cap,
        sticky_days=policy.sticky_days, first_response_seconds=policy.first_response_seconds,
        reply_seconds=policy.reply_seconds, reroute_on_breach=policy.reroute_on_breach,
        idle_close_hours=policy.idle_close_hours, offline_text_en=policy.offline_text_en,
        offline_text_zh=policy.offline_text_zh, hours_text_en=policy.hours_text_en,
        hours_text_zh=policy.hours_text_zh, updated_at=now,
    )


async def lock_shop(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int, now: datetime
) -> ServiceSettings:
    """The shop's settings, with the shop's routing lock taken for this transaction.

    The first statement is a write (``route_seq + 1``): on PostgreSQL it locks the row until
    the caller's commit, on SQLite it takes the database's write lock, so whatever is counted
    after it cannot change under the caller. A shop without settings gets them from
    ``policy`` (a racing insert is caught in a SAVEPOINT and the lock taken again).
    """
    for _ in range(2):
        settings: ServiceSettings | None = (
            await session.exec(_BUMP, params={"shop": shop_id})).scalars().first()
        if settings is not None:
            return settings
        try:
            async with session.begin_nested():
                session.add(_defaults(policy, shop_id, now))
        except IntegrityError:
            continue
    raise DomainError("service_shop_not_found")


async def lock_shop_of(
    session: AsyncSession, policy: ServicePolicy, *, conversation_id: int, now: datetime
) -> ServiceSettings:
    """``lock_shop`` for the shop of a conversation, in one statement when it can."""
    settings: ServiceSettings | None = (await session.exec(
        _BUMP_OF_CONVERSATION, params={"conversation": conversation_id})).scalars().first()
    if settings is not None:
        return settings
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise DomainError("service_conversation_not_found")
    return await lock_shop(session, policy, shop_id=conversation.shop_id, now=now)


async def lock_shop_of_entry(session: AsyncSession, *, token_hash: str) -> ServiceSettings | None:
    """``lock_shop`` for the shop of an entry link, in one statement; ``None`` when the link is
    unknown or the shop has no settings yet (then ``lock_shop`` makes them)."""
    settings: ServiceSettings | None = (await session.exec(
        _BUMP_OF_ENTRY, params={"token_hash": token_hash})).scalars().first()
    return settings


async def get_settings(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int
) -> ServiceSettings:
    """The shop's settings for reading (the policy's defaults if it has none yet; not saved)."""
    settings = await session.get(ServiceSettings, shop_id)
    if settings is not None:
        return settings
    return _defaults(policy, shop_id, datetime(1970, 1, 1))


def _in_range(name: str, value: object, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DomainError(f"service_{name}_invalid", min=low, max=high)
    return value


def _text(value: object, limit: int) -> str:
    cleaned = drop_controls(str(value), keep="\n").strip()
    if len(cleaned) > limit:
        raise DomainError("service_text_too_long", max=limit, length=len(cleaned))
    return cleaned


def validate_setting(name: str, value: object) -> object:
    """``value`` checked (and cleaned) for the setting ``name``; a DomainError says why not."""
    if name == "mode":
        if value not in {m.value for m in RoutingMode}:
            raise DomainError("service_mode_invalid")
        return value
    if name == "default_cap":
        return _in_range("cap", value, CAP_RANGE)
    if name == "sticky_days":
        return _in_range("sticky_days", value, STICKY_DAYS_RANGE)
    if name in ("first_response_seconds", "reply_seconds"):
        return _in_range("seconds", value, SECONDS_RANGE)
    if name == "idle_close_hours":
        return _in_range("idle_hours", value, IDLE_HOURS_RANGE)
    if name == "reroute_on_breach":
        if not isinstance(value, bool):
            raise DomainError("service_setting_unknown", name=name)
        return value
    if name in ("offline_text_en", "offline_text_zh"):
        return _text(value, OFFLINE_TEXT_MAX)
    if name in ("hours_text_en", "hours_text_zh"):
        return _text(value, HOURS_TEXT_MAX)
    raise DomainError("service_setting_unknown", name=name)


async def update_settings(
    session: AsyncSession, policy: ServicePolicy, *, shop_id: int, actor_id: int,
    now: datetime, **changes: object,
) -> ServiceSettings:
    """Change one or more settings (each validated; nothing written if one is refused)."""
    cleaned = {name: validate_setting(name, value) for name, value in changes.items()}
    settings = await lock_shop(session, policy, shop_id=shop_id, now=now)
    before = {name: getattr(settings, name) for name in cleaned}
    changed = {name: value for name, value in cleaned.items() if before[name] != value}
    if not changed:
        raise DomainError("nothing_changed")
    for name, value in changed.items():
        setattr(settings, name, value)
    settings.updated_at = now
    session.add(settings)
    audit.record(session, now=now, shop_id=shop_id, actor_id=actor_id,
                 action="service.settings", object_type="service", object_id=shop_id,
                 before={k: before[k] for k in changed}, after=changed)
    return settings
