"""Codes, phones and binding rules without Telegram: a migrated database (SQLite and
PostgreSQL), injected time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import codes, invites
from models.accounts import check_phone_available, confirm_sub_account
from models.errors import DomainError
from models.phones import _split_e164, mask_phone, normalize_contact_phone, normalize_phone
from models.policy import Policy
from models.roles import create_role
from models.shops import create_shop
from models.tables import AuditEvent, PhoneBinding, Shop, User, VerificationCode
from models.users import link_phone, touch_user

T0 = datetime(2026, 11, 28, 12, 0, 0)
POLICY = Policy()


async def person(session, uid: int, phone: str | None):  # type: ignore[no-untyped-def]
    user, _, _ = await touch_user(session, uid, first_name=f"u{uid}", username=None,
                                  language_code="en", default_locale="en", now=T0)
    if phone:
        await link_phone(session, user, phone)
    return user


async def shop_with_role(  # type: ignore[no-untyped-def]
    session, uid: int = 1, phone: str = "+8613800138000"
):
    owner = await person(session, uid, phone)
    shop = await create_shop(session, owner, "Shop", max_sub_accounts=50, now=T0)
    role = await create_role(session, POLICY, shop_id=shop.id, actor_id=uid, name="CS",
                             description="", modules=["home"], now=T0)
    return owner, shop, role


async def delivered(session, policy, **kw):  # type: ignore[no-untyped-def]
    """A code issued and delivered to its linked holder (only codes that reached someone count
    for the cooldown and the caps)."""
    issued = await codes.issue_code(session, policy, **kw)
    await codes.mark_delivered(session, issued.code, holder_id=issued.code.holder_id or 0,
                               message_id=1)
    return issued


async def bind_holder(session, shop, role, *, im: bool) -> None:  # type: ignore[no-untyped-def]
    """+86 139 0013 9000 becomes a sub-account of ``shop``: code issued, verified, confirmed."""
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1,
                                    role_id=role.id, phone="+8613900139000", now=T0)
    await codes.verify_code(session, POLICY, code_id=issued.code.id, owner_id=1,
                            entered=issued.plain, now=T0)
    await confirm_sub_account(session, shop=shop, owner_id=1, code_id=issued.code.id,
                              role_id=role.id, nickname="H", im_enabled=im, now=T0)


def test_phones_are_normalised_and_masked() -> None:
    assert normalize_phone("138 0013 8000", "CN") == "+8613800138000"
    assert normalize_phone("0086 138-0013-8000", "CN") == "+8613800138000"
    assert normalize_contact_phone("8613800138000", "CN") == "+8613800138000"
    assert normalize_phone("+1 212 555 0100", "CN") == "+12125550100"
    for bad in ("", "abc", "123", "+86 1", "9" * 40):
        with pytest.raises(DomainError):
            normalize_phone(bad, "CN")
    assert mask_phone("+8613800138000") == "+86 138****8000"
    assert mask_phone("+12125550100") == "+1 212****0100"
    assert mask_phone(None) == "—"


def test_masking_splits_every_country_code_as_phonenumbers_does() -> None:
    """The cheap split of an E.164 number agrees with a full parse for every country's example."""
    import phonenumbers

    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(
            region, phonenumbers.PhoneNumberType.MOBILE
        ) or phonenumbers.example_number(region)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        expected = (str(example.country_code), phonenumbers.national_significant_number(example))
        assert _split_e164(e164) == expected, region
        checked += 1
    assert checked > 200
    assert _split_e164("8613800138000") is None and _split_e164("+86 138") is None


async def test_code_is_stored_hashed_and_verifies_once(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    await person(session, 2, "+8613900139000")
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1, role_id=role.id,
                                    phone="+8613900139000", now=T0)
    assert len(issued.plain) == 6 and issued.plain.isdigit()
    row = issued.code
    assert issued.plain not in (row.code_hash, row.salt)
    assert row.expires_at == T0 + timedelta(seconds=300)
    assert issued.holder is not None and issued.invite_token is None
    ok = await codes.verify_code(session, POLICY, code_id=row.id, owner_id=1,
                                 entered=issued.plain, now=T0 + timedelta(seconds=10))
    assert ok.outcome is codes.VerifyOutcome.OK
    events = (await session.exec(select(AuditEvent.detail))).all()
    assert issued.plain not in str(events)


