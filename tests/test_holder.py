"""/me through the Application: what a holder sees, suspended and IM variants, leaving a shop."""

from __future__ import annotations

from sqlmodel import select

from models.accounts import check_phone_available
from models.shops import owned_shop
from models.tables import AuditEvent, PhoneBinding, SubAccount
from tests.harness import Harness, Person, rows
from tests.support.domain import SERVICE, add_sub_account
from tests.support.flows import make_owner, onboard, open_hank, setup_hank
from tests.support.people import (
    HOLDER,
    HOLDER_PHONE,
    OTHER_OWNER,
    OTHER_PHONE,
    OWNER,
    OWNER_PHONE,
    STRANGER,
    STRANGER_PHONE,
)


async def test_me_shows_shop_role_modules_im_off_and_no_customer_service(
    harness: Harness,
) -> None:
    await setup_hank(harness)
    await harness.command(HOLDER, "/me")
    me = harness.last(HOLDER)
    assert me.text.startswith("🏪 Tea House — your sub-account")
    assert "Nickname: Hank" in me.text and "Phone: +86 139****9000" in me.text
    assert "Role: Operations" in me.text and "Status: ✅ Authorized" in me.text
    assert "Modules you can see: Home, Products, Orders" in me.text
    assert "IM permission: off" in me.text
    assert "Customer service" not in me.text and "客服服务" not in me.text
    assert "chat with the shop's customers" not in me.text
    assert me.labels == ["🚪 Leave shop"]


async def test_im_enabled_holder_sees_the_customer_service_entry(harness: Harness) -> None:
    await setup_hank(harness, im=True)
    await harness.command(HOLDER, "/me")
    text = harness.last(HOLDER).text
    assert "💬 IM permission: on — you can chat with the shop's customers." in text
    assert "IM permission: off" not in text


async def test_suspended_holder_sees_that_and_no_modules(harness: Harness) -> None:
    await setup_hank(harness, im=True, role="Customer service", modules=SERVICE)
    await open_hank(harness)
    await harness.click(OWNER, "Suspend")
    await harness.command(HOLDER, "/me")
    text = harness.last(HOLDER).text
    assert "Status: ⏸ Suspended" in text and "no modules are available" in text
    assert "Modules you can see" not in text and "飞鸽" not in text
    await harness.click(OWNER, "Resume")
    await harness.command(HOLDER, "/me")
    assert "Modules you can see: Home, Orders, After-sales, Customer service" in (
        harness.last(HOLDER).text)


async def test_start_shows_a_holder_their_view(harness: Harness) -> None:
    await setup_hank(harness)
    await harness.command(HOLDER, "/start")
    assert "Tea House — your sub-account" in harness.last(HOLDER).text
    assert "🚪 Leave shop" in harness.last(HOLDER).labels


async def test_people_without_a_membership_get_a_polite_answer(harness: Harness) -> None:
    await make_owner(harness)
    await onboard(harness, STRANGER, STRANGER_PHONE)
    await harness.command(STRANGER, "/me")
    assert "not a sub-account of any shop" in harness.last(STRANGER).text
    assert harness.last(STRANGER).buttons == []
    await harness.command(OWNER, "/me")
    assert "You are the main account of Tea House" in harness.last(OWNER).text
    assert "/accounts" in harness.last(OWNER).text


async def test_leave_shop_confirms_tells_the_owner_and_frees_the_phone(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await harness.command(HOLDER, "/me")
    await harness.click(HOLDER, "Leave shop")
    assert "Leave Tea House?" in harness.last(HOLDER).text
    await harness.click(HOLDER, "Cancel")
    assert "Tea House — your sub-account" in harness.last(HOLDER).text
    assert len(await rows(harness, SubAccount)) == 1
    await harness.click(HOLDER, "Leave shop")
    await harness.click(HOLDER, "Yes, leave")
    assert "You left Tea House." in harness.last(HOLDER).text
    assert harness.last(HOLDER).buttons == []
    assert ("🚪 Hank (+86 139****9000) left Tea House. The sub-account is deleted and the "
            "phone number is free.") in harness.last(OWNER).text
    assert await rows(harness, SubAccount) == []
    assert [b.phone for b in await rows(harness, PhoneBinding)] == [OWNER_PHONE]
    left = [e for e in await rows(harness, AuditEvent) if e.action == "account.left"]
    assert [(e.actor_id, e.object_id) for e in left] == [(HOLDER.id, str(acc))]
    # the phone is free for any shop
    await make_owner(harness, OTHER_OWNER, OTHER_PHONE, shop="Noodle Bar")
    async with harness.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OTHER_OWNER.id)
        assert shop is not None
        await check_phone_available(session, shop, HOLDER_PHONE)
    await harness.command(HOLDER, "/me")
    assert "not a sub-account of any shop" in harness.last(HOLDER).text


