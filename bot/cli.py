"""The ``subaccount-bot`` command: run the bot, try it in the playground, migrate, check the
config, list and export.

Every problem an operator can fix (no token, a bad config, a database that cannot be opened, a
bad ``--shop``) is reported as ONE line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from bot.cli_common import (
    Failure,
    db_error,
    db_revision,
    load,
    masked_url,
    one_line,
    open_and_migrate,
)
from bot.run import cmd_run
from bot.secret_files import code_secret_path, webhook_secret_path

# The heavy imports (SQLAlchemy, Alembic, PTB, pydantic) happen inside the commands, so that
# `--help` and usage errors answer at once. `run` is in bot.run, the secret files in
# bot.secret_files, what the commands share in bot.cli_common.

PROG = "subaccount-bot"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- helpers ----------------------------------------------------------------------------------


async def _with_session(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` on a migrated, existing database (read-only commands)."""
    from bot import db

    path = db.sqlite_path(url)
    if path is not None and not path.exists():
        raise Failure(f"no database at {path} (run `{PROG} migrate` first)")
    try:
        revision = await db_revision(url)
    except Exception as exc:
        raise db_error(url, exc) from exc
    if revision is None:
        raise Failure(f"the database {masked_url(url)} is not migrated (run `{PROG} migrate`)")
    return await db.in_session(url, work)


# --- commands ---------------------------------------------------------------------------------


def cmd_playground(args: argparse.Namespace) -> int:
    """Run the real bot against the built-in local Bot API, with a web page of chats."""
    from bot.playground.run import Options, run

    settings = load(args)
    return run(settings, Options(host=args.host, port=args.port, database=args.database,
                                 code_ttl=args.code_ttl))


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the database to the newest schema."""
    settings = load(args)
    url = settings.database.url
    revision = asyncio.run(open_and_migrate(url))
    print(f"{masked_url(url)}: at revision {revision} (head)")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and summarise it (secrets are never shown)."""
    settings = load(args)
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
            + ("configured" if hook.secret_token
               else f"generated in {webhook_secret_path(settings)}")
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

    settings = load(args)
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
        print("  ".join(cell.ljust(width)
                        for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write every sub-account of one shop as CSV or JSON."""
    from models.export import export_shop, to_csv, to_json

    settings = load(args)
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
