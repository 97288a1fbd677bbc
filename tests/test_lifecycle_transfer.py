"""Owner transfer (主账号更换) in the domain, on SQLite and PostgreSQL: asking, the typed name,
one pending transfer per shop, accept (the shop, bindings, accounts, drafts, codes, audit),
decline, withdraw, expiry, and races with a second session."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import accounts, drafts
from models.accounts import set_suspended, unbind
from models.codes import issue_code
from models.errors import DomainError
from models.lifecycle.access import set_access
from models.lifecycle.common import decision, lock_account
from models.lifecycle.handover import accept_transfer
from models.lifecycle.tables import OwnerTransfer, TransferStatus
from models.lifecycle.transfer import (
    check_typed_name,
    decline_transfer,
    expire_due_transfers,
    next_transfer_deadline,
    request_transfer,
    withdraw_transfer,
)
from models.roles import delete_role
from models.tables import (
    BindingKind,
    CodeStatus,
    PhoneBinding,
    Shop,
    SubAccount,
    VerificationCode,
)
from tests.lifecycle_world import (
    HANK,
    LIFE,
    MIA,
    NOW,
    OLIVIA,
    OSCAR,
    PHONES,
    POLICY,
    SAM,
    World,
    actions,
    events,
    make_world,
    until_waiting,
)


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await make_world(engine)


async def ask(w: World, *, account: int | None = None, old_owner: int | str | None = None,
              name: str = "Tea House", owner: int = OLIVIA) -> OwnerTransfer:
    async with w.session() as s:
        transfer = await request_transfer(
            s, policy=LIFE, shop_id=w.shop_id, owner_id=owner, account_id=account or w.hank,
            old_owner=w.service_role if old_owner is None else old_owner,  # type: ignore[arg-type]
            typed_name=name, now=NOW)
        await s.commit()
        return transfer


async def refused(w: World, key: str, **kw: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await ask(w, **kw)  # type: ignore[arg-type]
    assert caught.value.key == key
    return caught.value


def test_the_typed_name_is_compared_after_cleaning() -> None:
    shop = Shop(name="Tea House", owner_id=1, created_at=NOW)
    check_typed_name(shop, "  Tea   House\u200b ")
    for wrong in ("tea house", "Tea", "", "\u200b"):
        with pytest.raises(DomainError) as caught:
            check_typed_name(shop, wrong)
        assert caught.value.key == "transfer_name_mismatch"
        assert caught.value.params == {"shop": "Tea House"}


async def test_a_request_is_pending_audited_and_valid_transfer_hours(world: World) -> None:
    transfer = await ask(world)
    assert transfer.status == TransferStatus.PENDING
    assert (transfer.from_user_id, transfer.to_user_id) == (OLIVIA, HANK)
    assert transfer.expires_at == NOW + timedelta(hours=24)
    async with world.session() as s:
        [event] = await events(s, world.shop_id, "transfer.requested")
        assert event.detail["nickname"] == "Hank"
        assert event.detail["phone"] == "+86 139****9000"
        assert event.detail["old_owner_role"] == "Customer service"
        assert await next_transfer_deadline(s) == NOW + timedelta(hours=24)


async def test_what_a_request_refuses(world: World) -> None:
    await refused(world, "transfer_name_mismatch", name="Tea Houses")
    await refused(world, "transfer_not_owner", owner=HANK)
    await refused(world, "role_not_found", old_owner=world.other_role)
    async with world.session() as s:
        await set_suspended(s, shop_id=world.shop_id, actor_id=OLIVIA, account_id=world.mia,
                            suspended=True, now=NOW)
        await s.commit()
    error = await refused(world, "transfer_target_suspended", account=world.mia)
    assert error.params == {"nickname": "Mia"}
    async with world.session() as s:
        await set_access(s, policy=LIFE, shop_id=world.shop_id, actor_id=OLIVIA,
                         account_id=world.hank, until=NOW + timedelta(hours=1), now=NOW)
        await s.commit()
    async with world.session() as s:  # the end has passed, the expiry job has not run yet
        with pytest.raises(DomainError) as caught:
            await request_transfer(s, policy=LIFE, shop_id=world.shop_id, owner_id=OLIVIA,
                                   account_id=world.hank, old_owner="leave",
                                   typed_name="Tea House", now=NOW + timedelta(hours=2))
        assert caught.value.key == "transfer_target_expired"
    async with world.session() as s:
        with pytest.raises(DomainError) as caught:
            await request_transfer(s, policy=LIFE, shop_id=world.other_shop_id,
                                   owner_id=OSCAR, account_id=world.hank, old_owner="leave",
                                   typed_name="Noodle Bar", now=NOW)
        assert caught.value.key == "account_not_found"
        assert list((await s.exec(select(OwnerTransfer))).all()) == []


async def test_one_pending_transfer_per_shop(world: World) -> None:
    await ask(world)
    await refused(world, "transfer_pending", account=world.mia)
    async with world.session() as s:  # the database refuses it too
        s.add(OwnerTransfer(shop_id=world.shop_id, from_user_id=OLIVIA, to_user_id=MIA,
                            to_account_id=world.mia, old_owner_leaves=True, created_at=NOW,
                            expires_at=NOW))
        with pytest.raises(IntegrityError):
            await s.flush()


async def test_accept_hands_the_shop_over_in_one_transaction(world: World) -> None:
    async with world.session() as s:  # both are in a flow; Olivia has a code in flight
        await drafts.save_draft(s, OLIVIA, "newaccount", "code", {}, NOW)
        await drafts.save_draft(s, HANK, "holder", "x", {}, NOW)
        issued = await issue_code(s, POLICY, shop_id=world.shop_id, owner_id=OLIVIA,
                                  role_id=world.ops_role, phone=PHONES[SAM], now=NOW)
        await s.commit()
    transfer = await ask(world)
    async with world.session() as s:
        done = await accept_transfer(s, transfer_id=transfer.id or 0, holder_id=HANK,
                                     now=NOW + timedelta(hours=1))
        await s.commit()
    assert (done.old_owner_id, done.new_owner_id, done.former_nickname) == (OLIVIA, HANK, "Hank")
    assert [c.id for c in done.cancelled_codes] == [issued.code.id]
    async with world.session() as s:
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.owner_id == HANK
        olivia_binding = await s.get(PhoneBinding, PHONES[OLIVIA])
        hank_binding = await s.get(PhoneBinding, PHONES[HANK])
        assert olivia_binding is not None and olivia_binding.kind == BindingKind.SUB.value
        assert hank_binding is not None and hank_binding.kind == BindingKind.OWNER.value
        assert await s.get(SubAccount, world.hank) is None
        olivia = (await s.exec(select(SubAccount).where(SubAccount.holder_id == OLIVIA))).one()
        assert (olivia.nickname, olivia.role_id, olivia.phone, olivia.code_id) == (
            "Olivia", world.service_role, PHONES[OLIVIA], None)
        assert olivia.status == "authorized" and olivia.shop_id == world.shop_id
        assert await drafts.get_draft(s, OLIVIA) is None
        assert await drafts.get_draft(s, HANK) is None
        code = await s.get(VerificationCode, issued.code.id)
        assert code is not None and code.status == CodeStatus.CANCELLED.value
        row = await s.get(OwnerTransfer, transfer.id)
        assert row is not None and row.status == TransferStatus.ACCEPTED
        tail = await actions(s, world.shop_id)
        assert tail[tail.index("transfer.requested"):] == [
            "transfer.requested", "code.cancelled", "transfer.accepted", "shop.owner_changed",
            "account.became_owner", "account.created"]
        created = (await events(s, world.shop_id, "account.created"))[-1]
        assert created.detail["via"] == "transfer" and created.actor_id == HANK
        assert await next_transfer_deadline(s) is None


async def test_accept_with_the_old_owner_leaving_frees_their_phone(world: World) -> None:
    transfer = await ask(world, old_owner="leave")
    async with world.session() as s:
        done = await accept_transfer(s, transfer_id=transfer.id or 0, holder_id=HANK, now=NOW)
        await s.commit()
    assert done.old_owner_account is None and done.old_owner_role is None
    async with world.session() as s:
        assert await s.get(PhoneBinding, PHONES[OLIVIA]) is None
        assert (await s.exec(select(SubAccount).where(SubAccount.holder_id == OLIVIA))
                ).first() is None
        owners = (await s.exec(select(PhoneBinding).where(
            PhoneBinding.shop_id == world.shop_id, PhoneBinding.kind == "owner"))).all()
        assert [b.phone for b in owners] == [PHONES[HANK]]
        assert (await actions(s, world.shop_id))[-1] == "owner.left"


async def test_the_database_allows_one_owner_binding_per_shop(world: World) -> None:
    async with world.session() as s:
        binding = await s.get(PhoneBinding, PHONES[HANK])
        assert binding is not None
        binding.kind = BindingKind.OWNER.value
        s.add(binding)
        with pytest.raises(IntegrityError):
            await s.flush()


async def test_decline_and_withdraw_end_it_and_only_the_right_person_may(world: World) -> None:
    transfer = await ask(world)
    async with world.session() as s:
        for call in (withdraw_transfer(s, transfer_id=transfer.id or 0, owner_id=HANK, now=NOW),
                     decline_transfer(s, transfer_id=transfer.id or 0, holder_id=OLIVIA,
                                      now=NOW)):
            with pytest.raises(DomainError) as caught:
                await call
            assert caught.value.key == "transfer_not_found"
        declined = await decline_transfer(s, transfer_id=transfer.id or 0, holder_id=HANK,
                                          now=NOW)
        await s.commit()
    assert declined.status == TransferStatus.DECLINED
    async with world.session() as s:
        for call in (accept_transfer(s, transfer_id=transfer.id or 0, holder_id=HANK, now=NOW),
                     withdraw_transfer(s, transfer_id=transfer.id or 0, owner_id=OLIVIA,
                                       now=NOW)):
            with pytest.raises(DomainError) as caught:
                await call
            assert caught.value.key == "transfer_not_pending"
    second = await ask(world)  # a new one may be asked now
    async with world.session() as s:
        withdrawn = await withdraw_transfer(s, transfer_id=second.id or 0, owner_id=OLIVIA,
                                            now=NOW)
        await s.commit()
        assert withdrawn.status == TransferStatus.WITHDRAWN
        assert (await actions(s, world.shop_id))[-4:] == [
            "transfer.requested", "transfer.declined", "transfer.requested", "transfer.withdrawn"]
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.owner_id == OLIVIA


async def test_expiry_the_database_deadline_and_the_job_once(world: World) -> None:
    transfer = await ask(world)
    late = NOW + timedelta(hours=24)
    async with world.session() as s:
        with pytest.raises(DomainError) as caught:
            await accept_transfer(s, transfer_id=transfer.id or 0, holder_id=HANK, now=late)
        assert caught.value.key == "transfer_expired"
        assert await expire_due_transfers(s, now=late - timedelta(seconds=1)) == []
        [expired] = await expire_due_transfers(s, now=late)
        await s.commit()
        assert (expired.id, expired.status) == (transfer.id, TransferStatus.EXPIRED)
        assert (expired.from_user_id, expired.to_user_id) == (OLIVIA, HANK)
    async with world.session() as s:  # a restart: nothing twice
        assert await expire_due_transfers(s, now=late + timedelta(days=1)) == []
        assert await next_transfer_deadline(s) is None
        assert (await actions(s, world.shop_id))[-1] == "transfer.expired"


# --- races: two sessions at once --------------------------------------------------------------


async def test_an_unbind_committed_first_leaves_the_accept_nothing_to_take(
    world: World, engine: AsyncEngine,
) -> None:
    transfer = await ask(world)
    async with world.session() as unbinding, world.session() as accepting:
        async with decision(unbinding, "nothing_changed"):  # the unbind, holding its locks
            assert await lock_account(unbinding, world.hank) is not None
            await unbind(unbinding, shop_id=world.shop_id, actor_id=OLIVIA,
                         account_id=world.hank, now=NOW)
        accept = asyncio.create_task(accept_transfer(
            accepting, transfer_id=transfer.id or 0, holder_id=HANK, now=NOW))
        await until_waiting(engine, accept)
        await unbinding.commit()
        with pytest.raises(DomainError) as caught:
            await accept
        assert caught.value.key == "transfer_target_gone"
        await accepting.rollback()
    async with world.session() as s:
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.owner_id == OLIVIA
        row = await s.get(OwnerTransfer, transfer.id)
        assert row is not None and row.status == TransferStatus.PENDING
        assert await s.get(PhoneBinding, PHONES[HANK]) is None


async def test_an_accept_committed_first_leaves_a_locking_unbind_nothing_to_unbind(
    world: World, engine: AsyncEngine,
) -> None:
    transfer = await ask(world)
    async with world.session() as accepting, world.session() as unbinding:
        await accept_transfer(accepting, transfer_id=transfer.id or 0, holder_id=HANK, now=NOW)

        async def unbind_hank() -> None:
            async with decision(unbinding, "nothing_changed"):
                if await lock_account(unbinding, world.hank) is None:
                    raise DomainError("account_not_found")
                await unbind(unbinding, shop_id=world.shop_id, actor_id=OLIVIA,
                             account_id=world.hank, now=NOW)

        racing = asyncio.create_task(unbind_hank())
        await until_waiting(engine, racing)
        await accepting.commit()
        with pytest.raises(DomainError) as caught:
            await racing
        assert caught.value.key == "account_not_found"
    async with world.session() as s:
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.owner_id == HANK
        binding = await s.get(PhoneBinding, PHONES[HANK])
        assert binding is not None and binding.kind == BindingKind.OWNER.value


async def test_a_suspend_committed_first_refuses_the_accept(
    world: World, engine: AsyncEngine,
) -> None:
    transfer = await ask(world)
    async with world.session() as suspending, world.session() as accepting:
        async with decision(suspending, "nothing_changed"):
            await lock_account(suspending, world.hank)
            await set_suspended(suspending, shop_id=world.shop_id, actor_id=OLIVIA,
                                account_id=world.hank, suspended=True, now=NOW)
        accept = asyncio.create_task(accept_transfer(
            accepting, transfer_id=transfer.id or 0, holder_id=HANK, now=NOW))
        await until_waiting(engine, accept)
        await suspending.commit()
        with pytest.raises(DomainError) as caught:
            await accept
        assert caught.value.key == "transfer_target_suspended"


async def test_two_requests_at_once_give_one_transfer(world: World) -> None:
    async def request(account: int) -> OwnerTransfer:
        async with world.session() as s:
            transfer = await request_transfer(
                s, policy=LIFE, shop_id=world.shop_id, owner_id=OLIVIA, account_id=account,
                old_owner="leave", typed_name="Tea House", now=NOW)
            await s.commit()
            return transfer

    results = await asyncio.gather(request(world.hank), request(world.mia),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DomainError)
    assert errors[0].key == "transfer_pending"
    async with world.session() as s:
        rows = (await s.exec(select(OwnerTransfer).where(
            col(OwnerTransfer.status) == TransferStatus.PENDING))).all()
        assert len(rows) == 1


async def test_accept_and_withdraw_at_once_give_one_outcome(world: World) -> None:
    transfer = await ask(world)

    async def accept() -> object:
        async with world.session() as s:
            done = await accept_transfer(s, transfer_id=transfer.id or 0, holder_id=HANK,
                                         now=NOW)
            await s.commit()
            return done

    async def withdraw() -> object:
        async with world.session() as s:
            done = await withdraw_transfer(s, transfer_id=transfer.id or 0, owner_id=OLIVIA,
                                           now=NOW)
            await s.commit()
            return done

    results = await asyncio.gather(accept(), withdraw(), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DomainError)
    assert errors[0].key in ("transfer_not_pending", "transfer_not_found")
    async with world.session() as s:
        row = await s.get(OwnerTransfer, transfer.id)
        shop = await s.get(Shop, world.shop_id)
        assert row is not None and shop is not None
        assert (row.status == TransferStatus.ACCEPTED) == (shop.owner_id == HANK)


async def test_a_deleted_role_or_another_person_cannot_accept(world: World) -> None:
    transfer = await ask(world)  # the old owner is to get "Customer service", used by nobody
    async with world.session() as s:
        with pytest.raises(DomainError) as caught:
            await accept_transfer(s, transfer_id=transfer.id or 0, holder_id=MIA, now=NOW)
        assert caught.value.key == "transfer_not_found"
        await delete_role(s, shop_id=world.shop_id, actor_id=OLIVIA,
                          role_id=world.service_role, now=NOW)
        await s.commit()
    async with world.session() as s:
        with pytest.raises(DomainError) as caught:
            await accept_transfer(s, transfer_id=transfer.id or 0, holder_id=HANK, now=NOW)
        assert caught.value.key == "transfer_role_gone"
        await s.rollback()
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.owner_id == OLIVIA


async def test_an_unbind_that_read_the_account_before_an_accept_keeps_the_new_owners_phone(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unbind that read Hank's account just before his accepted transfer committed must not
    delete the binding of his phone, which by then is the shop's main account."""
    transfer = await ask(world)
    original = accounts.get_account

    async def read_then_accept(session: AsyncSession, shop_id: int, account_id: int) -> Any:
        account = await original(session, shop_id, account_id)
        async with world.session() as accepting:
            await accept_transfer(accepting, transfer_id=transfer.id or 0, holder_id=HANK,
                                  now=NOW)
            await accepting.commit()
        return account

    monkeypatch.setattr(accounts, "get_account", read_then_accept)
    async with world.session() as unbinding:
        with pytest.raises(DomainError) as caught:
            await accounts.unbind(unbinding, shop_id=world.shop_id, actor_id=OLIVIA,
                                  account_id=world.hank, now=NOW)
        assert caught.value.key == "account_not_found"
        await unbinding.rollback()
    async with world.session() as s:
        shop = await s.get(Shop, world.shop_id)
        assert shop is not None and shop.owner_id == HANK
        binding = await s.get(PhoneBinding, PHONES[HANK])
        assert binding is not None and binding.kind == BindingKind.OWNER.value
