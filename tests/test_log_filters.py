"""/log at scale, through the Application: each code's events folded into its "new account"
entry, filters by account and role, codes on / off, and 📤 Export as a CSV document in the
chat (models/export's writer; no codes; phones as the CLI export has them)."""

from __future__ import annotations

import csv
import io

from models.accounts import set_im
from models.codes import cancel_code, decline_code, issue_code
from models.shops import owned_shop
from models.tables import SubAccount, VerificationCode
from tests.harness import Harness, Person, rows
from tests.support.domain import add_sub_account
from tests.support.flows import make_owner, onboard
from tests.support.people import HOLDER, HOLDER_PHONE, OTHER_OWNER, OTHER_PHONE, OWNER

JO = Person(5006, "Jo", "en")
JO_PHONE = "+8613400134000"
NOBODY_PHONE = "+8613300133000"


async def shop_with_history(h: Harness) -> None:
    """Tea House: Hank added on his third code (one declined, one cancelled before), Jo as
    Cashier on her first, and two codes sent to a phone that never became an account."""
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await onboard(h, JO, JO_PHONE)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None and shop.id is not None
        first = await issue_code(session, deps.policy, shop_id=shop.id, owner_id=OWNER.id,
                                 role_id=None, phone=HOLDER_PHONE, now=h.clock.now())
        await decline_code(session, code_id=first.code.id or 0, holder_id=HOLDER.id,
                           now=h.clock.now())
        await session.commit()
    h.clock.advance(120)
    async with deps.sessions() as session:
        second = await issue_code(session, deps.policy, shop_id=shop.id, owner_id=OWNER.id,
                                  role_id=None, phone=HOLDER_PHONE, now=h.clock.now())
        await cancel_code(session, code_id=second.code.id or 0, actor_id=OWNER.id,
                          now=h.clock.now())
        for _ in range(2):
            stray = await issue_code(session, deps.policy, shop_id=shop.id,
                                     owner_id=OWNER.id, role_id=None, phone=NOBODY_PHONE,
                                     now=h.clock.now())
            await cancel_code(session, code_id=stray.code.id or 0, actor_id=OWNER.id,
                              now=h.clock.now())
            h.clock.advance(120)
        await session.commit()
    h.clock.advance(120)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE)
    await add_sub_account(h, holder=JO, phone=JO_PHONE, role="Cashier", modules=("finance",))


async def test_codes_fold_into_the_new_account_entry(harness: Harness) -> None:
    await shop_with_history(harness)
    await harness.command(OWNER, "/log")
    text = harness.last(OWNER).text
    assert ("Added the sub-account Hank (+86 139****9000) as Operations; IM off\n"
            "🔑 3 codes, 1 declined, 1 cancelled") in text
    assert "Added the sub-account Jo (+86 134****4000) as Cashier; IM off\n🔑 1 code" in text
    assert ("🔑 Verification codes for +86 133****3000: 2 codes, 2 cancelled; "
            "no sub-account added from them") in text
    assert text.count("Verification codes for") == 1  # one line per phone attempt
    assert "Issued a verification code" not in text


async def test_filter_by_account_and_by_role(harness: Harness) -> None:
    await shop_with_history(harness)
    await harness.command(OWNER, "/log")
    await harness.click(OWNER, "👤 Account")
    assert "Show the log of which sub-account?" in harness.last(OWNER).text
    await harness.click(OWNER, "Jo")
    text = harness.last(OWNER).text
    assert "🔎 Filter: account Jo ✖️" in text
    assert "Events: 1 ·" in text and "Jo (+86 134****4000)" in text and "Hank" not in text
    await harness.click(OWNER, "🧩 Role")
    await harness.click(OWNER, "Operations")
    text = harness.last(OWNER).text
    assert "🔎 Filter: role Operations ✖️" in text
    assert "Created the role “Operations”" in text and "Hank (+86 139****9000)" in text
    assert "🔑 3 codes, 1 declined, 1 cancelled" in text
    assert "Jo" not in text and "Cashier" not in text and "133****3000" not in text
    await harness.click(OWNER, "🔑 Hide codes")
    text = harness.last(OWNER).text
    assert "🔎 Filter: role Operations · codes hidden ✖️" in text and "🔑" not in text
    await harness.click(OWNER, "✖️ Clear filter")
    text = harness.last(OWNER).text
    assert "Filter" not in text and "Jo" in text and "133****3000" in text


async def test_paging_keeps_the_filter(harness: Harness) -> None:
    await shop_with_history(harness)
    deps = harness.app.bot_data["deps"]
    hank = next(a for a in await rows(harness, SubAccount) if a.nickname == "Hank")
    async with deps.sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        for n in range(12):
            await set_im(session, shop_id=shop.id or 0, actor_id=OWNER.id,
                         account_id=hank.id or 0, enabled=n % 2 == 0, now=harness.clock.now())
        await session.commit()
    await harness.command(OWNER, "/log")
    await harness.click(OWNER, "👤 Account")
    await harness.click(OWNER, "Hank")
    first = harness.last(OWNER)
    assert "Events: 13 ·" in first.text and "Page 1 of 2" in first.text
    await harness.click(OWNER, "Older ▶️")
    second = harness.last(OWNER)
    assert "🔎 Filter: account Hank ✖️" in second.text and "Page 2 of 2" in second.text
    assert "🔑 3 codes" in second.text and "Jo" not in second.text


