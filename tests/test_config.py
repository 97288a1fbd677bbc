"""Configuration: defaults, the example file, the environment, one-line errors."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from models.policy import DEFAULT_MODULES, DEFAULT_PRESETS
from models.service.policy import ServicePolicy

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.telegram.token == ""
    assert settings.telegram.base_url == "https://api.telegram.org"
    assert settings.telegram.mode == "polling"
    assert settings.telegram.poll_timeout == 30
    assert settings.telegram.rate_limit is True
    assert settings.database.url == "sqlite+aiosqlite:///data/subaccount-bot.db"
    assert settings.i18n.default_locale == "en"
    assert settings.phone.default_region == "CN"
    assert settings.verification.code_ttl_seconds == 300
    assert settings.verification.max_attempts == 5
    assert settings.verification.resend_cooldown_seconds == 60
    assert settings.verification.codes_per_phone_per_hour == 5
    assert settings.shop.max_sub_accounts == 50
    assert settings.logging.level == "INFO"
    assert [m.key for m in settings.modules] == [m.key for m in DEFAULT_MODULES]
    assert [p.key for p in settings.presets] == [p.key for p in DEFAULT_PRESETS]


def test_the_example_config_is_exactly_the_defaults() -> None:
    assert load_settings(EXAMPLE, environ={}) == Settings()


def _keys(data: dict[str, object], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        name = f"{prefix}{key}"
        keys.add(name)
        if isinstance(value, dict):
            keys |= _keys(value, f"{name}.")
    return keys


def test_the_example_names_every_setting() -> None:
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    every = _keys(Settings().model_dump(by_alias=True, exclude={"modules", "presets"}))
    assert every - _keys(example) == set()
    assert len(example["modules"]) == 11
    assert set(example["modules"][0]) == {"key", "en", "zh-Hans"}
    assert len(example["presets"]) == 4
    assert set(example["presets"][0]) == {"key", "en", "zh-Hans", "modules"}


def test_the_example_validates_the_same_way_with_values_changed(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("code_ttl_seconds = 300",
                                                       "code_ttl_seconds = 120")
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.verification.code_ttl_seconds == 120
    assert settings.policy().code_ttl_seconds == 120


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
[telegram]
token = "1:from-file"
[database]
url = "sqlite+aiosqlite:///file.db"
[logging]
level = "WARNING"
""")
    settings = load_settings(path, environ={
        "BOT_TOKEN": "2:from-env",
        "DATABASE_URL": "postgresql://bot:pw@db.internal:5432/shop",
        "LOG_LEVEL": "DEBUG",
    })
    assert settings.telegram.token == "2:from-env"
    assert settings.database.url == "postgresql+asyncpg://bot:pw@db.internal:5432/shop"
    assert settings.logging.level == "DEBUG"
    kept = load_settings(path, environ={})
    assert (kept.telegram.token, kept.logging.level) == ("1:from-file", "WARNING")


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_TOKEN", "3:process-env")
    assert load_settings().telegram.token == "3:process-env"
    assert os.environ["BOT_TOKEN"] == "3:process-env"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[telegram]\ntokn = 'x'\n"))
    assert "unknown key 'telegram.tokn'" in message
    assert str(tmp_path / "config.toml") in message


def test_unknown_section_is_named(tmp_path: Path) -> None:
    assert "unknown key 'databse'" in error_of(write(tmp_path, "[databse]\nurl = 'x'\n"))


