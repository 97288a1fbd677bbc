"""Configuration: ``config.toml`` (or defaults) with secrets overridable from the environment."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.lifecycle.policy import LifecyclePolicy, NoResponse
from models.policy import DEFAULT_MODULES, DEFAULT_PRESETS, Module, Policy, Preset
from models.service.policy import (
    CAP_RANGE,
    HOURS_TEXT_MAX,
    IDLE_HOURS_RANGE,
    OFFLINE_TEXT_MAX,
    SECONDS_RANGE,
    STICKY_DAYS_RANGE,
    ServicePolicy,
)

DEFAULT_CONFIG_PATH = Path("config.toml")
TELEGRAM_API = "https://api.telegram.org"


class ConfigError(Exception):
    """A configuration problem, explained in one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookSettings(_Section):
    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    url: str = ""
    path: str = "telegram"
    secret_token: str = ""

    @field_validator("url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// behind a local proxy)")
        return value.rstrip("/")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip("/")
        if not value or not all(c.isalnum() or c in "_-./" for c in value):
            raise ValueError("must be a URL path such as 'telegram'")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret_chars(cls, value: str) -> str:
        if value and (len(value) > 256 or not all(c.isalnum() or c in "_-" for c in value)):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value


class TelegramSettings(_Section):
    token: str = ""
    base_url: str = TELEGRAM_API
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout: int = Field(default=30, ge=0, le=50)
    rate_limit: bool = True
    #: updates handled at once (different users; one user's always one at a time); 1: in turn
    concurrent_updates: int = Field(default=32, ge=1, le=256)
    #: bot processes sharing this token (SPEC §10): each gets 1/N of the Bot API's flood limits
    processes: int = Field(default=1, ge=1, le=64)
    webhook: WebhookSettings = WebhookSettings()

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook.url:
            raise ValueError(
                "mode 'webhook' needs telegram.webhook.url (the public https:// address)"
            )
        return self


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///data/subaccount-bot.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _driver(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://"):
            value = "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
        return value


class I18nSettings(_Section):
    default_locale: Literal["en", "zh-Hans"] = "en"


class PhoneSettings(_Section):
    default_region: str = "CN"

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region code such as CN, US or GB")
        return value.upper()


class VerificationSettings(_Section):
    code_ttl_seconds: int = Field(default=300, ge=1, le=3600)
    #: how long an invite link lives (its code's validity starts when it is opened)
    invite_hours: int = Field(default=48, ge=1, le=720)
    max_attempts: int = Field(default=5, ge=1, le=20)
    resend_cooldown_seconds: int = Field(default=60, ge=0, le=3600)
    #: codes one shop may send one phone in an hour
    codes_per_phone_per_hour: int = Field(default=5, ge=1, le=100)
    #: codes all shops together may send one phone in an hour (more than one shop's cap)
    codes_per_phone_all_shops_per_hour: int = Field(default=15, ge=2, le=1000)
    #: distinct phones an owner may enter in an hour without a code being verified
    lookups_per_owner_per_hour: int = Field(default=10, ge=1, le=1000)
    #: the key of the codes' HMAC; empty: generated once into a file (see README)
    code_secret: str = Field(default="", repr=False)

    @field_validator("code_secret")
    @classmethod
    def _secret_length(cls, value: str) -> str:
        if value and not 16 <= len(value) <= 256:
            raise ValueError("must be 16-256 characters (e.g. `openssl rand -hex 32`)")
        return value

    @model_validator(mode="after")
    def _caps(self) -> VerificationSettings:
        if self.codes_per_phone_all_shops_per_hour <= self.codes_per_phone_per_hour:
            raise ValueError(
                "codes_per_phone_all_shops_per_hour must be greater than codes_per_phone_per_hour"
                " (else one shop could use up every shop's chances to reach a phone)"
            )
        return self


class RetentionSettings(_Section):
    """How long data is kept (docs/product.md, "Retention and /forget"); the clean-up runs
    daily and at start-up."""

    #: ended codes, untouched drafts and users who only said hello, in days
    retention_days: int = Field(default=90, ge=1, le=3650)
    #: audit events, in days (an owner's record of who had access outlives the rest)
    audit_retention_days: int = Field(default=365, ge=1, le=3650)


