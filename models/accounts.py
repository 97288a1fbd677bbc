"""Sub-accounts (子账号): the binding checks, confirmation, and every later change."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.codes import lock_code, move_code
from models.errors import DomainError
from models.lifecycle.access import AccountState, account_state
from models.paging import paging
from models.phones import mask_phone
from models.roles import get_role
from models.savepoint import savepoint
from models.tables import (
    AccountStatus,
    BindingKind,
    CodeStatus,
    PhoneBinding,
    Role,
    Shop,
    SubAccount,
    User,
)
from models.text import clean_line

NICKNAME_MAX = 30
PAGE_SIZE = 10


def clean_nickname(raw: str) -> str:
    """Trim a nickname and check it is 1–30 characters."""
    return clean_line(raw, limit=NICKNAME_MAX, empty="nickname_empty",
                      too_long="nickname_too_long")


#: built once: the seat count is read at every step of /newaccount and on every account list
_SEATS_USED = (
    select(func.count()).select_from(SubAccount)
    .where(col(SubAccount.shop_id) == bindparam("shop_id"))
)


async def seats_used(session: AsyncSession, shop_id: int) -> int:
    """How many sub-accounts the shop has."""
    return int((await session.exec(_SEATS_USED, params={"shop_id": shop_id})).one())


def _refuse_if_full(shop: Shop, used: int) -> None:
    if used >= shop.max_sub_accounts:
        raise DomainError("seat_cap_reached", cap=shop.max_sub_accounts)


async def check_seat_free(session: AsyncSession, shop: Shop) -> None:
    """Refuse a new sub-account once the shop has its cap, naming the cap."""
    _refuse_if_full(shop, await seats_used(session, shop.id or 0))


def _bound(column: Any) -> Any:
    """``column`` of the phone's binding (NULL when it has none), as a scalar subquery."""
    return select(column).where(col(PhoneBinding.phone) == bindparam("phone")).scalar_subquery()


#: the phone's binding (kind and shop, NULL when unbound) and the shop's seats used: both
#: checks of a phone in one statement (they run when it is entered and again at Confirm)
_BINDING_AND_SEATS = select(
    _bound(PhoneBinding.kind), _bound(PhoneBinding.shop_id), _SEATS_USED.scalar_subquery()
)


async def check_phone_available(session: AsyncSession, shop: Shop, phone: str) -> None:
    """The three conflicts (main account, bound here, bound to another shop), in their order
    of meaning, then the seat cap (docs/product.md, "Phones")."""
    kind, bound_to, used = (await session.exec(  # type: ignore[call-overload]
        _BINDING_AND_SEATS, params={"phone": phone, "shop_id": shop.id or 0})).one()
    if kind is not None:
        if kind == BindingKind.OWNER.value:
            raise DomainError("phone_is_main_account")
        if bound_to == shop.id:
            raise DomainError("phone_bound_here")
        raise DomainError("phone_bound_elsewhere")
    _refuse_if_full(shop, int(used))


@dataclass
class Membership:
    """A holder's sub-account with its shop and role."""

    account: SubAccount
    shop: Shop
    role: Role


