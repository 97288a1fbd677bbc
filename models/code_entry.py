"""What an owner typed as a verification code, read the way a person means it
(docs/product.md, "Verification codes")."""

from __future__ import annotations

import re
import unicodedata

CODE_DIGITS = 6

_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u00b7.]+")
_SIX = re.compile(r"(?<!\d)\d{6}(?!\d)")
_THREE_THREE = re.compile(r"(?<!\d)(?<!\d[ -])\d{3}[ -]\d{3}(?![ -]?\d)")


def _ascii_digits(text: str) -> str:
    """``text`` with full-width forms folded (NFKC) and every Unicode decimal digit as 0-9."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in folded)


def code_entry(text: str) -> str | None:
    """What someone typed as a code, as six ASCII digits, if it is one; else ``None`` — a typo
    of shape is not a wrong code and costs no attempt.

    Full-width (１２３４５６) and other Unicode decimal digits count; spaces and dashes inside
    are ignored ("123 456", "913-363"). A pasted message holding exactly one six-digit group
    ("🔐 验证码：913363 …") gives that group.
    """
    plain = _ascii_digits(text)
    whole = _SEPARATORS.sub("", plain)
    if len(whole) == CODE_DIGITS and whole.isdigit():
        return whole
    groups = [m.group() for m in _SIX.finditer(plain)]
    groups += [m.group() for m in _THREE_THREE.finditer(plain)]
    if len(groups) == 1:
        return _SEPARATORS.sub("", groups[0])
    return None
