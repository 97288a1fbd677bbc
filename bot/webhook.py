"""Webhook mode with an HTTP server of our own: the webhook endpoint and ``/healthz``.

PTB's built-in webhook server has no room for other routes, so this follows PTB's "custom
webhook bot" pattern: tornado (already installed with ``python-telegram-bot[webhooks]``) takes
the requests, checks the secret-token header (403 when it is missing or wrong), and hands each
update to the application's update processor (one user at a time, as in polling mode),
answering 200 only once the update has been handled. Telegram re-sends an update it got no 200
for, so an update in flight when its process dies (``kill -9``: the balancer answers 502) is
handled again by another process instead of being lost; what the dead process committed of it
before dying (a handler commits before each message it sends) may then be done twice.
``GET /healthz`` answers 200 only while the database answers ``SELECT 1`` (within
``HEALTH_TIMEOUT_S``), 503 otherwise, for a load balancer to probe (SPEC §10).

The webhook secret (``shared_webhook_secret``): the configured one; else on PostgreSQL one that
every process of the deployment derives alike — a random seed stored once in the database
(``models.settings_store``), keyed with the codes' HMAC secret, which every process must share
anyway, so a copy of the database alone does not give the secret; on SQLite (one process) the
file beside the database, as before (``bot.secret_files.webhook_secret``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.web
from sqlalchemy import text
from sqlalchemy.engine import make_url
from telegram import Update
from telegram.ext import Application
from tornado.httpserver import HTTPServer

from bot import db
from bot.config import Settings
from handlers.context import Deps
from models.settings_store import keep

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"
#: how long /healthz waits for the database before answering 503
HEALTH_TIMEOUT_S = 3.0
SEED_KEY = "webhook_secret_seed"


def derive_secret(seed: str, code_secret: str) -> str:
    """The webhook secret token for ``seed``: 43 characters of A-Z, a-z, 0-9, _ and -."""
    digest = hmac.new(code_secret.encode(), b"webhook-secret:" + seed.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


async def shared_webhook_secret(settings: Settings, code_secret: str) -> str:
    """The webhook secret all processes use (see the module's text)."""
    if settings.telegram.webhook.secret_token:
        return settings.telegram.webhook.secret_token
    if make_url(settings.database.url).get_backend_name() != "postgresql":
        from bot.secret_files import webhook_secret

        return webhook_secret(settings)
    from models.clock import SystemClock

    async def work(session: Any) -> str:
        return await keep(session, key=SEED_KEY, make=lambda: secrets.token_urlsafe(32),
                          now=SystemClock().now())

    seed = await db.in_session(settings.database.url, work)
    return derive_secret(seed, code_secret)


async def database_answers(deps: Deps) -> bool:
    """``SELECT 1`` answered within ``HEALTH_TIMEOUT_S`` seconds."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S), deps.sessions() as session:
            conn = await session.connection()
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: the database does not answer (%s)", type(exc).__name__)
        return False
    return True


class _Hook(tornado.web.RequestHandler):
    """POST: one update from the Bot API."""

    def initialize(self, bot_app: Application, secret: str) -> None:  # type: ignore[type-arg]
        self.bot_app = bot_app
        self.secret = secret

    def log_exception(self, *args: Any) -> None:  # refusals are answered, not logged as errors
        return

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.debug("webhook request without the right secret token refused")
            raise tornado.web.HTTPError(403)
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, self.bot_app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            log.debug("webhook request with a body that is no update: %s", type(exc).__name__)
            raise tornado.web.HTTPError(400) from None
        # handled before the answer (not put on the update queue): see the module's text
        app = self.bot_app
        await app.update_processor.process_update(update, app.process_update(update))
        self.set_status(200)


class _Health(tornado.web.RequestHandler):
    """GET: 200 when the database answers, 503 otherwise."""

    def initialize(self, check: Callable[[], Awaitable[bool]]) -> None:
        self.check = check

    async def get(self) -> None:
        ok = await self.check()
        self.set_status(200 if ok else 503)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("ok\n" if ok else "database unavailable\n")


def web_app(application: Application, secret: str, path: str,  # type: ignore[type-arg]
            check: Callable[[], Awaitable[bool]]) -> tornado.web.Application:
    """The routes: ``/<path>`` (the webhook) and ``/healthz``."""
    return tornado.web.Application([
        (rf"/{path}/?", _Hook, {"bot_app": application, "secret": secret}),
        (HEALTH_PATH, _Health, {"check": check}),
    ], log_function=lambda _handler: None)


async def serve(application: Application,  # type: ignore[type-arg]
                settings: Settings, secret: str) -> None:
    """Run the (initialised) application in webhook mode until SIGTERM or SIGINT: post-init,
    the server, ``setWebhook``, then an orderly stop (updates already taken are handled)."""
    hook = settings.telegram.webhook
    deps = application.bot_data["deps"]
    assert isinstance(deps, Deps)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    server: HTTPServer | None = None
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        server = web_app(application, secret, hook.path,
                         lambda: database_answers(deps)).listen(hook.port, address=hook.listen)
        await application.bot.set_webhook(
            url=f"{hook.url}/{hook.path}", secret_token=secret,
            allowed_updates=Update.ALL_TYPES, drop_pending_updates=False,
        )
        log.info("webhook server on %s:%s (/%s and %s)", hook.listen, hook.port, hook.path,
                 HEALTH_PATH)
        await stopping.wait()
        log.info("stopping")
    finally:
        if server is not None:
            server.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.close_all_connections(), 5)
        if application.running:
            await application.stop()
            if application.post_stop is not None:
                await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
