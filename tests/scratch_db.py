"""PostgreSQL databases of one run's own, beside the one ``TEST_DATABASE_URL`` names.

Used by the test suite (``conftest.pg_migrated``) and the benchmarks, so that parallel runs
never share tables.
"""

from __future__ import annotations

import os
import secrets

from sqlalchemy import URL, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import DatabaseSettings


def server_url(url: str) -> URL:
    """``url`` (any accepted spelling) with the async driver, as a SQLAlchemy URL."""
    return make_url(DatabaseSettings(url=url).url)


def scratch_name(prefix: str) -> str:
    """A database name no other run uses: ``<prefix>_<pid>_<random>``."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


async def admin(server: URL, statement: str) -> None:
    """Run ``statement`` outside a transaction (CREATE / DROP DATABASE); DBAPIError if refused."""
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()
