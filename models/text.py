"""What people type: one-line names and multi-line notes, cleaned the same way everywhere.

Control characters (NUL, escapes…) become spaces — PostgreSQL refuses a NUL in text, and none
of them means anything in a name — and a text with nothing visible in it counts as empty.
"""

from __future__ import annotations

import unicodedata

from models.errors import DomainError


def visible(text: str) -> bool:
    """Whether ``text`` has at least one character that is not a space, control or format mark."""
    return any(unicodedata.category(ch)[0] not in "CZ" for ch in text)


def drop_controls(text: str, keep: str = "") -> str:
    """Control characters become spaces, except those in ``keep``."""
    return "".join(
        " " if unicodedata.category(ch) == "Cc" and ch not in keep else ch for ch in text
    )


def clean_line(raw: str, *, limit: int, empty: str, too_long: str) -> str:
    """A one-line name: spaces folded, NFC, 1–``limit`` characters.

    ``empty`` and ``too_long`` are the ``DomainError`` keys to refuse it with (``too_long``
    gets ``max`` and ``length``).
    """
    name = unicodedata.normalize("NFC", " ".join(drop_controls(raw).split()))
    if not visible(name):
        raise DomainError(empty)
    if len(name) > limit:
        raise DomainError(too_long, max=limit, length=len(name))
    return name
