"""Role rules without Telegram: names, descriptions, modules, usage, delete, audit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import roles
from models.errors import DomainError
from models.policy import Policy
from models.roles import (
    NAME_KEY_MAX,
    clean_description,
    clean_modules,
    clean_role_name,
    create_role,
    delete_role,
    ensure_name_free,
    get_role,
    list_roles,
    rename_role,
    role_name_key,
    role_usage,
    set_description,
    set_modules,
)
from models.tables import AuditEvent, Role, Shop, User
from tests.support.domain import write_sub_account

NOW = datetime(2025, 3, 1, 9, 30)
POLICY = Policy()
OWNER_ID, OTHER_ID = 1001, 3003


@pytest.fixture(autouse=True)
async def two_shops(session: AsyncSession) -> None:
    """Olivia's Tea House and Oscar's Noodle Bar, committed."""
    for uid, phone, shop_name in ((OWNER_ID, "+8613800138000", "Tea House"),
                                  (OTHER_ID, "+8613700137000", "Noodle Bar")):
        session.add(User(id=uid, phone=phone, first_name="o", created_at=NOW))
        await session.flush()
        session.add(Shop(name=shop_name, owner_id=uid, created_at=NOW))
    await session.commit()


async def shop_id(session: AsyncSession, owner_id: int = OWNER_ID) -> int:
    shop = (await session.exec(select(Shop).where(Shop.owner_id == owner_id))).one()
    assert shop.id is not None
    return shop.id


async def make(
    session: AsyncSession, name: str, modules: tuple[str, ...] = ("home",), *,
    owner_id: int = OWNER_ID, description: str = "",
) -> Role:
    role = await create_role(
        session, POLICY, shop_id=await shop_id(session, owner_id), actor_id=owner_id,
        name=name, description=description, modules=modules, now=NOW,
    )
    await session.commit()
    return role


async def events(session: AsyncSession, action: str) -> list[AuditEvent]:
    rows = await session.exec(
        select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
    )
    return list(rows.all())


def refused(key: str) -> Any:
    return pytest.raises(DomainError, match=f"^{key}$")


# --- pure rules -------------------------------------------------------------------------------


def test_names_are_trimmed_and_inner_spaces_folded() -> None:
    assert clean_role_name("  Customer \t  service \n") == "Customer service"
    assert clean_role_name("运营\u3000主管") == "运营 主管"


def test_names_must_have_a_visible_character() -> None:
    for blank in ("", "   ", "\u200b", "\x00 \u200d"):
        with refused("role_name_empty"):
            clean_role_name(blank)


def test_names_are_1_to_30_characters() -> None:
    assert clean_role_name("x") == "x"
    assert clean_role_name("岗" * 30) == "岗" * 30
    with refused("role_name_too_long") as info:
        clean_role_name("x" * 31)
    assert info.value.params == {"max": 30, "length": 31}


def test_control_characters_do_not_reach_the_database() -> None:
    assert clean_role_name("Ops\x00Lead") == "Ops Lead"
    assert clean_description("line one\nline\x07two") == "line one\nline two"


def test_name_key_ignores_case_spacing_and_width() -> None:
    assert role_name_key("Ops Team") == role_name_key("  ops   TEAM ") == "ops team"
    assert role_name_key("ＯＰＳ") == role_name_key("ops")
    assert role_name_key("Straße") == role_name_key("STRASSE")
    assert role_name_key("Ops") != role_name_key("Ops 2")


def test_long_name_keys_fit_the_column_without_false_collisions() -> None:
    # "ß" folds to "ss": a 30-character name can fold to 31 characters
    a, b = "a" * 29 + "ß", "a" * 29 + "s"
    assert len(role_name_key(a)) <= NAME_KEY_MAX
    assert role_name_key(a) != role_name_key(b)
    assert role_name_key(a) == role_name_key("A" * 29 + "SS")  # same name, other case


def test_descriptions_are_optional_and_at_most_200_characters() -> None:
    assert clean_description("   ") == ""
    assert clean_description("  Handles refunds.\n  ") == "Handles refunds."
    assert clean_description("d" * 200) == "d" * 200
    with refused("role_description_too_long") as info:
        clean_description("d" * 201)
    assert info.value.params == {"max": 200, "length": 201}


def test_modules_come_from_the_catalogue_in_its_order() -> None:
    assert clean_modules(POLICY, ["finance", "home", "finance"]) == ["home", "finance"]
    with refused("role_needs_module"):
        clean_modules(POLICY, [])
    with refused("role_module_unknown") as info:
        clean_modules(POLICY, ["home", "rockets"])
    assert info.value.params == {"module": "rockets"}


# --- create -----------------------------------------------------------------------------------


async def test_create_role_stores_it_and_audits(session: AsyncSession) -> None:
    role = await make(session, "  Ops  Team ", ("orders", "home"), description=" Runs it ")
    assert (role.name, role.name_key, role.description) == ("Ops Team", "ops team", "Runs it")
    assert role.modules == ["home", "orders"]
    assert role.created_at == role.updated_at == NOW
    [created] = await events(session, "role.created")
    assert (created.shop_id, created.actor_id, created.object_type, created.object_id) == (
        role.shop_id, OWNER_ID, "role", str(role.id))
    assert created.detail == {"name": "Ops Team", "description": "Runs it",
                              "modules": ["home", "orders"]}
    assert created.created_at == NOW


async def test_names_are_unique_per_shop_case_and_space_insensitive(session: AsyncSession) -> None:
    await make(session, "Ops Team")
    for same in ("ops team", "  OPS   team  ", "ＯＰＳ Team"):
        with refused("role_name_taken") as info:
            await make(session, same)
        assert info.value.params == {"name": clean_role_name(same)}
    await make(session, "Ops Team", owner_id=OTHER_ID)  # another shop may use it
    assert len((await session.exec(select(Role))).all()) == 2
    assert len(await events(session, "role.created")) == 2


async def test_ensure_name_free_returns_the_cleaned_name(session: AsyncSession) -> None:
    role = await make(session, "Ops")
    sid = await shop_id(session)
    assert await ensure_name_free(session, sid, "  Finance ") == "Finance"
    assert await ensure_name_free(session, sid, "OPS", exclude_id=role.id) == "OPS"
    with refused("role_name_taken"):
        await ensure_name_free(session, sid, "ops")


async def test_a_role_needs_a_module_and_known_modules(session: AsyncSession) -> None:
    with refused("role_needs_module"):
        await make(session, "Empty", ())
    with refused("role_module_unknown"):
        await make(session, "Odd", ("home", "teleport"))
    assert (await session.exec(select(Role))).all() == []
    assert await events(session, "role.created") == []


async def test_a_name_race_lost_at_the_database_is_name_taken(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make(session, "Ops")

    async def too_late(_session: AsyncSession, _shop: int, name: str, **_kw: Any) -> str:
        return clean_role_name(name)  # the check ran before the other transaction committed

    monkeypatch.setattr(roles, "ensure_name_free", too_late)
    with refused("role_name_taken"):
        await make(session, "OPS")
    assert [r.name for r in (await session.exec(select(Role))).all()] == ["Ops"]
    await make(session, "Finance")  # the session is usable afterwards


# --- read -------------------------------------------------------------------------------------


async def test_get_role_refuses_another_shops_role(session: AsyncSession) -> None:
    mine = await make(session, "Ops")
    theirs = await make(session, "Ops", owner_id=OTHER_ID)
    sid = await shop_id(session)
    assert (await get_role(session, sid, mine.id or 0)).id == mine.id
    for role_id in (theirs.id or 0, 999):
        with refused("role_not_found"):
            await get_role(session, sid, role_id)


async def test_list_roles_in_creation_order_with_usage(session: AsyncSession) -> None:
    ops = await make(session, "Ops")
    cs = await make(session, "CS")
    await make(session, "Elsewhere", owner_id=OTHER_ID)
    await write_sub_account(session, role=cs, holder_id=2002, phone="+8613900139000",
                            owner_id=OWNER_ID, now=NOW)
    await write_sub_account(session, role=cs, holder_id=2003, phone="+8613900139001",
                            owner_id=OWNER_ID, now=NOW)
    found = await list_roles(session, await shop_id(session))
    assert [(r.name, n) for r, n in found] == [("Ops", 0), ("CS", 2)]
    assert await role_usage(session, cs.id or 0) == 2
    assert await role_usage(session, ops.id or 0) == 0


# --- change -----------------------------------------------------------------------------------


async def test_rename_checks_the_name_and_audits(session: AsyncSession) -> None:
    ops = await make(session, "Ops")
    await make(session, "Finance")
    sid = await shop_id(session)
    later = NOW + timedelta(hours=1)
    with refused("role_name_taken"):
        await rename_role(session, shop_id=sid, actor_id=OWNER_ID, role_id=ops.id or 0,
                          name=" FINANCE ", now=later)
    with refused("role_name_too_long"):
        await rename_role(session, shop_id=sid, actor_id=OWNER_ID, role_id=ops.id or 0,
                          name="n" * 31, now=later)
    with refused("nothing_changed"):
        await rename_role(session, shop_id=sid, actor_id=OWNER_ID, role_id=ops.id or 0,
                          name=" Ops ", now=later)
    role = await rename_role(session, shop_id=sid, actor_id=OWNER_ID, role_id=ops.id or 0,
                             name="OPS", now=later)  # a change of case is a rename
    await session.commit()
    assert (role.name, role.name_key, role.updated_at) == ("OPS", "ops", later)
    [renamed] = await events(session, "role.renamed")
    assert renamed.detail == {"before": "Ops", "after": "OPS"}
    assert renamed.object_id == str(ops.id)


async def test_changes_to_another_shops_role_are_refused(session: AsyncSession) -> None:
    theirs = await make(session, "Ops", owner_id=OTHER_ID)
    sid, rid = await shop_id(session), theirs.id or 0
    with refused("role_not_found"):
        await rename_role(session, shop_id=sid, actor_id=OWNER_ID, role_id=rid, name="X", now=NOW)
    with refused("role_not_found"):
        await set_description(session, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                              description="x", now=NOW)
    with refused("role_not_found"):
        await set_modules(session, POLICY, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                          modules=["data"], now=NOW)
    with refused("role_not_found"):
        await delete_role(session, shop_id=sid, actor_id=OWNER_ID, role_id=rid, now=NOW)
    await session.refresh(theirs)
    assert (theirs.name, theirs.description, theirs.modules) == ("Ops", "", ["home"])


async def test_description_set_cleared_and_audited(session: AsyncSession) -> None:
    role = await make(session, "Ops")
    sid, rid = await shop_id(session), role.id or 0
    await set_description(session, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                          description=" Runs the shop ", now=NOW)
    with refused("nothing_changed"):
        await set_description(session, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                              description="Runs the shop", now=NOW)
    with refused("role_description_too_long"):
        await set_description(session, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                              description="d" * 201, now=NOW)
    await set_description(session, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                          description="  ", now=NOW)
    await session.commit()
    assert role.description == ""
    assert [e.detail for e in await events(session, "role.described")] == [
        {"name": "Ops", "before": "", "after": "Runs the shop"},
        {"name": "Ops", "before": "Runs the shop", "after": ""},
    ]


async def test_modules_replaced_at_least_one_and_audited(session: AsyncSession) -> None:
    role = await make(session, "Ops", ("home", "orders"))
    sid, rid = await shop_id(session), role.id or 0
    with refused("role_needs_module"):
        await set_modules(session, POLICY, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                          modules=[], now=NOW)
    with refused("nothing_changed"):
        await set_modules(session, POLICY, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                          modules=["orders", "home"], now=NOW)
    await set_modules(session, POLICY, shop_id=sid, actor_id=OWNER_ID, role_id=rid,
                      modules=["finance", "data"], now=NOW)
    await session.commit()
    stored = (await session.exec(select(Role).where(Role.id == rid))).one()
    assert stored.modules == ["data", "finance"]
    [changed] = await events(session, "role.permissions")
    assert changed.detail == {"name": "Ops", "before": ["home", "orders"],
                              "after": ["data", "finance"]}


# --- delete -----------------------------------------------------------------------------------


async def test_delete_unused_role_is_audited(session: AsyncSession) -> None:
    role = await make(session, "Ops")
    assert await delete_role(session, shop_id=await shop_id(session), actor_id=OWNER_ID,
                             role_id=role.id or 0, now=NOW) == "Ops"
    await session.commit()
    assert (await session.exec(select(Role))).all() == []
    [deleted] = await events(session, "role.deleted")
    assert (deleted.object_id, deleted.detail) == (str(role.id), {"name": "Ops"})


async def test_delete_in_use_is_refused_with_the_count(session: AsyncSession) -> None:
    role = await make(session, "CS")
    await write_sub_account(session, role=role, holder_id=2002, phone="+8613900139000",
                            owner_id=OWNER_ID, now=NOW)
    await write_sub_account(session, role=role, holder_id=2003, phone="+8613900139001",
                            owner_id=OWNER_ID, now=NOW)
    with refused("role_in_use") as info:
        await delete_role(session, shop_id=await shop_id(session), actor_id=OWNER_ID,
                          role_id=role.id or 0, now=NOW)
    assert info.value.params == {"name": "CS", "count": 2}
    assert len((await session.exec(select(Role))).all()) == 1
    assert await events(session, "role.deleted") == []


async def test_a_sub_account_added_during_delete_still_refuses_it(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = await make(session, "CS")
    await write_sub_account(session, role=role, holder_id=2002, phone="+8613900139000",
                            owner_id=OWNER_ID, now=NOW)
    real_usage = roles.role_usage
    calls: list[int] = []

    async def racing_usage(s: AsyncSession, role_id: int) -> int:
        calls.append(role_id)
        if len(calls) == 1:
            return 0  # the first count ran before the other transaction committed
        return await real_usage(s, role_id)

    monkeypatch.setattr(roles, "role_usage", racing_usage)
    with refused("role_in_use") as info:
        await delete_role(session, shop_id=await shop_id(session), actor_id=OWNER_ID,
                          role_id=role.id or 0, now=NOW)
    assert info.value.params == {"name": "CS", "count": 1}
    assert len(calls) == 2
    assert len((await session.exec(select(Role))).all()) == 1
    assert await events(session, "role.deleted") == []
