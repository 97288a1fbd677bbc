"""SQLModel tables. Phones are E.164 strings; times are naive UTC."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def _ts(*, nullable: bool = False) -> Any:
    """A naive-UTC timestamp column (the same type on SQLite and PostgreSQL)."""
    if nullable:
        return Field(default=None, sa_type=DateTime(timezone=False), nullable=True)
    return Field(sa_type=DateTime(timezone=False))


def _bigint_fk(target: str, *, nullable: bool, ondelete: str | None = None, **kw: Any) -> Any:
    return Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey(target, ondelete=ondelete), nullable=nullable, **kw),
    )


class User(SQLModel, table=True):
    """A Telegram user who has talked to the bot. ``id`` is the Telegram user id."""

    __tablename__ = "app_user"

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    phone: str | None = Field(default=None, max_length=20, unique=True)
    first_name: str = Field(default="", max_length=64)
    username: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=10)
    created_at: datetime = _ts()
    #: when the user last talked to the bot, to the day (for retention; see models.retention)
    seen_at: datetime | None = _ts(nullable=True)


class BindingKind(StrEnum):
    OWNER = "owner"
    SUB = "sub"


class Shop(SQLModel, table=True):
    """A shop; its owner is its main account (主账号)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40)
    owner_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("app_user.id"), nullable=False, unique=True)
    )
    max_sub_accounts: int = 50
    created_at: datetime = _ts()
    #: access reviews (models.lifecycle.reviews): days between rounds (NULL: the configured
    #: default; 0: off), what silence means ("keep" | "suspend"; NULL: the default), and when
    #: the next round starts (NULL: not scheduled yet)
    review_days: int | None = None
    review_no_response: str | None = Field(default=None, max_length=10)
    review_due_at: datetime | None = _ts(nullable=True)
    #: IANA time zone for dates the owner types (NULL: UTC)
    time_zone: str | None = Field(default=None, max_length=64)
    #: how a staff member already linked to the bot consents to being added: "code" (they
    #: relay the code, the default) or "button" (✅ Join in their own chat)
    consent_mode: str = Field(
        default="code", max_length=10, sa_column_kwargs={"server_default": "code"}
    )


class PhoneBinding(SQLModel, table=True):
    """The one place a phone is bound: main account or sub-account of one shop
    (docs/product.md, "Phones")."""

    __tablename__ = "phone_binding"

    phone: str = Field(primary_key=True, max_length=20)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=5)
    created_at: datetime = _ts()


class Role(SQLModel, table=True):
    """A role (岗位): a named set of modules within a shop."""

    __table_args__ = (UniqueConstraint("shop_id", "name_key", name="uq_role_shop_name"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=30)
    name_key: str = Field(max_length=30)
    description: str = Field(default="", max_length=200)
    modules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class AccountStatus(StrEnum):
    AUTHORIZED = "authorized"
    SUSPENDED = "suspended"


class SubAccount(SQLModel, table=True):
    """A holder's membership in one shop (子账号)."""

    __tablename__ = "sub_account"

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE", index=True)
    phone: str = Field(
        sa_column=Column(
            String(20), ForeignKey("phone_binding.phone"), nullable=False, unique=True
        )
    )
    holder_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("app_user.id"), nullable=False, unique=True)
    )
    nickname: str = Field(max_length=30)
    role_id: int = Field(foreign_key="role.id", ondelete="RESTRICT", index=True)
    im_enabled: bool = False
    status: str = Field(default=AccountStatus.AUTHORIZED.value, max_length=10)
    #: the code that created it; NULL for a former owner made a sub-account by a transfer
    code_id: int | None = Field(default=None, foreign_key="verification_code.id", unique=True,
                                nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    #: time-limited access (models.lifecycle.access): the end (NULL: none), when the owner's
    #: reminder is due (NULL: none pending), when it last expired (set while expired)
    access_until: datetime | None = _ts(nullable=True)
    access_remind_at: datetime | None = _ts(nullable=True)
    expired_at: datetime | None = _ts(nullable=True)
    #: when the holder last used the bot, to the hour (shown in access reviews)
    last_activity_at: datetime | None = _ts(nullable=True)


class CodeStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    USED = "used"
    EXPIRED = "expired"
    LOCKED = "locked"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


class VerificationCode(SQLModel, table=True):
    """A one-time code for binding ``phone`` to ``shop_id``; only its salted hash is kept."""

    __tablename__ = "verification_code"
    __table_args__ = (
        Index("ix_code_status_expires", "status", "expires_at"),
        Index("ix_code_phone_created", "phone", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE")
    owner_id: int = Field(sa_column=Column(BigInteger, ForeignKey("app_user.id"), nullable=False))
    role_id: int | None = Field(default=None, foreign_key="role.id", ondelete="SET NULL")
    phone: str = Field(max_length=20)
    salt: str = Field(max_length=32)
    code_hash: str = Field(max_length=64)
    status: str = Field(default=CodeStatus.PENDING.value, max_length=10)
    attempts: int = 0
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    ended_at: datetime | None = _ts(nullable=True)
    holder_id: int | None = _bigint_fk("app_user.id", nullable=True)
    holder_message_id: int | None = None
    invite_token_hash: str | None = Field(default=None, max_length=64, unique=True)
    #: queued (to be sent to the holder, not yet sent), invite (a link was given to the owner),
    #: delivered (in the holder's chat), failed (could not be sent)
    delivery: str = Field(default="queued", max_length=10)


class AuditEvent(SQLModel, table=True):
    """Who did what, when, to which object."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_shop_id", "shop_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int | None = Field(default=None, foreign_key="shop.id", ondelete="CASCADE")
    actor_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    action: str = Field(max_length=40)
    object_type: str = Field(max_length=20)
    object_id: str = Field(default="", max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()


class Draft(SQLModel, table=True):
    """A conversation in progress: where a user is and what they entered
    (docs/product.md, "Conversations")."""

    user_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    flow: str = Field(max_length=20)
    step: str = Field(max_length=20)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _ts()


class CodePhoneLock(SQLModel, table=True):
    """One row per phone ever sent a code: issuing locks it, so that the hourly caps and the
    cooldown are checked and the new code written as one step (two shops at once cannot both
    pass a cap). ``touched_at`` is the last time a code was considered for the phone."""

    __tablename__ = "code_phone_lock"

    phone: str = Field(primary_key=True, max_length=20)
    touched_at: datetime = _ts()


class PhoneLookup(SQLModel, table=True):
    """An owner entered this phone at the phone step (docs/product.md: look-ups that lead to no
    verified code are limited per owner). Rows older than an hour are dropped as new ones come."""

    __tablename__ = "phone_lookup"
    __table_args__ = (Index("ix_lookup_owner_created", "owner_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    phone: str = Field(max_length=20)
    created_at: datetime = _ts()
