"""/log through the Application: newest first, localized, phones masked, codes never shown (and
their events folded; filters and the export: test_log_filters)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from handlers.auditlog import describe, safe_phone
from handlers.i18n import LOCALES, catalogue
from models import audit
from models.codes import decline_code, expire_due, issue_code
from models.policy import Policy
from models.shops import owned_shop
from models.tables import AuditEvent
from tests.harness import Harness
from tests.support.domain import SERVICE, ensure_role
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

#: every action the domain records, with the detail it records
ACTIONS: dict[str, dict[str, Any]] = {
    "code.accepted": {"phone": "+86 139****9000"},
    "shop.consent_mode": {"mode": "button"},
    "shop.created": {"name": "Tea House", "phone": "+86 138****8000"},
    "role.created": {"name": "Ops", "modules": ["home", "orders"]},
    "role.renamed": {"before": "Ops", "after": "Operations"},
    "role.described": {"name": "Operations"},
    "role.permissions": {"name": "Operations", "before": ["home", "orders"],
                         "after": ["home", "finance"]},
    "role.deleted": {"name": "Operations"},
    "code.issued": {"phone": "+86 139****9000", "delivery": "invite"},
    "code.verified": {"phone": "+86 139****9000"},
    "code.failed": {"phone": "+86 139****9000", "attempt": 2},
    "code.locked": {"phone": "+86 139****9000"},
    "code.expired": {"phone": "+86 139****9000"},
    "code.declined": {"phone": "+86 139****9000"},
    "code.cancelled": {"phone": "+86 139****9000"},
    "code.undeliverable": {"phone": "+86 139****9000"},
    "code.invite_opened": {"phone": "+86 139****9000"},
    "account.created": {"phone": "+86 139****9000", "nickname": "Hank", "role": "Ops",
                        "im": True},
    "account.role": {"phone": "+86 139****9000", "nickname": "Hank", "before": "Ops",
                     "after": "Finance"},
    "account.renamed": {"phone": "+86 139****9000", "nickname": "Hank Li", "before": "Hank"},
    "account.im": {"phone": "+86 139****9000", "nickname": "Hank", "im": False},
    "account.suspended": {"phone": "+86 139****9000", "nickname": "Hank"},
    "account.resumed": {"phone": "+86 139****9000", "nickname": "Hank"},
    "account.unbound": {"phone": "+86 139****9000", "nickname": "Hank"},
    "account.left": {"phone": "+86 139****9000", "nickname": "Hank"},
}


def reader(locale: str) -> Any:
    """What ``describe`` needs of a Ctx: the reader's texts, locale and policy."""
    from handlers.i18n import t

    return SimpleNamespace(locale=locale, policy=Policy(),
                           t=lambda key, **params: t(locale, key, **params))


@pytest.mark.parametrize("locale", LOCALES)
def test_every_action_has_its_own_text_in_both_languages(locale: str) -> None:
    generic = {describe(reader(locale), AuditEvent(action="x.y", object_type="shop"))}
    seen = set()
    for action, detail in ACTIONS.items():
        assert "log.actions." + action.replace(".", "_") in catalogue(locale)
        text = describe(reader(locale), AuditEvent(action=action, object_type="x",
                                                   detail=detail))
        assert "{" not in text and "—" not in text, (action, text)
        assert text not in generic
        seen.add(text)
    assert len(seen) == len(ACTIONS)


def test_permissions_show_what_was_added_and_removed() -> None:
    event = AuditEvent(action="role.permissions", object_type="role",
                       detail=ACTIONS["role.permissions"])
    assert describe(reader("en"), event) == (
        "Changed the permissions of the role “Operations”: added Finance; removed Orders")
    assert describe(reader("zh-Hans"), event) == "修改岗位“Operations”的权限配置：新增 资金；移除 订单"


def test_unknown_actions_and_missing_details_never_crash() -> None:
    en = reader("en")
    assert describe(en, AuditEvent(action="shop.teleported", object_type="shop",
                                   object_id="1")) == "shop.teleported (shop #1)"
    assert describe(en, AuditEvent(action="<i>odd</i>", object_type="shop")) == (
        "&lt;i&gt;odd&lt;/i&gt; (shop)")
    assert describe(en, AuditEvent(action="account.role", object_type="account")) == (
        "Changed the role of — (—): — → —")
    assert describe(en, AuditEvent(action="code.failed", object_type="code",
                                   detail={"phone": "+8613900139000", "code": "123456"})) == (
        "Wrong code entered for +86 139****9000 (attempt —)")


