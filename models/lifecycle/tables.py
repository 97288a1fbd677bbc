"""The lifecycle's tables: owner transfers, review rounds and their items; and the indexes the
scheduler's "due" queries use on the columns added to ``shop`` and ``sub_account``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.tables import PhoneBinding, Shop, SubAccount, _ts


class TransferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class OwnerTransfer(SQLModel, table=True):
    """A request to hand a shop to one of its sub-accounts (主账号更换)."""

    __tablename__ = "owner_transfer"
    __table_args__ = (
        # one pending transfer per shop: the database refuses a second
        Index("uq_transfer_pending_shop", "shop_id", unique=True,
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
        Index("ix_transfer_status_expires", "status", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE")
    from_user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    to_user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: the target's sub-account when asked (deleted when it accepts: no foreign key)
    to_account_id: int
    #: what the old owner becomes: a sub-account with this role, or (``old_owner_leaves``) nothing
    old_owner_role_id: int | None = Field(default=None, foreign_key="role.id",
                                          ondelete="SET NULL")
    old_owner_leaves: bool = False
    status: str = Field(default=TransferStatus.PENDING.value, max_length=10)
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    ended_at: datetime | None = _ts(nullable=True)


class ReviewOutcome(StrEnum):
    ANSWERED = "answered"
    KEPT = "kept"
    SUSPENDED = "suspended"


class ReviewRound(SQLModel, table=True):
    """One access review of a shop (权限复核): an item per sub-account at its start."""

    __tablename__ = "review_round"
    __table_args__ = (
        Index("uq_review_open_shop", "shop_id", unique=True,
              sqlite_where=text("closed_at IS NULL"),
              postgresql_where=text("closed_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE")
    started_at: datetime = _ts()
    #: when the reminder is due (NULL once sent)
    remind_at: datetime | None = _ts(nullable=True)
    #: when silence gets the shop's no-response rule
    deadline_at: datetime = _ts()
    closed_at: datetime | None = _ts(nullable=True)
    outcome: str | None = Field(default=None, max_length=10)


class ReviewDecision(StrEnum):
    KEEP = "keep"
    SUSPEND = "suspend"
    UNBIND = "unbind"


class ReviewItem(SQLModel, table=True):
    """A sub-account as it was when the round started, and the owner's decision on it.

    It goes with the account (a deleted account's snapshot is not kept)."""

    __tablename__ = "review_item"
    __table_args__ = (UniqueConstraint("round_id", "account_id", name="uq_review_item"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="review_round.id", ondelete="CASCADE", index=True)
    account_id: int = Field(foreign_key="sub_account.id", ondelete="CASCADE", index=True)
    nickname: str = Field(max_length=30)
    phone_masked: str = Field(max_length=24)
    role_name: str = Field(max_length=30)
    im_enabled: bool = False
    #: authorized | suspended | expired (``access.account_state``)
    status: str = Field(max_length=10)
    last_activity_at: datetime | None = _ts(nullable=True)
    decision: str | None = Field(default=None, max_length=10)
    #: decided by the owner (False: by the no-response rule)
    decided_by_owner: bool = False
    decided_at: datetime | None = _ts(nullable=True)


SHOP_REVIEW_DUE = Index("ix_shop_review_due", Shop.__table__.c.review_due_at)  # type: ignore[attr-defined]
ACCOUNT_ACCESS_UNTIL = Index("ix_sub_account_access_until",
                             SubAccount.__table__.c.access_until)  # type: ignore[attr-defined]
ACCOUNT_REMIND_AT = Index("ix_sub_account_access_remind",
                          SubAccount.__table__.c.access_remind_at)  # type: ignore[attr-defined]
#: a shop has one main account: at most one owner binding per shop
OWNER_BINDING = Index("uq_phone_binding_shop_owner", PhoneBinding.__table__.c.shop_id,  # type: ignore[attr-defined]
                      unique=True, sqlite_where=text("kind = 'owner'"),
                      postgresql_where=text("kind = 'owner'"))
