"""What the owner-transfer conversation (``handlers.transfer``) and its expiry job
(``handlers.transfer_expiry``) share: the time a request runs to, what the old owner becomes
in words, the target's request message and its buttons, and who the two people are.

Not a conversation: the job tells both people without an update of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardMarkup

from handlers.i18n import label, plural_key, t
from handlers.keyboards import button, keyboard
from handlers.router import cb
from handlers.times import local_date, local_time, shop_zone
from models.lifecycle.tables import OwnerTransfer, TransferStatus
from models.phones import mask_phone
from models.tables import Role, Shop, SubAccount, User

#: the callback namespace of the owner transfer
NS = "tr"


def until_text(moment: datetime, tz: tzinfo) -> str:
    """A transfer's deadline as both people see it, in the shop's time zone: ``2026-12-02
    16:47`` (``… 08:47 UTC`` where that zone is UTC)."""
    return f"{local_date(moment, tz)} {local_time(moment, tz)}"


def hours_text(locale: str, hours: int) -> str:
    """"1 hour" / "24 hours" in ``locale``."""
    return t(locale, plural_key("transfer.hours", hours), n=hours)


def old_owner_text(locale: str, role: Role | None, *, owner: str | None = None) -> str:
    """What the old owner becomes, as HTML: to the owner ("you stay … / you leave"), or to the
    target when ``owner`` names them."""
    if owner is None:
        return (t(locale, "transfer.you_role", role=role.name) if role is not None
                else t(locale, "transfer.you_leave"))
    return (t(locale, "transfer.they_role", owner=owner, role=role.name) if role is not None
            else t(locale, "transfer.they_leave", owner=owner))


def request_markup(locale: str, transfer_id: int) -> InlineKeyboardMarkup:
    """Accept / Decline under the target's request, in the target's language."""
    return keyboard([button(label(locale, "transfer.accept"), cb(NS, "ac", transfer_id)),
                     button(label(locale, "transfer.decline"), cb(NS, "dc", transfer_id))])


def withdraw_markup(locale: str, transfer_id: int) -> InlineKeyboardMarkup:
    """Withdraw under the owner's card of a pending transfer."""
    return keyboard([button(label(locale, "transfer.withdraw"), cb(NS, "wd", transfer_id))])


@dataclass
class Parties:
    """The people and names one transfer concerns (read when it is shown or ended)."""

    transfer: OwnerTransfer
    shop_name: str
    owner: User | None
    target: User | None
    #: the target's sub-account nickname and masked phone (their name if it is gone)
    nickname: str
    phone: str
    #: the role the old owner is to get (None: they leave, or it was deleted)
    role: Role | None
    #: the shop's time zone (its deadline is shown in it)
    tz: tzinfo

    @property
    def owner_name(self) -> str:
        return (self.owner.first_name if self.owner is not None else "") or "—"


async def parties(session: AsyncSession, transfer: OwnerTransfer,
                  default_zone: str = "UTC") -> Parties:
    """Who and what ``transfer`` concerns, as they are now (times in the shop's zone, else
    ``default_zone``)."""
    shop = await session.get(Shop, transfer.shop_id)
    owner = await session.get(User, transfer.from_user_id)
    target = await session.get(User, transfer.to_user_id)
    account = await session.get(SubAccount, transfer.to_account_id)
    if account is not None and account.holder_id == transfer.to_user_id:
        nickname, phone = account.nickname, mask_phone(account.phone)
    else:
        nickname = (target.first_name if target is not None else "") or "—"
        phone = mask_phone(target.phone) if target is not None and target.phone else "—"
    role = None
    if transfer.old_owner_role_id is not None and not transfer.old_owner_leaves:
        role = await session.get(Role, transfer.old_owner_role_id)
    return Parties(transfer, shop.name if shop is not None else "—", owner, target, nickname,
                   phone, role, shop_zone(shop, default_zone))


def request_text(locale: str, found: Parties) -> str:
    """The target's request message (HTML), in the target's language."""
    return t(locale, "transfer.request", owner=found.owner_name, shop=found.shop_name,
             nickname=found.nickname,
             old_html=old_owner_text(locale, found.role, owner=found.owner_name),
             until=until_text(found.transfer.expires_at, found.tz))


def waiting_text(locale: str, found: Parties) -> str:
    """The owner's card of a pending transfer (HTML)."""
    return t(locale, "transfer.waiting", shop=found.shop_name, nickname=found.nickname,
             phone=found.phone, until=until_text(found.transfer.expires_at, found.tz),
             old_html=old_owner_text(locale, found.role))


async def pending_for_target(session: AsyncSession, user_id: int) -> OwnerTransfer | None:
    """The pending transfer that asks ``user_id`` to become a main account, if any."""
    return (await session.exec(
        select(OwnerTransfer).where(col(OwnerTransfer.to_user_id) == user_id,
                                    col(OwnerTransfer.status) == TransferStatus.PENDING.value)
        .order_by(col(OwnerTransfer.id).desc())
    )).first()