async def confirm_sub_account(
    session: AsyncSession,
    *,
    shop: Shop,
    owner_id: int,
    code_id: int,
    role_id: int,
    nickname: str,
    im_enabled: bool,
    now: datetime,
) -> SubAccount:
    """Create the sub-account (status Authorized) from a verified code.

    Everything is checked again here, and the writes run in a savepoint (the caller's earlier
    writes in the transaction are never undone): if another transaction bound the phone first,
    the unique constraints refuse the insert and the matching conflict is raised; if another
    ended the code meanwhile ("Not me", the expiry job), the code moves from verified to used
    only while it is still verified, and ``code_already_ended`` is raised.
    """
    code = await lock_code(session, code_id)
    if code is None or code.shop_id != shop.id or code.owner_id != owner_id:
        raise DomainError("code_not_found")
    if code.status != CodeStatus.VERIFIED.value or code.holder_id is None:
        raise DomainError("code_not_verified")
    if now >= code.expires_at:  # a verified code must be confirmed within its TTL
        raise DomainError("code_verified_expired")
    shop_id, phone = shop.id or 0, code.phone
    role = await get_role(session, shop_id, role_id)
    name = clean_nickname(nickname)
    await check_phone_available(session, shop, phone)
    account = SubAccount(
        shop_id=shop.id or 0,
        phone=code.phone,
        holder_id=code.holder_id,
        nickname=name,
        role_id=role_id,
        im_enabled=im_enabled,
        status=AccountStatus.AUTHORIZED.value,
        code_id=code_id,
        created_at=now,
        updated_at=now,
    )
    try:
        async with savepoint(session):
            session.add(PhoneBinding(phone=phone, shop_id=shop_id, kind=BindingKind.SUB.value,
                                     created_at=now))
            session.add(account)
            await session.flush()
            # verified → used only if still verified: on SQLite (no FOR UPDATE) another
            # connection may have ended the code since it was read
            if not await move_code(session, code, from_=(CodeStatus.VERIFIED.value,),
                                   status=CodeStatus.USED.value, ended_at=now):
                raise DomainError("code_already_ended")
    except IntegrityError as exc:
        # someone bound the phone first: say which conflict it is now
        await check_phone_available(session, shop, phone)
        raise DomainError("phone_bound_elsewhere") from exc
    audit.record(
        session,
        now=now,
        shop_id=shop.id,
        actor_id=owner_id,
        action="account.created",
        object_type="account",
        object_id=account.id,
        phone=mask_phone(account.phone),
        nickname=name,
        role=role.name,
        im=im_enabled,
    )
    return account


#: a page of the shop's sub-accounts with their roles, oldest first, each row with the total
_PAGE = (
    select(SubAccount, Role, func.count().over())
    .join(Role, col(Role.id) == SubAccount.role_id)
    .where(col(SubAccount.shop_id) == bindparam("shop_id"))
    .order_by(col(SubAccount.id))
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)


@dataclass
class AccountsPage:
    """One page of a shop's sub-accounts, and how many it has in all."""

    rows: list[tuple[SubAccount, Role]]
    total: int
    page: int
    pages: int


async def accounts_page(
    session: AsyncSession, shop_id: int, page: int, *, size: int = PAGE_SIZE
) -> AccountsPage:
    """Page ``page`` of the shop's sub-accounts (clamped to the pages there are), oldest first.

    The total comes with the rows (a window count), so a page is one query; only a page past
    the end (the list shrank since it was shown) costs a count and a second read.
    """
    page = max(page, 0)
    params = {"shop_id": shop_id, "offset": page * size, "limit": size}
    rows = list((await session.exec(_PAGE, params=params)).all())
    total = int(rows[0][2]) if rows else 0
    if not rows and page > 0:
        total = await seats_used(session, shop_id)
        last, _pages = paging(page, total, size)
        if last < page:
            return await accounts_page(session, shop_id, last, size=size)
    page, pages = paging(page, total, size)
    return AccountsPage([(a, r) for a, r, _n in rows], total, page, pages)


@dataclass(frozen=True)
class AccountFilter:
    """Which of a shop's sub-accounts a list shows: all of them by default.

    ``text`` matches a part of the nickname (case-insensitive, full-width forms folded) or,
    when it is digits, the end of the phone number ("0022" finds +86 137 0000 0022); ``state``
    is what ``account_state`` shows (authorized / suspended / expired); ``im`` on or off.
    """

    text: str = ""
    role_id: int | None = None
    state: AccountState | None = None
    im: bool | None = None

    @property
    def active(self) -> bool:
        """Whether anything is filtered out."""
        return bool(self.text) or any(v is not None for v in (self.role_id, self.state, self.im))

    def matches(self, account: SubAccount) -> bool:
        """Whether ``account`` is shown."""
        if self.role_id is not None and account.role_id != self.role_id:
            return False
        if self.state is not None and account_state(account) != self.state:
            return False
        if self.im is not None and account.im_enabled != self.im:
            return False
        wanted = fold(self.text)
        if not wanted:
            return True
        if wanted in fold(account.nickname):
            return True
        return wanted.isdigit() and account.phone.endswith(wanted)


