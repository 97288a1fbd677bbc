"""Domain errors carry a message key and parameters; the Telegram layer translates them."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule refused an action. ``key`` names the message in the ``errors`` catalogue."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def __repr__(self) -> str:
        return f"DomainError({self.key!r}, {self.params!r})"
