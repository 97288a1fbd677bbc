"""Bulk changes in /accounts: select with ☐ / ☑️, then Suspend / Resume / Change role for all
selected, one confirm screen, a result line, each holder told once; an account changed
meanwhile is reported. The domain (``models.bulk``) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.accounts import confirm_sub_account, set_suspended, unbind
from models.bulk import Result, bulk_change_role, bulk_set_suspended
from models.codes import issue_code, verify_code
from models.errors import DomainError
from models.policy import Policy
from models.roles import create_role
from models.shops import create_shop, owned_shop
from models.tables import AuditEvent, Role, Shop, SubAccount, User
from tests.harness import Harness, Person, rows
from tests.support.domain import add_sub_account, ensure_role
from tests.support.flows import make_owner, onboard
from tests.support.people import OWNER

NOW = datetime(2026, 1, 2, 3, 4, 5)
POLICY = Policy()


def staff(n: int, locale: str = "en") -> tuple[Person, str]:
    return Person(6000 + n, f"Staff{n:02d}", locale), f"+861370000{n:04d}"


async def shop_of(h: Harness, count: int, zh: tuple[int, ...] = ()) -> dict[int, int]:
    await make_owner(h)
    ids = {}
    for n in range(1, count + 1):
        person, phone = staff(n, "zh-hans" if n in zh else "en")
        await onboard(h, person, phone)
        ids[n] = await add_sub_account(h, holder=person, phone=phone)
    return ids


async def accounts(h: Harness) -> dict[str, SubAccount]:
    return {a.nickname: a for a in await rows(h, SubAccount)}


async def pick(h: Harness, *names: str) -> None:
    await h.command(OWNER, "/accounts")
    await h.click(OWNER, "☑️ Select for a bulk change")
    for name in names:
        await h.click(OWNER, f"☐ {name}")


async def test_bulk_suspend_one_confirm_each_holder_told_once(harness: Harness) -> None:
    await shop_of(harness, 6, zh=(2,))
    await pick(harness, "Staff01", "Staff02", "Staff03")
    shown = harness.last(OWNER)
    assert "☑️ Selected: 3" in shown.text
    assert "☑️ Staff01 · +86 137****0001" in shown.labels
    assert "⏸ Suspend (3)" in shown.labels
    await harness.click(OWNER, "☑️ Staff03")  # unselect
    await harness.click(OWNER, "☐ Staff05")
    told_before = {n: len(harness.messages(staff(n)[0])) for n in range(1, 7)}
    await harness.click(OWNER, "⏸ Suspend (3)")
    confirm = harness.last(OWNER)
    assert confirm.text.startswith("⏸ Suspend 3 sub-accounts?")
    assert "Selected: Staff01, Staff02, Staff05" in confirm.text
    assert await rows(harness, AuditEvent) and all(
        a.status == "authorized" for a in (await accounts(harness)).values())  # not yet
    await harness.click(OWNER, "⏸ Yes, suspend 3")
    result = harness.last(OWNER)
    assert "✅ Suspended 3 of 3 sub-accounts." in result.text
    assert "Selected" not in result.text  # the selection ends with the change
    found = await accounts(harness)
    assert [n for n, a in sorted(found.items()) if a.status == "suspended"] == [
        "Staff01", "Staff02", "Staff05"]
    for n in range(1, 7):
        extra = len(harness.messages(staff(n)[0])) - told_before[n]
        assert extra == (1 if n in (1, 2, 5) else 0), n
    assert "the shop's main account has suspended your sub-account" \
        in harness.last(staff(1)[0]).text
    assert "店铺主账号已暂停您的子账号" in harness.last(staff(2)[0]).text
    events = [e for e in await rows(harness, AuditEvent) if e.action == "account.suspended"]
    assert len(events) == 3
    # the confirm pressed again is stale: nothing happens twice
    await harness.press(OWNER, confirm.button("Yes, suspend"), message_id=confirm.message_id)
    assert harness.answers()[-1] == "This menu is no longer valid."
    assert len([e for e in await rows(harness, AuditEvent)
                if e.action == "account.suspended"]) == 3


async def test_an_account_changed_meanwhile_is_reported(harness: Harness) -> None:
    ids = await shop_of(harness, 4)
    await pick(harness, "Staff01", "Staff02", "Staff03")
    await harness.click(OWNER, "⏸ Suspend (3)")
    # meanwhile: Staff02 is suspended on its own, Staff03 is unbound
    async with harness.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        await set_suspended(session, shop_id=shop.id or 0, actor_id=OWNER.id,
                            account_id=ids[2], suspended=True, now=harness.clock.now())
        await unbind(session, shop_id=shop.id or 0, actor_id=OWNER.id, account_id=ids[3],
                     now=harness.clock.now())
        await session.commit()
    await harness.click(OWNER, "Yes, suspend 3")
    text = harness.last(OWNER).text
    assert "✅ Suspended 1 of 3 sub-accounts." in text
    assert "Already suspended (changed meanwhile): Staff02" in text
    assert "No longer in your shop (unbound meanwhile): Staff03" in text


async def test_bulk_resume_and_select_all_shown(harness: Harness) -> None:
    await shop_of(harness, 4)
    await pick(harness, "Staff01", "Staff02")
    await harness.click(OWNER, "Suspend (2)")
    await harness.click(OWNER, "Yes, suspend 2")
    await harness.click(OWNER, "Status: any")   # authorized
    await harness.click(OWNER, "Status: ✅ Authorized")  # suspended
    await harness.click(OWNER, "☑️ Select for a bulk change")
    await harness.click(OWNER, "Select all shown (2)")
    assert "☑️ Selected: 2" in harness.last(OWNER).text
    await harness.click(OWNER, "▶️ Resume (2)")
    assert harness.last(OWNER).text.startswith("▶️ Resume 2 sub-accounts?")
    await harness.click(OWNER, "Yes, resume 2")
    assert "✅ Resumed 2 of 2 sub-accounts." in harness.last(OWNER).text
    assert all(a.status == "authorized" for a in (await accounts(harness)).values())
    assert "your sub-account is active again" in harness.last(staff(1)[0]).text


async def test_bulk_change_role_and_cancel(harness: Harness) -> None:
    await shop_of(harness, 3, zh=(3,))
    service = await ensure_role(harness, OWNER, "Customer service",
                                ("home", "orders", "customer_service"))
    await pick(harness, "Staff01", "Staff03")
    await harness.click(OWNER, "🧩 Change role (2)")
    assert "Choose the new role for the 2 selected sub-accounts." in harness.last(OWNER).text
    await harness.click(OWNER, "Cancel")
    assert "☑️ Selected: 2" in harness.last(OWNER).text  # back, the selection kept
    await harness.click(OWNER, "🧩 Change role (2)")
    await harness.click(OWNER, "Customer service")
    assert harness.last(OWNER).text.startswith(
        "🧩 Give 2 sub-accounts the role Customer service?")
    await harness.click(OWNER, "Yes, change 2")
    assert "✅ Role Customer service given to 2 of 2 sub-accounts." in harness.last(OWNER).text
    found = await accounts(harness)
    assert [n for n, a in sorted(found.items()) if a.role_id == service] == [
        "Staff01", "Staff03"]
    told = harness.last(staff(1)[0]).text
    assert "your role is now Customer service (was Operations)" in told
    assert "您的岗位已变更为 Customer service" in harness.last(staff(3)[0]).text
    assert len([e for e in await rows(harness, AuditEvent) if e.action == "account.role"]) == 2


async def test_bulk_in_chinese(harness: Harness) -> None:
    owner = Person(OWNER.id, OWNER.first_name, "zh-hans", OWNER.username)
    await shop_of(harness, 2)
    await harness.command(owner, "/language")
    await harness.click(owner, "简体中文")
    await harness.command(owner, "/accounts")
    await harness.click(owner, "☑️ 批量操作")
    await harness.click(owner, "全选当前列表（2个）")
    await harness.click(owner, "⏸ 暂停（2）")
    assert harness.last(owner).text.startswith("⏸ 确定暂停2个子账号吗？")
    await harness.click(owner, "确定暂停2个")
    assert "✅ 已暂停2个子账号（共选2个）。" in harness.last(owner).text


async def test_a_selection_of_one_reads_singular(harness: Harness) -> None:
    await shop_of(harness, 2)
    await pick(harness, "Staff02")
    await harness.click(OWNER, "Suspend (1)")
    assert harness.last(OWNER).text.startswith("⏸ Suspend 1 sub-account?")
    await harness.click(OWNER, "Yes, suspend 1")
    assert "✅ Suspended 1 of 1 sub-account." in harness.last(OWNER).text


async def test_another_owners_accounts_cannot_be_toggled(harness: Harness) -> None:
    ids = await shop_of(harness, 1)
    other = Person(3003, "Oscar", "en")
    await make_owner(harness, other, "+8613700137999", shop="Noodle Bar")
    await harness.command(other, "/accounts")
    await harness.press(other, f"a:tg:{ids[1]}")
    assert harness.answers()[-1] == "This menu is no longer valid."


# --- the domain, on both databases -----------------------------------------------------------


async def _world(session: AsyncSession) -> tuple[Shop, list[SubAccount], Role]:
    owner = User(id=1, first_name="Olivia", phone="+8613800138000", locale="en", created_at=NOW)
    session.add(owner)
    await session.flush()
    shop = await create_shop(session, owner, "Tea House", max_sub_accounts=50, now=NOW)
    role = await create_role(session, POLICY, shop_id=shop.id or 0, actor_id=1, name="Ops",
                             description="", modules=["home"], now=NOW)
    other = await create_role(session, POLICY, shop_id=shop.id or 0, actor_id=1, name="CS",
                              description="", modules=["orders"], now=NOW)
    made = []
    for n in range(3):
        holder = User(id=10 + n, first_name=f"S{n}", phone=f"+86139001390{n:02d}",
                      locale="en", created_at=NOW)
        session.add(holder)
        await session.flush()
        issued = await issue_code(session, POLICY, shop_id=shop.id or 0, owner_id=1,
                                  role_id=role.id, phone=holder.phone or "", now=NOW)
        await verify_code(session, POLICY, code_id=issued.code.id or 0, owner_id=1,
                          entered=issued.plain, now=NOW)
        made.append(await confirm_sub_account(
            session, shop=shop, owner_id=1, code_id=issued.code.id or 0, role_id=role.id or 0,
            nickname=f"S{n}", im_enabled=False, now=NOW))
    return shop, made, other


async def test_bulk_domain_outcomes_per_account(session: AsyncSession) -> None:
    shop, made, other = await _world(session)
    ids = [a.id or 0 for a in made]
    await set_suspended(session, shop_id=shop.id or 0, actor_id=1, account_id=ids[1],
                        suspended=True, now=NOW)
    outcomes = await bulk_set_suspended(session, shop_id=shop.id or 0, actor_id=1,
                                        account_ids=[ids[0], ids[1], ids[2], 99999, ids[0]],
                                        suspended=True, now=NOW)
    assert [(o.account_id, o.result) for o in outcomes] == [
        (ids[0], Result.CHANGED), (ids[1], Result.UNCHANGED), (ids[2], Result.CHANGED),
        (99999, Result.GONE)]
    role, changed = await bulk_change_role(session, shop_id=shop.id or 0, actor_id=1,
                                           account_ids=ids, role_id=other.id or 0, now=NOW)
    assert role.name == "CS"
    assert [o.result for o in changed] == [Result.CHANGED] * 3
    assert {o.before for o in changed} == {"Ops"}
    await session.flush()
    events = list((await session.exec(select(AuditEvent.action))).all())
    assert events.count("account.suspended") == 3 and events.count("account.role") == 3
    with pytest.raises(DomainError) as empty:
        await bulk_set_suspended(session, shop_id=shop.id or 0, actor_id=1, account_ids=[],
                                 suspended=True, now=NOW)
    assert empty.value.key == "bulk_empty"


async def test_bulk_domain_refuses_another_shops_role(session: AsyncSession) -> None:
    shop, made, _ = await _world(session)
    with pytest.raises(DomainError) as refused:
        await bulk_change_role(session, shop_id=(shop.id or 0) + 1, actor_id=1,
                               account_ids=[made[0].id or 0], role_id=1, now=NOW)
    assert refused.value.key == "role_not_found"
