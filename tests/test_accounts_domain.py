"""Domain tests (no Telegram) for the loaders added for /accounts and /log:
``accounts.holder_of``, ``accounts.account_position``, ``accounts.accounts_page`` and
``audit.actors``."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.accounts import (
    account_position,
    accounts_page,
    confirm_sub_account,
    holder_of,
    leave_shop,
    rename_account,
    set_suspended,
    unbind,
)
from models.codes import issue_code, verify_code
from models.errors import DomainError
from models.policy import Policy
from models.roles import create_role
from models.shops import create_shop
from models.tables import Shop, SubAccount, User

NOW = datetime(2026, 1, 2, 3, 4, 5)
POLICY = Policy()


async def user(session: AsyncSession, uid: int, name: str, phone: str) -> User:
    row = User(id=uid, first_name=name, phone=phone, locale="en", created_at=NOW)
    session.add(row)
    await session.flush()
    return row


async def shop_of(session: AsyncSession, owner: User, name: str) -> Shop:
    return await create_shop(session, owner, name, max_sub_accounts=50, now=NOW)


async def two_shops(session: AsyncSession) -> tuple[User, Shop, Shop]:
    """Olivia's Tea House, and Oscar's Noodle Bar beside it."""
    owner = await user(session, 1, "Olivia", "+8613800138000")
    other = await user(session, 3, "Oscar", "+8613700137000")
    return (owner, await shop_of(session, owner, "Tea House"),
            await shop_of(session, other, "Noodle Bar"))


async def bind(session: AsyncSession, shop: Shop, holder: User, nickname: str) -> SubAccount:
    assert shop.id is not None and holder.phone is not None
    role = await create_role(session, POLICY, shop_id=shop.id, actor_id=shop.owner_id,
                             name=f"Role {nickname}", description="", modules=["home"], now=NOW)
    issued = await issue_code(session, POLICY, shop_id=shop.id, owner_id=shop.owner_id,
                              role_id=role.id, phone=holder.phone, now=NOW)
    await verify_code(session, POLICY, code_id=issued.code.id or 0, owner_id=shop.owner_id,
                      entered=issued.plain, now=NOW)
    return await confirm_sub_account(session, shop=shop, owner_id=shop.owner_id,
                                     code_id=issued.code.id or 0, role_id=role.id or 0,
                                     nickname=nickname, im_enabled=False, now=NOW)


async def test_holder_of_is_the_user_behind_the_account(session: AsyncSession) -> None:
    owner = await user(session, 1, "Olivia", "+8613800138000")
    hank = await user(session, 2, "Hank", "+8613900139000")
    shop = await shop_of(session, owner, "Tea House")
    account = await bind(session, shop, hank, "Hank")
    found = await holder_of(session, account)
    assert found is not None and (found.id, found.first_name) == (hank.id, "Hank")


async def test_renaming_to_the_same_nickname_changes_nothing(session: AsyncSession) -> None:
    owner = await user(session, 1, "Olivia", "+8613800138000")
    hank = await user(session, 2, "Hank", "+8613900139000")
    shop = await shop_of(session, owner, "Tea House")
    account = await bind(session, shop, hank, "Hank")
    with pytest.raises(DomainError) as same:
        await rename_account(session, shop_id=shop.id or 0, actor_id=owner.id,
                             account_id=account.id or 0, nickname="  Hank ", now=NOW)
    assert same.value.key == "nothing_changed"
    renamed = await rename_account(session, shop_id=shop.id or 0, actor_id=owner.id,
                                   account_id=account.id or 0, nickname="Hank W", now=NOW)
    assert renamed.nickname == "Hank W"


async def test_account_position_counts_earlier_accounts_of_the_same_shop_only(
    session: AsyncSession,
) -> None:
    owner, shop, elsewhere = await two_shops(session)
    people = [await user(session, 10 + n, f"S{n}", f"+861390013901{n}") for n in range(5)]
    first = await bind(session, shop, people[0], "S0")
    await bind(session, elsewhere, people[1], "S1")  # another shop's account in between
    second = await bind(session, shop, people[2], "S2")
    third = await bind(session, shop, people[3], "S3")
    shop_id = shop.id or 0
    assert [await account_position(session, shop_id, a.id or 0) for a in (first, second, third)] \
        == [0, 1, 2]
    await unbind(session, shop_id=shop_id, actor_id=owner.id, account_id=second.id or 0, now=NOW)
    assert await account_position(session, shop_id, third.id or 0) == 1
    assert await account_position(session, elsewhere.id or 0, third.id or 0) == 1


async def test_accounts_page_counts_with_the_rows_and_clamps_to_the_last_page(
    session: AsyncSession,
) -> None:
    _owner, shop, elsewhere = await two_shops(session)
    shop_id = shop.id or 0
    empty = await accounts_page(session, shop_id, 3, size=2)
    assert (empty.rows, empty.total, empty.page, empty.pages) == ([], 0, 0, 1)
    people = [await user(session, 10 + n, f"S{n}", f"+861390013901{n}") for n in range(6)]
    for n, person in enumerate(people[:5]):
        await bind(session, shop, person, f"S{n}")
    await bind(session, elsewhere, people[5], "S5")  # not counted, not listed
    pages = [await accounts_page(session, shop_id, p, size=2) for p in range(3)]
    assert [[a.nickname for a, _role in p.rows] for p in pages] \
        == [["S0", "S1"], ["S2", "S3"], ["S4"]]
    assert {(p.total, p.pages) for p in pages} == {(5, 3)}
    assert [p.page for p in pages] == [0, 1, 2]
    assert all(role.name == f"Role {a.nickname}" for p in pages for a, role in p.rows)
    past = await accounts_page(session, shop_id, 9, size=2)  # the list shrank since it was shown
    assert ([a.nickname for a, _r in past.rows], past.total, past.page, past.pages) \
        == (["S4"], 5, 2, 3)
    negative = await accounts_page(session, shop_id, -1, size=2)
    assert (negative.page, [a.nickname for a, _r in negative.rows]) == (0, ["S0", "S1"])


async def test_actors_loads_each_acting_user_once_and_skips_the_system(
    session: AsyncSession,
) -> None:
    owner = await user(session, 1, "Olivia", "+8613800138000")
    hank = await user(session, 2, "Hank", "+8613900139000")
    await user(session, 4, "Sam", "+8613600136000")  # never acts
    shop = await shop_of(session, owner, "Tea House")
    account = await bind(session, shop, hank, "Hank")
    await set_suspended(session, shop_id=shop.id or 0, actor_id=owner.id,
                        account_id=account.id or 0, suspended=True, now=NOW)
    audit.record(session, now=NOW, shop_id=shop.id, actor_id=None, action="code.expired",
                 object_type="code", phone="+86 139****9000")
    await leave_shop(session, holder=hank, now=NOW)
    await session.flush()
    events = await audit.recent(session, shop.id or 0, limit=100)
    assert {e.actor_id for e in events} == {owner.id, hank.id, None}
    found = await audit.actors(session, events)
    assert sorted(found) == [owner.id, hank.id]
    assert found[hank.id].first_name == "Hank"
    assert await audit.actors(session, []) == {}
    assert await audit.actors(session, [e for e in events if e.actor_id is None]) == {}
