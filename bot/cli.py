"""The ``subaccount-bot`` command: run the bot, try it in the playground, migrate, check the
config, list and export.

Every problem an operator can fix (no token, a bad config, a database that cannot be opened, a
bad ``--shop``) is reported as ONE line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dtm
import logging
import os
import secrets
import stat
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from bot.config import Settings

# The heavy imports (SQLAlchemy, Alembic, PTB, pydantic) happen inside the commands, so that
# `--help` and usage errors answer at once.

log = logging.getLogger("bot.cli")

PROG = "subaccount-bot"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SECRET_FILE = "webhook_secret"
CODE_SECRET_FILE = "code_secret"
T = TypeVar("T")


class Failure(Exception):
    """A problem the operator can fix; printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- helpers ----------------------------------------------------------------------------------


def one_line(value: object) -> str:
    """``value`` as a single line (first non-empty line of its text)."""
    lines = [line.strip() for line in str(value).splitlines() if line.strip()]
    return lines[0] if lines else type(value).__name__


def masked_url(url: str) -> str:
    """A database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _load(args: argparse.Namespace) -> Settings:
    from bot.config import load_settings
    from bot.logs import setup_logging

    settings = load_settings(Path(args.config) if args.config else None)
    setup_logging(args.log_level or settings.logging.level)
    return settings


def _db_error(url: str, exc: BaseException) -> Failure:
    reason = one_line(getattr(exc, "orig", None) or exc)
    log.debug("database error", exc_info=exc)
    return Failure(f"cannot open the database {masked_url(url)}: {reason}")


async def _revision(url: str) -> str | None:
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
        await _revision(url)
    except Exception as exc:  # SQLAlchemy's, the OS's, and asyncpg's own (bad password…)
        raise _db_error(url, exc) from exc
    try:
        await db.migrate(url)
    except (SQLAlchemyError, OSError) as exc:
        log.debug("migration failed", exc_info=exc)
        raise Failure(f"migrating {masked_url(url)} failed: {one_line(exc)}", 1) from exc
    return await _revision(url)


async def _with_session(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` on a migrated, existing database (read-only commands)."""
    from bot import db

    path = db.sqlite_path(url)
    if path is not None and not path.exists():
        raise Failure(f"no database at {path} (run `{PROG} migrate` first)")
    try:
        revision = await _revision(url)
    except Exception as exc:
        raise _db_error(url, exc) from exc
    if revision is None:
        raise Failure(f"the database {masked_url(url)} is not migrated (run `{PROG} migrate`)")
    return await db.in_session(url, work)


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


# --- commands ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Migrate, then run the bot until SIGTERM/SIGINT."""
    from telegram import Update
    from telegram.error import TelegramError

    from bot.app import build_application, freeze_startup_heap
    from bot.runlock import check_several, hold_sqlite_lock
    from bot.scheduler import plan_duty_poll
    from bot.webhook import serve, shared_webhook_secret

    settings = _load(args)
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
        raise _db_error(settings.database.url, exc) from exc
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


def cmd_playground(args: argparse.Namespace) -> int:
    """Run the real bot against the built-in local Bot API, with a web page of chats."""
    from bot.playground.run import Options, run

    settings = _load(args)
    return run(settings, Options(host=args.host, port=args.port, database=args.database,
                                 code_ttl=args.code_ttl))


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the database to the newest schema."""
    settings = _load(args)
    url = settings.database.url
    revision = asyncio.run(open_and_migrate(url))
    print(f"{masked_url(url)}: at revision {revision} (head)")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and summarise it (secrets are never shown)."""
    settings = _load(args)
    tg = settings.telegram
    source = args.config or "config.toml"
    exists = Path(source).exists()
    lines = [
        f"config: {source}" + ("" if exists else " (absent: defaults and environment)"),
        f"mode: {tg.mode}",
        f"base_url: {tg.base_url}",
        "token: " + ("set" if tg.token else "NOT SET (BOT_TOKEN or telegram.token)"),
    ]
    if tg.mode == "webhook":
        hook = tg.webhook
        lines.append(f"webhook: {hook.url}/{hook.path} (listening on {hook.listen}:{hook.port})")
        lines.append(
            "webhook secret: "
            + ("configured" if hook.secret_token else f"generated in {webhook_secret_path(settings)}")
        )
    else:
        lines.append(f"poll_timeout: {tg.poll_timeout} s")
    lines += [
        f"rate_limit: {'on' if tg.rate_limit else 'off'} ({tg.processes} process(es) share it)",
        f"concurrent_updates: {tg.concurrent_updates}; duty poll every "
        f"{settings.scheduler.poll_seconds} s (PostgreSQL)",
        f"database: {masked_url(settings.database.url)}",
        f"locale: {settings.i18n.default_locale}",
        f"region: {settings.phone.default_region}",
        f"codes: valid {settings.verification.code_ttl_seconds} s, "
        f"{settings.verification.max_attempts} attempts, "
        f"resend after {settings.verification.resend_cooldown_seconds} s, "
        f"{settings.verification.codes_per_phone_per_hour} per phone per hour from one shop, "
        f"{settings.verification.codes_per_phone_all_shops_per_hour} from all shops, "
        f"{settings.verification.lookups_per_owner_per_hour} phone look-ups per owner per hour",
        "code-hash secret: " + ("configured" if settings.verification.code_secret
                                else f"kept in {code_secret_path(settings)}"),
        f"max_sub_accounts: {settings.shop.max_sub_accounts}",
        f"log level: {args.log_level or settings.logging.level}",
        f"modules ({len(settings.modules)}): " + ", ".join(m.key for m in settings.modules),
        f"presets ({len(settings.presets)}): "
        + ", ".join(f"{p.key} [{' '.join(p.modules)}]" for p in settings.presets),
    ]
    print("\n".join(lines))
    return 0


