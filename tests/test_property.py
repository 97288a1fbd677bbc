"""Property test: whatever anyone sends in any conversation state, the bot answers sensibly,
never raises, and the database invariants hold.

For each state the owner is first driven there; then Hypothesis sends a random sequence of
inputs — text of any length and script, emoji, commands out of place, stickers, photos,
documents, contacts of other users, edited messages, random and forged callback data, stale
buttons — from the owner, the holder or a stranger.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from handlers import FLOWS
from handlers.router import Router
from models.roles import list_roles
from models.shops import owned_shop
from models.tables import (
    AuditEvent,
    CodeStatus,
    Draft,
    PhoneBinding,
    Shop,
    SubAccount,
    User,
    VerificationCode,
)
from tests.harness import Harness, Person
from tests.support.domain import add_role, holder_code
from tests.support.flows import make_owner, onboard, open_new_role
from tests.support.people import OWNER, STRANGER

EXAMPLES = 30
_phones = itertools.count(1)
_ids = itertools.count(900_000)


def fresh_holder() -> tuple[Person, str]:
    """A new holder with a phone nobody has used in this run."""
    n = next(_phones)
    return Person(next(_ids), f"Holder{n}", "en"), f"+86139{n:08d}"


# --- drivers: put the owner in a given state --------------------------------------------------

Driver = Callable[[Harness], Awaitable[Person | None]]


async def _owner_ready(h: Harness) -> int:
    """The owner has a shop and a role and is in no flow; the role's id."""
    async with h.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        found = await list_roles(session, shop.id or 0) if shop else []
    if shop is None:
        await make_owner(h)
        return await add_role(h)
    await h.command(OWNER, "/cancel")
    if not found:
        return await add_role(h)
    return found[0][0].id or 0


async def to_newaccount(h: Harness, *, step: str) -> Person | None:
    role_id = await _owner_ready(h)
    h.clock.advance(3600)  # clear cooldowns and hourly caps between examples
    holder, phone = fresh_holder()
    await onboard(h, holder, phone)
    await h.command(OWNER, "/newaccount")
    if step == "role":
        return holder
    await h.press(OWNER, f"na:role:{role_id}")
    if step == "phone":
        return holder
    await h.text(OWNER, phone)
    if step == "code":
        return holder
    await h.text(OWNER, holder_code(h, holder))
    if step == "nickname":
        return holder
    await h.text(OWNER, "Nick")
    if step == "im":
        return holder
    await h.press(OWNER, "na:im:1")
    return holder


async def to_onboarding(h: Harness) -> Person | None:
    person, _ = fresh_holder()
    await h.command(person, "/start")
    return person


async def to_newshop(h: Harness) -> Person | None:
    person, phone = fresh_holder()
    await onboard(h, person, phone)
    await h.command(person, "/newshop")
    return person


async def to_invite(h: Harness) -> Person | None:
    role_id = await _owner_ready(h)
    h.clock.advance(3600)
    person, phone = fresh_holder()
    await h.command(OWNER, "/newaccount")
    await h.press(OWNER, f"na:role:{role_id}")
    await h.text(OWNER, phone)
    link = h.last(OWNER).text
    token = link.split("?start=", 1)[1].split()[0] if "?start=" in link else "x"
    await h.command(person, f"/start {token}")
    return person


async def to_role_creation(h: Harness, *, step: str) -> Person | None:
    """The roles flow: preset → name → description → permissions."""
    await _owner_ready(h)
    await open_new_role(h)
    if step == "preset":
        return None
    await h.click(OWNER, "Blank")
    if step == "name":
        return None
    await h.text(OWNER, f"Role {next(_phones)}")
    if step == "desc":
        return None
    await h.click(OWNER, "Skip")
    return None


async def to_nested_role(h: Harness) -> Person | None:
    """/newaccount → ➕ Create new role."""
    await _owner_ready(h)
    await h.command(OWNER, "/newaccount")
    await h.click(OWNER, "Create new role")
    return None


