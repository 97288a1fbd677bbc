"""Logging for the process: one line per event, phone numbers and bot tokens masked.

``setup_logging(level)`` installs one stderr handler on the root logger with a
``PrivacyFilter``. The filter runs on the *handler*, so it sees every record that reaches the
root — including those propagated from PTB, httpx, SQLAlchemy and Alembic loggers — and it
rewrites the fully formatted message (``msg % args``) and any traceback text.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

import phonenumbers

from models.phones import mask_phone

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: chatter: httpx logs every request URL (which holds the token), aiosqlite every DEBUG step,
#: Alembic every plugin it loads
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "aiosqlite", "alembic.runtime.plugins")
#: at DEBUG these print whole Bot API payloads — message texts with verification codes, the
#: codes owners type, shared contacts — so they never go below INFO
PAYLOAD_LOGGERS = (
    "telegram.Bot", "telegram.ext.ExtBot", "telegram.ext.Updater", "telegram.ext.Application",
)

# "+" then 8–15 digits, or a bare run of 11 or more digits.
_PHONE = re.compile(r"\+\d{8,15}(?!\d)|(?<!\d)\d{11,}(?!\d)")
# A bot token: in a Bot API URL (".../bot<id>:<secret>/..."), or anywhere in its usual shape
# "<bot id>:<35 URL-safe characters>".
_TOKEN = re.compile(r"(?<=/bot)\d+:[A-Za-z0-9_-]+|\b\d{3,}:[A-Za-z0-9_-]{30,}")
# A verification code in the holder's message, in case a payload slips through anyway.
_CODE = re.compile(r"((?:Verification code|验证码)[^0-9]{0,12})\d{6}(?!\d)")


def _mask_digits(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.startswith("+"):
        return mask_phone(found)
    try:
        valid = phonenumbers.is_valid_number(phonenumbers.parse("+" + found, None))
    except phonenumbers.NumberParseException:
        valid = False
    if valid:
        return mask_phone("+" + found)
    return found[:3] + "****" + found[-4:]


def mask_secrets(text: str) -> str:
    """``text`` with bot tokens, verification codes and phone numbers masked."""
    text = _CODE.sub(lambda m: m.group(1) + "••••••", _TOKEN.sub("<bot-token>", text))
    return _PHONE.sub(_mask_digits, text)


class PrivacyFilter(logging.Filter):
    """Masks phone numbers and bot tokens in the message (args included) and tracebacks."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = mask_secrets(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


def setup_logging(level: str = "INFO", *, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as one masked line; returns the handler."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_subaccount_bot", False):
            root.removeHandler(old)
            old.close()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._subaccount_bot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for existing in root.handlers:
        if not any(isinstance(f, PrivacyFilter) for f in existing.filters):
            existing.addFilter(PrivacyFilter())
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    return handler