async def test_deadline_in_the_database_is_the_truth(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    await person(session, 9, "+8613900139000")  # a linked holder (an invite lives longer)
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1, role_id=role.id,
                                    phone="+8613900139000", now=T0)
    result = await codes.verify_code(session, POLICY, code_id=issued.code.id, owner_id=1,
                                     entered=issued.plain, now=T0 + timedelta(seconds=300))
    assert result.outcome is codes.VerifyOutcome.EXPIRED and result.just_ended
    assert issued.code.status == "expired"


async def test_wrong_entries_lock_and_someone_elses_code_is_refused(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1, role_id=role.id,
                                    phone="+8613900139000", now=T0)
    wrong = f"{(int(issued.plain) + 1) % 1_000_000:06d}"
    with pytest.raises(DomainError):
        await codes.verify_code(session, POLICY, code_id=issued.code.id, owner_id=99,
                                entered=issued.plain, now=T0)
    lefts = []
    for _ in range(5):
        r = await codes.verify_code(session, POLICY, code_id=issued.code.id, owner_id=1,
                                    entered=wrong, now=T0)
        lefts.append((r.outcome.value, r.tries_left))
    assert lefts == [("wrong", 4), ("wrong", 3), ("wrong", 2), ("wrong", 1), ("locked", 0)]
    r = await codes.verify_code(session, POLICY, code_id=issued.code.id, owner_id=1,
                                entered=issued.plain, now=T0)
    assert r.outcome is codes.VerifyOutcome.LOCKED


async def test_cooldown_and_hourly_cap(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    await person(session, 9, "+8613900139000")  # linked: an invite holds no cooldown or cap
    kw = dict(shop_id=shop.id, owner_id=1, role_id=role.id, phone="+8613900139000")
    await delivered(session, POLICY, now=T0, **kw)
    with pytest.raises(DomainError) as err:
        await delivered(session, POLICY, now=T0 + timedelta(seconds=59.5), **kw)
    assert (err.value.key, err.value.params) == ("code_cooldown", {"seconds": 1})
    for i in range(1, 5):
        await delivered(session, POLICY, now=T0 + timedelta(seconds=60 * i), **kw)
    with pytest.raises(DomainError) as err:
        await delivered(session, POLICY, now=T0 + timedelta(seconds=301), **kw)
    assert err.value.key == "code_hourly_cap"
    await delivered(session, POLICY, now=T0 + timedelta(hours=1, seconds=1), **kw)
    statuses = (await session.exec(select(VerificationCode.status))).all()
    assert sorted(statuses) == ["pending"] + ["superseded"] * 5


async def test_expire_due_and_next_deadline(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    await person(session, 9, "+8613900139000")
    await person(session, 8, "+8613700137000")
    a = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1, role_id=role.id,
                               phone="+8613900139000", now=T0)
    b = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1, role_id=role.id,
                               phone="+8613700137000", now=T0 + timedelta(seconds=100))
    assert await codes.next_deadline(session) == a.code.expires_at
    assert await codes.expire_due(session, now=T0 + timedelta(seconds=299)) == []
    expired = await codes.expire_due(session, now=T0 + timedelta(seconds=300))
    assert [c.id for c in expired] == [a.code.id]
    assert await codes.next_deadline(session) == b.code.expires_at
    assert await codes.expire_due(session, now=T0 + timedelta(hours=1)) != []
    assert await codes.next_deadline(session) is None