@pytest.mark.parametrize(("text", "expected"), [
    ("[telegram]\npoll_timeout = 99\n",
     "telegram.poll_timeout: Input should be less than or equal to 50"),
    ("[telegram]\nmode = 'push'\n", "telegram.mode: Input should be 'polling' or 'webhook'"),
    ("[telegram]\nbase_url = 'api.telegram.org'\n", "telegram.base_url: must start with http://"),
    ("[telegram]\nmode = 'webhook'\n", "mode 'webhook' needs telegram.webhook.url"),
    ("[telegram.webhook]\nsecret_token = 'has space'\n", "telegram.webhook.secret_token: must be"),
    ("[telegram.webhook]\nport = 0\n", "telegram.webhook.port"),
    ("[database]\nurl = 'mysql://x'\n",
     "database.url: must be a sqlite+aiosqlite:// or postgresql"),
    ("[phone]\ndefault_region = 'XX'\n", "phone.default_region: 'XX' is not a region code"),
    ("[i18n]\ndefault_locale = 'fr'\n", "i18n.default_locale"),
    ("[verification]\ncode_ttl_seconds = 0\n", "verification.code_ttl_seconds"),
    ("[shop]\nmax_sub_accounts = 'many'\n", "shop.max_sub_accounts"),
    ("[logging]\nlevel = 'LOUD'\n", "logging.level"),
    ("[[modules]]\nkey = 'Bad Key'\nen = 'x'\nzh-Hans = 'x'\n", "modules.0.key"),
])
def test_bad_value_is_one_line_naming_the_setting(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(write(tmp_path, text))


def test_bad_value_from_the_environment_is_one_line() -> None:
    message = error_of(None, {"LOG_LEVEL": "CHATTY"})
    assert message.startswith("config.toml: logging.level")


def test_bad_toml_is_one_line(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[telegram\ntoken = 'x'\n"))
    assert "not valid TOML" in message
    assert "line 1" in message


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    unreadable = write(tmp_path, "[telegram]\n")
    unreadable.write_bytes(b"\xff\xfe not utf-8")
    assert "cannot read the file" in error_of(unreadable)
    assert "cannot read the file" in error_of(tmp_path)  # a folder given as the file


def test_missing_file_given_explicitly_is_one_line(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.toml")
    assert "no such file" in message and "config.example.toml" in message


def test_unknown_module_in_a_preset_is_named(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'modules = ["home", "orders", "data", "finance"]',
        'modules = ["home", "orders", "data", "payroll"]',
    )
    message = error_of(write(tmp_path, text))
    assert "preset 'finance' names unknown module 'payroll'" in message


def test_duplicate_module_keys_are_refused(tmp_path: Path) -> None:
    text = "presets = []\n" + "[[modules]]\nkey = 'a'\nen = 'A'\nzh-Hans = 'A'\n" * 2
    assert "module keys must be unique" in error_of(write(tmp_path, text))


def test_a_replaced_catalogue_and_presets_reach_the_policy(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[modules]]
key = "orders"
en = "Orders"
zh-Hans = "订单"

[[modules]]
key = "refunds"
en = "Refunds"
zh-Hans = "退款"

[[presets]]
key = "desk"
en = "Desk"
zh-Hans = "前台"
modules = ["refunds"]
""")
    policy = load_settings(path, environ={}).policy()
    assert policy.module_keys == ("orders", "refunds")
    assert [(p.key, p.modules, p.name("zh-Hans")) for p in policy.presets] == [
        ("desk", ("refunds",), "前台"),
    ]


def test_webhook_url_and_path_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, """
[telegram]
mode = "webhook"
[telegram.webhook]
url = "https://bot.example.com/"
path = "/hooks/tg/"
""")
    hook = load_settings(path, environ={}).telegram.webhook
    assert (hook.url, hook.path) == ("https://bot.example.com", "hooks/tg")


def test_service_section_becomes_the_service_policy(tmp_path: Path) -> None:
    assert Settings().service.policy() == ServicePolicy()
    path = write(tmp_path, '[service]\nmode = "least_busy"\ndefault_cap = 8\n'
                           'offline_text_zh = "请留言"\n')
    policy = load_settings(path, environ={}).service.policy()
    assert (policy.mode, policy.default_cap, policy.offline_text_zh) == ("least_busy", 8, "请留言")
    for bad, named in (('mode = "random"', "service.mode"),
                       ("default_cap = 0", "service.default_cap"),
                       ("reply_seconds = 5", "service.reply_seconds")):
        with pytest.raises(ConfigError, match=re.escape(named)):
            load_settings(write(tmp_path, f"[service]\n{bad}\n"), environ={})
