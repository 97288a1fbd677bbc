"""The composition root: build the Application from settings, with its database and jobs."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes
from telegram.request import BaseRequest

from bot import db
from bot.config import Settings
from bot.scheduler import reconcile
from bot.updates import PerUserUpdateProcessor, flood_limiter, user_locks_for
from handlers import FLOWS
from handlers.context import Deps, apologize, deps_of
from handlers.flow import Flow
from handlers.i18n import LOCALES
from handlers.router import Router
from models.clock import Clock, SystemClock

log = logging.getLogger(__name__)


def build_application(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    clock: Clock | None = None,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    rate_limit: bool | None = None,
    code_secret: str | None = None,
    flows: Sequence[Flow] = FLOWS,
) -> Application:  # type: ignore[type-arg]
    """The bot, wired: handlers, one session per update, the expiry job, start-up work.

    ``code_secret`` keys the codes' HMAC; by default it is the configured one or the one kept in
    a file beside the webhook secret (``bot.secret_files``). ``flows`` are the conversations
    (``handlers.FLOWS``); the application's own ``Router`` is built from them and kept in its
    ``Deps``, so two applications in one process share no routing state. The jobs are the
    code-expiry job (``handlers.expiry``) and the daily clean-up, both planned at start-up by
    ``bot.scheduler.reconcile`` (``post_init``).
    """
    tg = settings.telegram
    builder = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.base_url}/bot")
        .base_file_url(f"{tg.base_url}/file/bot")
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if request is not None:
        builder = builder.request(request)
    if get_updates_request is not None:
        builder = builder.get_updates_request(get_updates_request)
    builder = builder.concurrent_updates(PerUserUpdateProcessor(
        tg.concurrent_updates,
        locks=user_locks_for(settings.database.url, size=tg.concurrent_updates),
    ))
    if settings.telegram.rate_limit if rate_limit is None else rate_limit:
        builder = builder.rate_limiter(flood_limiter(tg.processes))  # type: ignore[arg-type]
    application = builder.build()
    if engine is None:
        engine = db.create_engine(settings.database.url, echo=settings.database.echo)
        application.bot_data["engine"] = engine  # ours to dispose at shutdown
    if code_secret is None:
        from bot.secret_files import code_secret as kept_code_secret

        code_secret = kept_code_secret(settings)
    router = Router(flows)
    deps = Deps(
        sessions=db.sessionmaker(engine),
        policy=replace(settings.policy(), code_secret=code_secret.encode()),
        clock=clock or SystemClock(),
        router=router,
        service_policy=settings.service.policy(),
        lifecycle=settings.lifecycle.policy(),
        default_locale=settings.i18n.default_locale,
    )
    application.bot_data["deps"] = deps
    application.bot_data["retention"] = settings.retention
    # the customer relay's flood limit (messages a minute per customer)
    application.bot_data["service_flood"] = settings.service.flood_per_minute
    application.add_handlers(router.handlers())
    application.add_error_handler(_on_error)
    return application


def freeze_startup_heap() -> None:
    """Leave what start-up made (modules, mappers, handlers, catalogues) out of later garbage
    collections.

    A full collection walks every live object: with the start-up heap in it, one stops the bot
    long enough to show in the flow benchmark (benchmarks/RESULTS.md); frozen, they stay short.
    Called once, just before the bot starts taking updates (the process is one bot for good).
    """
    gc.collect()
    gc.freeze()


async def _post_init(application: Application) -> None:  # type: ignore[type-arg]
    """Register the command menu in both languages; reconcile pending codes."""
    router = deps_of_application(application).router
    for locale in LOCALES:
        language_code = "zh" if locale == "zh-Hans" else None
        try:
            await application.bot.set_my_commands(router.bot_commands(locale),
                                                  language_code=language_code)
        except TelegramError as exc:
            log.warning("could not register the command menu (%s): %s", locale, exc)
    await reconcile(application)


def deps_of_application(application: Application) -> Deps:  # type: ignore[type-arg]
    """The dependencies ``build_application`` kept in the application."""
    deps = application.bot_data["deps"]
    assert isinstance(deps, Deps)
    return deps


async def _post_shutdown(application: Application) -> None:  # type: ignore[type-arg]
    engine = application.bot_data.get("engine")
    if isinstance(engine, AsyncEngine):
        await engine.dispose()


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log unexpected errors with the update id only (no personal data); ask the user to try
    again rather than leave them with no answer."""
    update_id: Any = update.update_id if isinstance(update, Update) else None
    log.error("error while handling update %s", update_id, exc_info=context.error)
    await apologize(update, context.bot, deps_of(context).default_locale)
