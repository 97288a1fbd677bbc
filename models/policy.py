"""The configurable rules of the domain: code limits, seat cap, module catalogue, presets."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Module:
    """One back-office area a role may grant."""

    key: str
    names: dict[str, str]

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names.get("en") or self.key


@dataclass(frozen=True)
class Preset:
    """A starting point for a new role."""

    key: str
    names: dict[str, str]
    modules: tuple[str, ...]

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names.get("en") or self.key


DEFAULT_MODULES: tuple[Module, ...] = (
    Module("home", {"en": "Home", "zh-Hans": "首页"}),
    Module("products", {"en": "Products", "zh-Hans": "商品"}),
    Module("orders", {"en": "Orders", "zh-Hans": "订单"}),
    Module("after_sales", {"en": "After-sales", "zh-Hans": "售后"}),
    Module("logistics", {"en": "Logistics", "zh-Hans": "物流"}),
    Module("shop", {"en": "Shop", "zh-Hans": "店铺"}),
    Module("marketing", {"en": "Marketing", "zh-Hans": "营销"}),
    Module("content", {"en": "Content", "zh-Hans": "内容"}),
    Module("data", {"en": "Data", "zh-Hans": "数据"}),
    Module("finance", {"en": "Finance", "zh-Hans": "资金"}),
    Module("customer_service", {"en": "Customer service", "zh-Hans": "客服"}),
)

DEFAULT_PRESETS: tuple[Preset, ...] = (
    Preset(
        "operations",
        {"en": "Operations", "zh-Hans": "运营"},
        ("home", "products", "orders", "marketing", "content", "data"),
    ),
    Preset(
        "customer_service",
        {"en": "Customer service", "zh-Hans": "客服"},
        ("home", "orders", "after_sales", "customer_service"),
    ),
    Preset("finance", {"en": "Finance", "zh-Hans": "财务"}, ("home", "orders", "data", "finance")),
    Preset(
        "warehouse",
        {"en": "Warehouse", "zh-Hans": "仓管"},
        ("home", "orders", "after_sales", "logistics"),
    ),
)

IM_MODULE = "customer_service"


@dataclass(frozen=True)
class Policy:
    """Every tunable rule the domain enforces."""

    code_ttl_seconds: int = 300
    #: how long an invite link (for a phone nobody has linked) stays valid; its code's own
    #: ``code_ttl_seconds`` starts when the invited person opens it
    invite_hours: int = 48
    max_attempts: int = 5
    resend_cooldown_seconds: int = 60
    #: codes one shop may send one phone in an hour
    codes_per_phone_per_hour: int = 5
    #: codes all shops together may send one phone in an hour (more than one shop's share, so
    #: that no shop can use up another's chances)
    codes_per_phone_all_shops_per_hour: int = 15
    #: distinct phones an owner may look up in an hour without a code for them being verified
    lookups_per_owner_per_hour: int = 10
    #: the key of the codes' HMAC, kept outside the database (never shown in a repr)
    code_secret: bytes = field(default=b"", repr=False)
    default_region: str = "CN"
    max_sub_accounts: int = 50
    modules: tuple[Module, ...] = DEFAULT_MODULES
    presets: tuple[Preset, ...] = DEFAULT_PRESETS
    module_keys: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.codes_per_phone_all_shops_per_hour <= self.codes_per_phone_per_hour:
            raise ValueError("the all-shops code cap must be greater than one shop's cap")
        object.__setattr__(self, "module_keys", tuple(m.key for m in self.modules))
        known = set(self.module_keys)
        if len(known) != len(self.modules):
            raise ValueError("module keys must be unique")
        for preset in self.presets:
            unknown = [m for m in preset.modules if m not in known]
            if unknown:
                raise ValueError(f"preset {preset.key!r} names unknown module(s): {', '.join(unknown)}")

    def module(self, key: str) -> Module | None:
        return next((m for m in self.modules if m.key == key), None)

    def preset(self, key: str) -> Preset | None:
        return next((p for p in self.presets if p.key == key), None)

    def sorted_modules(self, keys: list[str] | tuple[str, ...] | set[str]) -> list[str]:
        """Module keys in catalogue order, unknown keys dropped."""
        wanted = set(keys)
        return [k for k in self.module_keys if k in wanted]
