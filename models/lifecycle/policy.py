"""The lifecycle's tunable rules (the ``[lifecycle]`` section of the configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NoResponse(StrEnum):
    """What an unanswered access review means for the accounts not kept."""

    KEEP = "keep"
    SUSPEND = "suspend"


@dataclass(frozen=True)
class LifecyclePolicy:
    """Owner transfer, time-limited access and access review settings."""

    #: how long the target of an owner transfer has to accept it
    transfer_hours: int = 24
    #: the owner is reminded this long before an account's access ends (or a third of the term,
    #: if that is shorter)
    access_reminder_hours: int = 72
    #: days between two access reviews of a shop (a shop may choose its own; 0: off)
    review_days: int = 90
    #: an unanswered review is reminded after this many days
    review_reminder_days: int = 7
    #: after this many days the shop's no-response rule applies to what is still undecided
    review_deadline_days: int = 14
    #: the default no-response rule
    review_no_response: NoResponse = NoResponse.KEEP

    def __post_init__(self) -> None:
        if self.transfer_hours < 1 or self.access_reminder_hours < 1:
            raise ValueError("transfer_hours and access_reminder_hours must be at least 1")
        if self.review_days < 0:
            raise ValueError("review_days must be 0 (off) or more")
        if not 0 < self.review_reminder_days < self.review_deadline_days:
            raise ValueError("review_reminder_days must be at least 1 and less than"
                             " review_deadline_days")