async def test_export_sends_a_csv_document_without_codes(harness: Harness) -> None:
    await shop_with_history(harness)
    await harness.command(OWNER, "/log")
    await harness.click(OWNER, "📤 Export (CSV)")
    assert harness.answers()[-1] == "Sending the CSV file…"
    message = harness.api.messages[OWNER.id][harness.last(OWNER).message_id]
    document = message["document"]
    assert document["file_name"].startswith("activity-log-") and document["file_name"].endswith(
        ".csv")
    assert "Activity log of Tea House:" in message["caption"]
    raw = harness.api.files[document["file_id"]].data.decode("utf-8")
    assert raw.startswith("\ufeffid,time,who,action,object,phone,nickname,role,what\r\n")
    table = list(csv.DictReader(io.StringIO(raw.lstrip("\ufeff"))))
    actions = [row["action"] for row in table]
    assert actions[-1] == "shop.created" and actions.count("code.issued") == 6
    hank = next(row for row in table if row["action"] == "account.created"
                and row["nickname"] == "Hank")
    # the phone of a current sub-account in full, as `subaccount-bot export` has it
    assert hank["phone"] == HOLDER_PHONE and hank["role"] == "Operations"
    assert hank["what"] == "Added the sub-account Hank (+86 139****9000) as Operations; IM off"
    assert hank["time"].endswith("Z")
    stray = [row for row in table if row["phone"].startswith("+86 133")]
    assert stray and all(row["phone"] == "+86 133****3000" for row in stray)  # still masked
    assert all(row["phone"] != OWNER.first_name for row in table)
    for row in table:  # no code, hash, salt or token anywhere
        assert "code_hash" not in row["what"] and "salt" not in row["what"]
    for code in await rows(harness, VerificationCode):
        assert code.code_hash not in raw and code.salt not in raw


async def test_export_follows_the_filter(harness: Harness) -> None:
    await shop_with_history(harness)
    await harness.command(OWNER, "/log")
    await harness.click(OWNER, "🔑 Hide codes")
    await harness.click(OWNER, "👤 Account")
    await harness.click(OWNER, "Jo")
    await harness.click(OWNER, "📤 Export")
    message = harness.api.messages[OWNER.id][harness.last(OWNER).message_id]
    raw = harness.api.files[message["document"]["file_id"]].data.decode("utf-8")
    table = list(csv.DictReader(io.StringIO(raw.lstrip("\ufeff"))))
    assert [row["action"] for row in table] == ["account.created"]
    assert table[0]["phone"] == JO_PHONE
    assert "account Jo · codes hidden" in message["caption"]


async def test_log_filters_in_chinese(harness: Harness) -> None:
    owner = Person(OWNER.id, OWNER.first_name, "zh-hans", OWNER.username)
    await shop_with_history(harness)
    await harness.command(owner, "/language")
    await harness.click(owner, "简体中文")
    await harness.command(owner, "/log")
    text = harness.last(owner).text
    assert "新建子账号 Hank（+86 139****9000），岗位：Operations；IM权限（飞鸽）：未开通\n🔑 3个验证码，1个被拒绝，1个已取消" in text
    assert "🔑 发送给 +86 133****3000 的验证码：2个验证码，2个已取消；未因此新建子账号" in text
    assert "👤 账号" in harness.last(owner).labels and "📤 导出（CSV）" in harness.last(owner).labels
    await harness.click(owner, "👤 账号")
    await harness.click(owner, "Jo")
    assert "🔎 筛选：账号 Jo ✖️" in harness.last(owner).text
    await harness.click(owner, "📤 导出")
    message = harness.api.messages[OWNER.id][harness.last(owner).message_id]
    assert "Tea House</b> 的操作记录" in message.get("_raw", message["caption"]) or \
        "Tea House 的操作记录" in message["caption"]
    raw = harness.api.files[message["document"]["file_id"]].data.decode("utf-8")
    assert "新建子账号 Jo（+86 134****4000）" in raw


async def test_another_shops_account_or_role_shows_nothing_of_it(harness: Harness) -> None:
    await shop_with_history(harness)
    await make_owner(harness, OTHER_OWNER, OTHER_PHONE, shop="Noodle Bar")
    hank_id = 1
    for data in (f"lg:v:0:{hank_id}:0:1", "lg:v:0:0:1:1", f"lg:ex:{hank_id}:0:1"):
        await harness.press(OTHER_OWNER, data)
        shown = harness.last(OTHER_OWNER)
        assert "Hank" not in shown.text and "Tea House" not in shown.text
    message = harness.api.messages[OTHER_OWNER.id][harness.last(OTHER_OWNER).message_id]
    raw = harness.api.files[message["document"]["file_id"]].data.decode("utf-8")
    assert "Hank" not in raw and "Tea House" not in raw