async def to_rename(h: Harness) -> Person | None:
    """/accounts → an account → Rename (its holder is the subject)."""
    holder = await to_newaccount(h, step="confirm")
    await h.click(OWNER, "Confirm")
    await h.command(OWNER, "/accounts")
    opening = [d for d in h.last(OWNER).data if d.startswith("a:op:")]
    await h.press(OWNER, opening[-1])
    await h.click(OWNER, "Rename")
    return holder


async def idle(h: Harness) -> Person | None:
    await _owner_ready(h)
    return None


STATES: dict[str, Driver] = {
    "idle": idle,
    "onboard.phone": to_onboarding,
    "newshop.name": to_newshop,
    "invite.contact": to_invite,
    **{f"newaccount.{step}": functools.partial(to_newaccount, step=step)
       for step in ("role", "phone", "code", "nickname", "im", "confirm")},
    **{f"roles.{step}": functools.partial(to_role_creation, step=step)
       for step in ("preset", "name", "desc", "perms")},
    "roles.nested": to_nested_role,
    "accounts.rename": to_rename,
}


# --- random inputs ----------------------------------------------------------------------------

COMMANDS = ["/start", "/cancel", "/help", "/newaccount", "/roles", "/accounts", "/me", "/log",
            "/language", "/newshop", "/frobnicate", "/start bogus-token", "/start " + "A" * 70]


def forged_callback() -> st.SearchStrategy[str]:
    declared = Router(FLOWS).namespaces
    namespaces = sorted(declared)
    return st.builds(
        lambda ns, action, args: ":".join([ns, action, *args]),
        st.sampled_from([*namespaces, "zz", ""]),
        st.sampled_from([*sorted({a for shapes in declared.values() for a in shapes}), "x", ""]),
        st.lists(st.one_of(st.integers(0, 10**12).map(str), st.sampled_from(
            ["en", "zh-Hans", "home", "-1", "1.5", "", "orders"])), max_size=3),
    )


inputs = st.one_of(
    st.tuples(st.just("text"), st.text(min_size=1, max_size=400)),
    st.tuples(st.just("text"), st.sampled_from(
        ["123456", "000000", " 1 2 3 4 5 6 ", "+86 139 0013 9000", "😀" * 5, "名字", "a" * 31,
         "<b>bold</b> & <i>", "\u200b", "١٢٣٤٥٦"])),
    st.tuples(st.just("command"), st.sampled_from(COMMANDS)),
    st.tuples(st.just("command"), st.sampled_from(COMMANDS)),  # twice: commands out of place
    st.tuples(st.just("sticker"), st.none()),
    st.tuples(st.just("photo"), st.none()),
    st.tuples(st.just("document"), st.none()),
    st.tuples(st.just("contact"), st.tuples(
        st.sampled_from(["8613900139000", "12345", "+8613800138000", "+447911123456", ""]),
        st.booleans())),
    st.tuples(st.just("edited"), st.text(min_size=1, max_size=50)),
    st.tuples(st.just("press"), st.text(max_size=80)),
    st.tuples(st.just("press"), forged_callback()),
    st.tuples(st.just("stale"), st.integers(0, 50)),
)
senders = st.sampled_from(["owner", "subject", "stranger"])


async def send(h: Harness, who: Person, kind: str, value: Any) -> None:
    if kind == "text":
        await h.text(who, value)
    elif kind == "command":
        await h.command(who, value)
    elif kind in ("sticker", "photo", "document"):
        media: dict[str, Any] = {
            "sticker": {"sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular",
                                    "width": 1, "height": 1, "is_animated": False,
                                    "is_video": False}},
            "photo": {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1,
                                 "height": 1}]},
            "document": {"document": {"file_id": "d", "file_unique_id": "d"}},
        }[kind]
        await h.feed({"message": h._message(who, **media)})
    elif kind == "contact":
        phone, own = value
        await h.contact(who, phone or "0", user_id=None if own else who.id + 1)
    elif kind == "edited":
        await h.edited(who, value)
    elif kind == "press":
        await h.press(who, value)
    elif kind == "stale":
        mine = [m for m in h.messages(who) if m.data]
        if mine:
            message = mine[value % len(mine)]
            await h.press(who, message.data[value % len(message.data)],
                          message_id=message.message_id)


