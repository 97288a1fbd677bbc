"""SQLite serves one process: ``subaccount-bot run`` holds a lock file beside the database for
its whole life, and a second ``run`` on the same file is refused with one line (SPEC §10).

An ``fcntl`` lock, so it dies with the process, even after ``kill -9``: no stale lock to clear.
PostgreSQL needs none (several processes are what it is for).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from bot import db
from bot.config import Settings

_held: list[IO[str]] = []


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def hold_sqlite_lock(url: str) -> Path | None:
    """Take the lock of the SQLite file of ``url`` for this process's lifetime (the lock file's
    path; ``None`` for PostgreSQL). ``RuntimeError`` with one line when another process has it;
    ``OSError`` when the lock file cannot be made."""
    database = db.sqlite_path(url)
    if database is None:
        return None
    database.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(database)
    file = open(path, "a+", encoding="ascii")  # noqa: SIM115 (held until the process ends)
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        other = file.read().strip() or "?"
        file.close()
        raise RuntimeError(
            f"another subaccount-bot process (pid {other}) is running on {database}: SQLite "
            "serves one process (use PostgreSQL to run several)"
        ) from None
    file.truncate(0)
    file.write(f"{os.getpid()}\n")
    file.flush()
    _held.append(file)
    return path


def check_several(settings: Settings) -> None:
    """Several processes (``telegram.processes`` > 1) need PostgreSQL, webhook mode and one
    code-hash secret for all (a code issued by one process is checked by another).
    ``RuntimeError`` with one line otherwise."""
    if settings.telegram.processes == 1:
        return
    if db.sqlite_path(settings.database.url) is not None:
        raise RuntimeError("telegram.processes > 1 needs PostgreSQL (SQLite serves one process)")
    if settings.telegram.mode != "webhook":
        raise RuntimeError("telegram.processes > 1 needs telegram.mode = 'webhook' (Telegram "
                           "allows one getUpdates consumer per token)")
    if not settings.verification.code_secret:
        raise RuntimeError("telegram.processes > 1 needs verification.code_secret (or "
                           "CODE_SECRET), the same on every process")
