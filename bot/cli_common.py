"""What the ``subaccount-bot`` commands share: the one-line ``Failure``, loading the settings,
opening and migrating the database (used by ``bot.cli``, ``bot.run``, ``bot.secret_files``
and the playground).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings

# The heavy imports (SQLAlchemy, Alembic, PTB, pydantic) happen inside the functions, so that
# `--help` and usage errors answer at once.

log = logging.getLogger("bot.cli")  # the logger name the command's lines have always had


class Failure(Exception):
    """A problem the operator can fix; printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def one_line(value: object) -> str:
    """``value`` as a single line (first non-empty line of its text)."""
    lines = [line.strip() for line in str(value).splitlines() if line.strip()]
    return lines[0] if lines else type(value).__name__


def masked_url(url: str) -> str:
    """A database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def load(args: argparse.Namespace) -> Settings:
    """The settings from ``--config``, with logging set up at ``--log-level`` or the config's."""
    from bot.config import load_settings
    from bot.logs import setup_logging

    settings = load_settings(Path(args.config) if args.config else None)
    setup_logging(args.log_level or settings.logging.level)
    return settings


def db_error(url: str, exc: BaseException) -> Failure:
    """The one-line ``Failure`` for a database that cannot be opened."""
    reason = one_line(getattr(exc, "orig", None) or exc)
    log.debug("database error", exc_info=exc)
    return Failure(f"cannot open the database {masked_url(url)}: {reason}")


async def db_revision(url: str) -> str | None:
    """The Alembic revision the database is at (``None`` when it was never migrated)."""
    from sqlalchemy import text

    from bot import db

    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            has_table = await conn.run_sync(
                lambda sync: sync.dialect.has_table(sync, "alembic_version")
            )
            if not has_table:
                return None
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
            return None if row is None else str(row[0])
    finally:
        await engine.dispose()


async def open_and_migrate(url: str) -> str | None:
    """Check the database can be opened, upgrade it to head, return its revision."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot import db

    try:
        await db_revision(url)
    except Exception as exc:  # SQLAlchemy's, the OS's, and asyncpg's own (bad password…)
        raise db_error(url, exc) from exc
    try:
        await db.migrate(url)
    except (SQLAlchemyError, OSError) as exc:
        log.debug("migration failed", exc_info=exc)
        raise Failure(f"migrating {masked_url(url)} failed: {one_line(exc)}", 1) from exc
    return await db_revision(url)
