"""Issue 12, the verification-code and invite defects: each test failed before its fix."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from telegram.error import NetworkError

from bot import db
from bot.config import Settings
from bot.localapi import LocalBotApi as FakeBotApi
from bot.secret_files import code_secret_path
from models import codes
from models.errors import DomainError
from models.policy import Policy
from models.shops import owned_shop
from models.tables import Draft, User, VerificationCode
from tests.harness import Harness, rows
from tests.support.app import start_harness, stop_harness
from tests.support.domain import CODE, add_role, add_sub_account, holder_code
from tests.support.flows import card, make_owner, onboard, standard_setup, to_code_step
from tests.support.people import (
    HOLDER,
    HOLDER_PHONE,
    OTHER_OWNER,
    OTHER_PHONE,
    OWNER,
    STRANGER,
    STRANGER_PHONE,
)


def owner_texts(h: Harness) -> str:
    return "\n".join(m.text + " " + " ".join(m.labels) for m in h.messages(OWNER))


async def code_row(h: Harness) -> VerificationCode:
    return (await rows(h, VerificationCode))[-1]


# --- 1. the phone oracle ----------------------------------------------------------------------


async def test_the_holders_name_is_shown_only_after_the_code_is_verified(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    assert "Hank" not in owner_texts(h)
    await h.text(OWNER, holder_code(h))
    assert "Use “Hank”" in h.last(OWNER).labels


async def test_an_invite_opened_does_not_tell_the_owner_the_name(harness: Harness) -> None:
    h = harness
    await make_owner(h)
    await to_code_step(h)
    token = h.last(OWNER).text.split("?start=", 1)[1].split()[0]
    await h.command(HOLDER, f"/start {token}")
    await h.contact(HOLDER, HOLDER_PHONE)
    assert "opened your link" in h.last(OWNER).text
    assert "Hank" not in owner_texts(h)


async def test_phone_look_ups_without_a_verified_code_are_limited_per_owner(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await to_code_step(h, phone="+8613900000000")
    for i in range(1, 10):  # nine more numbers: each is one more look-up
        await h.text(OWNER, f"+86139000000{i:02d}")
        assert "has not used this bot yet" in h.last(OWNER).text
    await h.text(OWNER, "+8613900000010")
    text = h.last(OWNER).text  # the reason above the same prompt, on the card
    assert "You have entered 10 phone numbers in the last hour" in text
    assert "Step 2 of 6" in text
    assert len(await rows(h, VerificationCode)) == 10
    h.clock.advance(3601)
    await h.text(OWNER, "+8613900000010")
    assert "has not used this bot yet" in h.last(OWNER).text


async def test_the_look_up_limit_speaks_chinese(harness: Harness) -> None:
    from handlers.i18n import t

    text = t("zh-Hans", "errors.lookup_limit", cap=10, minutes=5)
    assert "10个手机号" in text and "5分钟" in text


# --- 2. one shop cannot lock a phone out of every shop ----------------------------------------


async def test_one_shops_resends_leave_other_shops_their_chances(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    await to_code_step(h)
    for _ in range(4):
        h.clock.advance(61)
        await h.click(OWNER, "Resend code")
    h.clock.advance(61)
    await h.click(OWNER, "Resend code")
    assert "has had 5 codes in the last hour" in h.last(OWNER).text
    await to_code_step(h, owner=OTHER_OWNER)
    assert "sent to the Telegram chat of" in h.last(OTHER_OWNER).text
    assert len(await rows(h, VerificationCode)) == 6


async def test_two_not_me_stop_that_shops_codes_for_a_day(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    await h.click(HOLDER, "Not me")
    h.clock.advance(61)
    await h.click(OWNER, "Send again to this number")
    await h.click(HOLDER, "Not me")
    h.clock.advance(61)
    await h.click(OWNER, "Send again to this number")
    assert "tapped “Not me” twice today for your shop" in card(h, OWNER).text
    assert [c.status for c in await rows(h, VerificationCode)] == ["declined", "declined"]
    h.clock.advance(24 * 3600)
    await h.press(OWNER, "na:resend")
    assert (await code_row(h)).status == "pending"


# --- 3. a code is a code however it is typed --------------------------------------------------


@pytest.mark.parametrize("shape", ["fullwidth", "arabic", "spaced", "pasted", "dashed"])
async def test_codes_in_other_digits_and_shapes_verify(shape: str, harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    code = holder_code(h)
    typed = {
        "fullwidth": "".join(chr(0xFF10 + int(d)) for d in code),
        "arabic": "".join(chr(0x0660 + int(d)) for d in code),
        "spaced": f"{code[:3]}\u3000{code[3:]}",
        "pasted": f"🔐 验证码：{code} 有效期为5分钟",
        "dashed": f"{code[:3]}-{code[3:]}",
    }[shape]
    await h.text(OWNER, typed)
    assert "Code verified" in owner_texts(h)
    row = await code_row(h)
    assert (row.status, row.attempts) == ("verified", 0)


async def test_only_a_well_formed_entry_costs_a_try(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    code = holder_code(h)
    for typo in ("12345", "1234567", "12a456", "codes 111111 and 222222"):
        await h.text(OWNER, typo)
        assert "The code is 6 digits" in h.last(OWNER).text
    assert (await code_row(h)).attempts == 0
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    await h.text(OWNER, "".join(chr(0xFF10 + int(d)) for d in wrong))
    assert "4 tries left" in h.last(OWNER).text


# --- 4. a verified code expires too; "Not me" works until Confirm -----------------------------


async def test_a_verified_code_expires_a_ttl_after_verification(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    h.clock.advance(200)
    await h.text(OWNER, holder_code(h))
    assert (await code_row(h)).expires_at == h.clock.now() + timedelta(seconds=300)
    await h.text(OWNER, "Hank")
    await h.press(OWNER, "na:im:1")
    h.clock.advance(301)
    await h.click(OWNER, "Confirm")  # the deadline in the database, before any job ran
    assert "verified too long ago" in owner_texts(h)
    assert (await rows(h, VerificationCode))[0].status in ("verified", "cancelled")


async def test_the_expiry_job_ends_a_verified_code_and_rewinds_the_owner(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    await h.text(OWNER, holder_code(h))
    h.clock.advance(301)
    assert await h.run_due_jobs() == 1
    assert (await code_row(h)).status == "expired"
    assert "expired before it was entered" in h.last(OWNER).text
    (draft,) = await rows(h, Draft)
    assert draft.step == "code"
    await h.click(OWNER, "Send a new code")
    assert (await code_row(h)).status == "pending"


async def test_not_me_works_after_verification_until_confirm(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    await h.text(OWNER, holder_code(h))
    await h.click(HOLDER, "Not me")
    assert "You declined" in h.last(HOLDER).text
    assert (await code_row(h)).status == "declined"
    assert "tapped “Not me” — they don't recognise this request" in card(h, OWNER).text
    (draft,) = await rows(h, Draft)
    assert draft.step == "code" and draft.data.get("holder_name") is None


# --- 6. a lost code message leaves nobody stuck -----------------------------------------------


async def test_a_failed_send_is_told_and_can_be_resent_at_once(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    role_id = await add_role(h)
    await h.command(OWNER, "/newaccount")
    await h.press(OWNER, f"na:role:{role_id}")
    for _ in range(3):
        h.api.fail_next("sendMessage", NetworkError("connection reset"))
    await h.text(OWNER, HOLDER_PHONE)
    shown = h.last(OWNER)
    assert "could not be delivered" in shown.text and "Resend code" in " ".join(shown.labels)
    assert ((await code_row(h)).status, (await code_row(h)).delivery) == ("cancelled", "failed")
    await h.click(OWNER, "Resend code")  # no cooldown: the first code reached nobody
    assert CODE.search(h.last(HOLDER).text)
    assert (await code_row(h)).delivery == "delivered"


async def test_a_code_never_sent_is_delivered_at_start_up(
    harness: Harness, settings: Settings, api: FakeBotApi
) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    first = holder_code(h)
    # as if the process had died between the commit and the send
    async with h.app.bot_data["deps"].sessions() as session:
        row = await session.get(VerificationCode, (await code_row(h)).id)
        assert row is not None
        row.delivery, row.holder_message_id = "queued", None
        await session.commit()
    await h.text(OWNER, first)
    assert "has not reached them yet" in h.last(OWNER).text
    assert "Resend code" in h.last(OWNER).labels[1]
    assert (await code_row(h)).attempts == 0
    engine2 = db.create_engine(settings.database.url)
    h2 = await start_harness(settings, engine2, api, h.clock)
    try:
        fresh = holder_code(h2)
        assert "was not sent before the bot restarted" in h2.last(OWNER).text
        assert (await code_row(h2)).delivery == "delivered"
        await h2.text(OWNER, fresh)
        assert "Code verified" in h2.last(OWNER).text or "Step 4 of 6" in h2.last(OWNER).text
    finally:
        await stop_harness(h2)
        await engine2.dispose()


async def test_a_code_never_sent_to_a_holder_who_blocked_the_bot_is_reported_at_start_up(
    harness: Harness, settings: Settings, api: FakeBotApi
) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    async with h.app.bot_data["deps"].sessions() as session:
        row = await session.get(VerificationCode, (await code_row(h)).id)
        assert row is not None
        row.delivery, row.holder_message_id = "queued", None
        await session.commit()
    api.blocked.add(HOLDER.id)
    engine2 = db.create_engine(settings.database.url)
    h2 = await start_harness(settings, engine2, api, h.clock)
    try:
        assert "has blocked this bot" in h2.last(OWNER).text
        assert "Resend code" in h2.last(OWNER).labels[1]
        row = await code_row(h2)
        assert (row.status, row.delivery) == ("cancelled", "failed")
    finally:
        await stop_harness(h2)
        await engine2.dispose()


async def test_retyping_the_number_at_the_code_step_starts_over(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    await h.text(OWNER, "+86 137 0013 7000")
    assert "has not used this bot yet" in h.last(OWNER).text
    statuses = [c.status for c in await rows(h, VerificationCode)]
    assert statuses == ["cancelled", "pending"]


# --- 7. Resend re-runs the binding checks -----------------------------------------------------


async def test_resend_refuses_a_holder_who_became_staff_elsewhere(harness: Harness) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE, owner=OTHER_OWNER)
    sent_before = len(h.messages(HOLDER))
    h.clock.advance(61)
    await h.click(OWNER, "Resend code")
    assert "a sub-account of another shop" in owner_texts(h)
    assert len(h.messages(HOLDER)) == sent_before
    assert "Step 2 of 6" in h.last(OWNER).text


# --- 12 and 13. invites -----------------------------------------------------------------------


async def test_a_stranger_on_someone_elses_invite_keeps_their_phone_linked(
    harness: Harness,
) -> None:
    h = harness
    await make_owner(h)
    await to_code_step(h)
    token = h.last(OWNER).text.split("?start=", 1)[1].split()[0]
    await h.command(STRANGER, f"/start {token}")
    (draft,) = [d for d in await rows(h, Draft) if d.user_id == STRANGER.id]
    assert token not in str(draft.data)
    assert draft.data["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    await h.contact(STRANGER, STRANGER_PHONE)
    assert "This invitation is for another phone number" in h.last(STRANGER).text
    (stranger,) = [u for u in await rows(h, User) if u.id == STRANGER.id]
    assert stranger.phone == STRANGER_PHONE
    assert (await code_row(h)).status == "pending"


# --- 14. the code hash is keyed with a server secret ------------------------------------------


async def test_the_code_hash_needs_the_server_secret(harness: Harness, settings: Settings) -> None:
    h = harness
    await standard_setup(h)
    await to_code_step(h)
    code, row = holder_code(h), await code_row(h)
    unkeyed = hmac.new(bytes.fromhex(row.salt), code.encode(), hashlib.sha256).hexdigest()
    assert row.code_hash != unkeyed
    secret = h.app.bot_data["deps"].policy.code_secret
    keyed = hmac.new(secret, bytes.fromhex(row.salt) + code.encode(), hashlib.sha256)
    assert row.code_hash == keyed.hexdigest()
    path = code_secret_path(settings)
    if db.sqlite_path(settings.database.url) is not None:
        assert path.read_text().strip().encode() == secret
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- the cap and cooldown are atomic; transitions are conditional -----------------------------


@pytest.fixture
async def two_sessions(harness: Harness) -> AsyncIterator[tuple[Harness, AsyncEngine]]:
    engine = db.create_engine(str(harness.app.bot_data["deps"].sessions.kw["bind"].url
                                  .render_as_string(hide_password=False)))
    yield harness, engine
    await engine.dispose()


async def test_two_shops_at_once_cannot_both_pass_the_phones_cap(
    two_sessions: tuple[Harness, AsyncEngine],
) -> None:
    h, engine2 = two_sessions
    await make_owner(h)
    await make_owner(h, OTHER_OWNER, OTHER_PHONE, "Noodle Bar")
    await onboard(h, HOLDER, HOLDER_PHONE)  # linked: an invite not opened counts for no cap
    policy = Policy(codes_per_phone_per_hour=2, codes_per_phone_all_shops_per_hour=3)
    deps = h.app.bot_data["deps"]
    async with deps.sessions() as s:
        shops = [await owned_shop(s, o.id) for o in (OWNER, OTHER_OWNER)]
    ids = [(shop.id, owner.id) for shop, owner in zip(shops, (OWNER, OTHER_OWNER), strict=True)
           if shop is not None]
    now = h.clock.now()
    async with deps.sessions() as s:
        for shop_id, owner_id in ids:
            issued = await codes.issue_code(s, policy, shop_id=shop_id, owner_id=owner_id,
                                            role_id=None, phone=HOLDER_PHONE, now=now)
            await codes.mark_delivered(s, issued.code, holder_id=HOLDER.id, message_id=1)
        await s.commit()
    later = now + timedelta(seconds=61)
    second = db.sessionmaker(engine2)

    async def other_shop() -> str:
        async with second() as s2:
            try:
                await codes.issue_code(s2, policy, shop_id=ids[1][0], owner_id=ids[1][1],
                                       role_id=None, phone=HOLDER_PHONE, now=later)
            except DomainError as exc:
                return exc.key
            await s2.commit()
            return "issued"

    async with deps.sessions() as s1:
        issued = await codes.issue_code(s1, policy, shop_id=ids[0][0], owner_id=ids[0][1],
                                        role_id=None, phone=HOLDER_PHONE, now=later)
        await codes.mark_delivered(s1, issued.code, holder_id=HOLDER.id, message_id=1)
        racing = asyncio.ensure_future(other_shop())
        await asyncio.wait({racing}, timeout=0.5)  # let it run as far as it can
        await s1.commit()
    assert await racing == "code_phone_cap"
    assert len(await rows(h, VerificationCode)) == 3


async def test_a_verify_never_overwrites_an_expiry_from_another_connection(
    two_sessions: tuple[Harness, AsyncEngine], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite has no ``SELECT … FOR UPDATE``: the verify reads the code, the expiry job (another
    connection) ends it and commits, then the verify writes. The write must not win."""
    h, engine2 = two_sessions
    if engine2.dialect.name != "sqlite":
        pytest.skip("PostgreSQL locks the row on read (FOR UPDATE): the expiry would wait")
    await standard_setup(h)
    await to_code_step(h)
    code, row = holder_code(h), await code_row(h)
    deps = h.app.bot_data["deps"]
    read = codes.lock_code

    async def read_then_expire(session, code_id):  # type: ignore[no-untyped-def]
        found = await read(session, code_id)
        async with db.sessionmaker(engine2)() as s2:
            assert await codes.expire_due(s2, now=row.expires_at) != []
            await s2.commit()
        return found

    monkeypatch.setattr(codes, "lock_code", read_then_expire)
    async with deps.sessions() as s1:
        result = await codes.verify_code(s1, deps.policy, code_id=row.id or 0, owner_id=OWNER.id,
                                         entered=code, now=row.expires_at - timedelta(seconds=1))
        await s1.commit()
    assert result.outcome is codes.VerifyOutcome.EXPIRED
    assert (await code_row(h)).status == "expired"


