"""/forget: a user deletes what the bot keeps about them (docs/product.md, "Retention and
/forget").

What goes: their phone link (the number is free for a new SIM owner), their Telegram name and
username, their membership of a shop (as "Leave shop"), every verification code for their
phone or addressed to them (live ones die first, and the owner waiting for one is told), their
conversation draft, and their name and phone in the audit log — the rows stay, with the action,
and say "a deleted user" where the person was. What stays: the user row as an id with a
language, so the bot can still answer them. An owner is refused: the shop must be handed over
or closed first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import drafts
from models.accounts import Membership, leave_shop, membership_of
from models.codes import cancel_code
from models.errors import DomainError
from models.phones import mask_phone
from models.tables import AuditEvent, CodeStatus, Shop, SubAccount, User, VerificationCode

#: detail keys that name or reach a person (the rest — role, modules, IM… — say what happened)
PERSONAL_KEYS = ("phone", "nickname")
#: detail flags left where a forgotten person was: the actor, or the one acted upon
ACTOR_DELETED = "actor_deleted"
SUBJECT_DELETED = "subject_deleted"


def personal_keys(action: str) -> tuple[str, ...]:
    """The detail keys of an audit action that name or reach the person it is about."""
    return (*PERSONAL_KEYS, "before") if action == "account.renamed" else PERSONAL_KEYS


@dataclass
class WithdrawnCode:
    """A live code that died because its holder asked to be forgotten."""

    owner_id: int
    masked_phone: str
    #: the holder's code message, to edit (chat is the forgotten user's)
    holder_message_id: int | None
    #: the owner was waiting for this code in /newaccount: their flow was ended
    owner_flow_ended: bool


@dataclass
class Forgotten:
    """What /forget did, for telling the people concerned."""

    left: Membership | None = None
    #: the membership's nickname and masked phone, read before they were deleted
    left_nickname: str = ""
    left_phone: str = ""
    withdrawn: list[WithdrawnCode] = field(default_factory=list)
    audit_rows: int = 0


async def refuse_owner(session: AsyncSession, user: User) -> None:
    """An owner cannot be forgotten while the shop is theirs."""
    shop = (await session.exec(select(Shop).where(col(Shop.owner_id) == user.id))).first()
    if shop is not None:
        raise DomainError("forget_owner", shop=shop.name)


def _code_filter(user: User) -> Any:
    named = col(VerificationCode.holder_id) == user.id
    return or_(named, col(VerificationCode.phone) == user.phone) if user.phone else named


async def live_codes(session: AsyncSession, user: User) -> list[VerificationCode]:
    """The codes for the user's phone, or addressed to them, that can still be used."""
    live = (CodeStatus.PENDING.value, CodeStatus.VERIFIED.value)
    return list((await session.exec(
        select(VerificationCode).where(_code_filter(user), col(VerificationCode.status).in_(live))
    )).all())


async def forget_user(
    session: AsyncSession, *, user: User, now: datetime, owner_flow: str = "newaccount"
) -> Forgotten:
    """Delete the user's personal data (in the caller's transaction). ``owner_flow`` is the
    flow an owner waits for a code in; such a flow is ended when its code is withdrawn."""
    await refuse_owner(session, user)
    phone = user.phone
    masked = mask_phone(phone) if phone else None
    done = Forgotten()

    membership = await membership_of(session, user.id)
    account_ids = {str(membership.account.id)} if membership else set()
    if membership is not None:
        done.left_nickname = membership.account.nickname
        done.left_phone = mask_phone(membership.account.phone)
        done.left = await leave_shop(session, holder=user, now=now)

    codes = list((await session.exec(select(VerificationCode).where(_code_filter(user)))).all())
    for code in codes:
        if code.status not in (CodeStatus.PENDING.value, CodeStatus.VERIFIED.value):
            await _scrub_owner_draft(session, code, now)
            continue
        message_id = code.holder_message_id if code.holder_id == user.id else None
        await cancel_code(session, code_id=code.id or 0, actor_id=user.id, now=now)
        ended = await _end_owner_flow(session, code, owner_flow)
        done.withdrawn.append(WithdrawnCode(code.owner_id, mask_phone(code.phone), message_id,
                                            ended))
    await session.flush()
    code_ids = {str(code.id) for code in codes}
    shop_ids = {code.shop_id for code in codes} | ({membership.shop.id} if membership else set())
    if codes:
        await session.exec(delete(VerificationCode).where(
            col(VerificationCode.id).in_([code.id for code in codes]),
            ~exists().where(col(SubAccount.code_id) == col(VerificationCode.id)),
        ))

    done.audit_rows = await _scrub_audit(session, user.id, masked, code_ids, account_ids,
                                         shop_ids)
    user.phone, user.first_name, user.username = None, "", None
    session.add(user)
    await drafts.clear_draft(session, user.id)
    return done


async def _end_owner_flow(session: AsyncSession, code: VerificationCode, flow: str) -> bool:
    """End the owner's flow if it waits for ``code`` (it would name the person)."""
    draft = await drafts.get_draft(session, code.owner_id)
    if draft is None or draft.flow != flow or draft.data.get("code_id") != code.id:
        return False
    await drafts.clear_draft(session, code.owner_id)
    return True


async def _scrub_owner_draft(session: AsyncSession, code: VerificationCode, now: datetime) -> None:
    """An owner's flow still naming an ended code keeps going, without the person's name."""
    draft = await drafts.get_draft(session, code.owner_id)
    if draft is None or draft.data.get("code_id") != code.id or "holder_name" not in draft.data:
        return
    data = {k: v for k, v in draft.data.items() if k != "holder_name"}
    await drafts.save_draft(session, code.owner_id, draft.flow, draft.step, data, now)


async def _scrub_audit(
    session: AsyncSession,
    user_id: int,
    masked: str | None,
    code_ids: set[str],
    account_ids: set[str],
    shop_ids: set[int | None],
) -> int:
    """Drop the person's name and phone from every audit row about them or by them.

    A row is theirs if they acted in it, or it is about one of their codes or their sub-account,
    or — for rows whose code or account is gone already — it is in a shop they dealt with and
    carries their (masked) phone.
    """
    about = [
        col(AuditEvent.actor_id) == user_id,
        (col(AuditEvent.object_type) == "code") & col(AuditEvent.object_id).in_(sorted(code_ids) or [""]),
        (col(AuditEvent.object_type) == "account")
        & col(AuditEvent.object_id).in_(sorted(account_ids) or [""]),
    ]
    if masked is not None:
        about.append(col(AuditEvent.shop_id).in_(sorted(i for i in shop_ids if i is not None) or [0])
                     & (col(AuditEvent.detail)["phone"].as_string() == masked))
    events = (await session.exec(select(AuditEvent).where(or_(*about)))).all()
    for event in events:
        detail = dict(event.detail) if isinstance(event.detail, dict) else {}
        subject = (
            (event.object_type == "code" and event.object_id in code_ids)
            or (event.object_type == "account" and event.object_id in account_ids)
            or (masked is not None and detail.get("phone") == masked)
            # a holder acts only on their own code or account
            or (event.actor_id == user_id and any(k in detail for k in PERSONAL_KEYS))
        )
        for key in personal_keys(event.action) if subject else ():
            detail.pop(key, None)
        if event.actor_id == user_id:
            detail[ACTOR_DELETED] = True
            event.actor_id = None
        if subject:
            detail[SUBJECT_DELETED] = True
        event.detail = detail
        session.add(event)
    return len(events)