class LifecycleSettings(_Section):
    """Owner transfer, time-limited access and access reviews (docs/lifecycle.md)."""

    #: hours the new owner has to accept a main-account change
    transfer_hours: int = Field(default=24, ge=1, le=720)
    #: hours before an account's end that the owner is reminded (a third of the term if shorter)
    access_reminder_hours: int = Field(default=72, ge=1, le=720)
    #: days between a shop's access reviews (a shop may choose its own); 0: off
    review_days: int = Field(default=90, ge=0, le=3650)
    #: an unanswered review is reminded after this many days
    review_reminder_days: int = Field(default=7, ge=1, le=365)
    #: after this many days the no-response rule decides what is still undecided
    review_deadline_days: int = Field(default=14, ge=2, le=365)
    #: what silence means: keep the accounts not answered, or suspend them
    review_no_response: Literal["keep", "suspend"] = "keep"

    @model_validator(mode="after")
    def _review_days_in_order(self) -> LifecycleSettings:
        if self.review_reminder_days >= self.review_deadline_days:
            raise ValueError("review_reminder_days must be less than review_deadline_days")
        if 0 < self.review_days <= self.review_deadline_days:
            raise ValueError("review_days must be 0 (off) or more than review_deadline_days")
        return self

    def policy(self) -> LifecyclePolicy:
        """The lifecycle rules these settings describe."""
        return LifecyclePolicy(
            transfer_hours=self.transfer_hours,
            access_reminder_hours=self.access_reminder_hours,
            review_days=self.review_days,
            review_reminder_days=self.review_reminder_days,
            review_deadline_days=self.review_deadline_days,
            review_no_response=NoResponse(self.review_no_response),
        )


class SchedulerSettings(_Section):
    """Scheduled duties with several processes (SPEC §10; PostgreSQL only)."""

    #: how often each process looks in the database for due duties that no process of its own
    #: planned (codes issued by a process that died); 0: only its own plans
    poll_seconds: float = Field(default=3.0, ge=0, le=300)

    @field_validator("poll_seconds")
    @classmethod
    def _not_too_often(cls, value: float) -> float:
        if 0 < value < 0.5:
            raise ValueError("must be 0 (off) or at least 0.5 seconds")
        return value


class ShopSettings(_Section):
    max_sub_accounts: int = Field(default=50, ge=1, le=10_000)
    #: the time zone times are shown in for a shop that has not chosen one (/timezone), and
    #: for people with no shop: an IANA name such as "Asia/Shanghai"
    default_time_zone: str = "UTC"

    @field_validator("default_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        name = value.strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a time zone such as Asia/Shanghai or UTC") from exc
        return name


_SERVICE = ServicePolicy()


class ServiceConfig(_Section):
    """What a new shop's customer-service settings (客服分流, docs/service.md) start as; each shop's
    owner changes their own in /service."""

    mode: Literal["weighted", "least_busy"] = _SERVICE.mode  # type: ignore[assignment]
    default_cap: int = Field(default=_SERVICE.default_cap, ge=CAP_RANGE[0], le=CAP_RANGE[1])
    sticky_days: int = Field(default=_SERVICE.sticky_days, ge=STICKY_DAYS_RANGE[0],
                             le=STICKY_DAYS_RANGE[1])
    first_response_seconds: int = Field(default=_SERVICE.first_response_seconds,
                                        ge=SECONDS_RANGE[0], le=SECONDS_RANGE[1])
    reply_seconds: int = Field(default=_SERVICE.reply_seconds, ge=SECONDS_RANGE[0],
                               le=SECONDS_RANGE[1])
    reroute_on_breach: bool = _SERVICE.reroute_on_breach
    idle_close_hours: int = Field(default=_SERVICE.idle_close_hours, ge=IDLE_HOURS_RANGE[0],
                                  le=IDLE_HOURS_RANGE[1])
    offline_text_en: str = Field(default=_SERVICE.offline_text_en, max_length=OFFLINE_TEXT_MAX)
    offline_text_zh: str = Field(default=_SERVICE.offline_text_zh, max_length=OFFLINE_TEXT_MAX)
    hours_text_en: str = Field(default=_SERVICE.hours_text_en, max_length=HOURS_TEXT_MAX)
    hours_text_zh: str = Field(default=_SERVICE.hours_text_zh, max_length=HOURS_TEXT_MAX)
    #: how many due service-level items one scheduler pass claims
    claim_batch: int = Field(default=_SERVICE.claim_batch, ge=1, le=10_000)
    #: messages one customer may send a shop per minute before the relay refuses more (the
    #: customer is told when to send again; nothing is dropped silently)
    flood_per_minute: int = Field(default=20, ge=1, le=1000)

    def policy(self) -> ServicePolicy:
        return ServicePolicy(**self.model_dump(exclude={"flood_per_minute"}))


