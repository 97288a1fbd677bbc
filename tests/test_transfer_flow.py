"""Owner transfer (主账号更换) through the Application: /transfer, Accept / Decline / Withdraw, the
expiry job (also after a restart past the deadline), a race with an unbind, stale buttons."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.config import Settings
from bot.localapi import LocalBotApi
from handlers.auditlog import describe
from handlers.i18n import LOCALES, catalogue, t
from handlers.transfer_expiry import expire_transfers
from models.accounts import unbind
from models.clock import ManualClock
from models.lifecycle.common import decision, lock_account
from models.lifecycle.tables import OwnerTransfer, TransferStatus
from models.lifecycle.transfer import request_transfer
from models.policy import Policy
from models.service.agents import enroll_agent
from models.service.tables import Agent
from models.tables import AuditEvent, BindingKind, Draft, PhoneBinding, Shop, SubAccount
from tests.harness import Harness, Person, Shown, rows
from tests.lifecycle_world import until_waiting
from tests.support.app import start_harness, stop_harness
from tests.support.domain import add_sub_account
from tests.support.flows import make_owner, onboard, setup_hank
from tests.support.people import (
    HOLDER,
    HOLDER_PHONE,
    OWNER,
    OWNER_PHONE,
    STRANGER,
    STRANGER_PHONE,
)

STALE = "This menu is no longer valid."
HANK_LABEL = "Hank · +86 139****9000"


async def ask_hank(h: Harness, old: str = "Operations", name: str = "Tea House") -> None:
    """Olivia asks Hank to become the main account; she becomes ``old`` (a role, or "Leave")."""
    await h.command(OWNER, "/transfer")
    await h.click(OWNER, HANK_LABEL)
    await h.click(OWNER, old)
    await h.text(OWNER, name)


async def transfers(h: Harness) -> list[OwnerTransfer]:
    return await rows(h, OwnerTransfer)


async def audit_actions(h: Harness) -> list[str]:
    return [e.action for e in await rows(h, AuditEvent)]


async def test_a_transfer_accepted(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await h.command(OWNER, "/transfer")
    first = h.last(OWNER)
    assert "Step 1 of 3" in first.text and HANK_LABEL in first.labels
    await h.click(OWNER, HANK_LABEL)
    step2 = h.last(OWNER)
    assert "Step 2 of 3" in step2.text and "Operations" in step2.labels
    assert "🚪 Leave the shop" in step2.labels
    await h.click(OWNER, "Operations")
    summary = h.last(OWNER)
    assert "Step 3 of 3" in summary.text
    assert "New main account: Hank (+86 139****9000)" in summary.text
    assert "you stay as a sub-account with the role Operations" in summary.text
    assert "Hank has 24 hours to accept" in summary.text
    assert await transfers(h) == []  # nothing written before the name is typed

    await h.text(OWNER, "Tea Hous")
    refused = h.last(OWNER)  # the card, edited: the reason above the same prompt
    assert refused.message_id == summary.message_id
    assert "«Tea Hous» — That is not the shop's name" in refused.text
    assert "Step 3 of 3" in refused.text
    assert await transfers(h) == []

    await h.text(OWNER, "  Tea   House ")  # cleaned as names are
    waiting = h.last(OWNER)
    assert "waiting for Hank (+86 139****9000)" in waiting.text
    assert "↩️ Withdraw" in waiting.labels
    [transfer] = await transfers(h)
    assert transfer.status == TransferStatus.PENDING
    until = transfer.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    request = h.last(HOLDER)
    assert "Olivia, the main account of Tea House, asks you" in request.text
    assert f"valid until {until}" in request.text
    assert "Olivia stays as a sub-account with the role Operations" in request.text
    assert request.labels == ["✅ Accept", "✖️ Decline"]

    # the owner was in the middle of something: the accept ends it
    await h.command(OWNER, "/newaccount")
    await h.click(HOLDER, "Accept")
    accepted = h.last(HOLDER)
    assert "You are now the main account of Tea House" in accepted.text
    assert "👥 Accounts" in accepted.labels and "🔁 Change main account" in accepted.labels
    told = h.last(OWNER)
    assert "Hank accepted" in told.text and "the role Operations" in told.text

    async with h.app.bot_data["deps"].sessions() as s:
        shop = (await s.exec(select(Shop))).one()
        assert shop.owner_id == HOLDER.id
        owner_binding = await s.get(PhoneBinding, HOLDER_PHONE)
        sub_binding = await s.get(PhoneBinding, OWNER_PHONE)
        assert owner_binding is not None and owner_binding.kind == BindingKind.OWNER.value
        assert sub_binding is not None and sub_binding.kind == BindingKind.SUB.value
        [account] = (await s.exec(select(SubAccount))).all()
        assert account.holder_id == OWNER.id and account.phone == OWNER_PHONE
        assert account.nickname == "Olivia" and not account.im_enabled
        row = await s.get(OwnerTransfer, transfer.id)
        assert row is not None and row.status == TransferStatus.ACCEPTED
    actions = await audit_actions(h)
    for action in ("transfer.requested", "transfer.accepted", "shop.owner_changed",
                   "account.became_owner", "account.created"):
        assert action in actions
    assert (await rows(h, AuditEvent))[-1].actor_id == HOLDER.id

    # both drafts ended; the old owner is staff now, the new owner runs the shop
    assert await rows(h, Draft) == []
    await h.command(OWNER, "/accounts")
    assert "for the shop's main account" in h.last(OWNER).text
    await h.command(OWNER, "/me")
    me = h.last(OWNER).text
    assert "Tea House" in me and "Operations" in me
    await h.command(HOLDER, "/accounts")
    assert "Olivia · +86 138****8000" in h.last(HOLDER).labels
    await h.command(HOLDER, "/log")
    log = h.last(HOLDER).text
    assert "Accepted the main-account change request" in log
    assert "The main account changed from +86 138****8000 to +86 139****9000" in log
    assert "Hank (+86 139****9000) became the main account" in log
    assert ("Asked Hank (+86 139****9000) to become the main account; the current main account"
            " would stay with the role Operations") in log


async def test_the_old_owner_may_leave(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await ask_hank(h, old="Leave the shop")
    assert "you leave the shop" in h.last(OWNER).text
    assert "Olivia leaves the shop" in h.last(HOLDER).text
    await h.click(HOLDER, "Accept")
    assert "You have left the shop" in h.last(OWNER).text
    assert await rows(h, SubAccount) == []
    assert [b.phone for b in await rows(h, PhoneBinding)] == [HOLDER_PHONE]
    assert "owner.left" in await audit_actions(h)
    await h.command(OWNER, "/me")
    assert "Tea House" not in h.last(OWNER).text


async def test_declined(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await ask_hank(h)
    await h.click(HOLDER, "Decline")
    assert "You declined" in h.last(HOLDER).text and h.last(HOLDER).labels == []
    assert "Hank declined to become the main account of Tea House" in h.last(OWNER).text
    [transfer] = await transfers(h)
    assert transfer.status == TransferStatus.DECLINED
    shop = (await rows(h, Shop))[0]
    assert shop.owner_id == OWNER.id
    # a second press of an answered request: the domain's reason, nothing changes
    await h.press(HOLDER, f"tr:ac:{transfer.id}")
    assert "already been answered, withdrawn or has expired" in h.last(HOLDER).text
    assert (await rows(h, Shop))[0].owner_id == OWNER.id


async def test_withdrawn_and_one_pending_per_shop(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await ask_hank(h)
    [transfer] = await transfers(h)
    await h.command(OWNER, "/transfer")  # a second /transfer shows the pending one
    assert "waiting for Hank" in h.last(OWNER).text
    assert h.last(OWNER).data == [f"tr:wd:{transfer.id}"]
    await h.click(OWNER, "Withdraw")
    assert "You withdrew the request to Hank" in h.last(OWNER).text
    assert "Olivia withdrew the request" in h.last(HOLDER).text
    assert (await transfers(h))[0].status == TransferStatus.WITHDRAWN
    [shown] = await h.press(HOLDER, f"tr:ac:{transfer.id}")  # the request, edited
    assert "already been answered, withdrawn or has expired" in shown.text
    assert shown.labels == []
    await h.command(OWNER, "/transfer")  # free again: step 1
    assert "Step 1 of 3" in h.last(OWNER).text
    assert "transfer.withdrawn" in await audit_actions(h)


async def test_expired_both_told_once(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await ask_hank(h)
    [transfer] = await transfers(h)
    h.clock.advance(24 * 3600)
    # the deadline is the database's even before the job runs
    await h.press(HOLDER, f"tr:ac:{transfer.id}")
    assert "This main-account change request has expired." in h.last(HOLDER).text
    assert await h.run_due_jobs() >= 1
    assert "Hank did not answer in time" in h.last(OWNER).text
    assert "The request to make you the main account of Tea House has expired" in (
        h.last(HOLDER).text)
    assert (await transfers(h))[0].status == TransferStatus.EXPIRED
    sent = len(h.api.methods("sendMessage"))
    h.clock.advance(3600)
    await h.run_due_jobs()
    assert len(h.api.methods("sendMessage")) == sent  # told once
    assert (await rows(h, Shop))[0].owner_id == OWNER.id
    assert "transfer.expired" in await audit_actions(h)


async def test_expired_after_a_restart_past_the_deadline(
    settings: Settings, engine: AsyncEngine, api: LocalBotApi, clock: ManualClock,
) -> None:
    h = await start_harness(settings, engine, api, clock)
    try:
        await setup_hank(h)
        await ask_hank(h)
    finally:
        await stop_harness(h)
    clock.advance(25 * 3600)
    again = await start_harness(settings, engine, api, clock)  # reconcile at start-up
    try:
        assert "Hank did not answer in time" in again.last(OWNER).text
        assert "has expired" in again.last(HOLDER).text
        assert (await transfers(again))[0].status == TransferStatus.EXPIRED
    finally:
        await stop_harness(again)
    sent = len(api.methods("sendMessage"))
    third = await start_harness(settings, engine, api, clock)
    await stop_harness(third)
    told = [c for c in api.methods("sendMessage")[sent:] if "has expired" in str(c.params)]
    assert told == []  # a second restart tells nobody again


async def test_a_transfer_raced_with_an_unbind_of_the_target(
    harness: Harness, engine: AsyncEngine,
) -> None:
    h = harness
    hank_id = await setup_hank(h)
    await ask_hank(h)
    [transfer] = await transfers(h)
    sessions = h.app.bot_data["deps"].sessions
    async with sessions() as unbinding:
        async with decision(unbinding, "nothing_changed"):  # the unbind, holding its locks
            assert await lock_account(unbinding, hank_id) is not None
            await unbind(unbinding, shop_id=transfer.shop_id, actor_id=OWNER.id,
                         account_id=hank_id, now=h.clock.now())
        accept = asyncio.create_task(h.press(HOLDER, f"tr:ac:{transfer.id}"))
        await until_waiting(engine, accept)
        await unbinding.commit()
        await accept
    assert "This sub-account is no longer in the shop" in h.last(HOLDER).text
    shop = (await rows(h, Shop))[0]
    assert shop.owner_id == OWNER.id
    assert [b.phone for b in await rows(h, PhoneBinding)] == [OWNER_PHONE]


async def test_an_unbind_after_the_accept_finds_nothing(harness: Harness) -> None:
    h = harness
    hank_id = await setup_hank(h)
    await h.command(OWNER, "/accounts")
    await h.click(OWNER, "Hank")
    await h.click(OWNER, "Unbind")  # the confirmation is on screen…
    await ask_hank(h)
    await h.click(HOLDER, "Accept")  # …when Hank accepts
    await h.press(OWNER, f"a:uy:{hank_id}")
    assert STALE in h.answers()[-1]
    binding = [b for b in await rows(h, PhoneBinding) if b.phone == HOLDER_PHONE]
    assert binding[0].kind == BindingKind.OWNER.value


async def test_a_suspended_target_is_refused_with_the_reason(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await h.command(OWNER, "/accounts")
    await h.click(OWNER, "Hank")
    await h.click(OWNER, "Suspend")
    await h.command(OWNER, "/transfer")
    assert "⏸ " + HANK_LABEL in h.last(OWNER).labels
    await h.click(OWNER, HANK_LABEL)
    refused = h.last(OWNER)
    assert "Hank is suspended, so they can't become the main account" in refused.text
    assert "Step 1 of 3" in refused.text  # the same list again


async def test_a_shop_without_sub_accounts_has_no_one_to_hand_to(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/transfer")
    assert "has no sub-accounts yet" in harness.last(OWNER).text


async def test_foreign_and_stale_buttons(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await onboard(h, STRANGER, STRANGER_PHONE)
    await add_sub_account(h, holder=STRANGER, phone=STRANGER_PHONE)
    await ask_hank(h)
    [transfer] = await transfers(h)
    for who, data in ((STRANGER, f"tr:ac:{transfer.id}"), (OWNER, f"tr:ac:{transfer.id}"),
                      (OWNER, f"tr:dc:{transfer.id}"), (HOLDER, f"tr:wd:{transfer.id}"),
                      (STRANGER, f"tr:wd:{transfer.id}"), (OWNER, "tr:ac:999999"),
                      (OWNER, "tr:to:1"), (HOLDER, "tr:pg:0"), (OWNER, "tr:lv")):
        await h.press(who, data)
        assert h.answers()[-1] == STALE, (who, data)
    assert (await transfers(h))[0].status == TransferStatus.PENDING
    assert (await rows(h, Shop))[0].owner_id == OWNER.id
    # a target who lost the message gets it again with /transfer
    await h.command(HOLDER, "/transfer")
    assert h.last(HOLDER).labels == ["✅ Accept", "✖️ Decline"]
    # a text at a button step: the reason and the same prompt
    await h.command(OWNER, "/transfer")
    await h.click(OWNER, "Withdraw")
    await h.command(OWNER, "/transfer")
    await h.text(OWNER, "Hank")
    assert "Step 1 of 3" in h.last(OWNER).text


async def test_in_chinese(harness: Harness) -> None:
    h = harness
    await setup_hank(h)
    await h.command(HOLDER, "/language")
    await h.click(HOLDER, "简体中文")
    await h.command(OWNER, "/language")
    await h.click(OWNER, "简体中文")
    await h.command(OWNER, "/transfer")
    assert "主账号更换" in h.last(OWNER).text
    await h.click(OWNER, HANK_LABEL)
    await h.click(OWNER, "Operations")
    await h.text(OWNER, "Tea House")
    assert "等待 <b>Hank</b>" in h.api.chat(OWNER.id)[-1]["_raw"] or "等待 Hank" in (
        h.last(OWNER).text)
    assert "希望将店铺主账号更换给您" in h.last(HOLDER).text
    await h.click(HOLDER, "接受")
    assert "您已成为 Tea House 的主账号" in h.last(HOLDER).text
    assert "Hank 已接受" in h.last(OWNER).text


# --- /log texts of every audit action a transfer records ---------------------------------------

#: what models/lifecycle/transfer.py and handover.py record, with the detail they record
TRANSFER_ACTIONS: dict[str, dict[str, Any]] = {
    "transfer.requested": {"nickname": "Hank", "phone": "+86 139****9000",
                           "old_owner_role": "Operations", "old_owner_leaves": False,
                           "hours": 24},
    "transfer.withdrawn": {},
    "transfer.declined": {},
    "transfer.expired": {},
    "transfer.accepted": {},
    "shop.owner_changed": {"phone": "+86 139****9000", "before": "+86 138****8000"},
    "account.became_owner": {"nickname": "Hank", "phone": "+86 139****9000"},
    "account.created": {"phone": "+86 138****8000", "nickname": "Olivia", "role": "Operations",
                        "im": False, "via": "transfer"},
    "owner.left": {"phone": "+86 138****8000"},
}


def reader(locale: str) -> Any:
    return SimpleNamespace(locale=locale, policy=Policy(),
                           t=lambda key, **params: t(locale, key, **params))


def test_the_transfer_actions_are_the_ones_the_domain_records() -> None:
    root = Path(__file__).resolve().parent.parent / "models" / "lifecycle"
    source = (root / "transfer.py").read_text() + (root / "handover.py").read_text()
    recorded = set(re.findall(r'action="([a-z_.]+)"', source))
    recorded |= set(re.findall(r'record\("([a-z_.]+)"', source))
    assert recorded == set(TRANSFER_ACTIONS)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_transfer_action_has_its_own_log_text(locale: str) -> None:
    generic = describe(reader(locale), AuditEvent(action="x.y", object_type="shop"))
    seen = set()
    for action, detail in TRANSFER_ACTIONS.items():
        assert "log.actions." + action.replace(".", "_") in catalogue(locale)
        text = describe(reader(locale), AuditEvent(action=action, object_type="x",
                                                   detail=detail))
        assert "{" not in text and "—" not in text and text != generic, (action, text)
        seen.add(text)
    leave = describe(reader(locale), AuditEvent(
        action="transfer.requested", object_type="transfer",
        detail={**TRANSFER_ACTIONS["transfer.requested"], "old_owner_role": "",
                "old_owner_leaves": True}))
    assert "—" not in leave and leave not in seen
    assert len(seen) == len(TRANSFER_ACTIONS)


async def test_nothing_is_left_pending_by_a_request_refused_for_a_second_target(
    harness: Harness,
) -> None:
    """Two owners' screens at once: the second request is refused, the first stays."""
    h = harness
    await setup_hank(h)
    await onboard(h, STRANGER, STRANGER_PHONE)
    await add_sub_account(h, holder=STRANGER, phone=STRANGER_PHONE)
    await h.command(OWNER, "/transfer")
    await h.click(OWNER, "Sam")
    await h.click(OWNER, "Operations")
    # meanwhile (another device) a request to Hank is made and sent
    async with h.app.bot_data["deps"].sessions() as s:
        shop = (await s.exec(select(Shop))).one()
        hank = (await s.exec(select(SubAccount).where(
            col(SubAccount.holder_id) == HOLDER.id))).one()
        await request_transfer(s, policy=h.app.bot_data["deps"].lifecycle, shop_id=shop.id or 0,
                               owner_id=OWNER.id, account_id=hank.id or 0, old_owner="leave",
                               typed_name="Tea House", now=h.clock.now())
        await s.commit()
    await h.text(OWNER, "Tea House")
    assert "already waiting for an answer" in h.last(OWNER).text
    assert "waiting for Hank" in h.last(OWNER).text
    assert len(await transfers(h)) == 1


