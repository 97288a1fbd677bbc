"""/accounts at scale, through the Application: a typed text filters the list (a part of a
nickname, or the last digits of a phone), filter buttons by role, status and IM, a clear
filter line and ✖️, paging that keeps the filter — in English and 简体中文."""

from __future__ import annotations

from datetime import timedelta

from models.accounts import AccountFilter, filtered_page, set_im, set_suspended
from models.lifecycle.access import AccountState
from models.shops import owned_shop
from models.tables import Draft, SubAccount
from tests.harness import Harness, Person, rows
from tests.support.domain import add_sub_account
from tests.support.flows import (
    make_owner,
    onboard,
    standard_setup,
    to_code_step,
    to_confirm_step,
)
from tests.support.people import OWNER

SERVICE = ("home", "orders", "customer_service")


def staff(n: int, locale: str = "en") -> tuple[Person, str]:
    """The n-th staff member and their phone (+86 137 0000 00NN)."""
    return Person(6000 + n, f"Staff{n:02d}", locale), f"+861370000{n:04d}"


async def shop_of(h: Harness, count: int) -> dict[int, int]:
    """Tea House with ``count`` staff: odd ones Operations, even ones Customer service;
    Staff03 suspended, Staff04 expired (suspended at its access end), IM on for Staff05.
    The account ids by staff number."""
    await make_owner(h)
    ids = {}
    for n in range(1, count + 1):
        person, phone = staff(n)
        await onboard(h, person, phone)
        role = ("Operations", ("home", "products", "orders")) if n % 2 else \
            ("Customer service", SERVICE)
        ids[n] = await add_sub_account(h, holder=person, phone=phone, role=role[0],
                                       modules=role[1])
    async with h.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        now = h.clock.now()
        for n in (3, 4)[:count - 2] if count > 2 else ():
            await set_suspended(session, shop_id=shop.id or 0, actor_id=OWNER.id,
                                account_id=ids[n], suspended=True, now=now)
        if count >= 4:
            expired = await session.get(SubAccount, ids[4])
            assert expired is not None
            expired.expired_at = now
            session.add(expired)
        if count >= 5:
            await set_im(session, shop_id=shop.id or 0, actor_id=OWNER.id, account_id=ids[5],
                         enabled=True, now=now)
        await session.commit()
    return ids


def listed(h: Harness, who: Person = OWNER) -> list[str]:
    """The nicknames on the account buttons of the latest list."""
    # without the marks of a suspended or expired account and of a selection
    return [label.split(" · ")[0].lstrip("⏸⌛☐☑️ ") for label in h.last(who).labels
            if " · +86" in label]


async def test_typing_part_of_a_nickname_or_the_last_digits_filters(harness: Harness) -> None:
    await shop_of(harness, 12)
    await harness.command(OWNER, "/accounts")
    first = harness.last(OWNER)
    assert "send part of a nickname or the last 4 digits" in first.text
    await harness.text(OWNER, "staff1")  # case-insensitive part of a nickname
    shown = harness.last(OWNER)
    assert listed(harness) == ["Staff10", "Staff11", "Staff12"]
    assert "🔎 Filter: “staff1” ✖️" in shown.text
    assert "Showing 3 of 12." in shown.text
    assert "12 of 50" in shown.text  # the seats are still the shop's
    await harness.text(OWNER, "0007")  # the last 4 digits of a phone
    assert listed(harness) == ["Staff07"]
    assert "🔎 Filter: “0007” ✖️" in harness.last(OWNER).text
    await harness.text(OWNER, "０００７")  # full-width digits, as a Chinese keyboard types them
    assert listed(harness) == ["Staff07"]
    await harness.text(OWNER, "nobody")
    assert "No sub-account matches this filter." in harness.last(OWNER).text
    await harness.click(OWNER, "✖️ Clear filter")
    cleared = harness.last(OWNER)
    assert "Filter" not in cleared.text.split("\n")[1]
    assert len(listed(harness)) == 10 and "Page 1 of 2" in cleared.text
    assert "✖️ Clear filter" not in cleared.labels


