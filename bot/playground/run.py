"""``subaccount-bot playground``: the real bot against the local Bot API, and the page of chats.

All in one process and one event loop: the local Bot API on 127.0.0.1 (a free port, never
anything else), the bot — ``build_application`` with its handlers, database and JobQueue —
long-polling it with a fixed fake token, and the page on ``--host``:``--port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from telegram import Update

from bot.cli_common import Failure, masked_url, one_line, open_and_migrate
from bot.config import Settings
from bot.localapi import LocalBotApi, LocalBotApiServer
from bot.localapi.http import HttpServer
from bot.playground.web import Playground

log = logging.getLogger("bot.playground")

#: The only token the playground's bot ever uses; the local Bot API accepts nothing else.
PLAYGROUND_TOKEN = "123456:PLAYGROUND-LOCAL-ONLY"
PLAYGROUND_BOT = {"id": 777000222, "is_bot": True, "first_name": "Sub-account Bot (playground)",
                  "username": "subaccount_playground_bot", "can_join_groups": True,
                  "can_read_all_group_messages": False, "supports_inline_queries": False}
DEFAULT_DATABASE = Path("data/playground/playground.db")
POLL_TIMEOUT = 10


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8080
    database: str | None = None  # None: a fresh SQLite file under ./data/playground/
    code_ttl: int | None = None


def playground_settings(base: Settings, options: Options, api_url: str) -> Settings:
    """``base`` (config.toml: modules, presets, locale, region…) with the playground's own
    Telegram side (fixed fake token, the local API) and database."""
    data: dict[str, Any] = base.model_dump(by_alias=True)
    data["telegram"] = {"token": PLAYGROUND_TOKEN, "base_url": api_url, "mode": "polling",
                        "poll_timeout": POLL_TIMEOUT, "rate_limit": False}
    data["database"] = {"url": options.database or f"sqlite+aiosqlite:///{DEFAULT_DATABASE}"}
    if options.code_ttl is not None:
        data["verification"]["code_ttl_seconds"] = options.code_ttl
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        hint = " (--code-ttl)" if where.startswith("verification") else ""
        raise Failure(f"playground: {where}{hint}: "
                      f"{first['msg'].removeprefix('Value error, ')}") from exc
    ensure_local(settings)
    return settings


def ensure_local(settings: Settings) -> None:
    """Refuse anything but the fake token and a Bot API on this machine's loopback."""
    tg = settings.telegram
    host = urlsplit(tg.base_url).hostname
    if tg.token != PLAYGROUND_TOKEN or host != "127.0.0.1":
        raise Failure(f"the playground only talks to its own local Bot API, not {tg.base_url}")


def _fresh_sqlite(options: Options) -> None:
    """The default database starts empty at every start (the chats are in memory too)."""
    if options.database is not None:
        return
    DEFAULT_DATABASE.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{DEFAULT_DATABASE}{suffix}").unlink()


async def serve(base: Settings, options: Options) -> None:
    """Run the playground until SIGINT (Ctrl-C) or SIGTERM."""
    from bot.app import build_application

    stop = _stop_on_signals()
    api = LocalBotApiServer(LocalBotApi(bot_user=dict(PLAYGROUND_BOT)), token=PLAYGROUND_TOKEN)
    playground = Playground(api)
    page = HttpServer(playground.handle, host=options.host, port=options.port)
    await api.start()
    try:
        try:
            await page.start()
        except OSError as exc:
            raise Failure(f"cannot serve the page on {options.host}:{options.port}: "
                          f"{one_line(exc)} (choose another --port)") from exc
        settings = playground_settings(base, options, api.base_url)
        _fresh_sqlite(options)
        revision = await open_and_migrate(settings.database.url)
        log.info("database %s at revision %s", masked_url(settings.database.url), revision)
        application = build_application(settings)
        await application.initialize()
        try:
            if application.post_init is not None:
                await application.post_init(application)
            updater = application.updater
            assert updater is not None
            await updater.start_polling(timeout=dtm.timedelta(seconds=POLL_TIMEOUT),
                                        allowed_updates=Update.ALL_TYPES,
                                        drop_pending_updates=False)
            await application.start()
            shown = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
            shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address
            url = f"http://{shown}:{page.port}"
            print(f"playground: open {url} (Ctrl-C to stop)", flush=True)
            await stop.wait()
            log.info("stopping")
            await updater.stop()
            await application.stop()
        finally:
            await application.shutdown()
            if application.post_shutdown is not None:
                await application.post_shutdown(application)
    finally:
        playground.close()
        await page.stop()
        await api.stop()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run(base: Settings, options: Options) -> int:
    """The command: serve until Ctrl-C."""
    asyncio.run(serve(base, options))
    print("playground: stopped", flush=True)
    return 0