async def test_codes_in_flight_at_the_upgrade_expire_at_once(tmp_path: Path) -> None:
    """The hash is keyed now, so an older code could only fail: migration 0002 moves its
    deadline to the upgrade, and start-up reconciliation expires it and tells the owner."""
    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    db.ensure_sqlite_dir(url)
    await asyncio.to_thread(command.upgrade, db.alembic_config(url), "0001")
    far = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO app_user (id, first_name, created_at) VALUES (1, 'O', :t)"), {"t": far})
        await conn.execute(text(
            "INSERT INTO shop (name, owner_id, max_sub_accounts, created_at) "
            "VALUES ('S', 1, 50, :t)"), {"t": far})
        await conn.execute(text(
            "INSERT INTO verification_code (shop_id, owner_id, phone, salt, code_hash, status, "
            "attempts, created_at, expires_at, delivery) VALUES (1, 1, '+8613900139000', '00', "
            "'00', 'pending', 0, :t, :t, 'direct')"), {"t": far})
    await db.migrate(url)
    async with engine.connect() as conn:
        expires, delivery = (await conn.execute(text(
            "SELECT expires_at, delivery FROM verification_code"))).one()
    await engine.dispose()
    assert str(expires) < str(far) and delivery == "queued"


def test_check_config_names_where_the_code_secret_is_and_never_shows_it(tmp_path: Path) -> None:
    from tests.test_cli import cli

    (tmp_path / "config.toml").write_text(
        '[verification]\ncode_secret = "a-code-secret-of-forty-characters-xxxxx"\n')
    result = cli(tmp_path, "check-config")
    assert result.returncode == 0, result.stderr
    assert "code-hash secret: configured" in result.stdout
    assert "a-code-secret" not in result.stdout + result.stderr
    (tmp_path / "config.toml").write_text("")
    assert "code-hash secret: kept in data/code_secret" in cli(tmp_path, "check-config").stdout
