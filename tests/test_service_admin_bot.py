"""/service through the Application: entries with their link and QR code, groups with members,
weights and overflow, settings, the live view and today's figures, /log, forged buttons, staff,
both languages (SQLite, and PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import segno
from sqlmodel import col, select

from handlers.service_common import qr_png
from models.service.agents import agent_for, set_status
from models.service.conversations import end, open_or_resume, rate
from models.service.entries import entry_by_token, hash_token
from models.service.messages import record_agent_message, record_customer_message
from models.service.tables import Agent, Entry, GroupMember, ServiceGroup, ServiceSettings
from models.shops import owned_shop
from models.tables import AuditEvent
from tests.harness import Harness, Person, rows
from tests.support.domain import add_sub_account
from tests.support.flows import make_owner, onboard
from tests.support.people import HOLDER, HOLDER_PHONE, OTHER_OWNER, OTHER_PHONE, OWNER, STRANGER

LINK = re.compile(r"https://t\.me/subaccount_test_bot\?start=(cs_[A-Za-z0-9_-]+)")
WEI = Person(5005, "Wei", "zh-hans")
WEI_PHONE = "+8613500135000"
CUSTOMERS = (Person(6001, "Cara"), Person(6002, "Cole"))


def token_in(text: str) -> str:
    found = LINK.search(text)
    assert found, text
    return found.group(1)


async def new_entry(h: Harness, name: str, group: str = "No group") -> str:
    """The owner makes an entry from /service; returns its token (from the card)."""
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Entries")
    await h.click(OWNER, "New entry")
    await h.text(OWNER, name)
    await h.click(OWNER, group)
    card = [m for m in h.messages(OWNER) if m.text.startswith("✅ Entry")][-1]
    return token_in(card.text)


async def new_group(h: Harness, name: str) -> int:
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Groups")
    await h.click(OWNER, "New group")
    await h.text(OWNER, name)
    groups = [g for g in await rows(h, ServiceGroup) if g.name == name]
    assert groups
    return groups[0].id or 0


async def test_entry_link_qr_regenerate_rename_delete(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await h.command(OWNER, "/service")
    assert "Tea House" in h.last(OWNER).text and "Entries: 0" in h.last(OWNER).text
    await h.click(OWNER, "Entries")
    await h.click(OWNER, "New entry")
    await h.text(OWNER, "   ")
    assert "can't be empty" in h.last(OWNER).text and "called" in h.last(OWNER).text
    assert await rows(h, Entry) == []  # nothing written before the group is chosen
    await h.text(OWNER, "Product page")
    assert "Which customer-service group" in h.last(OWNER).text
    await h.click(OWNER, "No group")
    card = h.messages(OWNER)[-2]
    token = token_in(card.text)
    assert "Entry “Product page” created" in card.text and "shown only now" in card.text
    # the QR code photo: a PNG of exactly that link, the link as its caption
    photo = h.api.methods("sendPhoto")[-1]
    upload = h.api.files[photo.result["photo"][0]["file_id"]]
    link = f"https://t.me/subaccount_test_bot?start={token}"
    assert upload.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert upload.data == qr_png(link)
    assert segno.make(link, error="m").designator  # segno encodes the same link
    assert link in photo.result["caption"] and int(photo.params["chat_id"]) == OWNER.id
    (entry,) = await rows(h, Entry)
    assert entry.name == "Product page" and entry.token_hash == hash_token(token)
    assert token not in str([e.detail for e in await rows(h, AuditEvent)])
    # afterwards the card no longer shows the link
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Entries")
    await h.click(OWNER, "Product page")
    assert LINK.search(h.last(OWNER).text) is None and "Regenerate" in h.last(OWNER).text
    # regenerate: confirm first, then the old link is dead
    await h.click(OWNER, "Regenerate")
    assert "stop working at once" in h.last(OWNER).text
    async with h.app.bot_data["deps"].sessions() as session:
        assert await entry_by_token(session, token) is not None  # not yet
    await h.click(OWNER, "Yes, new link")
    fresh = token_in(h.messages(OWNER)[-2].text)
    assert fresh != token and fresh in h.api.methods("sendPhoto")[-1].result["caption"]
    async with h.app.bot_data["deps"].sessions() as session:
        assert await entry_by_token(session, token) is None
        assert (await entry_by_token(session, fresh)) is not None
    # rename (a bad name re-prompts), change group, delete with a confirmation
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Entries")
    await h.click(OWNER, "Product page")
    await h.click(OWNER, "Rename")
    await h.text(OWNER, "x" * 31)
    assert "too long" in h.last(OWNER).text and "new name" in h.last(OWNER).text
    await h.text(OWNER, "After-sales")
    assert "renamed to “After-sales”" in h.last(OWNER).text
    gid = await new_group(h, "Pre-sales")
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Entries")
    await h.click(OWNER, "After-sales")
    await h.click(OWNER, "Change group")
    await h.click(OWNER, "Pre-sales")
    assert "Group: Pre-sales" in h.last(OWNER).text
    assert (await rows(h, Entry))[0].group_id == gid
    await h.click(OWNER, "Delete")
    assert await rows(h, Entry)
    await h.click(OWNER, "Yes, delete")
    assert "deleted" in h.last(OWNER).text and await rows(h, Entry) == []


async def test_groups_members_weights_overflow(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE, nickname="Hank", im=True)
    await onboard(h, STRANGER, "+8613600136000")
    await add_sub_account(h, holder=STRANGER, phone="+8613600136000", nickname="Sam")  # IM off
    gid = await new_group(h, "Pre-sales")
    assert "Group “Pre-sales” created" in h.last(OWNER).text
    await h.click(OWNER, "Add member")
    labels = h.last(OWNER).labels
    assert "Hank" in labels and "Sam" not in labels  # only IM-enabled sub-accounts
    await h.click(OWNER, "Hank")
    assert "type a whole number from 1 to 100" in h.last(OWNER).text
    for bad in ("abc", "0", "101"):
        await h.text(OWNER, bad)
        assert "must be a whole number from 1 to 100" in h.last(OWNER).text
        assert "Weight of Hank" in h.last(OWNER).text  # the same prompt
    assert await rows(h, GroupMember) == []
    await h.text(OWNER, "30")
    assert "Hank · weight 30" in h.last(OWNER).text
    (member,) = await rows(h, GroupMember)
    assert (member.group_id, member.weight) == (gid, 30)
    # the owner answers too, and joins
    await h.command(OWNER, "/service")
    await h.click(OWNER, "I answer too")
    assert "You can answer customers now" in h.last(OWNER).text
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Groups")
    await h.click(OWNER, "Pre-sales")
    await h.click(OWNER, "Add member")
    await h.click(OWNER, "You (main account)")
    await h.text(OWNER, "10")
    assert "You (main account) · weight 10" in h.last(OWNER).text
    # set a weight, remove a member
    await h.click(OWNER, "⚖️ Hank")
    await h.click(OWNER, "Set weight")
    await h.text(OWNER, "55")
    weights = {m.agent_id: m.weight for m in await rows(h, GroupMember)}
    assert sorted(weights.values()) == [10, 55]
    await h.click(OWNER, "⚖️ You")
    await h.click(OWNER, "Remove from group")
    assert "removed from the group" in h.last(OWNER).text
    assert [m.weight for m in await rows(h, GroupMember)] == [55]
    # overflow: another group, never itself, no circle
    other = await new_group(h, "After-sales")
    await h.click(OWNER, "Overflow group")
    assert "After-sales" not in h.last(OWNER).labels  # not itself
    await h.click(OWNER, "Pre-sales")
    assert "Overflow: Pre-sales" in h.last(OWNER).text
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Groups")
    await h.click(OWNER, "Pre-sales")
    await h.click(OWNER, "Overflow group")
    await h.click(OWNER, "After-sales")
    assert "in a circle" in h.last(OWNER).text
    groups = {g.id: g for g in await rows(h, ServiceGroup)}
    assert groups[other].overflow_group_id == gid and groups[gid].overflow_group_id is None
    # rename (a taken name re-prompts), delete with a confirmation
    await h.click(OWNER, "Rename")
    await h.text(OWNER, "after-SALES")
    assert "already has a customer-service group" in h.last(OWNER).text
    await h.text(OWNER, "Presales")
    assert "renamed to “Presales”" in h.last(OWNER).text
    await h.click(OWNER, "Delete")
    await h.click(OWNER, "Yes, delete")
    assert [g.name for g in await rows(h, ServiceGroup)] == ["After-sales"]
    assert (await rows(h, ServiceGroup))[0].overflow_group_id is None
    # every change is in /log, described
    await h.command(OWNER, "/log")
    log = h.last(OWNER).text
    assert "Added Hank to the group “Pre-sales” (weight 30)" in log
    assert "Changed the weight of Hank in “Pre-sales”: 30 → 55" in log
    assert "Deleted the group “Presales”" in log


async def test_settings_edited_and_persisted(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Settings")
    card = h.last(OWNER).text
    assert "Routing: by weight" in card and "Chat limit per agent: 5" in card
    await h.click(OWNER, "Chat limit")
    for bad in ("0", "many", "101"):
        await h.text(OWNER, bad)
        assert "must be a whole number from 1 to 100" in h.last(OWNER).text
        assert "Chat limit" in h.last(OWNER).text and "is now 5" in h.last(OWNER).text
    await h.text(OWNER, "8")
    assert "Chat limit saved" in h.last(OWNER).text
    await h.click(OWNER, "Route least busy first")
    await h.click(OWNER, "Re-route when too slow: turn on")
    await h.click(OWNER, "First response")
    await h.text(OWNER, "5")
    assert "from 10 to 86400" in h.last(OWNER).text
    await h.text(OWNER, "90")
    await h.click(OWNER, "Offline message ZH")
    await h.text(OWNER, "客服不在线，请留言")
    await h.click(OWNER, "Working hours EN")
    await h.text(OWNER, "x" * 201)
    assert "too long" in h.last(OWNER).text
    await h.text(OWNER, "9:00-18:00 Beijing time")
    (settings,) = await rows(h, ServiceSettings)
    assert (settings.default_cap, settings.mode, settings.reroute_on_breach) == (
        8, "least_busy", True)
    assert settings.first_response_seconds == 90 and settings.offline_text_zh == "客服不在线，请留言"
    assert settings.hours_text_en == "9:00-18:00 Beijing time"
    card = h.last(OWNER).text
    assert "Routing: least busy first" in card and "Re-route when too slow: on" in card
    await h.click(OWNER, "Working hours EN")
    await h.click(OWNER, "Clear")
    assert (await rows(h, ServiceSettings))[0].hours_text_en == ""
    await h.command(OWNER, "/log")
    assert "Changed the customer-service settings: Chat limit" in h.last(OWNER).text


async def test_live_view_and_todays_figures(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE, nickname="Hank", im=True)
    await new_group(h, "Pre-sales")
    await h.click(OWNER, "Add member")
    await h.click(OWNER, "Hank")
    await h.text(OWNER, "10")
    token = await new_entry(h, "Product page", "Pre-sales")
    for customer in CUSTOMERS:
        await h.command(customer, "/start")
    deps = h.app.bot_data["deps"]
    policy, start = deps.service_policy, h.clock.now()
    async with deps.sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None and shop.id is not None
        hank = await agent_for(session, shop_id=shop.id, user_id=HOLDER.id)
        assert hank is not None and hank.id is not None
        await set_status(session, policy, shop_id=shop.id, agent_id=hank.id, status="online",
                         actor_id=HOLDER.id, now=start)
        chats = []
        for n, customer in enumerate(CUSTOMERS):
            opened = await open_or_resume(session, policy, customer_id=customer.id, token=token,
                                          now=start + timedelta(seconds=n))
            cid = opened.conversation.id or 0
            await record_customer_message(session, policy, conversation_id=cid,
                                          customer_message_id=1, now=start + timedelta(seconds=n))
            chats.append(cid)
        await record_agent_message(session, policy, conversation_id=chats[0],
                                   agent_user_id=HOLDER.id, agent_message_id=2,
                                   customer_message_id=3, now=start + timedelta(seconds=30))
        await session.commit()
    h.clock.advance(seconds=40)
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Live view")
    live = h.last(OWNER).text
    assert "🟢 Online: 1 · ☕ On break: 0 · ⚫ Offline: 0" in live
    assert "🟢 Hank — chats 2/5" in live
    assert "Queue: 0" in live
    assert "Chats: 2 (answered 1, open 2)" in live
    assert "First response: half of the chats within 30 seconds, 9 in 10 within 30 seconds" \
        in live
    assert "Ratings: none yet today" in live
    async with deps.sessions() as session:
        await end(session, policy, conversation_id=chats[0], by="customer",
                  actor_id=CUSTOMERS[0].id, now=h.clock.now())
        await rate(session, conversation_id=chats[0], customer_id=CUSTOMERS[0].id, score=4,
                   now=h.clock.now())
        await session.commit()
    await h.click(OWNER, "Refresh")
    live = h.last(OWNER).text
    assert "Hank — chats 1/5" in live and "Ratings: 1, average 4.0 of 5" in live
    assert "Chats: 2 (answered 1, open 1)" in live


async def test_forged_and_foreign_buttons_are_stale(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, shop="Rival")
    gid = await new_group(h, "Pre-sales")
    await new_entry(h, "Product page")
    (entry,) = await rows(h, Entry)
    await onboard(h, STRANGER, "+8613600136000")
    before = len(h.answers())
    for who, data in ((OTHER_OWNER, f"sg:o:{gid}"), (OTHER_OWNER, f"sv:eo:{entry.id}"),
                      (OTHER_OWNER, f"sv:edy:{entry.id}"), (OTHER_OWNER, f"sg:dy:{gid}"),
                      (STRANGER, "sv:home"), (STRANGER, "sl:r"), (OWNER, "sg:o:999999"),
                      (OWNER, "ss:f:route_seq"), (OWNER, "sv:ng:1"), (OWNER, "sg:o:x"),
                      (OWNER, f"sg:m:{gid}:12345"), (OWNER, "sv:eo:99999999999")):
        await h.press(who, data)
    assert h.answers()[before:] == ["This menu is no longer valid."] * 12
    assert len(await rows(h, Entry)) == 1 and len(await rows(h, ServiceGroup)) == 1


async def test_staff_pointed_to_me_and_help_lists_service(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE, im=True)
    await h.command(HOLDER, "/service")
    assert "/me" in h.last(HOLDER).text and "main account" in h.last(HOLDER).text
    await h.command(HOLDER, "/help")
    assert "/service" not in h.last(HOLDER).text
    await h.command(OWNER, "/help")
    assert "/service — customer service" in h.last(OWNER).text
    await h.command(OWNER, "/start")
    await h.click(OWNER, "Customer service")
    assert "Tea House</b>" in h.api.chat(OWNER.id)[-1]["_raw"]
    commands = [c.params for c in h.api.methods("setMyCommands")]
    assert any("service" in str(p["commands"]) for p in commands)
    assert await rows(h, Agent) == []


async def test_in_chinese(harness: Harness) -> None:
    h = harness
    await make_owner(h, WEI, WEI_PHONE, shop="茶馆")
    await h.command(WEI, "/service")
    assert "客服分流" in h.last(WEI).text and "绑定页面" in h.last(WEI).text
    await h.click(WEI, "客服分组")
    await h.click(WEI, "新建客服分组")
    await h.text(WEI, "售前")
    assert "已创建客服分组“售前”" in h.last(WEI).text
    await h.click(WEI, "添加成员")
    assert "没有其他人可以加入" in h.last(WEI).text
    await h.command(WEI, "/service")
    await h.click(WEI, "设置")
    await h.click(WEI, "接待上限")
    await h.text(WEI, "0")
    assert "接待上限" in h.last(WEI).text
    await h.text(WEI, "3")
    assert "接待上限已保存" in h.last(WEI).text
    await h.command(WEI, "/service")
    await h.click(WEI, "实时概况")
    assert "在线：0" in h.last(WEI).text and "今日" in h.last(WEI).text
    await h.command(WEI, "/log")
    assert "创建了客服分组“售前”" in h.last(WEI).text
    assert "更改了客服分流设置：接待上限" in h.last(WEI).text
    async with h.app.bot_data["deps"].sessions() as session:
        found = (await session.exec(select(ServiceGroup).where(
            col(ServiceGroup.name) == "售前"))).all()
    assert len(found) == 1


#: every customer-service audit action, with the detail the domain records
SERVICE_ACTIONS: dict[str, tuple[str, dict[str, object]]] = {
    "service.entry_created": ("service_entry", {"name": "Product page", "group": 1}),
    "service.entry_renamed": ("service_entry", {"name": "After-sales", "before": "Product"}),
    "service.entry_group": ("service_entry", {"name": "Product page", "before": 1, "after": 2}),
    "service.entry_regenerated": ("service_entry", {"name": "Product page"}),
    "service.entry_deleted": ("service_entry", {"name": "Product page"}),
    "service.group_created": ("service_group", {"name": "Pre-sales"}),
    "service.group_renamed": ("service_group", {"name": "Presales", "before": "Pre-sales"}),
    "service.group_overflow": ("service_group", {"name": "Pre-sales", "before": None, "after": 2}),
    "service.group_deleted": ("service_group", {"name": "Pre-sales"}),
    "service.member_added": ("service_group", {"name": "Pre-sales", "agent": 7, "weight": 30}),
    "service.member_weight": ("service_group", {"name": "Pre-sales", "agent": 7, "before": 30,
                                                "after": 55}),
    "service.member_removed": ("service_group", {"name": "Pre-sales", "agent": 7}),
    "service.agent_enrolled": ("agent", {"user": 2002, "kind": "sub"}),
    "service.agent_released": ("agent", {"reason": "im_off", "moved": 2}),
    "service.status": ("agent", {"before": "offline", "after": "break"}),
    "service.cap": ("agent", {"before": None, "after": 3}),
    "service.settings": ("service", {"before": {"default_cap": 5}, "after": {"default_cap": 8}}),
    "service.opened": ("conversation", {"entry": 1}),
    "service.assigned": ("conversation", {"agent": 7, "via": "group", "previous": None}),
    "service.transferred": ("conversation", {"before": 7, "after": 8, "group": None}),
    "service.ended": ("conversation", {"by": "customer"}),
    "service.rated": ("conversation", {"score": 4}),
    "service.breach": ("conversation", {"agent": 7, "rerouted": False}),
}


def test_every_service_action_is_described_in_both_languages() -> None:
    from types import SimpleNamespace

    from handlers.auditlog import describe
    from handlers.i18n import LOCALES, t
    from models.policy import Policy

    for locale in LOCALES:
        ctx: Any = SimpleNamespace(locale=locale, policy=Policy(),
                                   t=lambda key, _l=locale, **p: t(_l, key, **p))
        generic = describe(ctx, AuditEvent(action="service.unknown", object_type="x"))
        seen = set()
        for action, (object_type, detail) in SERVICE_ACTIONS.items():
            text = describe(ctx, AuditEvent(action=action, object_type=object_type,
                                            object_id=7, detail=detail), {7: "Hank"})
            assert "{" not in text and text != generic and "service." not in text, text
            seen.add(text)
        assert len(seen) == len(SERVICE_ACTIONS)
    en: Any = SimpleNamespace(locale="en", policy=Policy(), t=lambda key, **p: t("en", key, **p))
    zh: Any = SimpleNamespace(locale="zh-Hans", policy=Policy(),
                              t=lambda key, **p: t("zh-Hans", key, **p))
    status = AuditEvent(action="service.status", object_type="agent", object_id=7,
                        detail={"before": "offline", "after": "break"})
    assert describe(en, status, {7: "Hank"}) == "Hank: status offline → on break"
    assert describe(zh, status, {7: "Hank"}) == "Hank的状态：离线 → 小休"