async def test_the_customer_service_duty_of_both_ends(harness: Harness) -> None:
    h = harness
    await setup_hank(h, im=True)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as s:
        shop = (await s.exec(select(Shop))).one()
        for user in (OWNER.id, HOLDER.id):
            await enroll_agent(s, deps.service_policy, shop_id=shop.id or 0, user_id=user,
                               actor_id=user, now=h.clock.now())
        await s.commit()
    assert [a.active for a in await rows(h, Agent)] == [True, True]
    await ask_hank(h)
    await h.click(HOLDER, "Accept")
    assert [a.active for a in await rows(h, Agent)] == [False, False]
    assert (await audit_actions(h)).count("service.agent_released") == 2


async def test_two_expiry_runs_at_once_tell_each_transfer_once(harness: Harness) -> None:
    """Two processes' runs (or a run and the duty poll) racing: one ends it, one tells."""
    h = harness
    await setup_hank(h)
    await ask_hank(h)
    h.clock.advance(24 * 3600)
    deps = h.app.bot_data["deps"]
    before = len(h.api.methods("sendMessage"))
    await asyncio.gather(expire_transfers(h.app.bot, deps), expire_transfers(h.app.bot, deps))
    sent = [c.params["text"] for c in h.api.methods("sendMessage")[before:]]
    assert len(sent) == 2 and sum("has expired" in str(text) for text in sent) == 2
    assert [e.action for e in await rows(h, AuditEvent)].count("transfer.expired") == 1


