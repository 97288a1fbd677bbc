"""The customer's side and the owner's live view of customer service, as people read them
(through the Application): ending a chat leaves the notice of who served the customer as it
was and asks for the rating in a new message; "Switch shop" only for a customer with chats at
two shops; the queue and offline notices say what is true; the live view, today's figures and
the settings in an owner's words; Chinese without spaces around inserted names."""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from zoneinfo import ZoneInfo

from handlers.i18n import LOCALES_DIR
from handlers.service_relay import service_policy
from handlers.times import local
from models.service.conversations import end, open_or_resume, rate
from models.service.messages import record_agent_message, record_customer_message
from models.service.tables import Rating
from models.shops import owned_shop
from models.tables import Shop as ShopRow
from tests.harness import Harness, Person, rows
from tests.service_chat_world import (
    AMY,
    ANN,
    BOB,
    CAT,
    MEI,
    Shop,
    add_entry,
    configure,
    conversation_of,
    setup_shop,
)
from tests.support.domain import SERVICE, add_sub_account
from tests.support.flows import make_owner, onboard
from tests.support.people import HOLDER, HOLDER_PHONE, OTHER_OWNER, OTHER_PHONE, OWNER, OWNER_PHONE

ZH_OWNER = Person(1701, "王芳", "zh-Hans")
ZH_OWNER_PHONE = "+8613800138777"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


