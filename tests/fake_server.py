"""The real bot as a separate process against the local Bot API server, and socket helpers.

``running_bot()`` starts ``python -m bot run`` with a real ``config.toml`` in a temporary
folder (SQLite file there, ``telegram.base_url`` = a ``bot.localapi.LocalBotApiServer``) and
stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.localapi import LocalBotApiServer

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_listening(port: int, within: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port`` (bounded poll)."""
    deadline = time.monotonic() + within
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"nothing listens on 127.0.0.1:{port} after {within} s") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


# --- the bot as a process ---------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for configs: scalars, lists and nested tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in data.items():
        if isinstance(value, Mapping):
            name = f"{prefix}.{key}" if prefix else key
            out += f"\n[{name}]\n" + to_toml(value, name)
    return out


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested tables merged."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def bot_env(**extra: str) -> dict[str, str]:
    """The environment for a bot process: this repo importable, no inherited bot settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOT_TOKEN", "DATABASE_URL", "LOG_LEVEL", "TEST_DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class BotProcess:
    """``python -m bot run`` in ``workdir``, logging to ``log_path``."""

    process: asyncio.subprocess.Process
    workdir: Path
    config_path: Path
    db_path: Path
    log_path: Path
    started_at: float
    returncode: int | None = field(default=None)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Query the bot's SQLite file (read-only, from this process)."""
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            return list(conn.execute(sql, params).fetchall())

    async def stop(self, sig: int = signal.SIGTERM, within: float = 10.0) -> int:
        """Send ``sig`` and wait for the exit code (killed, and an error, after ``within`` s)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            self.returncode = await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"the bot did not stop within {within} s:\n{self.log()}") from None
        return self.returncode


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    server: LocalBotApiServer,
    config_overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
) -> AsyncIterator[BotProcess]:
    """The bot as a process against ``server``, with its SQLite file in ``tmp_path``.

    The config is ``token`` + ``base_url`` (the server) + a small poll timeout + DEBUG logs,
    merged with ``config_overrides``. With ``wait_ready`` the context opens once the bot has
    asked for updates (polling) or set its webhook (webhook mode). On exit the process is
    stopped with SIGTERM (killed if it hangs).
    """
    workdir = tmp_path / "bot"
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "bot.db"
    config: dict[str, Any] = {
        "telegram": {"token": server.token, "base_url": server.base_url, "poll_timeout": 5},
        "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
        "logging": {"level": "DEBUG"},
    }
    config = merge(config, config_overrides or {})
    config_path = workdir / "config.toml"
    config_path.write_text(to_toml(config), encoding="utf-8")
    log_path = workdir / "bot.log"
    since = server.mark()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config_path),
            cwd=workdir, env=bot_env(**(env or {})), stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd, stderr=log_fd,
        )
    finally:
        os.close(log_fd)
    bot = BotProcess(process, workdir, config_path, db_path, log_path, started)
    try:
        if wait_ready:
            ready = "setWebhook" if config["telegram"].get("mode") == "webhook" else "getUpdates"
            try:
                await server.wait_call(ready, since=since, within=30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- bot log ---\n{bot.log()}") from None
        yield bot
    finally:
        if process.returncode is None:
            with contextlib.suppress(AssertionError):
                await bot.stop()
