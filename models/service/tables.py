"""Customer-service tables (客服分流, docs/service.md). Times are naive UTC; ids only, never content."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from models.tables import _ts


class RoutingMode(StrEnum):
    WEIGHTED = "weighted"
    LEAST_BUSY = "least_busy"


class AgentStatus(StrEnum):
    ONLINE = "online"
    BREAK = "break"
    OFFLINE = "offline"


class AgentKind(StrEnum):
    OWNER = "owner"
    SUB = "sub"


class ConversationState(StrEnum):
    QUEUED = "queued"
    OFFLINE = "offline"
    ASSIGNED = "assigned"
    CLOSED = "closed"


#: the states of a conversation that is not over
OPEN_STATES = (ConversationState.QUEUED.value, ConversationState.OFFLINE.value,
               ConversationState.ASSIGNED.value)


class ServiceSettings(SQLModel, table=True):
    """A shop's customer-service settings; made from ``ServicePolicy`` on first use.

    The row is also the shop's routing lock: every routing decision starts by bumping
    ``route_seq`` (a row lock on PostgreSQL, the write lock on SQLite), so decisions of one shop
    never interleave.
    """

    __tablename__ = "service_settings"

    shop_id: int = Field(
        sa_column=Column(Integer, ForeignKey("shop.id", ondelete="CASCADE"), primary_key=True,
                         autoincrement=False)
    )
    mode: str = Field(default=RoutingMode.WEIGHTED.value, max_length=10)
    default_cap: int = 5
    sticky_days: int = 3
    first_response_seconds: int = 120
    reply_seconds: int = 300
    reroute_on_breach: bool = False
    idle_close_hours: int = 24
    offline_text_en: str = Field(default="", max_length=500)
    offline_text_zh: str = Field(default="", max_length=500)
    hours_text_en: str = Field(default="", max_length=200)
    hours_text_zh: str = Field(default="", max_length=200)
    route_seq: int = 0
    updated_at: datetime = _ts()


class Agent(SQLModel, table=True):
    """A person who answers a shop's customers: an IM sub-account, or the owner who opted in.

    ``open_chats`` counts the agent's assigned conversations; it is only changed under the
    shop's routing lock, so ``open_chats <= cap`` holds for every assignment.
    """

    __tablename__ = "service_agent"
    __table_args__ = (
        UniqueConstraint("shop_id", "user_id", name="uq_service_agent_shop_user"),
        CheckConstraint("open_chats >= 0", name="ck_service_agent_open_chats"),
        # the least-busy pick's order among the shop's agents of one status (migration 0008)
        Index("ix_service_agent_available", "shop_id", "status", "open_chats", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE")
    user_id: int = Field(sa_column=Column(BigInteger, ForeignKey("app_user.id"), nullable=False))
    kind: str = Field(max_length=5)
    account_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("sub_account.id", ondelete="SET NULL"),
                         nullable=True),
    )
    active: bool = True
    status: str = Field(default=AgentStatus.OFFLINE.value, max_length=7)
    cap: int | None = None
    open_chats: int = 0
    status_changed_at: datetime = _ts()
    created_at: datetime = _ts()


class ServiceGroup(SQLModel, table=True):
    """A customer-service group (客服分组)."""

    __tablename__ = "service_group"
    __table_args__ = (
        UniqueConstraint("shop_id", "name_key", name="uq_service_group_name"),
        Index("ix_service_group_overflow", "overflow_group_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE")
    name: str = Field(max_length=30)
    name_key: str = Field(max_length=30)
    overflow_group_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("service_group.id", ondelete="SET NULL"),
                         nullable=True),
    )
    created_at: datetime = _ts()


class GroupMember(SQLModel, table=True):
    """An agent in a group with a weight (权重, 1–100) and the smooth weighted round-robin's
    current weight, persisted so routing is the same across restarts and processes."""

    __tablename__ = "service_group_member"
    __table_args__ = (
        UniqueConstraint("group_id", "agent_id", name="uq_service_member"),
        CheckConstraint("weight BETWEEN 1 AND 100", name="ck_service_member_weight"),
        Index("ix_service_member_agent", "agent_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="service_group.id", ondelete="CASCADE")
    agent_id: int = Field(foreign_key="service_agent.id", ondelete="CASCADE")
    weight: int = 1
    current_weight: int = 0


class Entry(SQLModel, table=True):
    """A way in (绑定页面) bound to a group; its deep-link token is kept as SHA-256 only."""

    __tablename__ = "service_entry"
    __table_args__ = (UniqueConstraint("shop_id", "name_key", name="uq_service_entry_name"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE")
    name: str = Field(max_length=30)
    name_key: str = Field(max_length=30)
    group_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("service_group.id", ondelete="SET NULL"),
                         nullable=True),
    )
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _ts()
    token_at: datetime = _ts()


class Conversation(SQLModel, table=True):
    """One customer with one shop, from the first message to its end.

    ``agent_id`` is set exactly when the state is ``assigned`` (a CHECK), and one customer has
    at most one open conversation per shop (a partial unique index). ``served_by`` keeps the
    last agent after the end (for sticky routing). ``nudge_at`` / ``alert_at`` are the
    service-level deadlines (NULL when nothing is due), so a scheduler can ask what is due.
    """

    __tablename__ = "service_conversation"
    __table_args__ = (
        CheckConstraint("(state = 'assigned') = (agent_id IS NOT NULL)",
                        name="ck_service_conversation_agent"),
        Index("uq_service_conversation_open", "shop_id", "customer_id", unique=True,
              sqlite_where=text("state != 'closed'"), postgresql_where=text("state != 'closed'")),
        Index("ix_service_conversation_customer", "customer_id", "shop_id", "id"),
        Index("ix_service_conversation_waiting", "shop_id", "state", "waiting_since", "id"),
        Index("ix_service_conversation_agent", "agent_id", "id"),
        Index("ix_service_conversation_nudge", "nudge_at"),
        Index("ix_service_conversation_alert", "alert_at"),
        Index("ix_service_conversation_idle", "idle_at"),
        Index("ix_service_conversation_day", "shop_id", "created_at"),
        Index("ix_service_conversation_served_by", "served_by"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE")
    customer_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("app_user.id"), nullable=False)
    )
    entry_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("service_entry.id", ondelete="SET NULL"),
                         nullable=True),
    )
    group_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("service_group.id", ondelete="SET NULL"),
                         nullable=True),
    )
    agent_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("service_agent.id"), nullable=True),
    )
    served_by: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("service_agent.id", ondelete="SET NULL"),
                         nullable=True),
    )
    state: str = Field(max_length=8)
    created_at: datetime = _ts()
    waiting_since: datetime | None = _ts(nullable=True)
    assigned_at: datetime | None = _ts(nullable=True)
    first_customer_at: datetime | None = _ts(nullable=True)
    first_response_at: datetime | None = _ts(nullable=True)
    last_customer_at: datetime | None = _ts(nullable=True)
    last_agent_at: datetime | None = _ts(nullable=True)
    last_activity_at: datetime = _ts()
    idle_at: datetime = _ts()
    nudge_at: datetime | None = _ts(nullable=True)
    alert_at: datetime | None = _ts(nullable=True)
    closed_at: datetime | None = _ts(nullable=True)
    closed_by: str | None = Field(default=None, max_length=8)


class MessageDirection(StrEnum):
    FROM_CUSTOMER = "in"
    FROM_AGENT = "out"


class MessageLink(SQLModel, table=True):
    """Which message in the customer's chat is which in an agent's chat (ids only).

    ``customer_message_id`` is in the customer's chat: their own message, or the bot's copy of
    an agent's reply; the agent's side is empty while nobody has received it (queued, offline).
    A colleague who takes over gets the history copied again from the customer's chat.
    """

    __tablename__ = "service_message"
    __table_args__ = (
        Index("ix_service_message_agent_chat", "agent_chat_id", "agent_message_id"),
        Index("ix_service_message_conversation", "conversation_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="service_conversation.id", ondelete="CASCADE")
    direction: str = Field(max_length=3)
    customer_message_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    agent_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    agent_message_id: int | None = Field(default=None,
                                         sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = _ts()


class Rating(SQLModel, table=True):
    """A customer's 1–5 rating of an ended conversation (one per conversation)."""

    __tablename__ = "service_rating"
    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 5", name="ck_service_rating_score"),)

    conversation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("service_conversation.id", ondelete="CASCADE"),
                         primary_key=True, autoincrement=False)
    )
    shop_id: int = Field(foreign_key="shop.id", ondelete="CASCADE", index=True)
    agent_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("service_agent.id", ondelete="SET NULL"),
                         nullable=True),
    )
    score: int
    created_at: datetime = _ts()
