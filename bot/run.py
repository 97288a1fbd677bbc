"""``subaccount-bot run``: migrate, then run the bot until SIGTERM/SIGINT; every start-up
problem an operator can fix is one ``Failure`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dtm
import logging

from bot.cli_common import Failure, db_error, load, masked_url, one_line, open_and_migrate
from bot.secret_files import code_secret

log = logging.getLogger("bot.cli")  # the logger name these lines have always had


def cmd_run(args: argparse.Namespace) -> int:
    """Migrate, then run the bot until SIGTERM/SIGINT."""
    from telegram import Update
    from telegram.error import TelegramError

    from bot.app import build_application, freeze_startup_heap
    from bot.runlock import check_several, hold_sqlite_lock
    from bot.scheduler import plan_duty_poll
    from bot.webhook import serve, shared_webhook_secret

    settings = load(args)
    tg = settings.telegram
    if not tg.token:
        raise Failure(
            "no bot token: set the BOT_TOKEN environment variable or telegram.token in "
            "config.toml (ask @BotFather for one)"
        )
    try:
        check_several(settings)
        hold_sqlite_lock(settings.database.url)
    except RuntimeError as exc:
        raise Failure(str(exc)) from exc
    except OSError as exc:  # the folder cannot be made, or the lock file beside the database
        raise db_error(settings.database.url, exc) from exc
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # run_polling/run_webhook go on with this loop and close it
    try:
        revision = loop.run_until_complete(open_and_migrate(settings.database.url))
        log.info("database %s at revision %s", masked_url(settings.database.url), revision)
        secret = None
        if tg.mode == "webhook":
            secret = loop.run_until_complete(
                shared_webhook_secret(settings, code_secret(settings)))
        application = build_application(settings)
        # getMe in our hands first: PTB's own bootstrap would log a refused token as an ERROR
        # with a traceback. run_polling/run_webhook then skip the initialised application.
        loop.run_until_complete(application.initialize())
    except BaseException as exc:
        loop.close()
        failure = _startup_failure(exc, tg.base_url)
        if failure is exc:
            raise
        raise failure from exc
    if plan_duty_poll(application, settings):
        log.info("looking for due duties every %s s", settings.scheduler.poll_seconds)
    freeze_startup_heap()
    try:
        if tg.mode == "webhook":
            assert secret is not None
            hook = tg.webhook
            log.info("webhook mode: listening on %s:%s/%s for %s/%s", hook.listen, hook.port,
                     hook.path, hook.url, hook.path)
            try:
                loop.run_until_complete(serve(application, settings, secret))
            finally:
                loop.close()
        else:
            log.info("polling %s (long-poll timeout %s s)", tg.base_url, tg.poll_timeout)
            application.run_polling(
                timeout=dtm.timedelta(seconds=tg.poll_timeout),
                allowed_updates=Update.ALL_TYPES,
                drop_pending_updates=False,
            )
    except (TelegramError, OSError) as exc:
        raise _startup_failure(exc, tg.base_url) from exc  # always a Failure for these
    log.info("stopped")
    return 0


def _startup_failure(exc: BaseException, base_url: str) -> BaseException:
    """The one-line ``Failure`` for a start-up problem; any other exception is returned as is."""
    from telegram.error import InvalidToken, TelegramError

    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, InvalidToken):
        return Failure(
            f"the Bot API at {base_url} refused the token (check BOT_TOKEN or telegram.token)"
        )
    if isinstance(exc, TelegramError):
        log.debug("start-up failed", exc_info=exc)
        return Failure(f"cannot start against {base_url}: {one_line(exc)}", 1)
    if isinstance(exc, OSError):  # e.g. the webhook port is taken
        log.debug("start-up failed", exc_info=exc)
        return Failure(f"cannot start: {one_line(exc)}", 1)
    return exc

