"""What the service rules return: plain values a handler turns into messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")
#: rows of a list page (entries, groups): as many as fit a phone screen with their buttons
LIST_PAGE_SIZE = 10


class Via(StrEnum):
    """How a conversation came to be where it is."""

    STICKY = "sticky"  # the agent who served this customer lately
    GROUP = "group"  # the entry's group, by the shop's mode
    OVERFLOW = "overflow"  # the group's overflow group
    SHOP = "shop"  # no group (its group was deleted): any agent of the shop, least busy
    HANDOUT = "handout"  # taken from the queue / offline messages by an agent with a free slot
    TRANSFER = "transfer"  # 转接 to a named agent
    QUEUED = "queued"  # everyone was full: waiting in the queue
    OFFLINE = "offline"  # nobody online: an offline message (离线留言)


@dataclass(frozen=True)
class Placement:
    """Where one conversation went: to an agent, or to the queue (with the customer's place)
    or to offline messages. ``previous_*`` names the agent it left, if it moved."""

    conversation_id: int
    shop_id: int
    customer_id: int
    entry_id: int | None
    state: str
    via: Via
    agent_id: int | None = None
    agent_user_id: int | None = None
    place: int | None = None
    previous_agent_id: int | None = None
    previous_agent_user_id: int | None = None


@dataclass(frozen=True)
class Ended:
    """A conversation that ended, who to tell, and what the freed slot took from the queue."""

    conversation_id: int
    shop_id: int
    customer_id: int
    agent_id: int | None
    agent_user_id: int | None
    by: str
    handouts: list[Placement] = field(default_factory=list)


@dataclass(frozen=True)
class StatusChange:
    """An agent's new status, the chats handed back to routing (going offline), and the chats
    the agent took (coming online)."""

    agent_id: int
    status: str
    moved: list[Placement] = field(default_factory=list)
    handouts: list[Placement] = field(default_factory=list)


@dataclass(frozen=True)
class Transferred:
    """A transfer (转接): where the conversation went and what the freed slot took."""

    placement: Placement
    handouts: list[Placement] = field(default_factory=list)


@dataclass(frozen=True)
class ListPage(Generic[T]):
    """One page of a list (entries, groups), clamped to the pages there are, and how many
    items it has in all."""

    rows: list[T]
    total: int
    page: int
    pages: int
    size: int

    @property
    def first_number(self) -> int:
        """The 1-based number of the page's first row in the whole list."""
        return self.page * self.size + 1
