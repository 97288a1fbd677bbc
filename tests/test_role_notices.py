"""Staff are told when their role's name or modules change: one message per holder after the
edit is saved, in the holder's language, suspended holders too; nobody else is told."""

from __future__ import annotations

from models.accounts import set_suspended
from models.shops import owned_shop
from tests.harness import Harness, Person
from tests.support.domain import add_sub_account
from tests.support.flows import make_owner, onboard
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER

CHEN = Person(5005, "陈", "zh-hans")
CHEN_PHONE = "+8613500135000"
JO = Person(5006, "Jo", "en")
JO_PHONE = "+8613400134000"


async def shop_of_three(h: Harness) -> None:
    """Tea House: Hank (en) and 陈 (zh, suspended) are Operations; Jo is Cashier."""
    await make_owner(h)
    for person, phone in ((HOLDER, HOLDER_PHONE), (CHEN, CHEN_PHONE), (JO, JO_PHONE)):
        await onboard(h, person, phone)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE)
    chen = await add_sub_account(h, holder=CHEN, phone=CHEN_PHONE)
    await add_sub_account(h, holder=JO, phone=JO_PHONE, role="Cashier", modules=("finance",))
    async with h.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        await set_suspended(session, shop_id=shop.id or 0, actor_id=OWNER.id, account_id=chen,
                            suspended=True, now=h.clock.now())
        await session.commit()


async def open_operations(h: Harness) -> None:
    await h.command(OWNER, "/roles")
    await h.click(OWNER, "Operations")


def counts(h: Harness) -> dict[str, int]:
    return {p.first_name: len(h.messages(p)) for p in (HOLDER, CHEN, JO)}


async def test_a_rename_tells_every_holder_once_in_their_language(harness: Harness) -> None:
    await shop_of_three(harness)
    before = counts(harness)
    await open_operations(harness)
    await harness.click(OWNER, "Rename")
    await harness.text(OWNER, "Ops team")
    after = counts(harness)
    assert after == {"Hank": before["Hank"] + 1, "陈": before["陈"] + 1, "Jo": before["Jo"]}
    assert harness.last(HOLDER).text == (
        "🧩 Tea House: your role Operations was renamed to Ops team. "
        "What you can see is unchanged.")
    # the suspended holder is told too, in Chinese
    assert harness.last(CHEN).text == (
        "🧩 Tea House：您的岗位“Operations”已更名为“Ops team”，可见模块不变。")
    owner = harness.last(OWNER).text
    assert "✅ Renamed to Ops team." in owner
    assert "📨 The 2 sub-accounts with this role were told." in owner


async def test_a_module_change_tells_what_was_added_and_removed(harness: Harness) -> None:
    await shop_of_three(harness)
    before = counts(harness)
    await open_operations(harness)
    await harness.click(OWNER, "🔐 Permissions")
    await harness.click(OWNER, "Products")   # off
    await harness.click(OWNER, "Data")       # on
    await harness.click(OWNER, "Finance")    # on
    await harness.click(OWNER, "Done")
    after = counts(harness)
    assert after == {"Hank": before["Hank"] + 1, "陈": before["陈"] + 1, "Jo": before["Jo"]}
    assert harness.last(HOLDER).text == (
        "🧩 Tea House: the modules of your role Operations were updated: added Data, Finance; "
        "removed Products.\nModules you can see now: Home, Orders, Data, Finance")
    chen = harness.last(CHEN).text
    assert chen.startswith("🧩 Tea House：您的岗位“Operations”可见模块已更新：新增 ")
    assert "；移除 " in chen and "\n现在可见模块：" in chen
    assert "📨 The 2 sub-accounts with this role were told." in harness.last(OWNER).text


async def test_nothing_changed_or_a_description_tells_nobody(harness: Harness) -> None:
    await shop_of_three(harness)
    before = counts(harness)
    await open_operations(harness)
    await harness.click(OWNER, "🔐 Permissions")
    await harness.click(OWNER, "Done")
    assert "Nothing changed." in harness.last(OWNER).text
    await harness.click(OWNER, "Description")
    await harness.text(OWNER, "Runs the floor")
    assert "✅ Description saved." in harness.last(OWNER).text
    assert "told" not in harness.last(OWNER).text
    assert counts(harness) == before


async def test_the_owner_learns_who_could_not_be_told(harness: Harness) -> None:
    await shop_of_three(harness)
    harness.api.blocked.add(HOLDER.id)
    await open_operations(harness)
    await harness.click(OWNER, "Rename")
    await harness.text(OWNER, "Floor")
    owner = harness.last(OWNER).text
    assert "📨 The 1 sub-account with this role was told." in owner
    assert "⚠️ Could not be told (they blocked the bot, or Telegram could not be reached): Hank" \
        in owner


async def test_a_chinese_owner_reads_the_outcome_in_chinese(harness: Harness) -> None:
    owner = Person(OWNER.id, OWNER.first_name, "zh-hans", OWNER.username)
    await shop_of_three(harness)
    await harness.command(owner, "/language")
    await harness.click(owner, "简体中文")
    await harness.command(owner, "/roles")
    await harness.click(owner, "Operations")
    await harness.click(owner, "重命名")
    await harness.text(owner, "运营组")
    assert "📨 已通知使用此岗位的2个子账号。" in harness.last(owner).text
    assert harness.last(HOLDER).text.startswith("🧩 Tea House: your role Operations was renamed")
