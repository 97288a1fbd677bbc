"""/accounts through the Application: the list, one account's actions, holder notifications,
authorization of every button, the draft-backed rename step.

Sub-accounts are created through the domain (the provisioning conversation is tested on its
own): the holder is onboarded through the harness so their phone is linked, then a code is
issued, verified and confirmed in one session.
"""

from __future__ import annotations

from typing import Any

from models.tables import AuditEvent, Draft, PhoneBinding, Role, SubAccount
from tests.harness import Harness, Person, rows
from tests.support.app import start_harness, stop_harness
from tests.support.domain import SERVICE, add_sub_account, ensure_role
from tests.support.flows import make_owner, onboard, open_hank, setup_hank
from tests.support.people import (
    HOLDER,
    HOLDER_PHONE,
    OTHER_OWNER,
    OTHER_PHONE,
    OWNER,
    STRANGER,
    STRANGER_PHONE,
)


async def account(h: Harness, account_id: int) -> SubAccount | None:
    async with h.app.bot_data["deps"].sessions() as session:
        return await session.get(SubAccount, account_id)


async def actions(h: Harness) -> list[str]:
    return [e.action for e in await rows(h, AuditEvent)]


async def steps(h: Harness) -> list[tuple[str, str]]:
    """Every draft left: the /accounts list's own (``browse``, while it is open) at most."""
    return [(d.flow, d.step) for d in await rows(h, Draft)]


NO_FLOW_LEFT = ([], [("accounts", "browse")])


def staff(n: int) -> tuple[Person, str]:
    """The n-th extra staff member and their phone (+86 139 0013 90NN)."""
    return Person(6000 + n, f"Staff{n:02d}", "en"), f"+86139001390{n:02d}"


# --- the list -------------------------------------------------------------------------------


async def test_list_shows_nickname_masked_phone_role_im_status_and_seat_count(
    harness: Harness,
) -> None:
    await setup_hank(harness, im=True)
    await harness.command(OWNER, "/accounts")
    text = harness.last(OWNER).text
    assert "Tea House — sub-accounts: 1 of 50" in text
    assert "1. Hank · +86 139****9000" in text
    assert "Operations · IM on · ✅ Authorized" in text
    assert "13900139000" not in text
    assert harness.last(OWNER).labels[0] == "Hank · +86 139****9000"