def fold(text: str) -> str:
    """Text as filters compare it: NFKC (full-width digits and letters folded), case-folded,
    spaces trimmed."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


async def filtered_page(
    session: AsyncSession, shop_id: int, page: int, where: AccountFilter, *,
    size: int = PAGE_SIZE,
) -> AccountsPage:
    """Page ``page`` of the shop's sub-accounts that ``where`` shows (clamped to the pages
    there are), oldest first; ``total`` counts the accounts shown, not the shop's seats.

    Without a filter this is ``accounts_page`` (one query). With one, the shop's accounts are
    read and filtered here (a shop has at most its seat cap of them), so that a nickname is
    matched the same way on SQLite and PostgreSQL, whatever its script.
    """
    if not where.active:
        return await accounts_page(session, shop_id, page, size=size)
    shown = [(a, r) for a, r in await all_accounts(session, shop_id) if where.matches(a)]
    page, pages = paging(page, len(shown), size)
    return AccountsPage(shown[page * size:(page + 1) * size], len(shown), page, pages)


async def all_accounts(session: AsyncSession, shop_id: int) -> list[tuple[SubAccount, Role]]:
    """Every sub-account of the shop with its role, oldest first (for export)."""
    result = await session.exec(
        select(SubAccount, Role)
        .join(Role, col(Role.id) == SubAccount.role_id)
        .where(SubAccount.shop_id == shop_id)
        .order_by(col(SubAccount.id))
    )
    return [(a, r) for a, r in result.all()]


async def get_account(session: AsyncSession, shop_id: int, account_id: int) -> SubAccount:
    """A sub-account of this shop, or ``account_not_found`` (also for another shop's)."""
    account = await session.get(SubAccount, account_id)
    if account is None or account.shop_id != shop_id:
        raise DomainError("account_not_found")
    return account


async def account_for_code(
    session: AsyncSession, shop_id: int, code_id: int
) -> SubAccount | None:
    """The shop's sub-account that the code ``code_id`` created, if one did (a code is used
    by at most one account: ``sub_account.code_id`` is unique)."""
    found = await session.exec(
        select(SubAccount).where(col(SubAccount.code_id) == code_id,
                                 col(SubAccount.shop_id) == shop_id)
    )
    return found.first()


_MEMBERSHIP = (
    select(SubAccount, Shop, Role)
    .join(Shop, col(Shop.id) == SubAccount.shop_id)
    .join(Role, col(Role.id) == SubAccount.role_id)
    .where(col(SubAccount.holder_id) == bindparam("holder_id"))
)


async def membership_of(session: AsyncSession, holder_id: int) -> Membership | None:
    """The holder's sub-account, shop and role, if they have one."""
    result = await session.exec(_MEMBERSHIP, params={"holder_id": holder_id})
    row = result.first()
    return Membership(*row) if row else None


def _changed(
    session: AsyncSession,
    account: SubAccount,
    *,
    actor_id: int,
    action: str,
    now: datetime,
    **detail: object,
) -> None:
    account.updated_at = now
    session.add(account)
    audit.record(
        session,
        now=now,
        shop_id=account.shop_id,
        actor_id=actor_id,
        action=action,
        object_type="account",
        object_id=account.id,
        phone=mask_phone(account.phone),
        nickname=account.nickname,
        **detail,
    )


async def change_role(
    session: AsyncSession, *, shop_id: int, actor_id: int, account_id: int, role_id: int,
    now: datetime,
) -> tuple[SubAccount, Role]:
    """Give the sub-account another role of the same shop."""
    account = await get_account(session, shop_id, account_id)
    role = await get_role(session, shop_id, role_id)
    before = await get_role(session, shop_id, account.role_id)
    if role.id == account.role_id:
        raise DomainError("nothing_changed")
    account.role_id = role_id
    _changed(session, account, actor_id=actor_id, action="account.role", now=now,
             before=before.name, after=role.name)
    return account, role


async def rename_account(
    session: AsyncSession, *, shop_id: int, actor_id: int, account_id: int, nickname: str,
    now: datetime,
) -> SubAccount:
    """Change the nickname (1–30 characters); the same nickname again is ``nothing_changed``."""
    account = await get_account(session, shop_id, account_id)
    name = clean_nickname(nickname)
    before = account.nickname
    if name == before:
        raise DomainError("nothing_changed")
    account.nickname = name
    _changed(session, account, actor_id=actor_id, action="account.renamed", now=now,
             before=before)
    return account


async def set_im(
    session: AsyncSession, *, shop_id: int, actor_id: int, account_id: int, enabled: bool,
    now: datetime,
) -> SubAccount:
    """Turn customer-chat (IM) permission on or off."""
    account = await get_account(session, shop_id, account_id)
    if account.im_enabled == enabled:
        raise DomainError("nothing_changed")
    account.im_enabled = enabled
    _changed(session, account, actor_id=actor_id, action="account.im", now=now, im=enabled)
    return account


async def set_suspended(
    session: AsyncSession, *, shop_id: int, actor_id: int, account_id: int, suspended: bool,
    now: datetime,
) -> SubAccount:
    """Suspend (freeze, reversible; the phone stays bound) or resume a sub-account. An
    account whose access has expired is not resumed: a new end (or none) authorizes it again
    (``models.lifecycle.access.set_access``)."""
    account = await get_account(session, shop_id, account_id)
    target = AccountStatus.SUSPENDED if suspended else AccountStatus.AUTHORIZED
    if account.status == target.value:
        raise DomainError("nothing_changed")
    if not suspended and account.expired_at is not None:
        raise DomainError("account_expired_extend_first")
    account.status = target.value
    _changed(session, account, actor_id=actor_id,
             action="account.suspended" if suspended else "account.resumed", now=now)
    return account


async def _remove(session: AsyncSession, account: SubAccount) -> None:
    """Delete the membership and its sub-account binding, only if both are still what was read.

    Another transaction may have changed them since they were read (an owner transfer makes the
    holder the shop's main account: their binding becomes ``owner``); then nothing is deleted and
    the account is gone as far as this change is concerned.
    """
    gone = await session.exec(delete(SubAccount).where(col(SubAccount.id) == account.id))
    if gone.rowcount == 0:
        raise DomainError("account_not_found")
    await session.exec(delete(PhoneBinding).where(
        col(PhoneBinding.phone) == account.phone,
        col(PhoneBinding.kind) == BindingKind.SUB.value,
        col(PhoneBinding.shop_id) == account.shop_id,
    ))
    session.expunge(account)  # its values stay readable for the messages that follow


async def unbind(
    session: AsyncSession, *, shop_id: int, actor_id: int, account_id: int, now: datetime
) -> SubAccount:
    """Delete the membership (解绑) and free the phone for any shop."""
    account = await get_account(session, shop_id, account_id)
    _changed(session, account, actor_id=actor_id, action="account.unbound", now=now)
    await _remove(session, account)
    return account


async def leave_shop(session: AsyncSession, *, holder: User, now: datetime) -> Membership:
    """The holder leaves their shop: the membership goes and the phone is freed."""
    membership = await membership_of(session, holder.id)
    if membership is None:
        raise DomainError("no_membership")
    _changed(session, membership.account, actor_id=holder.id, action="account.left", now=now)
    await _remove(session, membership.account)
    return membership


async def holder_of(session: AsyncSession, account: SubAccount) -> User | None:
    """The Telegram user who holds ``account`` (to tell them about changes)."""
    return await session.get(User, account.holder_id)


async def account_position(session: AsyncSession, shop_id: int, account_id: int) -> int:
    """The 0-based place of the account in the shop's list (oldest first), for paging."""
    result = await session.exec(
        select(func.count())
        .select_from(SubAccount)
        .where(SubAccount.shop_id == shop_id, col(SubAccount.id) < account_id)
    )
    return int(result.one())