async def test_leave_buttons_act_only_on_the_pressers_current_membership(
    harness: Harness,
) -> None:
    hank = await setup_hank(harness)
    await onboard(harness, STRANGER, STRANGER_PHONE)
    sam = await add_sub_account(harness, holder=STRANGER, phone=STRANGER_PHONE)
    await harness.command(HOLDER, "/me")
    await harness.command(STRANGER, "/me")
    # Sam forges Hank's buttons; the owner presses a holder's button
    for data in (f"me:ly:{hank}", f"me:lv:{hank}", "me:ly:x", "me:zz:1"):
        await harness.press(STRANGER, data)
    await harness.press(OWNER, f"me:ly:{hank}")
    assert harness.answers()[-5:] == ["This menu is no longer valid."] * 5
    assert len(await rows(harness, SubAccount)) == 2
    # Sam leaves; his old confirm button is stale afterwards
    await harness.click(STRANGER, "Leave shop")
    confirm = harness.last(STRANGER)
    await harness.click(STRANGER, "Yes, leave")
    await harness.press(STRANGER, f"me:ly:{sam}", message_id=confirm.message_id)
    assert harness.answers()[-1] == "This menu is no longer valid."
    assert [a.id for a in await rows(harness, SubAccount)] == [hank]


async def test_leave_button_is_stale_after_the_owner_unbound(harness: Harness) -> None:
    acc = await setup_hank(harness)
    await harness.command(HOLDER, "/me")
    await open_hank(harness)
    await harness.click(OWNER, "Unbind")
    await harness.click(OWNER, "Yes, unbind")
    await harness.press(HOLDER, f"me:lv:{acc}")
    assert harness.answers()[-1] == "This menu is no longer valid."
    events = [e.action for e in await rows(harness, AuditEvent)]
    assert "account.left" not in events


async def test_me_in_chinese_and_owner_told_in_their_language(harness: Harness) -> None:
    chen = Person(5005, "陈", "zh-hans")
    await make_owner(harness)
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "简体中文")
    await onboard(harness, chen, HOLDER_PHONE)
    await add_sub_account(harness, holder=chen, phone=HOLDER_PHONE, nickname="小陈", im=True)
    await harness.command(chen, "/me")
    text = harness.last(chen).text
    assert "Tea House — 我的子账号" in text and "昵称：小陈" in text
    assert "授权状态：✅ 已授权" in text and "可见模块：首页、商品、订单" in text
    assert "💬 IM权限（飞鸽）：已开通，您可以与店铺顾客聊天。" in text
    await harness.click(chen, "退出店铺")
    await harness.click(chen, "确定退出")
    assert "您已退出 Tea House" in harness.last(chen).text
    assert "小陈（+86 139****9000）已退出 Tea House" in harness.last(OWNER).text


async def test_leave_still_works_when_the_owner_blocked_the_bot(harness: Harness) -> None:
    await setup_hank(harness)
    harness.api.blocked.add(OWNER.id)
    await harness.command(HOLDER, "/me")
    await harness.click(HOLDER, "Leave shop")
    await harness.click(HOLDER, "Yes, leave")
    assert "You left Tea House." in harness.last(HOLDER).text
    assert await rows(harness, SubAccount) == []
    async with harness.app.bot_data["deps"].sessions() as session:
        assert (await session.exec(select(PhoneBinding).where(
            PhoneBinding.phone == HOLDER_PHONE))).first() is None
