"""Transactions are local: a domain function that loses a race to another transaction refuses
with its DomainError and undoes only its own writes (a SAVEPOINT). What the caller wrote
before it in the same transaction — here a conversation draft and an audit row — survives the
refusal and is committed afterwards; the objects the caller holds stay usable.

The race is made by letting the domain's own pre-check pass (monkeypatched) while the row that
wins is already in the database, so that the database's constraint is what refuses: exactly
what happens when another transaction commits between the check and the flush.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from models import accounts, audit, codes, drafts, roles, shops, users
from models.errors import DomainError
from models.policy import Policy
from models.tables import AuditEvent, PhoneBinding, Role, Shop, SubAccount, User

NOW = datetime(2026, 12, 1, 9, 0)
POLICY = Policy()
OWNER_ID, HOLDER_ID, RIVAL_ID = 1001, 2002, 3003
OWNER_PHONE, HOLDER_PHONE, RIVAL_PHONE = "+8613800138000", "+8613900139000", "+8613700137000"


async def person(session: AsyncSession, uid: int, phone: str | None) -> User:
    user = User(id=uid, phone=phone, first_name=f"u{uid}", locale="en", created_at=NOW)
    session.add(user)
    await session.flush()
    return user


async def owner_with_shop(session: AsyncSession, uid: int, phone: str, name: str) -> Shop:
    return await shops.create_shop(session, await person(session, uid, phone), name,
                                   max_sub_accounts=50, now=NOW)


async def earlier_writes(session: AsyncSession, user_id: int) -> None:
    """What a handler writes before the domain call of the same update: the draft of the
    conversation step and a row of another table."""
    await drafts.save_draft(session, user_id, "probe", "step", {"kept": True}, NOW)
    audit.record(session, now=NOW, shop_id=None, actor_id=user_id, action="probe.before",
                 object_type="user", object_id=user_id)


async def assert_earlier_writes_committed(session: AsyncSession, user_id: int) -> None:
    await session.commit()
    async with db.sessionmaker(session.bind)() as fresh:  # another connection: committed rows
        draft = await drafts.get_draft(fresh, user_id)
        assert draft is not None and (draft.flow, draft.step, draft.data) == (
            "probe", "step", {"kept": True})
        probes = (await fresh.exec(
            select(AuditEvent).where(AuditEvent.action == "probe.before"))).all()
        assert len(probes) == 1


def passing(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
            result: Callable[..., Any] = lambda *a, **k: None) -> None:
    """The pre-check ``module.name`` passes (the winner committed just after it ran)."""

    async def check(*args: Any, **kwargs: Any) -> Any:
        return result(*args, **kwargs)

    monkeypatch.setattr(module, name, check)


async def refused(key: str, call: Awaitable[Any]) -> None:
    with pytest.raises(DomainError) as err:
        await call
    assert err.value.key == key


async def test_linking_a_phone_another_user_took_keeps_the_draft(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await person(session, RIVAL_ID, HOLDER_PHONE)  # the winner
    me = await person(session, HOLDER_ID, None)
    await session.commit()
    await earlier_writes(session, HOLDER_ID)
    passing(monkeypatch, users, "user_by_phone")
    await refused("phone_linked_to_other_user", users.link_phone(session, me, HOLDER_PHONE))
    assert me.phone is None and me.first_name == f"u{HOLDER_ID}"  # still loaded, not expired
    await assert_earlier_writes_committed(session, HOLDER_ID)
    assert (await session.get(User, HOLDER_ID)).phone is None  # type: ignore[union-attr]


async def test_a_shop_whose_phone_was_bound_meanwhile_keeps_the_draft(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await owner_with_shop(session, RIVAL_ID, RIVAL_PHONE, "Noodle Bar")
    me = await person(session, OWNER_ID, OWNER_PHONE)
    session.add(PhoneBinding(phone=OWNER_PHONE, shop_id=other.id or 0, kind="sub",
                             created_at=NOW))  # the winner: my phone became a sub-account
    await session.commit()
    await earlier_writes(session, OWNER_ID)
    passing(monkeypatch, shops, "check_can_create_shop")
    await refused("shop_create_conflict", shops.create_shop(
        session, me, "Tea House", max_sub_accounts=50, now=NOW))
    await assert_earlier_writes_committed(session, OWNER_ID)
    assert [s.name for s in (await session.exec(select(Shop))).all()] == ["Noodle Bar"]


async def test_a_role_name_taken_meanwhile_keeps_the_draft(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await owner_with_shop(session, OWNER_ID, OWNER_PHONE, "Tea House")
    await roles.create_role(session, POLICY, shop_id=shop.id or 0, actor_id=OWNER_ID, name="Ops",
                            description="", modules=["home"], now=NOW)  # the winner
    await session.commit()
    await earlier_writes(session, OWNER_ID)
    passing(monkeypatch, roles, "ensure_name_free",
            lambda _s, _shop, name, **_kw: roles.clean_role_name(name))
    await refused("role_name_taken", roles.create_role(
        session, POLICY, shop_id=shop.id or 0, actor_id=OWNER_ID, name=" OPS ",
        description="", modules=["home"], now=NOW))
    await assert_earlier_writes_committed(session, OWNER_ID)
    assert [r.name for r in (await session.exec(select(Role))).all()] == ["Ops"]


async def test_a_rename_to_a_name_taken_meanwhile_keeps_the_draft(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await owner_with_shop(session, OWNER_ID, OWNER_PHONE, "Tea House")
    kw = dict(shop_id=shop.id or 0, actor_id=OWNER_ID, description="", modules=["home"], now=NOW)
    await roles.create_role(session, POLICY, name="Ops", **kw)  # the winner
    mine = await roles.create_role(session, POLICY, name="Cashier", **kw)
    await session.commit()
    await earlier_writes(session, OWNER_ID)
    passing(monkeypatch, roles, "ensure_name_free",
            lambda _s, _shop, name, **_kw: roles.clean_role_name(name))
    await refused("role_name_taken", roles.rename_role(
        session, shop_id=shop.id or 0, actor_id=OWNER_ID, role_id=mine.id or 0, name="ops",
        now=NOW))
    assert mine.name == "Cashier"  # the caller's object is read again, not left expired
    await assert_earlier_writes_committed(session, OWNER_ID)
    names = sorted(r.name for r in (await session.exec(select(Role))).all())
    assert names == ["Cashier", "Ops"]


async def test_a_role_given_to_a_sub_account_meanwhile_keeps_the_draft(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await owner_with_shop(session, OWNER_ID, OWNER_PHONE, "Tea House")
    await person(session, HOLDER_ID, HOLDER_PHONE)
    role = await roles.create_role(session, POLICY, shop_id=shop.id or 0, actor_id=OWNER_ID,
                                   name="Ops", description="", modules=["home"], now=NOW)
    await bind(session, shop, role.id or 0)  # the winner: a sub-account now uses the role
    await session.commit()
    await earlier_writes(session, OWNER_ID)
    real_usage = roles.role_usage
    calls: list[int] = []

    async def racing_usage(s: AsyncSession, role_id: int) -> int:
        calls.append(role_id)  # the first count ran before the sub-account was committed
        return 0 if len(calls) == 1 else await real_usage(s, role_id)

    monkeypatch.setattr(roles, "role_usage", racing_usage)
    await refused("role_in_use", roles.delete_role(
        session, shop_id=shop.id or 0, actor_id=OWNER_ID, role_id=role.id or 0, now=NOW))
    assert role.name == "Ops" and len(calls) == 2
    await assert_earlier_writes_committed(session, OWNER_ID)
    assert [r.id for r in (await session.exec(select(Role))).all()] == [role.id]


async def bind(session: AsyncSession, shop: Shop, role_id: int,
               phone: str = HOLDER_PHONE) -> SubAccount:
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id or 0, owner_id=shop.owner_id,
                                    role_id=role_id, phone=phone, now=NOW)
    await codes.verify_code(session, POLICY, code_id=issued.code.id or 0, owner_id=shop.owner_id,
                            entered=issued.plain, now=NOW)
    return await accounts.confirm_sub_account(
        session, shop=shop, owner_id=shop.owner_id, code_id=issued.code.id or 0, role_id=role_id,
        nickname="Hank", im_enabled=False, now=NOW)


async def test_a_phone_bound_elsewhere_meanwhile_keeps_the_draft(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await owner_with_shop(session, OWNER_ID, OWNER_PHONE, "Tea House")
    other = await owner_with_shop(session, RIVAL_ID, RIVAL_PHONE, "Noodle Bar")
    await person(session, HOLDER_ID, HOLDER_PHONE)
    role = await roles.create_role(session, POLICY, shop_id=shop.id or 0, actor_id=OWNER_ID,
                                   name="Ops", description="", modules=["home"], now=NOW)
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id or 0, owner_id=OWNER_ID,
                                    role_id=role.id, phone=HOLDER_PHONE, now=NOW)
    await codes.verify_code(session, POLICY, code_id=issued.code.id or 0, owner_id=OWNER_ID,
                            entered=issued.plain, now=NOW)
    session.add(PhoneBinding(phone=HOLDER_PHONE, shop_id=other.id or 0, kind="sub",
                             created_at=NOW))  # the winner: the other shop bound the phone
    await session.commit()
    await earlier_writes(session, OWNER_ID)
    real_check = accounts.check_phone_available
    calls: list[str] = []

    async def racing_check(s: AsyncSession, target: Shop, phone: str) -> None:
        calls.append(phone)
        if len(calls) > 1:
            await real_check(s, target, phone)

    monkeypatch.setattr(accounts, "check_phone_available", racing_check)
    await refused("phone_bound_elsewhere", accounts.confirm_sub_account(
        session, shop=shop, owner_id=OWNER_ID, code_id=issued.code.id or 0,
        role_id=role.id or 0, nickname="Hank", im_enabled=False, now=NOW + timedelta(seconds=5)))
    assert issued.code.status == "verified" and shop.name == "Tea House"
    await assert_earlier_writes_committed(session, OWNER_ID)
    assert (await session.exec(select(SubAccount))).all() == []


async def test_a_confirm_never_overwrites_a_not_me_from_another_connection(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite has no ``SELECT … FOR UPDATE``: the confirmation reads the verified code, the
    holder's "Not me" (another connection) ends it and commits, then the confirmation writes.
    The code stays declined, no sub-account is made, and the owner is told the code ended.
    (Once this transaction has written, SQLite lets no other connection commit before it.)"""
    if session.bind.dialect.name != "sqlite":
        pytest.skip("PostgreSQL locks the code on read (FOR UPDATE): the decline would wait")
    shop = await owner_with_shop(session, OWNER_ID, OWNER_PHONE, "Tea House")
    await person(session, HOLDER_ID, HOLDER_PHONE)
    role = await roles.create_role(session, POLICY, shop_id=shop.id or 0, actor_id=OWNER_ID,
                                   name="Ops", description="", modules=["home"], now=NOW)
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id or 0, owner_id=OWNER_ID,
                                    role_id=role.id, phone=HOLDER_PHONE, now=NOW)
    await codes.verify_code(session, POLICY, code_id=issued.code.id or 0, owner_id=OWNER_ID,
                            entered=issued.plain, now=NOW)
    await session.commit()  # nothing written yet in this transaction: SQLite lets s2 write
    other = db.create_engine(str(session.bind.url))
    read = accounts.lock_code

    async def read_then_decline(s: AsyncSession, code_id: int) -> Any:
        found = await read(s, code_id)
        async with db.sessionmaker(other)() as s2:
            await codes.decline_code(s2, code_id=code_id, holder_id=HOLDER_ID, now=NOW)
            await s2.commit()
        return found

    monkeypatch.setattr(accounts, "lock_code", read_then_decline)
    try:
        await refused("code_already_ended", accounts.confirm_sub_account(
            session, shop=shop, owner_id=OWNER_ID, code_id=issued.code.id or 0,
            role_id=role.id or 0, nickname="Hank", im_enabled=False, now=NOW))
        await session.commit()
    finally:
        await other.dispose()
    assert (await session.exec(select(SubAccount))).all() == []
    assert (await session.exec(select(PhoneBinding.phone))).all() == [OWNER_PHONE]
    await session.refresh(issued.code)
    assert issued.code.status == "declined"