async def test_filter_buttons_by_role_status_and_im(harness: Harness) -> None:
    await shop_of(harness, 6)
    await harness.command(OWNER, "/accounts")
    await harness.click(OWNER, "🧩 Any role")
    assert "Show the sub-accounts with which role?" in harness.last(OWNER).text
    await harness.click(OWNER, "Customer service")
    assert listed(harness) == ["Staff02", "Staff04", "Staff06"]
    assert "🔎 Filter: role Customer service ✖️" in harness.last(OWNER).text
    await harness.click(OWNER, "Status: any")
    assert "Status: ✅ Authorized" in harness.last(OWNER).labels
    assert listed(harness) == ["Staff02", "Staff06"]
    await harness.click(OWNER, "Status: ✅ Authorized")  # → suspended: not the expired one
    assert listed(harness) == []
    await harness.click(OWNER, "Status: ⏸ Suspended")  # → expired
    assert listed(harness) == ["Staff04"]
    text = harness.last(OWNER).text
    assert "🔎 Filter: role Customer service · ⌛ Expired ✖️" in text
    await harness.click(OWNER, "✖️ Clear filter")
    await harness.click(OWNER, "IM: any")
    assert listed(harness) == ["Staff05"]
    await harness.click(OWNER, "IM: IM on")
    assert listed(harness) == ["Staff01", "Staff02", "Staff03", "Staff04", "Staff06"]
    await harness.click(OWNER, "IM: IM off")
    assert len(listed(harness)) == 6
    # a filter text and a button together
    await harness.click(OWNER, "Status: any")
    await harness.text(OWNER, "staff0")
    assert listed(harness) == ["Staff01", "Staff02", "Staff05", "Staff06"]


async def test_paging_keeps_the_filter(harness: Harness) -> None:
    await shop_of(harness, 24)
    await harness.command(OWNER, "/accounts")
    await harness.click(OWNER, "🧩 Any role")
    await harness.click(OWNER, "Operations")
    first = harness.last(OWNER)
    assert "Showing 12 of 24." in first.text and "Page 1 of 2" in first.text
    assert listed(harness)[:2] == ["Staff01", "Staff03"]
    await harness.click(OWNER, "Next ▶️")
    second = harness.last(OWNER)
    assert second.message_id == first.message_id
    assert "Page 2 of 2" in second.text and listed(harness) == ["Staff21", "Staff23"]
    assert "11. Staff21" in second.text
    await harness.click(OWNER, "Staff21")
    await harness.click(OWNER, "All accounts")
    assert "🔎 Filter: role Operations ✖️" in harness.last(OWNER).text


async def test_a_filter_button_of_an_old_list_does_not_discard_another_flow(
    harness: Harness,
) -> None:
    await shop_of(harness, 2)
    await harness.command(OWNER, "/accounts")
    old = harness.last(OWNER)
    await harness.command(OWNER, "/newaccount")
    await harness.press(OWNER, old.button("Status: any"), message_id=old.message_id)
    assert harness.answers()[-1] == "This menu is no longer valid."
    assert [d.flow for d in await rows(harness, Draft)] == ["newaccount"]


async def test_the_filter_in_chinese(harness: Harness) -> None:
    owner = Person(OWNER.id, OWNER.first_name, "zh-hans", OWNER.username)
    await shop_of(harness, 4)
    await harness.command(owner, "/language")
    await harness.click(owner, "简体中文")
    await harness.command(owner, "/accounts")
    assert "🔎 查找子账号：发送昵称中的几个字，或手机号后4位。" in harness.last(owner).text
    await harness.text(owner, "0002")
    text = harness.last(owner).text
    assert "🔎 筛选：“0002” ✖️" in text and "显示1个，共4个。" in text
    assert "✖️ 清除筛选" in harness.last(owner).labels
    await harness.click(owner, "状态：全部")
    assert "状态：✅ 已授权" in harness.last(owner).labels
    await harness.click(owner, "✖️ 清除筛选")
    await harness.click(owner, "状态：全部")
    await harness.click(owner, "状态：✅ 已授权")
    await harness.click(owner, "状态：⏸ 已暂停")
    assert "🔎 筛选：⌛ 已到期 ✖️" in harness.last(owner).text
    assert listed(harness, owner) == ["Staff04"]


async def test_filtered_page_domain(harness: Harness) -> None:
    ids = await shop_of(harness, 5)
    async with harness.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        found = await filtered_page(session, shop.id or 0, 0,
                                    AccountFilter(state=AccountState.SUSPENDED))
        assert [a.id for a, _ in found.rows] == [ids[3]] and found.total == 1
        found = await filtered_page(session, shop.id or 0, 5, AccountFilter(text="STAFF"),
                                    size=2)
        assert (found.page, found.pages, found.total) == (2, 3, 5)
        assert [a.id for a, _ in found.rows] == [ids[5]]


async def test_the_list_after_confirm_leaves_no_draft_and_its_buttons_open_it(
    harness: Harness,
) -> None:
    await standard_setup(harness)
    await to_code_step(harness)
    await to_confirm_step(harness)
    await harness.click(OWNER, "Confirm")
    assert "Add another" in harness.last(OWNER).labels[0]  # only the new account is shown
    assert await rows(harness, Draft) == []
    await harness.click(OWNER, "👥 Accounts")
    assert "Hank · +86 139****9000" in harness.last(OWNER).labels
    await harness.click(OWNER, "Status: any")
    assert [(d.flow, d.step) for d in await rows(harness, Draft)] == [("accounts", "browse")]
    assert "🔎 Filter: ✅ Authorized ✖️" in harness.last(OWNER).text
    await harness.text(OWNER, "hank")
    assert listed(harness) == ["Hank"]


