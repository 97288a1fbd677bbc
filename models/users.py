"""Users and their one linked phone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import drafts
from models.drafts import DraftState
from models.errors import DomainError
from models.savepoint import savepoint
from models.tables import Shop, User

SUPPORTED_LOCALES = ("en", "zh-Hans")
#: ``seen_at`` is kept to this precision: at most one write a day per user
SEEN_PRECISION = timedelta(days=1)


def locale_from_language_code(language_code: str | None, default: str) -> str:
    """Map Telegram's ``language_code`` (``zh-hans``, ``zh``, ``en-US``…) to a supported locale."""
    code = (language_code or "").lower()
    if code.startswith("zh"):
        return "zh-Hans"
    if code.startswith("en"):
        return "en"
    return default


class Touched(NamedTuple):
    """The user of an update, with what most updates go on to need."""

    user: User
    #: their conversation in progress, if any
    draft: DraftState | None
    #: the shop they are the main account of, if any
    shop: Shop | None


#: the user, their conversation draft and their shop in one statement (every update needs the
#: first two, and most of an owner's the third)
_USER_DRAFT_SHOP = (
    sa_select(User, Shop, *drafts.COLUMNS)
    .outerjoin(drafts.DRAFTS, drafts.DRAFTS.c.user_id == col(User.id))
    .outerjoin(Shop, col(Shop.owner_id) == col(User.id))
    .where(col(User.id) == bindparam("user_id"))
)


async def touch_user(
    session: AsyncSession,
    user_id: int,
    *,
    first_name: str,
    username: str | None,
    language_code: str | None,
    default_locale: str,
    now: datetime,
) -> Touched:
    """Fetch the user, creating them on first contact and refreshing their Telegram name; and
    their draft and shop, in the same statement."""
    row = (await session.exec(_USER_DRAFT_SHOP, params={"user_id": user_id})).first()  # type: ignore[call-overload]
    user, shop, draft = (row[0], row[1], drafts.from_row(*row[2:])) if row else (None, None, None)
    if user is None:
        user = User(
            id=user_id,
            first_name=first_name[:64],
            username=(username or None) and username[:64],
            locale=locale_from_language_code(language_code, default_locale),
            created_at=now,
            seen_at=now,
        )
        session.add(user)
    else:
        if user.seen_at is None or now - user.seen_at >= SEEN_PRECISION:
            user.seen_at = now
        if user.first_name != first_name[:64]:
            user.first_name = first_name[:64]
        if username is not None and user.username != username[:64]:
            user.username = username[:64]
    return Touched(user, draft, shop)


_USER_BY_PHONE = select(User).where(col(User.phone) == bindparam("phone"))


async def user_by_phone(session: AsyncSession, phone: str) -> User | None:
    """The user who linked this phone, if any."""
    return (await session.exec(_USER_BY_PHONE, params={"phone": phone})).first()


async def link_phone(session: AsyncSession, user: User, phone: str) -> User:
    """Link ``phone`` (E.164) to ``user``. A phone belongs to one Telegram user; linking is once."""
    if user.phone == phone:
        return user
    if user.phone is not None:
        raise DomainError("phone_already_linked")
    other = await user_by_phone(session, phone)
    if other is not None and other.id != user.id:
        raise DomainError("phone_linked_to_other_user")
    try:
        async with savepoint(session, user):  # another user may link it first
            user.phone = phone
            session.add(user)
    except IntegrityError as exc:
        raise DomainError("phone_linked_to_other_user") from exc
    return user


async def set_locale(session: AsyncSession, user: User, locale: str) -> None:
    """Switch the user's language."""
    if locale not in SUPPORTED_LOCALES:
        raise DomainError("locale_unknown")
    user.locale = locale
    session.add(user)