# --- 1. the end of a chat ------------------------------------------------------------------
async def test_ending_asks_for_the_rating_in_a_new_message(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    notice = h.last(ANN)
    assert "Hank CS" in notice.text and "End chat" in notice.labels[0]
    await h.click(ANN, "End chat")
    # the notice keeps who served Ann, without its buttons now
    kept = h.message(ANN, notice.message_id)
    assert kept.text == notice.text and kept.buttons == []
    prompt = h.last(ANN)
    assert prompt.message_id != notice.message_id
    assert "Your chat with Tea House has ended" in prompt.text
    assert len(prompt.data) == 5 and all(d.startswith("cs:rate:") for d in prompt.data)
    await h.click(ANN, "⭐⭐⭐⭐⭐")
    thanked = h.last(ANN)
    assert thanked.message_id == prompt.message_id  # the prompt itself says thank you
    assert "Thank you for your rating" in thanked.text and "Tea House" in thanked.text
    assert thanked.buttons == []
    assert h.message(ANN, notice.message_id).text == notice.text
    assert [r.score for r in await rows(h, Rating)] == [5]
    assert (await conversation_of(h, ANN)).state == "closed"


async def test_end_on_an_old_notice_of_an_ended_chat_says_so_briefly(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    notice = h.last(ANN)
    await h.click(HOLDER, "End")  # Hank ends it: Ann gets the rating prompt
    assert "Tea House has ended the chat" in h.last(ANN).text
    sent = len(h.messages(ANN))
    await h.press(ANN, notice.button("End chat"), message_id=notice.message_id)
    assert len(h.messages(ANN)) == sent  # no new message
    assert h.answers()[-1] == "This chat has already ended."
    assert h.message(ANN, notice.message_id).buttons == []


# --- 2. switch shop ------------------------------------------------------------------------
async def test_switch_shop_only_for_a_customer_of_two_shops(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    tea = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {tea}")
    assert not any("Switch shop" in label for label in h.last(ANN).labels)
    await h.command(ANN, f"/start {tea}")  # the chat goes on
    assert "continues" in h.last(ANN).text
    assert not any("Switch shop" in label for label in h.last(ANN).labels)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, shop="Book Nook")
    async with h.app.bot_data["deps"].sessions() as session:
        other = await owned_shop(session, OTHER_OWNER.id)
    assert other is not None and other.id is not None
    await h.command(OTHER_OWNER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, Shop(other.id), 'Shelf')}")
    assert "Book Nook" in h.last(ANN).text
    assert any("Switch shop" in label for label in h.last(ANN).labels)
    await h.click(ANN, "Switch shop")
    assert sorted(h.last(ANN).labels) == ["Book Nook", "Tea House"]


# --- 6. the queue and offline notices ------------------------------------------------------
async def test_the_queue_notice_says_who_is_busy(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    await configure(h, shop, default_cap=1)
    await h.command(HOLDER, "/online")
    await h.command(AMY, "/online")
    await h.command(AMY, "/offline")  # an agent of the shop, offline now
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    await h.command(BOB, f"/start {token}")  # Hank is full, Amy offline
    bob = h.last(BOB).text
    assert "All agents" not in bob
    assert "The agent of Tea House who is online now is busy" in bob
    assert "number 1 in the queue" in bob
    await h.command(AMY, "/online")  # takes Bob
    await h.command(CAT, f"/start {token}")  # both online, both full
    cat = h.last(CAT).text
    assert "All agents of Tea House are busy" in cat and "number 1 in the queue" in cat
    assert (await conversation_of(h, CAT)).state == "queued"


async def test_the_offline_notice_tells_a_break_from_offline(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h)
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    assert "Tea House is offline right now" in h.last(ANN).text
    await h.command(HOLDER, "/break")
    await h.command(BOB, f"/start {token}")
    bob = h.last(BOB).text
    assert "offline right now" not in bob and "on a short break" in bob
    assert (await conversation_of(h, BOB)).state == "offline"


async def test_chinese_queue_notice_has_one_form_of_the_place(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await configure(h, shop, default_cap=1)
    await h.command(HOLDER, "/online")
    token = await add_entry(h, shop, "Website")
    await h.command(ANN, f"/start {token}")
    await h.command(MEI, f"/start {token}")
    assert "第1位" in h.last(MEI).text and "第 1 位" not in h.last(MEI).text
    assert "Tea House的客服都在忙" in h.last(MEI).text
    await h.text(MEI, "在吗")
    assert "第1位" in h.last(MEI).text


# --- 5. Chinese: no spaces around inserted names -------------------------------------------
async def test_chinese_customer_texts_have_no_spaces_around_names(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(MEI, f"/start {await add_entry(h, shop, 'Website')}")
    assert h.last(MEI).text.startswith("💬 您正在与Tea House沟通，客服Hank CS将为您解答")
    await h.click(MEI, "结束会话")
    assert h.last(MEI).text.startswith("✅ 您与Tea House的会话已结束")


#: a space between Chinese and an inserted name (not after an icon: "{icon} 您的状态")
SPACED = re.compile(r"[\u3400-\u9fff（），。：；、“”] +(?:<b>)?\{"
                    r"|\{(?!icon\}|status_html\})\w+\}(?:</b>)? +[\u3400-\u9fff（），。：；、“”]")


def test_chinese_service_catalogues_put_no_space_around_placeholders() -> None:
    wrong = []
    for name in ("service_chat.toml", "service_admin.toml", "service_paging.toml"):
        table = tomllib.loads((LOCALES_DIR / "zh-Hans" / name).read_text(encoding="utf-8"))
        stack = [("", table)]
        while stack:
            prefix, node = stack.pop()
            for key, value in node.items():
                if isinstance(value, dict):
                    stack.append((f"{prefix}{key}.", value))
                elif SPACED.search(str(value)):
                    wrong.append(f"{name} {prefix}{key}: {value}")
    assert wrong == []


# --- 3. the live view and today's figures --------------------------------------------------
async def _busy_day(h: Harness, owner: Person, phone: str) -> tuple[int, list[int]]:
    """Hank online in the owner's shop (zone Asia/Shanghai), three customers: the first two
    answered after 60 s and 110 s, the first rated 4 and the second 5 after the end. At 10:00
    in Shanghai (02:00 UTC), so that the day's figures never straddle the shop's midnight."""
    now = h.clock.now()
    ten = now.replace(hour=2, minute=0, second=0, microsecond=0)
    h.clock.advance(((ten if ten > now else ten + timedelta(days=1)) - now).total_seconds())
    await make_owner(h, owner, phone)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE, owner=owner,
                          role="Service", modules=SERVICE, nickname="Hank", im=True)
    deps = h.app.bot_data["deps"]
    policy, start = service_policy(deps), h.clock.now()
    async with deps.sessions() as session:
        shop = await owned_shop(session, owner.id)
        assert shop is not None and shop.id is not None
        row = await session.get(ShopRow, shop.id)
        assert row is not None
        row.time_zone = "Asia/Shanghai"
        shop_id = shop.id
        await session.commit()
    token = await add_entry(h, Shop(shop_id), "Website")
    await h.command(HOLDER, "/online")
    for customer in (ANN, BOB, CAT):
        await h.command(customer, "/start")
    async with deps.sessions() as session:
        chats = []
        for n, customer in enumerate((ANN, BOB, CAT)):
            opened = await open_or_resume(session, policy, customer_id=customer.id,
                                          token=token, now=start)
            cid = opened.conversation.id or 0
            await record_customer_message(session, policy, conversation_id=cid,
                                          customer_message_id=10 + n, now=start)
            chats.append(cid)
        for cid, after in zip(chats, (60, 110), strict=False):
            await record_agent_message(session, policy, conversation_id=cid,
                                       agent_user_id=HOLDER.id, agent_message_id=cid,
                                       customer_message_id=20 + cid,
                                       now=start + timedelta(seconds=after))
        for cid, customer, score in ((chats[0], ANN, 4), (chats[1], BOB, 5)):
            await end(session, policy, conversation_id=cid, by="customer",
                      actor_id=customer.id, now=start + timedelta(seconds=200))
            await rate(session, conversation_id=cid, customer_id=customer.id, score=score,
                       now=start + timedelta(seconds=200))
        await session.commit()
    h.clock.advance(seconds=300)
    return shop_id, chats


async def test_live_view_in_the_owners_words(harness: Harness) -> None:
    h = harness
    await _busy_day(h, OWNER, OWNER_PHONE)
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Live view")
    live = h.last(OWNER).text
    assert "🟢 Hank — chats 1/5" in live
    today = local(h.clock.now(), ZoneInfo("Asia/Shanghai"))
    assert f"Today, {today.day} {MONTHS[today.month - 1]}" in live
    assert "First response: half of the chats within 1 minute, 9 in 10 within " \
        "1 minute 50 seconds" in live
    assert "minute 0 seconds" not in live and "p50" not in live
    assert "Ratings: 2, average 4.5 of 5" in live


async def test_live_view_in_chinese(harness: Harness) -> None:
    h = harness
    await _busy_day(h, ZH_OWNER, ZH_OWNER_PHONE)
    await h.command(ZH_OWNER, "/service")
    await h.click(ZH_OWNER, "实时概况")
    live = h.last(ZH_OWNER).text
    assert "🟢 Hank — 接待中1/5" in live
    today = local(h.clock.now(), ZoneInfo("Asia/Shanghai"))
    assert f"今日（{today.month}月{today.day}日）" in live
    assert "首次响应：一半在1分钟内，九成在1分50秒内" in live
    assert "1分0秒" not in live
    assert "评价：2条，平均4.5分" in live


# --- 4. settings ---------------------------------------------------------------------------
async def test_settings_in_minutes_and_plain_words(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Settings")
    card = h.last(OWNER).text
    assert "seconds" not in card
    assert "First response expected within: 2 minutes" in card
    assert "Reply expected within: 5 minutes" in card
    assert "Returning customers go to their last agent for 3 days" in card
    assert "Sticky" not in card and "Sticky" not in " ".join(h.last(OWNER).labels)
    await h.click(OWNER, "First response")
    prompt = h.last(OWNER).text
    assert "2 minutes" in prompt and "in seconds" in prompt
    await h.text(OWNER, "90")
    assert "First response expected within: 1 minute 30 seconds" in h.last(OWNER).text
    await h.click(OWNER, "Returning customers")
    assert "number of days" in h.last(OWNER).text
    await h.text(OWNER, "0")
    card = h.last(OWNER).text
    assert "Returning customers are not sent to their last agent" in card


async def test_settings_in_chinese(harness: Harness) -> None:
    h = harness
    await make_owner(h, ZH_OWNER, ZH_OWNER_PHONE)
    await h.command(ZH_OWNER, "/service")
    await h.click(ZH_OWNER, "设置")
    card = h.last(ZH_OWNER).text
    assert "首次响应时限：2分钟" in card and "回复时限：5分钟" in card
    assert "老顾客3天内优先分配给上次接待的客服" in card
    assert "秒" not in card
    await h.click(ZH_OWNER, "首次响应")
    assert "秒数" in h.last(ZH_OWNER).text

