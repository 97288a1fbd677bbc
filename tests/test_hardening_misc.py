"""Issue 12, the Telegram-layer and naming defects: a failed send after a commit, forged huge
ids, invisible characters in names, edited commands, a role deleted mid-flow, double escaping
in /log and a double Confirm. Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.error import NetworkError
from telegram.ext import CommandHandler

from bot import db
from bot.config import ModuleSettings, Settings
from bot.localapi import Call
from bot.localapi import LocalBotApi as FakeBotApi
from handlers import FLOWS
from handlers.router import Router
from models.roles import delete_role, set_modules
from models.shops import owned_shop
from models.tables import (
    AccountStatus,
    AuditEvent,
    Draft,
    Role,
    Shop,
    SubAccount,
    User,
    VerificationCode,
)
from tests.harness import Harness, Person, Shown, rows
from tests.support.app import start_harness, stop_harness
from tests.support.domain import add_role, add_sub_account, holder_code
from tests.support.flows import (
    card,
    flow_card,
    make_owner,
    onboard,
    open_hank,
    setup_hank,
    to_code_step,
    to_confirm_step,
)
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER

STALE = "This menu is no longer valid."
WENT_WRONG = "Sorry, something went wrong"
ADDED = "You are now a sub-account of"


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def said(h: Harness, who: object, part: str) -> list[Shown]:
    """The bot's messages in ``who``'s chat (as they are now) containing ``part``."""
    return [m for m in h.messages(who) if part in m.text]  # type: ignore[arg-type]


async def at_summary(h: Harness) -> Shown:
    """Olivia's Tea House, Hank linked, /newaccount walked to the summary (step 6)."""
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await to_code_step(h)
    await to_confirm_step(h)
    summary = h.last(OWNER)
    assert "Step 6 of 6" in summary.text
    return summary


# --- 5. the holder is told first; edits are retried; the owner always learns the outcome ------


