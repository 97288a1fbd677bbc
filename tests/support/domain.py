"""Rows made through the domain functions (or, for ``write_sub_account``, straight into the
tables), without walking the chat: for tests whose subject comes after them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from models.accounts import confirm_sub_account
from models.codes import VerifyOutcome, issue_code, verify_code
from models.roles import create_role, list_roles
from models.shops import owned_shop
from models.tables import PhoneBinding, Role, SubAccount, User, VerificationCode
from tests.harness import Harness, Person
from tests.support.people import HOLDER, OWNER

#: a code as the holder's chat shows it
CODE = re.compile(r"Verification code: (\d{6})")
OPERATIONS_MODULES = ("home", "products", "orders")
SERVICE = ("home", "orders", "after_sales", "customer_service")


async def add_role(h: Harness, owner: Person = OWNER, name: str = "Customer service",
                   modules: tuple[str, ...] = ("home", "orders", "customer_service")) -> int:
    """A role of ``owner``'s shop, created through the domain; its id."""
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, owner.id)
        assert shop is not None
        role = await create_role(session, deps.policy, shop_id=shop.id, actor_id=owner.id,
                                 name=name, description="", modules=modules, now=h.clock.now())
        await session.commit()
        assert role.id is not None
        return role.id


async def ensure_role(h: Harness, owner: Person, name: str,
                      modules: Iterable[str] = OPERATIONS_MODULES) -> int:
    """The id of the owner's role ``name``, created if missing."""
    async with h.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, owner.id)
        assert shop is not None and shop.id is not None
        for role, _ in await list_roles(session, shop.id):
            if role.name == name:
                return role.id or 0
    return await add_role(h, owner, name, tuple(modules))


def holder_code(h: Harness, who: Person = HOLDER) -> str:
    """The latest verification code in ``who``'s chat."""
    for message in reversed(h.messages(who)):
        found = CODE.search(message.text)
        if found:
            return found.group(1)
    raise AssertionError(f"no code in {who.first_name}'s chat")


async def add_sub_account(
    h: Harness,
    *,
    holder: Person,
    phone: str,
    owner: Person = OWNER,
    role: str = "Operations",
    modules: Iterable[str] = OPERATIONS_MODULES,
    nickname: str | None = None,
    im: bool = False,
) -> int:
    """Bind ``holder`` (who has linked ``phone`` already) as a sub-account of ``owner``'s shop
    through the domain: role ``role`` (created with ``modules`` if missing), a code issued,
    verified and confirmed. The sub-account's id."""
    role_id = await ensure_role(h, owner, role, modules)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, owner.id)
        assert shop is not None and shop.id is not None
        issued = await issue_code(session, deps.policy, shop_id=shop.id, owner_id=owner.id,
                                  role_id=role_id, phone=phone, now=h.clock.now())
        result = await verify_code(session, deps.policy, code_id=issued.code.id or 0,
                                   owner_id=owner.id, entered=issued.plain, now=h.clock.now())
        assert result.outcome == VerifyOutcome.OK
        account = await confirm_sub_account(
            session, shop=shop, owner_id=owner.id, code_id=issued.code.id or 0,
            role_id=role_id, nickname=nickname or holder.first_name, im_enabled=im,
            now=h.clock.now(),
        )
        await session.commit()
        return account.id or 0


async def write_sub_account(session: AsyncSession, *, role: Role, holder_id: int, phone: str,
                            owner_id: int, now: datetime) -> None:
    """A sub-account row "Hank" using ``role``, written straight to the tables (as the
    provisioning flow would leave it, with a used code; the holder's user row if missing) and
    committed."""
    if await session.get(User, holder_id) is None:
        session.add(User(id=holder_id, phone=phone, first_name="Hank", created_at=now))
    session.add(PhoneBinding(phone=phone, shop_id=role.shop_id, kind="sub", created_at=now))
    code = VerificationCode(
        shop_id=role.shop_id, owner_id=owner_id, role_id=role.id, phone=phone, salt="00",
        code_hash="0" * 64, status="used", created_at=now,
        expires_at=now + timedelta(minutes=5), holder_id=holder_id,
    )
    session.add(code)
    await session.flush()
    session.add(SubAccount(
        shop_id=role.shop_id, phone=phone, holder_id=holder_id, nickname="Hank",
        role_id=role.id or 0, code_id=code.id or 0, created_at=now, updated_at=now,
    ))
    await session.commit()
