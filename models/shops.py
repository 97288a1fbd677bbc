"""Shops and their main accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.errors import DomainError
from models.phones import mask_phone
from models.savepoint import savepoint
from models.tables import BindingKind, PhoneBinding, Shop, User
from models.text import clean_line

SHOP_NAME_MAX = 40


def clean_shop_name(raw: str) -> str:
    """Trim and check a shop name: 1–40 characters on one line."""
    return clean_line(raw, limit=SHOP_NAME_MAX, empty="shop_name_empty",
                      too_long="shop_name_too_long")


#: built once: most updates of an owner look their shop up, and building a statement costs
#: more than running it
_SHOP_OF_OWNER = select(Shop).where(col(Shop.owner_id) == bindparam("owner_id"))


async def owned_shop(session: AsyncSession, user_id: int) -> Shop | None:
    """The shop this user is the main account of."""
    result = await session.exec(_SHOP_OF_OWNER, params={"owner_id": user_id})
    return result.first()


async def binding_of(session: AsyncSession, phone: str) -> PhoneBinding | None:
    """Where this phone is bound, if anywhere."""
    return await session.get(PhoneBinding, phone)


async def check_can_create_shop(session: AsyncSession, user: User) -> None:
    """Refuse before asking for a name: no phone, already an owner, or a sub-account."""
    if user.phone is None:
        raise DomainError("phone_not_linked")
    if await owned_shop(session, user.id) is not None:
        raise DomainError("shop_already_owned")
    binding = await binding_of(session, user.phone)
    if binding is not None:
        raise DomainError("shop_phone_is_sub_account")


async def create_shop(
    session: AsyncSession, user: User, raw_name: str, *, max_sub_accounts: int, now: datetime
) -> Shop:
    """Create a shop with ``user`` as its main account; their phone becomes the main-account phone."""
    name = clean_shop_name(raw_name)
    await check_can_create_shop(session, user)
    assert user.phone is not None
    shop = Shop(name=name, owner_id=user.id, max_sub_accounts=max_sub_accounts, created_at=now)
    try:
        # another transaction may take the owner or bind the phone first
        async with savepoint(session):
            session.add(shop)
            await session.flush()
            assert shop.id is not None
            session.add(PhoneBinding(phone=user.phone, shop_id=shop.id,
                                     kind=BindingKind.OWNER.value, created_at=now))
            audit.record(
                session,
                now=now,
                shop_id=shop.id,
                actor_id=user.id,
                action="shop.created",
                object_type="shop",
                object_id=shop.id,
                name=name,
                phone=mask_phone(user.phone),
            )
    except IntegrityError as exc:
        raise DomainError("shop_create_conflict") from exc
    return shop


#: how a linked staff member consents to being added (``Shop.consent_mode``)
CONSENT_MODES = ("code", "button")


async def set_consent_mode(
    session: AsyncSession, *, shop: Shop, actor_id: int, mode: str, now: datetime
) -> None:
    """The shop's way of consent: "code" (the holder relays the digits, the default) or
    "button" (a holder already linked accepts in their own chat)."""
    if mode not in CONSENT_MODES:
        raise DomainError("stale_button")
    if shop.consent_mode == mode:
        return
    shop.consent_mode = mode
    session.add(shop)
    audit.record(session, now=now, shop_id=shop.id, actor_id=actor_id,
                 action="shop.consent_mode", object_type="shop", object_id=shop.id, mode=mode)
