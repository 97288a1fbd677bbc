"""The ``subaccount-bot`` command, run as ``python -m bot`` in a temporary folder."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.logs import QUIET_LOGGERS, mask_secrets, setup_logging
from tests.fake_server import bot_env
from tests.support.db import head_revision
from tests.test_export import Shops, populate_url

COMMANDS = ("run", "migrate", "check-config", "shops", "export")


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` in ``cwd`` with no BOT_TOKEN/DATABASE_URL/LOG_LEVEL inherited."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=bot_env(**env),
        capture_output=True, text=True, encoding="utf-8", timeout=120, check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exit code 2 and exactly one line on stderr, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@dataclass
class Populated:
    cwd: Path
    db_path: Path
    migrate: subprocess.CompletedProcess[str]
    shops: Shops


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    """``migrate`` in an empty folder (default ./data/subaccount-bot.db), then two shops."""
    cwd = tmp_path_factory.mktemp("cli")
    migrate = cli(cwd, "migrate")
    db_path = cwd / "data" / "subaccount-bot.db"
    shops = asyncio.run(populate_url(f"sqlite+aiosqlite:///{db_path}"))
    return Populated(cwd, db_path, migrate, shops)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = cli(tmp_path, "--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"    {command}" in result.stdout
    for command in COMMANDS:
        sub = cli(tmp_path, command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "--config" in sub.stdout and "--log-level" in sub.stdout


def test_run_without_a_token_is_one_line_exit_2(tmp_path: Path) -> None:
    line = one_error_line(cli(tmp_path, "run"))
    assert "BOT_TOKEN" in line and "telegram.token" in line
    assert not (tmp_path / "data").exists()  # nothing touched before the token check


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[telegram]\npoll_timeout = 'soon'\n")
    for command in ("run", "check-config"):
        line = one_error_line(cli(tmp_path, command, BOT_TOKEN="1:x"))
        assert "config.toml: telegram.poll_timeout" in line
    (tmp_path / "config.toml").write_text("[telegram\n")
    assert "not valid TOML" in one_error_line(cli(tmp_path, "run", BOT_TOKEN="1:x"))
    line = one_error_line(cli(tmp_path, "run", "--config", "missing.toml", BOT_TOKEN="1:x"))
    assert "missing.toml: no such file" in line


def test_a_database_that_cannot_be_opened_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    url = f"sqlite+aiosqlite:///{tmp_path}/blocker/bot.db"
    line = one_error_line(cli(tmp_path, "run", BOT_TOKEN="1:x", DATABASE_URL=url))
    assert line.startswith("subaccount-bot: cannot open the database sqlite+aiosqlite:///")
    line = one_error_line(cli(
        tmp_path, "migrate",
        DATABASE_URL="postgresql://bot:hunter2@127.0.0.1:1/nowhere",
    ))
    assert "cannot open the database postgresql+asyncpg://bot:***@127.0.0.1:1/nowhere" in line
    assert "hunter2" not in line
    line = one_error_line(cli(tmp_path, "shops"))
    assert "no database at data/subaccount-bot.db" in line and "migrate" in line


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    assert "invalid choice" in one_error_line(cli(tmp_path, "frobnicate"))
    line = one_error_line(cli(tmp_path, "export", "--shop", "1", "--format", "xml"))
    assert "invalid choice: 'xml'" in line
    assert "--shop" in one_error_line(cli(tmp_path, "export"))


def test_migrate_creates_the_sqlite_file_with_tables(populated: Populated) -> None:
    assert populated.migrate.returncode == 0, populated.migrate.stderr
    assert populated.migrate.stdout.strip() == (
        f"sqlite+aiosqlite:///data/subaccount-bot.db: at revision {head_revision()} (head)"
    )
    with closing(sqlite3.connect(populated.db_path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"app_user", "shop", "phone_binding", "role", "sub_account", "verification_code",
            "audit_event", "draft", "alembic_version"} <= tables
    assert version == [(head_revision(),)]
    again = cli(populated.cwd, "migrate", "--log-level", "warning")
    assert again.returncode == 0 and again.stderr == ""
    assert f"at revision {head_revision()}" in again.stdout


def test_check_config_summarises_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("""
[telegram]
token = "123456:SECRET-TOKEN-VALUE"
mode = "webhook"
[telegram.webhook]
url = "https://bot.example.com"
secret_token = "webhook-secret-value"
[database]
url = "postgresql://bot:db-password@db.internal/shop"
[i18n]
default_locale = "zh-Hans"
""")
    result = cli(tmp_path, "check-config")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in ("SECRET-TOKEN-VALUE", "webhook-secret-value", "db-password"):
        assert secret not in out + result.stderr
    assert "mode: webhook" in out
    assert "base_url: https://api.telegram.org" in out
    assert "token: set" in out
    assert "webhook: https://bot.example.com/telegram" in out
    assert "webhook secret: configured" in out
    assert "database: postgresql+asyncpg://bot:***@db.internal/shop" in out
    assert "locale: zh-Hans" in out
    assert "region: CN" in out
    assert "modules (11): home, products, orders" in out
    assert "presets (4): operations [home products orders marketing content data]" in out


def test_check_config_with_defaults(tmp_path: Path) -> None:
    result = cli(tmp_path, "check-config", "--log-level", "DEBUG", LOG_LEVEL="ERROR")
    assert result.returncode == 0, result.stderr
    assert "absent: defaults and environment" in result.stdout
    assert "mode: polling" in result.stdout
    assert "token: NOT SET" in result.stdout
    assert "log level: DEBUG" in result.stdout  # the flag wins over LOG_LEVEL
    assert not (tmp_path / "data").exists()


def test_shops_lists_ids_names_masked_owner_phones_and_counts(populated: Populated) -> None:
    result = cli(populated.cwd, "shops")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "owner", "phone", "sub-accounts", "created", "(UTC)"]
    tea, noodle = populated.shops.tea_id, populated.shops.noodle_id
    assert lines[1].split() == [str(tea), "Tea", "House", "+86", "138****8000", "3",
                                "2025-01-31T09:30:00Z"]
    assert lines[2].split() == [str(noodle), "Noodle", "Bar", "+86", "137****7000", "0",
                                "2025-01-31T09:30:00Z"]
    assert "13800138000" not in result.stdout


def test_export_csv(populated: Populated) -> None:
    result = cli(populated.cwd, "export", "--shop", str(populated.shops.tea_id),
                 "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    expected = [
        {**row, "id": str(row["id"]), "modules": ";".join(row["modules"]),
         "im": "true" if row["im"] else "false"}
        for row in populated.shops.accounts
    ]
    assert rows == expected
    assert rows[0]["phone"] == "+8613900139000"  # unmasked: it is the shop's own data


def test_export_json_to_a_file(populated: Populated) -> None:
    out = populated.cwd / "accounts.json"
    result = cli(populated.cwd, "export", "--shop", str(populated.shops.tea_id),
                 "--format", "json", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "3 sub-accounts" in result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data == {"shop": {"id": populated.shops.tea_id, "name": "Tea House"},
                    "accounts": populated.shops.accounts}


def test_export_json_to_stdout_and_an_empty_shop(populated: Populated) -> None:
    result = cli(populated.cwd, "export", "--shop", str(populated.shops.noodle_id),
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accounts"] == []
    empty_csv = cli(populated.cwd, "export", "--shop", str(populated.shops.noodle_id))
    assert empty_csv.stdout.splitlines() == [
        "id,phone,nickname,role,modules,im,status,created_at,updated_at"
    ]


def test_bad_shop_is_one_line_exit_2(populated: Populated) -> None:
    line = one_error_line(cli(populated.cwd, "export", "--shop", "tea", "--format", "csv"))
    assert "--shop must be a shop id" in line and "'tea'" in line
    line = one_error_line(cli(populated.cwd, "export", "--shop", "999", "--format", "json"))
    assert "there is no shop with id 999" in line


# --- logging ----------------------------------------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger (handlers, their filters, level) back as it was."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    filters = {h: list(h.filters) for h in handlers}
    levels = {name: logging.getLogger(name).level for name in (None, *QUIET_LOGGERS)}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler, kept in filters.items():
        handler.filters[:] = kept
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(("raw", "masked"), [
    ("+8613800138000", "+86 138****8000"),
    ("8613800138000", "+86 138****8000"),  # Telegram's contact format, no "+"
    ("13800138000", "138****8000"),  # a bare 11-digit national number
    ("+12025550123", "+1 202****0123"),
    ("+447700900123", "+44 770****0123"),
    ("+99912345678", "999****5678"),  # no such country code: still masked
    ("ids 12345678 and 1234567890", "ids 12345678 and 1234567890"),  # short runs stay
])
def test_mask_secrets_masks_phone_numbers(raw: str, masked: str) -> None:
    assert mask_secrets(raw) == masked
    assert mask_secrets(masked) == masked


def test_mask_secrets_masks_bot_tokens() -> None:
    url = "POST http://127.0.0.1:8081/bot123456:ABC-def_1/getUpdates"
    assert mask_secrets(url) == "POST http://127.0.0.1:8081/bot<bot-token>/getUpdates"
    token = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    assert mask_secrets(f"token={token}") == "token=<bot-token>"


def test_every_log_line_is_masked_args_and_tracebacks_included(root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream)
    setup_logging("INFO", stream=stream)  # twice: still one handler of ours
    log = logging.getLogger("handlers.test")
    log.info("linked %s to user %d", "+8613800138000", 1001)
    log.debug("not shown at INFO %s", "+8613900139000")
    try:
        raise ValueError("bad contact 8613700137000")
    except ValueError:
        log.exception("failed for %s", {"phone": "+8613600136000"})
    logging.getLogger("httpx").info("HTTP Request: POST .../bot1:x/getMe")
    out = stream.getvalue()
    lines = out.splitlines()
    assert lines[0].endswith(" INFO handlers.test: linked +86 138****8000 to user 1001")
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO handlers\.test: ", lines[0])
    assert "failed for {'phone': '+86 136****6000'}" in out
    assert "ValueError: bad contact +86 137****7000" in out
    assert "13800138000" not in out and "13700137000" not in out
    assert "13900139000" not in out and "HTTP Request" not in out
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("apscheduler").level == logging.WARNING
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_subaccount_bot", False)]
    assert len(ours) == 1


def test_verification_codes_are_masked_and_payload_loggers_stay_at_info(
    root_logging: None,
) -> None:
    assert mask_secrets("🔐 Verification code: <b>898417</b>") == (
        "🔐 Verification code: <b>••••••</b>")
    assert mask_secrets("🔐 验证码：<b>123456</b>") == "🔐 验证码：<b>••••••</b>"
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    for name in ("telegram.Bot", "telegram.ext.Application", "telegram.ext.Updater"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.INFO
    logging.getLogger("telegram.Bot").debug("Calling sendMessage with `text: 123456`")
    logging.getLogger("handlers.newaccount").debug("our own debug line")
    assert "123456" not in stream.getvalue()
    assert "our own debug line" in stream.getvalue()
