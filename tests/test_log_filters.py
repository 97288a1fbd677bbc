"""/log at scale, through the Application: each code's events folded into its "new account"
entry, filters by account and role, codes on / off, and 📤 Export as a CSV document in the
chat (models/export's writer; no codes; phones as the CLI export has them)."""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from handlers import auditlog
from handlers.auditlog import PAGE_SIZE, fold_page
from models import audit
from models.accounts import set_im
from models.codes import cancel_code, decline_code, issue_code
from models.phones import mask_phone
from models.shops import owned_shop
from models.tables import AuditEvent, SubAccount, VerificationCode
from tests.harness import Harness, Person, rows
from tests.service_chat_world import ANN, add_entry, conversation_of, setup_shop
from tests.service_support import make_shop
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


# --- per-chat customer-service events: a chat record, hidden unless asked for ------------------


async def test_chat_records_are_hidden_until_asked_for(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await h.command(HOLDER, "/online")
    await h.command(ANN, f"/start {await add_entry(h, shop, 'Website')}")
    await h.text(ANN, "thanks, bye")
    await h.click(ANN, "End chat")
    conversation = await conversation_of(h, ANN)
    await h.press(ANN, f"cs:rate:{conversation.id}:5")
    chats = [e.action for e in await rows(h, AuditEvent) if e.object_type == "conversation"]
    assert chats == ["service.opened", "service.assigned", "service.ended", "service.rated"]
    await h.command(OWNER, "/log")
    shown = h.last(OWNER)
    assert "Created the customer-service entry “Website”" in shown.text
    # an agent's own events name them (their object id, read back as text, is the agent's)
    assert "· Hank\nHank CS: status offline → online" in shown.text
    assert "· Hank\nHank CS can now answer customers" in shown.text
    for line in ("A customer opened a chat", "A chat was given to", "A chat ended",
                 "rated a chat"):
        assert line not in shown.text
    assert "Filter" not in shown.text and "💬 Show chats" in shown.labels
    hidden = entries_of(shown.text)
    await h.click(OWNER, "💬 Show chats")
    shown = h.last(OWNER)
    assert "🔎 Filter: chats shown ✖️" in shown.text and "💬 Hide chats" in shown.labels
    assert f"Events: {hidden + 4} ·" in shown.text
    for line in ("· Ann\nA customer opened a chat", "A chat was given to Hank CS",
                 "A chat ended", "· Ann\nA customer rated a chat 5 of 5"):
        assert line in shown.text, line
    await h.click(OWNER, "📤 Export")
    assert "chats shown" in h.api.messages[OWNER.id][h.last(OWNER).message_id]["caption"]
    assert "service.opened" in [row["action"] for row in exported(h)]
    await h.command(OWNER, "/log")
    await h.click(OWNER, "💬 Show chats")
    await h.click(OWNER, "✖️ Clear filter")
    assert "A chat ended" not in h.last(OWNER).text and "Filter" not in h.last(OWNER).text
    await h.click(OWNER, "📤 Export")
    actions = [row["action"] for row in exported(h)]
    assert "service.entry_created" in actions and "service.status" in actions
    assert not any(a in actions for a in chats)
    # in Chinese: 会话记录
    await h.command(OWNER, "/language")
    await h.click(OWNER, "简体中文")
    await h.command(OWNER, "/log")
    assert "💬 显示会话记录" in h.last(OWNER).labels and "顾客发起了会话" not in h.last(OWNER).text
    await h.click(OWNER, "💬 显示会话记录")
    assert "🔎 筛选：显示会话记录 ✖️" in h.last(OWNER).text
    assert "顾客发起了会话" in h.last(OWNER).text and "💬 隐藏会话记录" in h.last(OWNER).labels


def exported(h: Harness) -> list[dict[str, str]]:
    """The rows of the CSV document the bot sent last to the owner."""
    message = h.api.messages[OWNER.id][h.last(OWNER).message_id]
    raw = h.api.files[message["document"]["file_id"]].data.decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw.lstrip("\ufeff"))))


# --- at scale: a page reads what it shows ------------------------------------------------------


def busy_rows(shop_id: int, hank_id: int, now: datetime, chats: int) -> list[dict[str, Any]]:
    """A busy shop's events: ``chats`` chats of four events each, every tenth chat followed by
    one change of Hank's IM, and every 50th by a code to a phone that never becomes an
    account."""
    rows: list[dict[str, Any]] = []

    def add(action: str, object_type: str, object_id: int, **detail: Any) -> None:
        rows.append({"shop_id": shop_id, "actor_id": OWNER.id, "action": action,
                     "object_type": object_type, "object_id": str(object_id),
                     "detail": detail, "created_at": now})

    for n in range(chats):
        add("service.opened", "conversation", n, entry=1)
        add("service.assigned", "conversation", n, agent=1, via="group", previous=None)
        add("service.ended", "conversation", n, by="agent")
        add("service.rated", "conversation", n, score=5)
        if n % 10 == 9:
            add("account.im", "account", hank_id, phone=mask_phone(HOLDER_PHONE),
                nickname="Hank", im=n % 20 == 9)
        if n % 50 == 49:
            add("code.issued", "code", 10_000 + n, phone=mask_phone(STRAY_PHONE),
                delivery="invite")
    return rows