async def test_an_expiry_crashed_before_its_notices_tells_both_once_after_the_lease(
    harness: Harness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The expiry's notices are owed in the outbox: a process that dies between the commit and
    the sends leaves them to the next run once the lease has passed — told once, not lost."""
    from handlers import outbox as outbox_handlers
    from models.outbox import LEASE

    h = harness
    deps = h.app.bot_data["deps"]
    await setup_hank(h)
    await ask_hank(h)
    h.clock.advance(24 * 3600)

    class Crash(Exception):
        pass

    async def crash(*_args: Any, **_kw: Any) -> None:
        raise Crash

    monkeypatch.setattr(outbox_handlers, "send_safely", crash)
    with pytest.raises(Crash):
        await expire_transfers(h.app.bot, deps)
    monkeypatch.undo()
    assert (await transfers(h))[0].status == TransferStatus.EXPIRED
    owner_told = "Hank did not answer in time"
    assert not any(owner_told in m.text for m in h.messages(OWNER))
    h.clock.advance(LEASE.total_seconds() + 1)
    await expire_transfers(h.app.bot, deps)
    await expire_transfers(h.app.bot, deps)
    assert sum(owner_told in m.text for m in h.messages(OWNER)) == 1
    assert sum("has expired" in m.text for m in h.messages(HOLDER)) == 1


async def test_the_deadline_is_shown_in_the_shops_time_zone(harness: Harness) -> None:
    from datetime import UTC
    from zoneinfo import ZoneInfo

    h = harness
    await setup_hank(h)
    await h.command(OWNER, "/timezone")
    await h.click(OWNER, "Asia/Shanghai")
    await ask_hank(h)
    [transfer] = await transfers(h)
    local = transfer.expires_at.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    until = local.strftime("%Y-%m-%d %H:%M")
    assert f"valid until {until}." in h.last(HOLDER).text
    assert f"They have until {until} to accept" in h.last(OWNER).text
    assert "UTC" not in h.last(HOLDER).text


# --- bad input edits the card (one message, as /newaccount's) ---------------------------------

#: what the owner reads, in each language
WORDS = {
    "en": SimpleNamespace(
        step2="Step 2 of 3", step3="Step 3 of 3", leave="🚪 Leave the shop",
        use_buttons="Please use the buttons below.", need_text="Please answer with a text message.",
        mismatch="That is not the shop's name. To confirm, type it exactly: Tea House",
        waiting="waiting for Hank (+86 139****9000)",
        pending="A main-account change is already waiting for an answer.",
        role_gone="That role no longer exists."),
    "zh-Hans": SimpleNamespace(
        step2="第2步，共3步", step3="第3步，共3步", leave="🚪 退出店铺",
        use_buttons="请使用下方按钮。", need_text="请用文字消息回复。",
        mismatch="店铺名称不正确。请准确输入店铺名称以确认：Tea House",
        waiting="等待 Hank（+86 139****9000）回复",
        pending="已有一个主账号更换申请在等待对方回复。",
        role_gone="该岗位已不存在。"),
}


async def in_language(h: Harness, locale: str) -> None:
    """The owner switches to ``locale`` (English is the default)."""
    if locale != "en":
        await h.command(OWNER, "/language")
        await h.click(OWNER, "简体中文")


async def one_edit(h: Harness, card: int, act: Any, who: Person = OWNER) -> Shown:
    """``act`` (an awaited harness action) edits the card ``card`` in ``who``'s chat, once:
    no new message there, no other message touched."""
    before = len(h.api.calls)
    await act
    touched = [(c.method, c.params.get("message_id")) for c in h.api.calls[before:]
               if c.method in ("sendMessage", "editMessageText", "editMessageReplyMarkup")
               and int(c.params.get("chat_id", 0)) == who.id]
    assert [(m, None if i is None else int(i)) for m, i in touched] == [
        ("editMessageText", card)], touched
    return h.message(who, card)


async def domain_rows(h: Harness) -> Any:
    """What a transfer would write: transfers, the audit, owners, bindings, sub-accounts."""
    return ([(t_.id, t_.status) for t_ in await transfers(h)], len(await rows(h, AuditEvent)),
            [s.owner_id for s in await rows(h, Shop)],
            [(b.phone, b.kind) for b in await rows(h, PhoneBinding)],
            [(a.id, a.holder_id, a.status) for a in await rows(h, SubAccount)])


@pytest.mark.parametrize("locale", LOCALES)
async def test_bad_input_at_each_step_edits_the_card(harness: Harness, locale: str) -> None:
    """A text where buttons are expected, a sticker, a wrong shop name: each is one edit of the
    card — the reason (quoting what was typed) above the same prompt, the same buttons."""
    h, w = harness, WORDS[locale]
    await setup_hank(h)
    await in_language(h, locale)
    before = await domain_rows(h)
    await h.command(OWNER, "/transfer")
    step1 = h.last(OWNER)
    card = step1.message_id
    shown = await one_edit(h, card, h.text(OWNER, "Hank"))
    assert shown.text == f"⚠️ «Hank» — {w.use_buttons}\n\n{step1.text}"
    assert shown.buttons == step1.buttons
    shown = await one_edit(h, card, h.sticker(OWNER))
    assert shown.text == f"⚠️ {w.use_buttons}\n\n{step1.text}"
    assert shown.buttons == step1.buttons

    step2 = await one_edit(h, card, h.click(OWNER, HANK_LABEL))
    assert w.step2 in step2.text and "⚠️" not in step2.text  # the notice is gone
    assert w.leave in step2.labels
    shown = await one_edit(h, card, h.text(OWNER, "  Operations  "))
    assert shown.text == f"⚠️ «Operations» — {w.use_buttons}\n\n{step2.text}"
    assert shown.buttons == step2.buttons
    shown = await one_edit(h, card, h.voice(OWNER))
    assert shown.text == f"⚠️ {w.use_buttons}\n\n{step2.text}"

    step3 = await one_edit(h, card, h.click(OWNER, "Operations"))
    assert w.step3 in step3.text and "⚠️" not in step3.text
    for typed, quoted in (("Tea Hous", "Tea Hous"), ("tea house", "tea house"),
                          ("<b>Tea</b> House", "<b>Tea</b> House"),
                          ("x" * 40, "x" * 23 + "…")):
        shown = await one_edit(h, card, h.text(OWNER, typed))
        assert shown.text == f"⚠️ «{quoted}» — {w.mismatch}\n\n{step3.text}", typed
        assert shown.buttons == step3.buttons
    shown = await one_edit(h, card, h.sticker(OWNER))
    assert shown.text == f"⚠️ {w.need_text}\n\n{step3.text}"
    assert shown.buttons == step3.buttons
    assert await domain_rows(h) == before  # nothing written before the name matches

    waiting = await one_edit(h, card, h.text(OWNER, "Tea House"))
    assert w.waiting in waiting.text and "⚠️" not in waiting.text
    [transfer] = await transfers(h)
    assert transfer.status == TransferStatus.PENDING
    assert waiting.data == [f"tr:wd:{transfer.id}"]
    assert h.last(HOLDER).labels == ["✅ Accept", "✖️ Decline"]


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_role_deleted_before_the_name_is_typed_edits_the_card(
    harness: Harness, locale: str,
) -> None:
    """The role chosen for the owner is deleted meanwhile: the right name brings step 2 back on
    the same card with the reason, nothing written."""
    from models.roles import delete_role
    from models.shops import owned_shop
    from tests.support.domain import add_role

    h, w = harness, WORDS[locale]
    await setup_hank(h)
    packing = await add_role(h, name="Packing")
    await in_language(h, locale)
    await h.command(OWNER, "/transfer")
    card = h.last(OWNER).message_id
    await h.click(OWNER, HANK_LABEL)
    await h.click(OWNER, "Packing")
    before = await domain_rows(h)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as s:
        shop = await owned_shop(s, OWNER.id)
        assert shop is not None
        await delete_role(s, shop_id=shop.id or 0, actor_id=OWNER.id, role_id=packing,
                          now=h.clock.now())
        await s.commit()
    shown = await one_edit(h, card, h.text(OWNER, "Tea House"))
    assert shown.text.startswith(f"⚠️ {w.role_gone}\n\n{w.step2}")
    assert "Packing" not in shown.labels and w.leave in shown.labels
    assert await transfers(h) == []
    assert len(await rows(h, AuditEvent)) == before[1] + 1  # the role's deletion, only


@pytest.mark.parametrize("locale", LOCALES)
async def test_a_transfer_made_meanwhile_edits_the_card_with_the_pending_one(
    harness: Harness, locale: str,
) -> None:
    """Another device asked meanwhile: the typed name gets the reason above the pending
    transfer's card (with Withdraw), on the same message."""
    h, w = harness, WORDS[locale]
    await setup_hank(h)
    await onboard(h, STRANGER, STRANGER_PHONE)
    await add_sub_account(h, holder=STRANGER, phone=STRANGER_PHONE)
    await in_language(h, locale)
    await h.command(OWNER, "/transfer")
    card = h.last(OWNER).message_id
    await h.click(OWNER, "Sam")
    await h.click(OWNER, "Operations")
    async with h.app.bot_data["deps"].sessions() as s:
        shop = (await s.exec(select(Shop))).one()
        hank = (await s.exec(select(SubAccount).where(
            col(SubAccount.holder_id) == HOLDER.id))).one()
        await request_transfer(s, policy=h.app.bot_data["deps"].lifecycle, shop_id=shop.id or 0,
                               owner_id=OWNER.id, account_id=hank.id or 0, old_owner="leave",
                               typed_name="Tea House", now=h.clock.now())
        await s.commit()
    shown = await one_edit(h, card, h.text(OWNER, "Tea House"))
    assert shown.text.startswith(f"⚠️ {w.pending}")  # the name was right: not quoted
    assert w.waiting in shown.text
    [transfer] = await transfers(h)
    assert shown.data == [f"tr:wd:{transfer.id}"]
    assert await rows(h, Draft) == []


async def test_a_superseded_card_loses_its_buttons(harness: Harness) -> None:
    """/transfer again, or /cancel, in the middle: the old card keeps its text, not its
    buttons."""
    h = harness
    await setup_hank(h)
    await h.command(OWNER, "/transfer")
    first = h.last(OWNER).message_id
    await h.click(OWNER, HANK_LABEL)
    await h.command(OWNER, "/transfer")
    assert h.message(OWNER, first).buttons == []
    assert "Step 2 of 3" in h.message(OWNER, first).text
    second = h.last(OWNER)
    assert second.message_id != first and HANK_LABEL in second.labels
    await h.command(OWNER, "/cancel")
    assert h.message(OWNER, second.message_id).buttons == []
    assert await rows(h, Draft) == []