def test_raw_phones_are_masked_and_masked_ones_kept() -> None:
    assert safe_phone("+8613900139000") == "+86 139****9000"
    assert safe_phone("8613900139000") == "+86 139****9000"
    assert safe_phone("+86 139****9000") == "+86 139****9000"


# --- through the Application ------------------------------------------------------------------


async def all_pages(h: Harness, who: Any, older: str) -> str:
    """Every page of the log, following the "older" button."""
    texts = [h.last(who).text]
    while any(older in label for label in h.last(who).labels):
        await h.click(who, older)
        texts.append(h.last(who).text)
    return "\n".join(texts)


async def run_a_sequence(h: Harness) -> None:
    """Role change, IM on, suspend, resume, rename, unbind — through the owner's buttons."""
    await setup_hank(h)
    await ensure_role(h, OWNER, "Customer service", SERVICE)
    await open_hank(h)
    await h.click(OWNER, "Change role")
    await h.click(OWNER, "Customer service")
    await h.click(OWNER, "Turn IM on")
    await h.click(OWNER, "Suspend")
    await h.click(OWNER, "Resume")
    await h.click(OWNER, "Rename")
    await h.text(OWNER, "Hank Li")
    await h.click(OWNER, "Unbind")
    await h.click(OWNER, "Yes, unbind")


async def test_log_after_a_sequence_newest_first_codes_folded_masked(harness: Harness) -> None:
    await run_a_sequence(harness)
    await harness.command(OWNER, "/log")
    first = harness.last(OWNER)
    stamp = harness.clock.now().strftime("today %H:%M")
    # 12 events; the code's two (issued, accepted) are folded into the new account's entry
    assert first.text.startswith(
        "📜 Tea House — activity log\nEvents: 10 · newest first · times in UTC\n\n")
    expected = [
        "Unbound Hank Li (+86 139****9000); the phone number is free",
        "Renamed the sub-account Hank → Hank Li (+86 139****9000)",
        "Resumed Hank (+86 139****9000)",
        "Suspended Hank (+86 139****9000)",
        "Turned IM on for Hank (+86 139****9000)",
        "Changed the role of Hank (+86 139****9000): Operations → Customer service",
        "Created the role “Customer service”: Home, Orders, After-sales, Customer service",
        "Added the sub-account Hank (+86 139****9000) as Operations; IM off\n🔑 1 code",
        "Created the role “Operations”: Home, Products, Orders",
        "Created the shop “Tea House” (main account +86 138****8000)",
    ]
    positions = [first.text.index(f"{stamp} · you\n{line}") for line in expected]
    assert positions == sorted(positions)
    assert "Verification code for" not in first.text
    assert "Older ▶️" not in first.labels and "◀️ Newer" not in first.labels
    assert not re.search(r"\d{6}", first.text)  # no raw phone, no code
    await harness.click(OWNER, "🔑 Hide codes")
    hidden = harness.last(OWNER).text
    assert "🔎 Filter: codes hidden ✖️" in hidden and "🔑" not in hidden
    assert "Added the sub-account Hank (+86 139****9000) as Operations; IM off" in hidden


async def test_log_in_chinese(harness: Harness) -> None:
    await run_a_sequence(harness)
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "简体中文")
    await harness.command(OWNER, "/log")
    text = await all_pages(harness, OWNER, "较早 ▶️")
    assert "📜 Tea House — 操作记录\n共10条 · 最新在前 · 时区：UTC" in text
    for line in (
        "· 您\n解绑 Hank Li（+86 139****9000），手机号已释放",
        "· 您\n修改子账号昵称：Hank → Hank Li（+86 139****9000）",
        "· 您\n恢复 Hank（+86 139****9000）",
        "· 您\n暂停 Hank（+86 139****9000）",
        "· 您\nIM权限（飞鸽）已开通：Hank（+86 139****9000）",
        "· 您\n更换 Hank（+86 139****9000）的岗位：Operations → Customer service",
        "· 您\n创建岗位“Customer service”：首页、订单、售后、客服",
        "· 您\n新建子账号 Hank（+86 139****9000），岗位：Operations；IM权限（飞鸽）：未开通\n"
        "🔑 1个验证码",
        "· 您\n创建店铺“Tea House”（主账号 +86 138****8000）",
    ):
        assert line in text, line
    assert not re.search(r"\d{6}", text)


