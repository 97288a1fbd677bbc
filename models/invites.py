"""Invite links (docs/product.md, "Invites"): for a holder who has not used the bot, the
owner forwards a deep link; the holder opens it and shares a contact with the same phone, and
the code is delivered.

The token is a bearer secret: only its SHA-256 is stored, in the code's row and in the draft of
a holder who still has to share their contact; the token itself is derived from the server
secret and the code's salt (``codes.invite_token``), so Resend shows the same link. The link
lives ``Policy.invite_hours``; the code's own validity (``code_ttl_seconds``) starts when the
invited person opens it with the matching phone. An invite not yet opened counts for no cap and
no cooldown. The link is single-use.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import audit
from models.codes import hash_token, keyed
from models.errors import DomainError
from models.phones import mask_phone
from models.policy import Policy
from models.tables import CodeStatus, User, VerificationCode


def _live(code: VerificationCode | None, now: datetime) -> VerificationCode:
    if code is None or code.status != CodeStatus.PENDING.value or now >= code.expires_at:
        raise DomainError("invite_invalid")
    return code


async def code_for_invite(session: AsyncSession, token_hash: str, *, now: datetime) -> VerificationCode:
    """The live code an invite token (given as its SHA-256) belongs to, or ``invite_invalid``."""
    if not token_hash:
        raise DomainError("invite_invalid")
    result = await session.exec(
        select(VerificationCode).where(VerificationCode.invite_token_hash == token_hash)
    )
    return _live(result.first(), now)


def invite_hash(token: str) -> str:
    """The stored form of an invite token from a link (``invite_invalid`` for no token shape)."""
    if not token or len(token) > 64:
        raise DomainError("invite_invalid")
    return hash_token(token)


async def claim_invite(
    session: AsyncSession, policy: Policy, token_hash: str, user: User, *, now: datetime
) -> tuple[VerificationCode, str]:
    """The holder opened the invite and their linked phone matches: the link is used up.

    Only the hash of the code was kept, so the holder gets fresh digits now; the code is issued
    now, valid ``code_ttl_seconds`` from now (the invite's own, longer life ends here).
    """
    code = await code_for_invite(session, token_hash, now=now)
    if user.phone != code.phone:
        raise DomainError("invite_phone_mismatch", phone=mask_phone(code.phone))
    plain = keyed(policy, code)
    code.created_at = now
    code.expires_at = now + timedelta(seconds=policy.code_ttl_seconds)
    code.invite_token_hash = None
    code.holder_id = user.id
    code.delivery = "queued"
    session.add(code)
    audit.record(
        session,
        now=now,
        shop_id=code.shop_id,
        actor_id=user.id,
        action="code.invite_opened",
        object_type="code",
        object_id=code.id,
        phone=mask_phone(code.phone),
    )
    return code, plain