async def test_all_accounts_returns_to_the_filtered_page_that_holds_the_account(
    harness: Harness,
) -> None:
    await shop_of(harness, 24)  # Staff03 suspended, Staff04 expired
    await harness.command(OWNER, "/accounts")
    await harness.click(OWNER, "Status: any")  # → authorized: 22 of 24, three pages
    await harness.click(OWNER, "Next ▶️")
    page_2 = harness.last(OWNER)
    assert "Page 2 of 3" in page_2.text and "19. Staff21" in page_2.text
    assert listed(harness) == [f"Staff{n:02d}" for n in range(13, 23)]
    await harness.click(OWNER, "Staff21 ·")
    shown = await harness.click(OWNER, "All accounts")
    back = shown[-1]
    # the list they came from, on its page 2 (Staff21 is on page 3 of the whole list)
    assert "🔎 Filter: ✅ Authorized ✖️" in back.text and "Showing 22 of 24." in back.text
    assert "Page 2 of 3" in back.text and "19. Staff21" in back.text
    assert listed(harness) == [f"Staff{n:02d}" for n in range(13, 23)]
    assert "Status: ✅ Authorized" in back.labels
    # suspended from there, Staff21 leaves the filter: back to the page it was on
    await harness.click(OWNER, "Staff21 ·")
    await harness.click(OWNER, "Suspend")
    back = (await harness.click(OWNER, "All accounts"))[-1]
    assert "Showing 21 of 24." in back.text and "Page 2 of 3" in back.text
    assert listed(harness) == [*(f"Staff{n:02d}" for n in range(13, 21)), "Staff22", "Staff23"]
    # unbound from a filtered list, the owner sees that list, on the account's page
    await harness.click(OWNER, "Staff22 ·")
    await harness.click(OWNER, "Unbind")
    after = (await harness.click(OWNER, "Yes, unbind"))[-1]
    assert "Staff22 (+86 137****0022) is unbound" in after.text
    assert "🔎 Filter: ✅ Authorized ✖️" in after.text and "Showing 20 of 23." in after.text
    assert "Page 2 of 2" in after.text
    assert listed(harness) == [*(f"Staff{n:02d}" for n in range(13, 21)), "Staff23", "Staff24"]


async def test_all_accounts_from_a_typed_filter_returns_to_its_first_page(
    harness: Harness,
) -> None:
    await shop_of(harness, 24)
    await harness.command(OWNER, "/accounts")
    await harness.click(OWNER, "🧩 Any role")
    await harness.click(OWNER, "Operations")
    await harness.text(OWNER, "staff")  # a typed text, the role kept: 12 of 24, two pages
    first = harness.last(OWNER)
    assert "Page 1 of 2" in first.text and "6. Staff11" in first.text
    await harness.click(OWNER, "Staff11 ·")
    back = (await harness.click(OWNER, "All accounts"))[-1]
    # page 1 of the filtered list (Staff11 is on page 2 of the whole list)
    assert "🔎 Filter: “staff” · role Operations ✖️" in back.text
    assert "Page 1 of 2" in back.text and "6. Staff11" in back.text
    assert listed(harness) == [f"Staff{n:02d}" for n in range(1, 20, 2)]


async def test_all_accounts_after_typing_an_access_end_keeps_the_filtered_list(
    harness: Harness,
) -> None:
    await shop_of(harness, 24)
    await harness.command(OWNER, "/accounts")
    await harness.click(OWNER, "Status: any")  # → authorized: 22 of 24, three pages
    await harness.click(OWNER, "Next ▶️")
    await harness.click(OWNER, "Staff21 ·")
    await harness.click(OWNER, "Access end")
    await harness.click(OWNER, "Type a date")
    day = harness.clock.now() + timedelta(days=40)
    await harness.text(OWNER, f"{day:%Y-%m-%d}")
    await harness.click(OWNER, "Confirm")
    back = (await harness.click(OWNER, "All accounts"))[-1]
    # the list the owner came from, on its page 2 — not the whole list
    assert "🔎 Filter: ✅ Authorized ✖️" in back.text and "Showing 22 of 24." in back.text
    assert "Page 2 of 3" in back.text and "19. Staff21" in back.text
    # and after a cancelled date, the same
    await harness.click(OWNER, "Staff21 ·")
    await harness.click(OWNER, "Access end")
    await harness.click(OWNER, "Type a date")
    await harness.click(OWNER, "Cancel")
    await harness.click(OWNER, "Back")  # the access card → the account
    back = (await harness.click(OWNER, "All accounts"))[-1]
    assert "🔎 Filter: ✅ Authorized ✖️" in back.text and "Page 2 of 3" in back.text
    drafts = await rows(harness, Draft)
    assert [(d.flow, d.step) for d in drafts] == [("accounts", "browse")]