async def test_system_and_holder_actors_are_named(harness: Harness) -> None:
    await setup_hank(harness)
    deps = harness.app.bot_data["deps"]
    await onboard(harness, STRANGER, STRANGER_PHONE)
    async with deps.sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None and shop.id is not None
        declined = await issue_code(session, deps.policy, shop_id=shop.id, owner_id=OWNER.id,
                                    role_id=None, phone=STRANGER_PHONE, now=harness.clock.now())
        await decline_code(session, code_id=declined.code.id or 0, holder_id=STRANGER.id,
                           now=harness.clock.now())
        await issue_code(session, deps.policy, shop_id=shop.id, owner_id=OWNER.id,
                         role_id=None, phone="+8613900139077", now=harness.clock.now())
        await session.commit()
    harness.clock.advance(49 * 3600)  # an invite (nobody has this phone) lives 48 hours
    async with deps.sessions() as session:
        assert len(await expire_due(session, now=harness.clock.now())) == 1
        await session.commit()
    await harness.command(HOLDER, "/me")
    await harness.click(HOLDER, "Leave shop")
    await harness.click(HOLDER, "Yes, leave")
    await harness.command(OWNER, "/log")
    text = harness.last(OWNER).text
    assert "· Hank\nHank (+86 139****9000) left the shop" in text
    # codes that led to no account: one folded line per phone, by whoever acted last
    assert ("· system\n🔑 Verification codes for +86 139****9077: 1 code, 1 expired; "
            "no sub-account added from them") in text
    assert ("· Sam\n🔑 Verification codes for +86 136****6000: 1 code, 1 declined; "
            "no sub-account added from them") in text
    await harness.click(OWNER, "🔑 Hide codes")
    assert "Verification codes" not in harness.last(OWNER).text


async def test_unknown_and_raw_events_in_the_shop_log_are_shown_safely(harness: Harness) -> None:
    await make_owner(harness)
    deps = harness.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        audit.record(session, now=harness.clock.now(), shop_id=shop.id, actor_id=None,
                     action="shop.teleported", object_type="shop", object_id=shop.id)
        audit.record(session, now=harness.clock.now(), shop_id=shop.id, actor_id=OWNER.id,
                     action="code.verified", object_type="code", object_id=9,
                     phone="+8613900139000", code="654321")
        await session.commit()
    await harness.command(OWNER, "/log")
    text = harness.last(OWNER).text
    assert f"· system\nshop.teleported (shop #{shop.id})" in text
    assert "Verification codes for +86 139****9000: 1 code;" in text
    assert "654321" not in text and "13900139000" not in text


async def test_the_log_is_the_owners_own_shop_only(harness: Harness) -> None:
    await setup_hank(harness)
    await make_owner(harness, OTHER_OWNER, OTHER_PHONE, shop="Noodle Bar")
    await harness.command(OTHER_OWNER, "/log")
    text = harness.last(OTHER_OWNER).text
    assert "Noodle Bar — activity log\nEvents: 1 ·" in text
    assert "Tea House" not in text and "Hank" not in text
    await harness.command(HOLDER, "/log")
    assert "The activity log is for the shop's main account" in harness.last(HOLDER).text
    await onboard(harness, STRANGER, STRANGER_PHONE)
    await harness.command(STRANGER, "/log")
    assert "no shop to manage" in harness.last(STRANGER).text
    for data in ("lg:pg:0", "lg:pg:-1", "lg:pg", "lg:xx:0"):
        await harness.press(STRANGER, data)
    assert harness.answers()[-4:] == ["This menu is no longer valid."] * 4
    assert "Tea House" not in "\n".join(m.text for m in harness.messages(STRANGER))


async def test_owner_menu_opens_the_log(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/start")
    await harness.click(OWNER, "📜 Log")
    text = harness.last(OWNER).text
    assert "Tea House — activity log\nEvents: 1 ·" in text
    assert "· you\nCreated the shop “Tea House” (main account +86 138****8000)" in text
    assert not any("Older" in label for label in harness.last(OWNER).labels)
    assert HOLDER_PHONE not in text
