"""Phone numbers: parse to E.164, mask for display and logs."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from models.errors import DomainError


def normalize_phone(raw: str, region: str) -> str:
    """Parse ``raw`` (any common notation) to E.164, or raise ``phone_invalid``."""
    text = raw.strip()
    if not text or len(text) > 32:
        raise DomainError("phone_invalid")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise DomainError("phone_invalid") from exc
    if not phonenumbers.is_valid_number(number):
        raise DomainError("phone_invalid")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_contact_phone(raw: str, region: str) -> str:
    """Telegram sends contact numbers without '+' (e.g. ``8613800138000``)."""
    text = raw.strip()
    if text and text[0].isdigit():
        try:
            return normalize_phone("+" + text, region)
        except DomainError:
            pass
    return normalize_phone(text, region)


def _split_e164(e164: str) -> tuple[str, str] | None:
    """``+8613800138000`` → ``("86", "13800138000")``; ``None`` if it is not ``+`` and digits.

    Country calling codes are prefix-free (no code is the start of another), so the first one to
    three digits that name a country are its code: what ``phonenumbers.parse`` finds, without
    the cost of a full parse (masking runs for every list line and audit entry).
    """
    digits = e164[1:]
    if not e164.startswith("+") or not digits.isdigit():
        return None
    for length in (1, 2, 3):
        if int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return digits[:length], digits[length:]
    return None


@lru_cache(maxsize=4096)
def mask_phone(e164: str | None) -> str:
    """``+8613800138000`` → ``+86 138****8000``; never shows the middle digits."""
    if not e164:
        return "—"
    split = _split_e164(e164)
    if split is not None:
        country, national = split
    else:
        country, national = "", "".join(c for c in e164 if c.isdigit())
    if len(national) >= 9:
        masked = national[:3] + "****" + national[-4:]
    elif len(national) >= 5:
        masked = national[:2] + "*" * (len(national) - 4) + national[-2:]
    else:
        masked = "*" * len(national)
    return f"+{country} {masked}" if country else masked