def cmd_shops(args: argparse.Namespace) -> int:
    """List the shops."""
    from models.export import shop_summaries
    from models.phones import mask_phone

    settings = _load(args)
    shops = asyncio.run(_with_session(settings.database.url, shop_summaries))
    if not shops:
        print("no shops yet")
        return 0
    rows = [("id", "name", "owner phone", "sub-accounts", "created (UTC)")]
    rows += [
        (str(s.id), s.name, mask_phone(s.owner_phone), str(s.sub_accounts), s.created_at)
        for s in shops
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write every sub-account of one shop as CSV or JSON."""
    from models.export import export_shop, to_csv, to_json

    settings = _load(args)
    raw = args.shop.strip()
    if not raw.isdigit():
        raise Failure(f"--shop must be a shop id (a number, see `{PROG} shops`), not {raw!r}")
    shop_id = int(raw)

    async def work(session: Any) -> dict[str, Any] | None:
        return await export_shop(session, shop_id)

    export = asyncio.run(_with_session(settings.database.url, work))
    if export is None:
        raise Failure(f"there is no shop with id {shop_id} (see `{PROG} shops`)")
    body = to_json(export) if args.format == "json" else to_csv(export["accounts"])
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8", newline="") as file:
                file.write(body)
        except OSError as exc:
            raise Failure(f"cannot write {args.output}: {one_line(exc)}", 1) from exc
        print(f"{len(export['accounts'])} sub-accounts of shop {shop_id} written to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.buffer.write(body.encode("utf-8"))
        sys.stdout.flush()
    return 0


# --- parser -----------------------------------------------------------------------------------


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0-65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The ``subaccount-bot`` argument parser."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH",
        help="configuration file (default: ./config.toml; built-in defaults when it is absent)",
    )
    common.add_argument(
        "--log-level", type=str.upper, choices=LEVELS, metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (overrides logging.level and LOG_LEVEL)",
    )
    parser = _Parser(
        prog=PROG,
        description="Telegram bot through which a shop owner provisions staff sub-accounts.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], summary: str) -> Any:
        sub = commands.add_parser(name, parents=[common], help=summary, description=summary)
        sub.set_defaults(func=func)
        return sub

    add("run", cmd_run, "migrate the database, then run the bot (polling, or webhook by config) "
                        "until SIGTERM/SIGINT")
    playground = add(
        "playground", cmd_playground,
        "try the bot without Telegram: the real bot (handlers, database, scheduler) against a "
        "built-in local Bot API, and a web page with the chats of several people side by side "
        "(an owner, two staff members, a customer). No token; nothing is sent to Telegram.",
    )
    playground.add_argument("--port", type=_port, default=8080,
                            help="the page's port (default 8080)")
    playground.add_argument("--host", default="127.0.0.1",
                            help="the page's address (default 127.0.0.1: this machine only)")
    playground.add_argument(
        "--database", metavar="URL",
        help="a database URL to use as it is; default: a SQLite file under ./data/playground/ "
             "that starts empty at every start",
    )
    playground.add_argument("--code-ttl", type=int, metavar="SECONDS",
                            help="how long a verification code is valid (default: the "
                                 "config's verification.code_ttl_seconds, 300)")
    add("migrate", cmd_migrate, "upgrade the database to the newest schema and print its revision")
    add("check-config", cmd_check_config,
        "validate the configuration and print a summary (no secrets)")
    add("shops", cmd_shops, "list the shops: id, name, masked owner phone, sub-accounts")
    export = add("export", cmd_export,
                 "export one shop's sub-accounts (unmasked phones) as CSV or JSON")
    export.add_argument("--shop", required=True, metavar="ID", help="the shop id (see `shops`)")
    export.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="csv (default) or json")
    export.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``subaccount-bot`` console script and ``python -m bot``."""
    args = build_parser().parse_args(argv)
    from bot.config import ConfigError

    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"{PROG}: {one_line(exc)}", file=sys.stderr)
        return 2
    except Failure as exc:
        print(f"{PROG}: {one_line(exc)}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    return code