class ModuleSettings(_Section):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,23}$")
    en: str = Field(min_length=1, max_length=30)
    zh_Hans: str = Field(alias="zh-Hans", min_length=1, max_length=30)


class PresetSettings(ModuleSettings):
    modules: list[str] = Field(min_length=1)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def _default_modules() -> list[ModuleSettings]:
    return [
        ModuleSettings.model_validate(
            {"key": m.key, "en": m.names["en"], "zh-Hans": m.names["zh-Hans"]}
        )
        for m in DEFAULT_MODULES
    ]


def _default_presets() -> list[PresetSettings]:
    return [
        PresetSettings.model_validate(
            {"key": p.key, "en": p.names["en"], "zh-Hans": p.names["zh-Hans"],
             "modules": list(p.modules)}
        )
        for p in DEFAULT_PRESETS
    ]


class Settings(_Section):
    telegram: TelegramSettings = TelegramSettings()
    database: DatabaseSettings = DatabaseSettings()
    i18n: I18nSettings = I18nSettings()
    phone: PhoneSettings = PhoneSettings()
    verification: VerificationSettings = VerificationSettings()
    shop: ShopSettings = ShopSettings()
    retention: RetentionSettings = RetentionSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    service: ServiceConfig = ServiceConfig()
    scheduler: SchedulerSettings = SchedulerSettings()
    logging: LoggingSettings = LoggingSettings()
    modules: list[ModuleSettings] = Field(default_factory=_default_modules, min_length=1)
    presets: list[PresetSettings] = Field(default_factory=_default_presets)

    @model_validator(mode="after")
    def _presets_know_modules(self) -> Settings:
        keys = [m.key for m in self.modules]
        if len(set(keys)) != len(keys):
            raise ValueError("module keys must be unique")
        for preset in self.presets:
            unknown = [m for m in preset.modules if m not in keys]
            if unknown:
                raise ValueError(
                    f"preset {preset.key!r} names unknown module {unknown[0]!r}"
                    f" (known: {', '.join(keys)})"
                )
        return self

    def policy(self) -> Policy:
        """The domain rules these settings describe."""
        return Policy(
            code_ttl_seconds=self.verification.code_ttl_seconds,
            invite_hours=self.verification.invite_hours,
            max_attempts=self.verification.max_attempts,
            resend_cooldown_seconds=self.verification.resend_cooldown_seconds,
            codes_per_phone_per_hour=self.verification.codes_per_phone_per_hour,
            codes_per_phone_all_shops_per_hour=self.verification.codes_per_phone_all_shops_per_hour,
            lookups_per_owner_per_hour=self.verification.lookups_per_owner_per_hour,
            code_secret=self.verification.code_secret.encode(),
            default_region=self.phone.default_region,
            max_sub_accounts=self.shop.max_sub_accounts,
            modules=tuple(Module(m.key, {"en": m.en, "zh-Hans": m.zh_Hans}) for m in self.modules),
            presets=tuple(
                Preset(p.key, {"en": p.en, "zh-Hans": p.zh_Hans}, tuple(p.modules))
                for p in self.presets
            ),
        )


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{where}'"
    message = first["msg"].removeprefix("Value error, ")
    return f"{source}: {where}: {message}"


def load_settings(
    path: Path | None = None, *, environ: dict[str, str] | None = None, required: bool = False
) -> Settings:
    """Read ``path`` (default ``./config.toml``; defaults when absent), then the environment.

    ``BOT_TOKEN``, ``DATABASE_URL``, ``LOG_LEVEL`` and ``CODE_SECRET`` win over the file. Raises
    ``ConfigError`` with one line naming the problem.
    """
    env = os.environ if environ is None else environ
    source = str(path or DEFAULT_CONFIG_PATH)
    data: dict[str, Any] = {}
    file = path or DEFAULT_CONFIG_PATH
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read the file ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML ({exc})") from exc
    elif path is not None or required:
        raise ConfigError(f"{source}: no such file (copy config.example.toml to start)")
    overrides = {
        ("telegram", "token"): env.get("BOT_TOKEN"),
        ("database", "url"): env.get("DATABASE_URL"),
        ("logging", "level"): env.get("LOG_LEVEL"),
        ("verification", "code_secret"): env.get("CODE_SECRET"),
    }
    for (section, key), value in overrides.items():
        if value:
            table = data.setdefault(section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: '{section}' must be a table")
            table[key] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