# --- invariants -------------------------------------------------------------------------------


async def check_invariants(h: Harness) -> None:
    async with h.app.bot_data["deps"].sessions() as session:
        bindings = (await session.exec(select(PhoneBinding))).all()
        shops = {s.id: s for s in (await session.exec(select(Shop))).all()}
        users = {u.id: u for u in (await session.exec(select(User))).all()}
        accounts = (await session.exec(select(SubAccount))).all()
        codes = {c.id: c for c in (await session.exec(select(VerificationCode))).all()}
        events = (await session.exec(select(AuditEvent))).all()
        drafts = (await session.exec(select(Draft))).all()
    by_phone = {b.phone: b for b in bindings}
    assert len(by_phone) == len(bindings)  # no phone bound twice
    for shop in shops.values():
        owner_phone = users[shop.owner_id].phone
        assert owner_phone is not None and by_phone[owner_phone].kind == "owner"
        assert by_phone[owner_phone].shop_id == shop.id
    for account in accounts:  # every sub-account came from a code that was confirmed
        binding = by_phone[account.phone]
        assert (binding.kind, binding.shop_id) == ("sub", account.shop_id)
        code = codes[account.code_id]
        assert code.status == CodeStatus.USED.value
        assert (code.phone, code.shop_id) == (account.phone, account.shop_id)
        assert users[account.holder_id].phone == account.phone
    assert sum(1 for b in bindings if b.kind == "sub") == len(accounts)
    created = [e for e in events if e.action == "account.created"]
    removed = [e for e in events if e.action in ("account.unbound", "account.left")]
    assert len(created) - len(removed) == len(accounts)
    issued = [e for e in events if e.action == "code.issued"]
    assert len(issued) == len(codes)  # audit log consistent with the codes
    for code in codes.values():  # no plain code anywhere in the audit log
        assert code.code_hash not in str([e.detail for e in events])
    assert len({d.user_id for d in drafts}) == len(drafts)


async def assert_reached(h: Harness, state: str, subject: Person) -> None:
    """The driver really put someone in the state under test."""
    if state == "idle":
        return
    expected = {"roles.nested": "roles.preset"}.get(state, state)
    who = subject if state.split(".")[0] in ("onboard", "newshop", "invite") else OWNER
    async with h.app.bot_data["deps"].sessions() as session:
        draft = await session.get(Draft, who.id)
    assert draft is not None, f"{state}: no draft"
    if expected is not None:
        assert f"{draft.flow}.{draft.step}" == expected


# --- the property -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(STATES))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(script=st.lists(st.tuples(senders, inputs), min_size=1, max_size=6))
async def test_random_input_in_every_state(
    state: str, script: list[tuple[str, tuple[str, Any]]], harness: Harness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = harness
    caplog.set_level(logging.ERROR)
    subject = await STATES[state](h) or OWNER
    await assert_reached(h, state, subject)
    caplog.clear()
    for who_name, (kind, value) in script:
        who = {"owner": OWNER, "subject": subject, "stranger": STRANGER}[who_name]
        before = len(h.api.calls)
        started = time.perf_counter()
        await send(h, who, kind, value)
        answered = [c for c in h.api.calls[before:] if c.method in (
            "sendMessage", "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery")]
        if kind != "stale" or answered:
            assert answered, f"no answer to {kind} {value!r} in state {state}"
        assert time.perf_counter() - started < 5
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors
    await check_invariants(h)
