"""What the benchmark parts share: production settings, a query counter, figures, RSS."""

from __future__ import annotations

import logging
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.localapi import LocalBotApi as FakeBotApi

TOKEN = "123456:BENCHMARK-TOKEN"


def production_settings(database_url: str) -> Settings:
    """The defaults the bot runs with (no config.toml is read: the run must not depend on one)."""
    return Settings.model_validate(
        {"telegram": {"token": TOKEN}, "database": {"url": database_url}}
    )


def quiet_logging() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for name in ("apscheduler", "telegram", "httpx", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100), nearest rank on sorted data."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


class Percentiles:
    """``p50_ms`` and ``p99_ms`` of ``samples()`` (durations in seconds)."""

    def samples(self) -> list[float]:
        raise NotImplementedError

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples(), 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples(), 99) * 1000


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class QueryCounter:
    """Counts the statements an engine sends (``before_cursor_execute``) and its commits."""

    statements: int = 0
    commits: int = 0
    trace: list[str] | None = None
    _engine: Any = None

    def attach(self, engine: AsyncEngine) -> QueryCounter:
        self._engine = engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._on_statement)
        event.listen(self._engine, "commit", self._on_commit)
        return self

    def detach(self) -> None:
        if self._engine is not None:
            event.remove(self._engine, "before_cursor_execute", self._on_statement)
            event.remove(self._engine, "commit", self._on_commit)
            self._engine = None

    def _on_statement(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.statements += 1
        if self.trace is not None:
            self.trace.append(" ".join(statement.split())[:160])

    def _on_commit(self, _conn: Any) -> None:
        self.commits += 1


class TimedApi(FakeBotApi):
    """The fake Bot API, also noting when each message was sent (wall clock, for lateness)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: list[tuple[int, float, str]] = []  # (chat id, time.time(), text)

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._sendMessage(params)
        self.sent_at.append((int(params["chat_id"]), time.time(), str(result["text"])))
        return result

