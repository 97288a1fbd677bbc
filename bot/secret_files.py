"""The generated secrets kept in 0600 files: the webhook secret token and the key of the codes'
HMAC, beside the SQLite file (else in ``./data``), each made once when it is not configured.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli_common import Failure, one_line

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger("bot.cli")  # the logger name these lines have always had

SECRET_FILE = "webhook_secret"
CODE_SECRET_FILE = "code_secret"


def webhook_secret_path(settings: Settings) -> Path:
    """Where a generated webhook secret is kept: beside the SQLite file, else ``./data``."""
    return _secret_dir(settings) / SECRET_FILE


def code_secret_path(settings: Settings) -> Path:
    """Where the generated key of the codes' HMAC is kept: beside the webhook secret."""
    return _secret_dir(settings) / CODE_SECRET_FILE


def _secret_dir(settings: Settings) -> Path:
    from bot import db

    path = db.sqlite_path(settings.database.url)
    return path.parent if path is not None else Path("data")


def _valid_secret(value: str) -> bool:
    return 0 < len(value) <= 256 and all(c.isalnum() or c in "_-" for c in value)


def _kept_secret(path: Path, what: str, *, replace_invalid: bool) -> str:
    """The secret in ``path`` (a 0600 file), made once when there is none."""
    try:
        if path.exists():
            value = path.read_text(encoding="ascii").strip()
            if _valid_secret(value):
                if stat.S_IMODE(path.stat().st_mode) != 0o600:
                    path.chmod(0o600)
                return value
            if not replace_invalid:
                raise Failure(f"{path} does not hold a valid {what}; restore it or remove it")
            log.warning("%s does not hold a valid %s; making a new one", path, what)
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it just now: theirs is the one
            return _kept_secret(path, what, replace_invalid=False)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(value + "\n")
        log.info("generated a %s in %s", what, path)
        return value
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(f"cannot keep the {what} in {path}: {one_line(exc)}") from exc


def webhook_secret(settings: Settings) -> str:
    """The configured secret token, or one generated once and kept in a 0600 file."""
    if settings.telegram.webhook.secret_token:
        return settings.telegram.webhook.secret_token
    return _kept_secret(webhook_secret_path(settings), "webhook secret token",
                        replace_invalid=True)


def code_secret(settings: Settings) -> str:
    """The key of the codes' HMAC: ``verification.code_secret`` / ``CODE_SECRET``, or one
    generated once and kept in a 0600 file beside the webhook secret (never in the database).

    A damaged file is an error, not silently replaced: a new key would make every code in
    flight fail.
    """
    if settings.verification.code_secret:
        return settings.verification.code_secret
    return _kept_secret(code_secret_path(settings), "code-hash secret", replace_invalid=False)