async def test_empty_list_points_to_newaccount(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/accounts")
    text = harness.last(OWNER).text
    assert "0 of 50" in text and "/newaccount" in text


async def test_list_is_paged_ten_per_page_and_back_returns_to_the_right_page(
    harness: Harness,
) -> None:
    await make_owner(harness)
    for n in range(1, 12):
        person, phone = staff(n)
        await onboard(harness, person, phone)
        await add_sub_account(harness, holder=person, phone=phone)
    await harness.command(OWNER, "/accounts")
    first = harness.last(OWNER)
    assert "11 of 50" in first.text and "Page 1 of 2" in first.text
    assert [label.split(" · ")[0] for label in first.labels[:10]] == [
        f"Staff{n:02d}" for n in range(1, 11)]
    assert "Staff11" not in first.text
    assert "Next ▶️" in first.labels and "◀️ Previous" not in first.labels
    await harness.click(OWNER, "Next ▶️")
    second = harness.last(OWNER)
    assert second.message_id == first.message_id  # the same menu, edited
    assert "Page 2 of 2" in second.text and "11. Staff11" in second.text
    assert "Staff01" not in second.text
    assert "◀️ Previous" in second.labels and "Next ▶️" not in second.labels
    await harness.click(OWNER, "Staff11")
    assert "Staff11" in harness.last(OWNER).text
    await harness.click(OWNER, "All accounts")
    assert "Page 2 of 2" in harness.last(OWNER).text
    await harness.click(OWNER, "◀️ Previous")
    assert "Page 1 of 2" in harness.last(OWNER).text


async def test_page_beyond_the_end_shows_the_last_page(harness: Harness) -> None:
    await setup_hank(harness)
    await harness.command(OWNER, "/accounts")
    await harness.press(OWNER, "a:pg:7")
    assert "1. Hank" in harness.last(OWNER).text


async def test_owner_menu_button_opens_the_list(harness: Harness) -> None:
    await setup_hank(harness)
    await harness.command(OWNER, "/start")
    await harness.click(OWNER, "👥 Accounts")
    assert "1 of 50" in harness.last(OWNER).text
    assert "Hank · +86 139****9000" in harness.last(OWNER).labels


async def test_non_owners_cannot_list_accounts(harness: Harness) -> None:
    await setup_hank(harness)
    await harness.command(HOLDER, "/accounts")
    assert "for the shop's main account" in harness.last(HOLDER).text
    assert "/me" in harness.last(HOLDER).text
    await onboard(harness, STRANGER, STRANGER_PHONE)
    await harness.command(STRANGER, "/accounts")
    assert "no shop to manage" in harness.last(STRANGER).text


async def test_staff_sending_owner_commands_are_pointed_to_me(harness: Harness) -> None:
    await setup_hank(harness)
    roles_before = await rows(harness, Role)
    await harness.command(HOLDER, "/roles")
    assert "Roles are managed by the shop's main account" in harness.last(HOLDER).text
    assert "/me" in harness.last(HOLDER).text
    await harness.command(HOLDER, "/newaccount")
    assert "Only the shop's main account can add sub-accounts" in harness.last(HOLDER).text
    assert "/me" in harness.last(HOLDER).text
    assert [d for d in await rows(harness, Draft) if d.user_id == HOLDER.id] == []
    assert await rows(harness, Role) == roles_before
    await onboard(harness, STRANGER, STRANGER_PHONE)  # neither owner nor staff: no shop
    await harness.command(STRANGER, "/newaccount")
    assert "no shop to manage" in harness.last(STRANGER).text


# --- one account ----------------------------------------------------------------------------


async def test_open_shows_details_and_actions(harness: Harness) -> None:
    await setup_hank(harness)
    await open_hank(harness)
    shown = harness.last(OWNER)
    assert "Hank" in shown.text and "Phone: +86 139****9000" in shown.text
    assert "Role: Operations" in shown.text and "Modules: Home, Products, Orders" in shown.text
    assert "IM permission: off" in shown.text and "Status: ✅ Authorized" in shown.text
    for label in ("Change role", "Rename", "Turn IM on", "Suspend", "Unbind", "All accounts"):
        assert any(label in lbl for lbl in shown.labels), label
    assert all(len(d.encode()) <= 64 for d in shown.data)


async def test_change_role_tells_the_holder_their_new_role_and_modules(harness: Harness) -> None:
    acc = await setup_hank(harness)
    service = await ensure_role(harness, OWNER, "Customer service", SERVICE)
    await open_hank(harness)
    await harness.click(OWNER, "Change role")
    menu = harness.last(OWNER)
    assert "Current role: Operations" in menu.text
    assert "✓ Operations" in menu.labels and "Customer service" in menu.labels
    await harness.click(OWNER, "Customer service")
    assert "✅ Role changed: Operations → Customer service." in harness.last(OWNER).text
    assert "Role: Customer service" in harness.last(OWNER).text
    told = harness.last(HOLDER).text
    assert "Tea House: your role is now Customer service (was Operations)" in told
    assert "Modules you can see: Home, Orders, After-sales, Customer service" in told
    row = await account(harness, acc)
    assert row is not None and row.role_id == service
    assert (await actions(harness))[-1] == "account.role"


async def test_choosing_the_current_role_changes_nothing(harness: Harness) -> None:
    await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Change role")
    assert "only this role" in harness.last(OWNER).text
    before = await actions(harness)
    told = len(harness.messages(HOLDER))
    await harness.click(OWNER, "✓ Operations")
    assert harness.answers()[-1] == "Nothing to change."
    assert "Role: Operations" in harness.last(OWNER).text
    assert await actions(harness) == before
    assert len(harness.messages(HOLDER)) == told


async def test_im_on_and_off_are_told_to_the_holder(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Turn IM on")
    assert "✅ IM is now on for Hank." in harness.last(OWNER).text
    assert "IM permission: on" in harness.last(OWNER).text
    assert "your IM permission is now on" in harness.last(HOLDER).text
    assert "Tea House" in harness.last(HOLDER).text
    assert (row := await account(harness, acc)) is not None and row.im_enabled
    await harness.click(OWNER, "Turn IM off")
    assert "your IM permission is now off" in harness.last(HOLDER).text
    assert (row := await account(harness, acc)) is not None and not row.im_enabled
    assert (await actions(harness))[-2:] == ["account.im", "account.im"]


async def test_an_outdated_toggle_says_nothing_to_change(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.press(OWNER, f"a:im:{acc}:1")
    before = await actions(harness)
    await harness.press(OWNER, f"a:im:{acc}:1")  # the old "Turn IM on" again
    assert harness.answers()[-1] == "Nothing to change."
    assert await actions(harness) == before
    assert "Turn IM off" in " ".join(harness.last(OWNER).labels)


async def test_suspend_and_resume(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Suspend")
    shown = harness.last(OWNER)
    assert "✅ Hank is suspended." in shown.text and "Status: ⏸ Suspended" in shown.text
    assert "▶️ Resume" in shown.labels
    assert "Tea House: the shop's main account has suspended your sub-account" \
        in harness.last(HOLDER).text
    row = await account(harness, acc)
    assert row is not None and row.status == "suspended"
    assert [b.phone for b in await rows(harness, PhoneBinding)].count(HOLDER_PHONE) == 1
    await harness.command(OWNER, "/accounts")
    assert "⏸ Suspended" in harness.last(OWNER).text
    assert "⏸ Hank · +86 139****9000" in harness.last(OWNER).labels
    await harness.click(OWNER, "Hank")
    await harness.click(OWNER, "Resume")
    assert "✅ Hank is authorized again." in harness.last(OWNER).text
    assert "your sub-account is active again" in harness.last(HOLDER).text
    row = await account(harness, acc)
    assert row is not None and row.status == "authorized"
    assert (await actions(harness))[-2:] == ["account.suspended", "account.resumed"]


async def test_unbind_asks_first_then_frees_the_phone_for_another_shop(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Unbind")
    confirm = harness.last(OWNER)
    assert confirm.text.startswith("🗑 Unbind Hank (+86 139****9000)?")
    await harness.click(OWNER, "Cancel")
    assert "Status: ✅ Authorized" in harness.last(OWNER).text
    assert await account(harness, acc) is not None
    await harness.click(OWNER, "Unbind")
    await harness.click(OWNER, "Yes, unbind")
    shown = harness.last(OWNER)
    assert "✅ Hank (+86 139****9000) is unbound; the phone number is free." in shown.text
    assert "0 of 50" in shown.text
    assert "Tea House: the shop's main account has unbound your sub-account" \
        in harness.last(HOLDER).text
    assert await rows(harness, SubAccount) == []
    assert [b.phone for b in await rows(harness, PhoneBinding)] == ["+8613800138000"]
    assert (await actions(harness))[-1] == "account.unbound"
    # the phone can now be bound to another shop
    await make_owner(harness, OTHER_OWNER, OTHER_PHONE, shop="Noodle Bar")
    await add_sub_account(harness, holder=HOLDER, phone=HOLDER_PHONE, owner=OTHER_OWNER)
    (moved,) = await rows(harness, SubAccount)
    assert moved.holder_id == HOLDER.id and moved.phone == HOLDER_PHONE
    await harness.command(OTHER_OWNER, "/accounts")
    assert "Noodle Bar" in harness.last(OTHER_OWNER).text
    assert "Hank · +86 139****9000" in harness.last(OTHER_OWNER).labels


async def test_buttons_of_an_unbound_account_are_stale(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    details = harness.last(OWNER)
    suspend, rename = details.button("Suspend"), details.button("Rename")
    await harness.click(OWNER, "Unbind")
    await harness.click(OWNER, "Yes, unbind")
    before = await actions(harness)
    for data in (suspend, rename, f"a:op:{acc}", f"a:uy:{acc}", f"a:im:{acc}:1"):
        await harness.press(OWNER, data, message_id=details.message_id)
    assert harness.answers()[-5:] == ["This menu is no longer valid."] * 5
    assert await actions(harness) == before
    assert await steps(harness) in NO_FLOW_LEFT


async def test_forged_callbacks_naming_another_shops_account_or_role_change_nothing(
    harness: Harness,
) -> None:
    mine = await setup_hank(harness)
    await make_owner(harness, OTHER_OWNER, OTHER_PHONE, shop="Noodle Bar")
    await onboard(harness, STRANGER, STRANGER_PHONE)
    theirs = await add_sub_account(harness, holder=STRANGER, phone=STRANGER_PHONE,
                                   owner=OTHER_OWNER, role="Cook")
    their_role = await ensure_role(harness, OTHER_OWNER, "Cook")
    await harness.command(OWNER, "/accounts")
    before_events = await actions(harness)
    before_accounts = [(a.id, a.role_id, a.nickname, a.im_enabled, a.status)
                       for a in await rows(harness, SubAccount)]
    forged = [f"a:op:{theirs}", f"a:im:{theirs}:1", f"a:su:{theirs}:1", f"a:ub:{theirs}",
              f"a:uy:{theirs}", f"a:rn:{theirs}", f"a:rl:{theirs}", f"a:sr:{theirs}:1",
              f"a:sr:{mine}:{their_role}", f"a:im:{mine}:7", "a:uy:99999", "a:uy:x", "a:zz:1"]
    for data in forged:
        await harness.press(OWNER, data)
    # a holder and a stranger pressing the owner's buttons
    for who in (HOLDER, STRANGER):
        await harness.press(who, f"a:uy:{mine}")
        await harness.press(who, f"a:su:{mine}:1")
    assert harness.answers()[-(len(forged) + 4):] == (
        ["This menu is no longer valid."] * (len(forged) + 4))
    assert await actions(harness) == before_events
    assert [(a.id, a.role_id, a.nickname, a.im_enabled, a.status)
            for a in await rows(harness, SubAccount)] == before_accounts
    assert await steps(harness) in NO_FLOW_LEFT


# --- rename -----------------------------------------------------------------------------------


async def test_rename_explains_bad_input_and_asks_again(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Rename")
    prompt = "Send the new nickname for Hank (+86 139****9000): 1–30 characters."
    assert prompt in harness.last(OWNER).text
    shown = await harness.text(OWNER, "x" * 31)
    assert "too long (31 characters); 30 at most" in shown[0].text
    assert prompt in shown[1].text
    shown = await harness.text(OWNER, "   ")
    assert "can't be empty" in shown[0].text and prompt in shown[1].text
    await harness.sticker(OWNER)
    assert prompt in harness.last(OWNER).text
    row = await account(harness, acc)
    assert row is not None and row.nickname == "Hank"
    await harness.text(OWNER, "  Hank   Li ")
    owner_view = [m.text for m in harness.messages(OWNER)]
    assert any("✅ Renamed: Hank → Hank Li." in t and "Role: Operations" in t
               for t in owner_view[-2:])
    assert "Tea House: your nickname is now Hank Li." in harness.last(HOLDER).text
    row = await account(harness, acc)
    assert row is not None and row.nickname == "Hank Li"
    assert await steps(harness) == [("accounts", "browse")]
    await harness.text(OWNER, "Again")  # back on the list: a text filters it
    assert "No sub-account matches this filter." in harness.last(OWNER).text


async def test_rename_to_the_same_nickname_says_nothing_changed(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Rename")
    holder_before = len(harness.messages(HOLDER))
    await harness.text(OWNER, " Hank ")
    assert "Nothing to change." in harness.last(OWNER).text
    assert "Role: Operations" in harness.last(OWNER).text
    assert len(harness.messages(HOLDER)) == holder_before  # the holder is not told anything
    row = await account(harness, acc)
    assert row is not None and row.nickname == "Hank"
    assert await steps(harness) in NO_FLOW_LEFT
    assert [e for e in await rows(harness, AuditEvent) if e.action == "account.renamed"] == []


async def test_rename_step_survives_a_restart(
    harness: Harness, settings: Any, engine: Any, api: Any, clock: Any,
) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Rename")
    await stop_harness(harness)
    restarted = await start_harness(settings, engine, api, clock)
    try:
        await restarted.text(OWNER, "Hank Zhang")
        assert "✅ Renamed: Hank → Hank Zhang." in "\n".join(
            m.text for m in restarted.messages(OWNER)[-2:])
    finally:
        await stop_harness(restarted)
        await harness.app.initialize()
        await harness.app.start()  # the fixture stops it again
    row = await account(restarted, acc)
    assert row is not None and row.nickname == "Hank Zhang"


async def test_rename_cancel_button_and_cancel_command_change_nothing(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await open_hank(harness)
    await harness.click(OWNER, "Rename")
    await harness.click(OWNER, "Cancel")
    assert "Rename cancelled" in harness.last(OWNER).text
    await harness.text(OWNER, "Nope")
    assert "No sub-account matches this filter." in harness.last(OWNER).text
    await harness.click(OWNER, "Rename")
    await harness.command(OWNER, "/cancel")
    assert "Cancelled. Nothing was saved." in harness.last(OWNER).text
    row = await account(harness, acc)
    assert row is not None and row.nickname == "Hank"
    assert "account.renamed" not in await actions(harness)


async def test_rename_of_an_account_unbound_meanwhile_ends_the_step(harness: Harness) -> None:
    await setup_hank(harness)
    await open_hank(harness)
    details = harness.last(OWNER)
    await harness.click(OWNER, "Rename")
    await harness.press(OWNER, details.button("Unbind"), message_id=details.message_id)
    await harness.click(OWNER, "Yes, unbind")
    await harness.text(OWNER, "Hank Li")
    assert "That sub-account no longer exists." in harness.last(OWNER).text
    assert await steps(harness) in NO_FLOW_LEFT
    assert "account.renamed" not in await actions(harness)


# --- unreachable holders, languages -----------------------------------------------------------


async def test_owner_is_told_when_the_holder_blocked_the_bot(harness: Harness) -> None:
    acc = await setup_hank(harness)
    harness.api.blocked.add(HOLDER.id)
    await open_hank(harness)
    await harness.click(OWNER, "Suspend")
    assert ("⚠️ Hank could not be told about this change: they have blocked the bot."
            in harness.last(OWNER).text)
    row = await account(harness, acc)
    assert row is not None and row.status == "suspended"  # the change itself stands
    await open_hank(harness)
    await harness.click(OWNER, "Unbind")
    await harness.click(OWNER, "Yes, unbind")
    assert "Hank could not be told" in harness.last(OWNER).text
    assert await rows(harness, SubAccount) == []


async def test_each_reads_in_their_own_language(harness: Harness) -> None:
    chen = Person(5005, "陈", "zh-hans")
    await make_owner(harness)
    await onboard(harness, chen, HOLDER_PHONE)
    await add_sub_account(harness, holder=chen, phone=HOLDER_PHONE, nickname="Chen")
    await harness.command(OWNER, "/accounts")
    await harness.click(OWNER, "Chen")
    await harness.click(OWNER, "Turn IM on")
    assert "✅ IM is now on for Chen." in harness.last(OWNER).text
    assert "Tea House：您的IM权限（飞鸽）已开通，可以与店铺顾客聊天。" in harness.last(chen).text
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "简体中文")
    await harness.command(OWNER, "/accounts")
    text = harness.last(OWNER).text
    assert "Tea House — 子账号：1 / 50" in text
    assert "1. Chen · +86 139****9000" in text and "岗位：Operations · IM权限：已开通 · ✅ 已授权" in text
    await harness.click(OWNER, "Chen")
    details = harness.last(OWNER)
    assert "可见模块：首页、商品、订单" in details.text and "授权状态：✅ 已授权" in details.text
    assert "🗑 解绑子账号" in details.labels
    await harness.click(OWNER, "暂停")
    assert "暂停您的子账号" in harness.last(chen).text


async def test_every_account_button_fits_64_bytes(harness: Harness) -> None:
    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await add_sub_account(harness, holder=HOLDER, phone=HOLDER_PHONE)
    await ensure_role(harness, OWNER, "R" * 30)
    await open_hank(harness)
    await harness.click(OWNER, "Change role")
    data = [d for m in harness.messages(OWNER) for d in m.data]
    assert data and all(len(d.encode()) <= 64 for d in data)
    roles = await rows(harness, Role)
    assert len(roles) == 2
