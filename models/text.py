"""What people type: one-line names and multi-line notes, cleaned the same way everywhere.

Control characters (NUL, escapes…) become spaces — PostgreSQL refuses a NUL in text, and none
of them means anything in a name. Format characters (Unicode category Cf: zero-width spaces,
soft hyphens, bidi overrides and isolates, byte-order marks, tag characters…) are removed: they
are invisible, so they let two names look alike ("Ops" and "Ops\u200b") or one look like
another ("\u202enimdA" shows as "Admin"). The one exception is the zero-width joiner between
two emoji, which is how emoji such as 👩‍💻 are written; elsewhere it is removed too. A text
with nothing visible in it counts as empty.
"""

from __future__ import annotations

import unicodedata

from models.errors import DomainError

ZWJ = "\u200d"
#: emoji skin-tone modifiers (category Sk) and the emoji variation selector / keycap mark
_EMOJI_TAILS = frozenset("\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff\ufe0f\u20e3")


def visible(text: str) -> bool:
    """Whether ``text`` has at least one character that is not a space, control or format mark."""
    return any(unicodedata.category(ch)[0] not in "CZ" for ch in text)


def _emoji_before(out: list[str]) -> bool:
    """Whether what was kept so far ends with an emoji (possibly with its modifier)."""
    return bool(out) and (unicodedata.category(out[-1]) == "So" or out[-1] in _EMOJI_TAILS)


def drop_format(text: str, *, keep_emoji_joiners: bool = True) -> str:
    """``text`` without format characters (Unicode Cf), keeping (unless told otherwise) a
    zero-width joiner that joins two emoji."""
    out: list[str] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) != "Cf":
            out.append(ch)
            continue
        following = text[i + 1] if i + 1 < len(text) else ""
        if (keep_emoji_joiners and ch == ZWJ and _emoji_before(out)
                and following and unicodedata.category(following) == "So"):
            out.append(ch)
    return "".join(out)


def drop_controls(text: str, keep: str = "") -> str:
    """Control characters become spaces, except those in ``keep``; format characters go."""
    return drop_format("".join(
        " " if unicodedata.category(ch) == "Cc" and ch not in keep else ch for ch in text
    ))


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
