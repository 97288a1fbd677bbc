"""The defaults of a shop's customer-service settings (bot/ fills them from ``[service]``)."""

from __future__ import annotations

from dataclasses import dataclass

from models.service.tables import RoutingMode

#: limits the settings are validated against (also used for config validation)
CAP_RANGE = (1, 100)
STICKY_DAYS_RANGE = (0, 90)
SECONDS_RANGE = (10, 86_400)
IDLE_HOURS_RANGE = (1, 720)
OFFLINE_TEXT_MAX = 500
HOURS_TEXT_MAX = 200


@dataclass(frozen=True)
class ServicePolicy:
    """What a new shop's service settings start as, and how many items one scheduler pass
    claims."""

    mode: str = RoutingMode.WEIGHTED.value
    default_cap: int = 5
    sticky_days: int = 3
    first_response_seconds: int = 120
    reply_seconds: int = 300
    reroute_on_breach: bool = False
    idle_close_hours: int = 24
    offline_text_en: str = ""
    offline_text_zh: str = ""
    hours_text_en: str = ""
    hours_text_zh: str = ""
    claim_batch: int = 100

    def __post_init__(self) -> None:
        if self.mode not in {m.value for m in RoutingMode}:
            raise ValueError(f"mode must be one of {', '.join(m.value for m in RoutingMode)}")
        for name, (low, high) in (
            ("default_cap", CAP_RANGE),
            ("sticky_days", STICKY_DAYS_RANGE),
            ("first_response_seconds", SECONDS_RANGE),
            ("reply_seconds", SECONDS_RANGE),
            ("idle_close_hours", IDLE_HOURS_RANGE),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}")
        if self.claim_batch < 1:
            raise ValueError("claim_batch must be at least 1")
        for name, limit in (("offline_text_en", OFFLINE_TEXT_MAX), ("offline_text_zh", OFFLINE_TEXT_MAX),
                            ("hours_text_en", HOURS_TEXT_MAX), ("hours_text_zh", HOURS_TEXT_MAX)):
            if len(getattr(self, name)) > limit:
                raise ValueError(f"{name} is longer than {limit} characters")