async def test_confirm_edit_failing_once_is_retried_and_the_holder_is_told(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    summary = await at_summary(h)
    h.api.fail_next("editMessageText", NetworkError("connection reset"))
    await h.press(OWNER, summary.button("Confirm"), message_id=summary.message_id)
    assert len(await rows(h, SubAccount)) == 1
    assert "Sub-account created" in h.message(OWNER, summary.message_id).text  # on the retry
    assert said(h, HOLDER, ADDED)
    assert not said(h, OWNER, WENT_WRONG) and errors(caplog) == []


async def test_confirm_screen_that_cannot_be_edited_is_sent_anew(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    summary = await at_summary(h)
    for _ in range(3):  # the first try and both retries
        h.api.fail_next("editMessageText", NetworkError("connection reset"))
    await h.press(OWNER, summary.button("Confirm"), message_id=summary.message_id)
    assert said(h, HOLDER, ADDED)  # told before the owner's screen was even tried
    (created,) = said(h, OWNER, "Sub-account created")
    assert created.message_id != summary.message_id  # a new message, since the edit failed
    assert not said(h, OWNER, WENT_WRONG) and errors(caplog) == []


async def test_confirm_with_the_holder_unreachable_says_so_on_the_owners_screen(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    summary = await at_summary(h)
    for _ in range(3):
        h.api.fail_next("sendMessage", NetworkError("connection reset"))
    await h.press(OWNER, summary.button("Confirm"), message_id=summary.message_id)
    (account,) = await rows(h, SubAccount)
    assert account.status == AccountStatus.AUTHORIZED.value
    screen = h.message(OWNER, summary.message_id).text
    assert "Sub-account created" in screen
    assert "Hank could not be told: Telegram did not take the message" in screen
    assert not said(h, HOLDER, ADDED)
    assert not said(h, OWNER, WENT_WRONG) and errors(caplog) == []


async def act_on_hank(h: Harness, action: str) -> None:
    """Olivia changes Hank's account by ``action`` from his account screen."""
    await open_hank(h)
    if action == "role":
        await h.click(OWNER, "Change role")
        await h.click(OWNER, "Support")
    elif action == "im":
        await h.click(OWNER, "IM")
    elif action == "suspend":
        await h.click(OWNER, "Suspend")
    elif action == "unbind":
        await h.click(OWNER, "Unbind")
        await h.click(OWNER, "Yes, unbind")
    else:
        await h.click(OWNER, "Rename")
        await h.text(OWNER, "Hank Li")


CHANGES = {
    "role": ("Role changed", "your role is now"),
    "im": ("IM is now on", "is now <b>on</b>"),
    "suspend": ("is suspended", "has suspended your sub-account"),
    "unbind": ("is unbound", "has unbound your sub-account"),
    "rename": ("Renamed", "your nickname is now"),
}


@pytest.mark.parametrize("action", list(CHANGES))
async def test_account_changes_tell_the_holder_through_a_failing_edit(
    action: str, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    await setup_hank(h)
    await add_role(h, name="Support")
    h.api.fail_next("editMessageText", NetworkError("connection reset"))
    await act_on_hank(h, action)
    done, told = CHANGES[action]
    assert said(h, OWNER, done)
    assert [c for c in h.api.methods("sendMessage")
            if c.params["chat_id"] == HOLDER.id and told in c.params["text"]]
    assert not said(h, OWNER, WENT_WRONG) and errors(caplog) == []


@pytest.mark.parametrize("action", list(CHANGES))
async def test_account_changes_say_plainly_when_the_holder_was_not_told(
    action: str, harness: Harness, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = harness
    await setup_hank(h)
    await add_role(h, name="Support")
    calls = len(h.api.calls)
    # every message to Hank fails on the network, however many calls come before it
    handle = h.api.handle

    def failing_for_hank(method: str, params: dict[str, object]) -> object:
        if method == "sendMessage" and params.get("chat_id") == HOLDER.id:
            h.api.calls.append(Call(method, params))
            raise NetworkError("connection reset")
        return handle(method, params)

    monkeypatch.setattr(h.api, "handle", failing_for_hank)
    await act_on_hank(h, action)
    done, _ = CHANGES[action]
    screen = h.last(OWNER).text
    assert done in screen
    assert "could not be told about this change: Telegram did not take the message" in screen
    tries = [c for c in h.api.calls[calls:]
             if c.method == "sendMessage" and c.params["chat_id"] == HOLDER.id]
    assert len(tries) == 3  # sent, then retried twice
    assert not said(h, OWNER, WENT_WRONG) and errors(caplog) == []


# --- 8. ids out of the columns' range are stale, never a database error -----------------------


FORGED = ["a:op:{n}", "a:sr:1:{n}", "a:sr:{n}:1", "a:im:{n}:1", "r:o:{n}", "r:yes:{n}",
          "me:lv:{n}", "hc:no:{n}", "lg:pg:{n}", "na:role:{n}", "a:pg:{n}"]


async def test_forged_huge_ids_are_stale_on_every_database(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    await setup_hank(h)
    await h.command(OWNER, "/newaccount")
    for n in (2**31, 99_999_999_999, 999_999_999_999):
        for pattern in FORGED:
            answers = len(h.answers())
            await h.press(OWNER, pattern.format(n=n))
            await h.press(HOLDER, pattern.format(n=n))
            assert h.answers()[answers:] == [STALE, STALE], pattern.format(n=n)
    assert not said(h, OWNER, WENT_WRONG) and not said(h, HOLDER, WENT_WRONG)
    assert errors(caplog) == []


def test_callback_ints_must_fit_a_32_bit_column() -> None:
    router = Router(FLOWS)
    assert router.parse(f"a:op:{2**31 - 1}") == ("a", "op", [str(2**31 - 1)])
    for bad in (f"a:op:{2**31}", "a:op:00000000001", "a:op:١٢", "a:op:-1", "a:op:+1", "a:op:"):
        assert router.parse(bad) is None, bad


# --- 9. invisible and bidi characters are stripped from every name ----------------------------


async def create_role_named(h: Harness, name: str) -> list[Shown]:
    """Olivia starts a blank role in /roles and types ``name``: what the bot answers."""
    await h.command(OWNER, "/roles")
    await h.click(OWNER, "New role")
    await h.click(OWNER, "Blank")
    return await h.text(OWNER, name)


async def test_role_names_that_only_differ_by_invisible_characters_are_the_same(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await add_role(h, name="Ops")
    for lookalike in ("Ops\u200b", "O\u00adps", "\u2066Ops\u2069", "\ufeffOps"):
        shown = await create_role_named(h, lookalike)
        assert "already has a role called “Ops”" in shown[0].text, repr(lookalike)
        await h.command(OWNER, "/cancel")
    assert [r.name for r in await rows(h, Role)] == ["Ops"]


async def test_names_lose_bidi_overrides_and_keep_emoji_sequences(harness: Harness) -> None:
    h = harness
    await make_owner(h, shop="\u202eesuoH aeT")
    assert [s.name for s in await rows(h, Shop)] == ["esuoH aeT"]
    shown = await create_role_named(h, "👩\u200d💻 Dev\u202e")
    assert "Role description for 👩\u200d💻 Dev" in shown[0].text
    await h.text(OWNER, "Night\u2067 shift\u00ad")
    await h.click(OWNER, "Home")
    await h.click(OWNER, "Done")
    role = next(r for r in await rows(h, Role) if r.name.endswith("Dev"))
    assert (role.name, role.description) == ("👩\u200d💻 Dev", "Night shift")
    await add_role(h, name="Operations")
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE)
    await open_hank(h)
    await h.click(OWNER, "Rename")
    await h.text(OWNER, "\u202enimdA")
    (account,) = await rows(h, SubAccount)
    assert account.nickname == "nimdA"
    assert "Admin" not in h.last(OWNER).text and "\u202e" not in h.last(OWNER).text


async def test_telegram_first_names_lose_bidi_overrides(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    spoofer = Person(HOLDER.id, "\u202enimdA\u200b", "en")
    await onboard(h, spoofer, HOLDER_PHONE)
    holder = next(u for u in await rows(h, User) if u.id == HOLDER.id)
    assert holder.first_name == "nimdA"
    await to_code_step(h)
    await h.text(OWNER, holder_code(h))
    assert "Use “nimdA”" in h.last(OWNER).labels


# --- 10. an edited message is never run as a command ------------------------------------------


async def test_an_edit_into_a_command_runs_nothing(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await to_code_step(h)
    for command in ("/cancel", "/newaccount", "/start", "/roles"):
        message = h._message(OWNER, text=command, edit_date=int(time.time()),
                             entities=[{"type": "bot_command", "offset": 0,
                                        "length": len(command)}])
        shown = await h.feed({"edited_message": message})
        assert "I don't read edited messages" in shown[0].text, command
    (code,) = await rows(h, VerificationCode)
    assert code.status == "pending"
    (draft,) = await rows(h, Draft)
    assert (draft.flow, draft.step) == ("newaccount", "code")
    await h.text(OWNER, holder_code(h))
    assert "Code verified" in card(h, OWNER).text


async def test_no_command_handler_takes_an_edited_message(harness: Harness) -> None:
    """Every command the application has (today's and any added later) ignores edits."""
    commands = [h for group in harness.app.handlers.values() for h in group
                if isinstance(h, CommandHandler)]
    assert len(commands) >= 8
    for handler in commands:
        for command in sorted(handler.commands):
            text = f"/{command}"
            payload = {"update_id": 1, "edited_message": harness._message(
                OWNER, text=text, edit_date=int(time.time()),
                entities=[{"type": "bot_command", "offset": 0, "length": len(text)}])}
            edited = Update.de_json(payload, harness.app.bot)
            assert not handler.check_update(edited), text
            payload["message"] = payload.pop("edited_message")
            assert handler.check_update(Update.de_json(payload, harness.app.bot)), text


# --- 11. a role deleted mid-flow rewinds to choosing a role, once -----------------------------


async def test_deleting_the_chosen_role_mid_flow_rewinds_to_the_role_step(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    support = await add_role(h, name="Support")
    ops = await to_code_step(h)  # "Customer service", chosen
    await h.press(OWNER, f"r:del:{ops}")  # from an older /roles screen
    await h.press(OWNER, f"r:yes:{ops}")
    text = (await flow_card(h)).text
    assert "The role you chose for this new account has been deleted" in text
    assert "Step 1 of 6" in text
    await h.press(OWNER, f"na:role:{support}")
    assert "Ask them for it and type it here" in h.last(OWNER).text  # back where the owner was
    await h.text(OWNER, holder_code(h))
    await h.click(OWNER, "Use “")
    assert "Step 5 of 6" in h.last(OWNER).text
    await h.press(OWNER, "na:im:0")
    assert "Role: <b>Support</b>" in h.last(OWNER).text or "Role: Support" in h.last(OWNER).text
    await h.click(OWNER, "Confirm")
    (account,) = await rows(h, SubAccount)
    assert account.role_id == support
    assert not said(h, OWNER, "That role no longer exists")


async def test_a_role_deleted_by_another_session_is_noticed_once(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    support = await add_role(h, name="Support")
    ops = await to_code_step(h)
    await h.text(OWNER, holder_code(h))
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:  # another process deletes it
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        await delete_role(session, shop_id=shop.id or 0, actor_id=OWNER.id, role_id=ops,
                          now=h.clock.now())
        await session.commit()
    shown = await h.text(OWNER, "Hank")
    assert shown[0].text.startswith("⚠️ The role you chose")
    assert "Step 1 of 6" in shown[-1].text
    (draft,) = await rows(h, Draft)
    assert (draft.step, draft.data.get("nickname"), draft.data.get("resume")) == \
        ("role", "Hank", "im")
    await h.press(OWNER, f"na:role:{support}")
    assert "Step 5 of 6" in h.last(OWNER).text
    await h.press(OWNER, "na:im:1")
    await h.click(OWNER, "Confirm")
    (account,) = await rows(h, SubAccount)
    assert (account.role_id, account.nickname) == (support, "Hank")
    assert not said(h, OWNER, "That role no longer exists")


async def test_deleting_the_last_role_mid_flow_creates_one_and_keeps_the_code(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    ops = await to_code_step(h)
    await h.press(OWNER, f"r:yes:{ops}")
    assert "no roles yet" in " ".join(m.text for m in h.messages(OWNER)[-3:])
    await h.click(OWNER, "Finance")
    await h.click(OWNER, "Call it “Finance”")
    await h.click(OWNER, "Skip")
    await h.click(OWNER, "Done")
    assert "Ask them for it and type it here" in h.last(OWNER).text
    (code,) = await rows(h, VerificationCode)
    assert code.status == "pending"


# --- 15. configured module names are escaped once in /log -------------------------------------


async def test_module_names_with_markup_characters_read_right_in_the_log(
    settings: Settings, engine: AsyncEngine, api: FakeBotApi, harness: Harness
) -> None:
    await stop_harness(harness)
    modules = [*settings.modules,
               ModuleSettings.model_validate(
                   {"key": "rd", "en": "R&D <lab>", "zh-Hans": "研发&<实验>"})]
    h = await start_harness(settings.model_copy(update={"modules": modules}), engine, api,
                            harness.clock)
    harness.app = h.app
    await make_owner(h)
    role_id = await add_role(h, name="Lab", modules=("home",))
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None
        await set_modules(session, deps.policy, shop_id=shop.id or 0, actor_id=OWNER.id,
                          role_id=role_id, modules=["home", "rd"], now=h.clock.now())
        await session.commit()
    assert [e.action for e in await rows(h, AuditEvent)][-1] == "role.permissions"
    await h.command(OWNER, "/log")
    log = h.last(OWNER)
    assert "added R&D <lab>" in log.text
    assert "&amp;" not in log.text and "&lt;" not in log.text
    raw = h.api.messages[OWNER.id][log.message_id]["_raw"]
    assert "added R&amp;D &lt;lab&gt;" in raw


# --- 17. a double Confirm: one press wins, the other is told it was done ----------------------


async def test_two_confirms_at_once_create_one_account_and_no_failure(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    summary = await at_summary(h)
    data = summary.button("Confirm")
    await asyncio.gather(h.press(OWNER, data, message_id=summary.message_id),
                         h.press(OWNER, data, message_id=summary.message_id))
    (account,) = await rows(h, SubAccount)
    assert said(h, OWNER, "Sub-account created")
    (again,) = said(h, OWNER, "this sub-account was already created")
    assert "Hank" in again.text and "Authorized" in again.text  # the account, shown
    assert "Already done: the sub-account was created." in h.answers()
    assert not said(h, OWNER, "was not created") and not said(h, OWNER, "bound to")
    assert not said(h, OWNER, WENT_WRONG) and errors(caplog) == []
    (code,) = await rows(h, VerificationCode)
    assert code.status == "used" and account.code_id == code.id
    assert len(said(h, HOLDER, ADDED)) == 1


async def test_a_later_press_on_the_same_confirm_shows_the_account(harness: Harness) -> None:
    h = harness
    summary = await at_summary(h)
    data = summary.button("Confirm")
    await h.press(OWNER, data, message_id=summary.message_id)
    await h.press(OWNER, data, message_id=summary.message_id)  # a second device, later
    assert len(await rows(h, SubAccount)) == 1
    assert said(h, OWNER, "this sub-account was already created")
    assert h.answers()[-1] == "Already done: the sub-account was created."
    assert not said(h, OWNER, "was not created")


async def test_two_processes_confirming_at_once_create_one_account(
    harness: Harness, settings: Settings, api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    summary = await at_summary(h)
    data = summary.button("Confirm")
    engine2 = db.create_engine(settings.database.url)
    h2 = await start_harness(settings, engine2, api, h.clock)  # a second bot process
    try:
        await asyncio.gather(h.press(OWNER, data, message_id=summary.message_id),
                             h2.press(OWNER, data, message_id=summary.message_id))
    finally:
        await stop_harness(h2)
        await engine2.dispose()
    assert len(await rows(h, SubAccount)) == 1
    assert said(h, OWNER, "Sub-account created")
    assert said(h, OWNER, "this sub-account was already created")
    assert not said(h, OWNER, "was not created") and not said(h, OWNER, WENT_WRONG)
    assert errors(caplog) == []