async def test_invite_is_single_use_and_bound_to_the_phone(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1, role_id=role.id,
                                    phone="+8613900139000", now=T0)
    assert issued.holder is None and issued.invite_token
    stranger = await person(session, 3, "+8613600136000")
    with pytest.raises(DomainError) as err:
        await invites.claim_invite(session, POLICY, codes.hash_token(issued.invite_token), stranger,
                                   now=T0)
    assert err.value.key == "invite_phone_mismatch"
    holder = await person(session, 2, "+8613900139000")
    code, plain = await invites.claim_invite(session, POLICY, codes.hash_token(issued.invite_token),
                                             holder, now=T0)
    assert code.holder_id == 2 and len(plain) == 6
    with pytest.raises(DomainError):
        await invites.claim_invite(session, POLICY, codes.hash_token(issued.invite_token), holder,
                                   now=T0)
    ok = await codes.verify_code(session, POLICY, code_id=code.id, owner_id=1, entered=plain,
                                 now=T0)
    assert ok.outcome is codes.VerifyOutcome.OK


async def test_conflicts_in_their_order_of_meaning(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    owner2 = await person(session, 5, "+8613500135000")
    shop2 = await create_shop(session, owner2, "Other", max_sub_accounts=50, now=T0)
    await person(session, 2, "+8613900139000")
    await bind_holder(session, shop, role, im=True)
    keys = []
    for target, phone in ((shop, "+8613900139000"), (shop2, "+8613900139000"),
                          (shop, "+8613800138000"), (shop, "+8613500135000")):
        with pytest.raises(DomainError) as err:
            await check_phone_available(session, target, phone)
        keys.append(err.value.key)
    assert keys == ["phone_bound_here", "phone_bound_elsewhere", "phone_is_main_account",
                    "phone_is_main_account"]


async def test_the_database_refuses_a_phone_bound_twice(session: AsyncSession) -> None:
    _, shop, _ = await shop_with_role(session)
    session.add(PhoneBinding(phone="+8613800138000", shop_id=shop.id, kind="sub", created_at=T0))
    with pytest.raises(IntegrityError):
        await session.flush()


async def test_a_sub_account_phone_cannot_open_a_shop(session: AsyncSession) -> None:
    _, shop, role = await shop_with_role(session)
    holder = await person(session, 2, "+8613900139000")
    await bind_holder(session, shop, role, im=False)
    with pytest.raises(DomainError) as err:
        await create_shop(session, holder, "Mine", max_sub_accounts=50, now=T0)
    assert err.value.key == "shop_phone_is_sub_account"
    assert len((await session.exec(select(Shop))).all()) == 1
    assert (await session.get(User, 2)) is not None


def test_code_entry_keeps_six_digits_and_refuses_other_shapes() -> None:
    assert codes.code_entry(" 12 34 56 ") == "123456"
    for typo in ("12345", "1234567", "12a456", "", "      "):
        assert codes.code_entry(typo) is None


def test_code_entry_normalises_unicode_digits_and_finds_one_code_in_a_paste() -> None:
    assert codes.code_entry("１２３４５６") == "123456"
    assert codes.code_entry("١٢٣٤٥٦") == "123456"
    assert codes.code_entry("१२३ ४५६") == "123456"
    assert codes.code_entry("913-363") == "913363"
    assert codes.code_entry("🔐 验证码：913363 有效期为5分钟（至 12:05 UTC）") == "913363"
    assert codes.code_entry("Verification code: 913 363") == "913363"
    for not_one in ("111111 222222", "12 345 678", "913363 and 123 456", "phone 13900139000"):
        assert codes.code_entry(not_one) is None, not_one


async def test_the_code_hash_is_keyed_with_the_server_secret(session: AsyncSession) -> None:
    keyed = Policy(code_secret=b"server-secret-one")
    other = Policy(code_secret=b"server-secret-two")
    _, shop, role = await shop_with_role(session)
    issued = await codes.issue_code(session, keyed, shop_id=shop.id, owner_id=1, role_id=role.id,
                                    phone="+8613900139000", now=T0)
    wrong = await codes.verify_code(session, other, code_id=issued.code.id, owner_id=1,
                                    entered=issued.plain, now=T0)
    assert wrong.outcome is codes.VerifyOutcome.WRONG
    right = await codes.verify_code(session, keyed, code_id=issued.code.id, owner_id=1,
                                    entered=issued.plain, now=T0)
    assert right.outcome is codes.VerifyOutcome.OK


async def test_caps_count_per_shop_and_per_phone(session: AsyncSession) -> None:
    policy = Policy(codes_per_phone_per_hour=2, codes_per_phone_all_shops_per_hour=3,
                    resend_cooldown_seconds=0)
    _, shop, role = await shop_with_role(session)
    _, shop2, role2 = await shop_with_role(session, uid=5, phone="+8613500135000")
    await person(session, 9, "+8613900139000")
    one = dict(shop_id=shop.id, owner_id=1, role_id=role.id, phone="+8613900139000")
    two = dict(shop_id=shop2.id, owner_id=5, role_id=role2.id, phone="+8613900139000")
    for i in range(2):
        await delivered(session, policy, now=T0 + timedelta(seconds=i), **one)
    with pytest.raises(DomainError) as err:
        await delivered(session, policy, now=T0 + timedelta(seconds=3), **one)
    assert err.value.key == "code_hourly_cap"
    await delivered(session, policy, now=T0 + timedelta(seconds=4), **two)
    with pytest.raises(DomainError) as err:
        await delivered(session, policy, now=T0 + timedelta(seconds=5), **two)
    assert err.value.key == "code_phone_cap"


def test_one_shop_cap_must_stay_below_the_phones_cap() -> None:
    with pytest.raises(ValueError):
        Policy(codes_per_phone_per_hour=5, codes_per_phone_all_shops_per_hour=5)


async def test_look_ups_count_only_phones_without_a_verified_code(session: AsyncSession) -> None:
    from models.code_limits import note_lookup

    policy = Policy(lookups_per_owner_per_hour=2)
    _, shop, role = await shop_with_role(session)
    kw = dict(owner_id=1, now=T0)
    await note_lookup(session, policy, phone="+8613900139000", **kw)
    await note_lookup(session, policy, phone="+8613700137000", **kw)
    await note_lookup(session, policy, phone="+8613900139000", **kw)  # the same one again: free
    with pytest.raises(DomainError) as err:
        await note_lookup(session, policy, phone="+8613600136000", **kw)
    assert (err.value.key, err.value.params) == ("lookup_limit", {"cap": 2, "minutes": 60})
    issued = await codes.issue_code(session, POLICY, shop_id=shop.id, owner_id=1, role_id=role.id,
                                    phone="+8613900139000", now=T0)
    await codes.verify_code(session, POLICY, code_id=issued.code.id, owner_id=1,
                            entered=issued.plain, now=T0)
    await note_lookup(session, policy, phone="+8613600136000", **kw)  # one probe was a real hire


async def test_an_invite_lives_invite_hours_and_its_code_starts_when_opened(
    session: AsyncSession,
) -> None:
    _, shop, role = await shop_with_role(session)
    kw = dict(shop_id=shop.id, owner_id=1, role_id=role.id, phone="+8613900139000")
    issued = await codes.issue_code(session, POLICY, now=T0, **kw)
    assert issued.invite_token == codes.invite_token(POLICY, issued.code)  # shown again
    assert issued.code.expires_at == T0 + timedelta(hours=48)
    # not opened: no cooldown, no cap (the owner shows the same link instead)
    await codes.issue_code(session, POLICY, now=T0 + timedelta(seconds=1), **kw)
    later = T0 + timedelta(hours=30)
    fresh = await codes.issue_code(session, POLICY, now=later, **kw)
    holder = await person(session, 9, "+8613900139000")
    code, _plain = await invites.claim_invite(
        session, POLICY, codes.hash_token(fresh.invite_token or ""), holder, now=later)
    assert (code.created_at, code.expires_at) == (later, later + timedelta(seconds=300))