STRAY_PHONE = "+8613100131000"


class Reads:
    """The statements an engine sends and the audit events loaded as ORM objects, per step."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements = self.loaded = self.since = 0
        self._engine = engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._statement)
        event.listen(AuditEvent, "load", self._load)

    def _statement(self, *_args: Any) -> None:
        self.statements += 1

    def _load(self, *_args: Any) -> None:
        self.loaded += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._statement)
        event.remove(AuditEvent, "load", self._load)

    async def step(self, run: Awaitable[Any]) -> tuple[int, int]:
        before = self.statements, self.loaded
        await run
        return self.statements - before[0], self.loaded - before[1]


async def test_a_page_reads_what_it_shows_not_the_whole_log(
        harness: Harness, engine: AsyncEngine) -> None:
    h = harness
    await shop_with_history(h)
    hank = next(a for a in await rows(h, SubAccount) if a.nickname == "Hank")
    await h.command(OWNER, "/log")
    before = entries_of(h.last(OWNER).text)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None and shop.id is not None
        await (await session.connection()).execute(
            insert(audit.AUDIT), busy_rows(shop.id, hank.id or 0, h.clock.now(), 1000))
        await session.commit()
    await h.command(OWNER, "/log")
    # 100 IM changes and one more attempt line: the chats hidden, the 20 stray codes folded
    assert entries_of(h.last(OWNER).text) == before + 100 + 1
    pages = -(-(before + 101) // PAGE_SIZE)
    with_chats = -(-(before + 101 + 4000) // PAGE_SIZE)
    reads, texts = Reads(engine), {}
    try:
        for name, data in (
            ("/log", ""), ("last page", f"lg:pg:{pages - 1}"),
            ("chats, page 300", "lg:v:299:0:0:3"), ("Hank, page 11", f"lg:v:10:{hank.id}:0:1"),
        ):
            statements, loaded = await reads.step(
                h.press(OWNER, data) if data else h.command(OWNER, "/log"))
            # the page's ten entries, the code events folded into them and the "new account"
            # events they fold into (read again with them): never the whole log
            texts[name] = h.last(OWNER).text
            folded = sum(int(n) for n in re.findall(r"🔑 (?:[^\n]*: )?(\d+) codes?",
                                                    texts[name]))
            assert loaded <= 2 * PAGE_SIZE + folded, (name, loaded, folded)
            assert statements <= 12, (name, statements)
    finally:
        reads.close()
    hanks = texts["Hank, page 11"]
    assert "Events: 101 ·" in hanks and "Page 11 of 11" in hanks
    assert "Hank (+86 139****9000) as Operations; IM off\n🔑 3 codes, 1 declined" in hanks
    chats = texts["chats, page 300"]
    assert f"Page 300 of {with_chats}" in chats and "A chat was given to" in chats
    last = texts["last page"]
    assert f"Page {pages} of {pages}" in last and "Created the shop “Tea House”" in last
    # the codes of the stray phone: one line, at its last code, with all 20 of them
    await h.press(OWNER, "lg:pg:0")
    assert "Verification codes for +86 131****1000: 20 codes; no sub-account" in (
        h.last(OWNER).text)


def entries_of(text: str) -> int:
    found = re.search(r"Events: (\d+) ·", text)
    assert found, text
    return int(found[1])


# --- the pages fold as the whole log would -----------------------------------------------------

PHONES = [mask_phone(p) for p in ("+8613900139000", "+8613400134000", "+8613300133000")]
ROLE_ACTIONS = ("role.created", "role.renamed")


def whole_log(events: list[AuditEvent], where: audit.LogFilter) -> list[tuple[int, list[int], bool]]:
    """The entries as /log folded them when it read every event (oldest first): (event id,
    folded code ids, attempt), newest first."""

    def takes(e: AuditEvent) -> bool:
        if not where.chats and e.object_type == audit.CHAT_OBJECT:
            return False
        if not where.codes and e.action.startswith("code."):
            return False
        if where.accounts is None:
            return True
        if where.role_id and e.object_type == "role":
            return e.object_id == str(where.role_id)
        if e.object_type == "account" and e.object_id in {str(a) for a in where.accounts}:
            return True
        return (e.action.startswith("code.") or e.action == "account.created") and (
            audit.recorded_phone(e) in where.phones)

    pending: dict[str, list[int]] = {}
    entries: list[tuple[int, list[int], bool]] = []
    for e in filter(takes, events):
        phone = audit.recorded_phone(e)
        if e.action.startswith("code.") and phone:
            pending.setdefault(phone, []).append(e.id or 0)
        elif e.action == "account.created" and phone:
            entries.append((e.id or 0, pending.pop(phone, []), False))
        else:
            entries.append((e.id or 0, [], False))
    entries += [(codes[-1], codes, True) for codes in pending.values()]
    return sorted(entries, reverse=True)


async def paged_log(session: AsyncSession, shop_id: int,
                    where: audit.LogFilter) -> list[tuple[int, list[int], bool]]:
    """Every page of the log as /log reads it now, one after the other."""
    attempts = await audit.attempts(session, shop_id, where)
    total = await audit.count_entries(session, shop_id, where, attempts)
    found: list[tuple[int, list[int], bool]] = []
    for page in range(-(-total // PAGE_SIZE)):
        shown = await audit.entry_events(session, shop_id, where, attempts,
                                         offset=page * PAGE_SIZE, limit=PAGE_SIZE)
        phones = {audit.recorded_phone(e) for e in shown} - {""}
        history = await audit.code_history(session, shop_id, phones, max(
            e.id or 0 for e in shown)) if where.codes and phones else []
        found += [(entry.event.id or 0, [c.id or 0 for c in entry.codes], entry.attempt)
                  for entry in fold_page(shown, history)]
    assert len(found) == total
    return found


async def test_pages_fold_the_codes_as_the_whole_log_would(session: AsyncSession) -> None:
    shop = (await make_shop(session, owner_id=1001)).shop
    assert shop.id is not None
    rng = random.Random(14)
    now = datetime(2027, 1, 1)
    for n in range(400):
        roll, phone = rng.random(), rng.choice(PHONES)
        account = PHONES.index(phone) + 1
        if roll < 0.35:
            audit.record(session, now=now, shop_id=shop.id, actor_id=None,
                         action=rng.choice(("code.issued", "code.failed", "code.expired")),
                         object_type="code", object_id=n, phone=phone)
        elif roll < 0.42:
            audit.record(session, now=now, shop_id=shop.id, actor_id=1001,
                         action="account.created", object_type="account",
                         object_id=account, phone=phone, nickname="x", role="Ops", im=False)
        elif roll < 0.55:
            audit.record(session, now=now, shop_id=shop.id, actor_id=1001,
                         action="account.im", object_type="account", object_id=account,
                         phone=phone, nickname="x", im=True)
        elif roll < 0.62:
            audit.record(session, now=now, shop_id=shop.id, actor_id=1001,
                         action=rng.choice(ROLE_ACTIONS), object_type="role",
                         object_id=rng.randint(1, 2), name="Ops")
        elif roll < 0.65:  # a code event of a forgotten person: no phone, an entry of its own
            audit.record(session, now=now, shop_id=shop.id, actor_id=None,
                         action="code.declined", object_type="code", object_id=n)
        else:
            audit.record(session, now=now, shop_id=shop.id, actor_id=None,
                         action="service.opened", object_type="conversation", object_id=n)
    await session.commit()
    events = list((await session.exec(select(AuditEvent).where(
        col(AuditEvent.shop_id) == shop.id).order_by(col(AuditEvent.id)))).all())
    for where in (
        audit.LogFilter(),
        audit.LogFilter(chats=True),
        audit.LogFilter(codes=False),
        audit.LogFilter(accounts=frozenset({1}), phones=frozenset({PHONES[0]})),
        audit.LogFilter(accounts=frozenset({2, 3}), phones=frozenset(PHONES[1:]), role_id=2),
        audit.LogFilter(accounts=frozenset(), role_id=1, chats=True),
    ):
        expected = whole_log(events, where)
        assert await paged_log(session, shop.id, where) == expected, where
        # the cases are there to compare: attempts, codes folded into accounts
        codes = where.codes and (where.accounts is None or bool(where.phones))
        assert any(attempt for _, _, attempt in expected) == codes
        assert any(folded for _, folded, attempt in expected if not attempt) == codes


async def test_the_export_reads_the_log_a_batch_at_a_time(
        harness: Harness, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    await shop_with_history(h)
    await h.command(OWNER, "/log")
    await h.click(OWNER, "📤 Export")
    whole = exported(h)
    monkeypatch.setattr(auditlog, "EXPORT_BATCH", 4)
    reads = Reads(engine)
    most = [0]

    def statement(*_args: Any) -> None:
        most[0] = max(most[0], reads.loaded - reads.since)
        reads.since = reads.loaded

    reads.since = 0
    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    try:
        await h.click(OWNER, "📤 Export")
        statement()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", statement)
        reads.close()
    assert exported(h) == whole and len(whole) > 12
    assert most[0] == 4  # never more events at once than a batch
    assert reads.statements >= len(whole) // 4
