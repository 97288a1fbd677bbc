"""Texts per locale: one catalogue per locale, ``handlers/locales/<locale>/``, keys dotted.

A catalogue is split into one TOML file per conversation (``core.toml``, ``roles.toml``…) so
that each conversation's texts sit together; every file of every locale is merged, and a key
defined twice is an error.
"""

from __future__ import annotations

import html
import string
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.policy import Policy

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LOCALES = ("en", "zh-Hans")
FALLBACK = "en"


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested TOML tables as dotted keys."""
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


@cache
def catalogue(locale: str) -> dict[str, str]:
    """Every text of one locale, by dotted key."""
    merged: dict[str, str] = {}
    for path in sorted((LOCALES_DIR / locale).glob("*.toml")):
        texts = _flatten(tomllib.loads(path.read_text(encoding="utf-8")))
        twice = merged.keys() & texts.keys()
        if twice:
            raise ValueError(f"{path}: key(s) defined twice: {', '.join(sorted(twice))}")
        merged.update(texts)
    return merged


def placeholders(text: str) -> set[str]:
    """The ``{names}`` a text expects."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


class _Value(str):
    """A parameter as a text puts it in: a count's plural form with ``{n:minute|minutes}``."""

    def __format__(self, spec: str) -> str:
        if "|" not in spec:
            return super().__format__(spec)
        one, other = spec.split("|", 1)
        return f"{self} {one if plural_category(self) == 'one' else other}"


def plural_category(count: object) -> str:
    """English's plural category of a count: ``one`` for exactly 1, else ``other``.

    Only the English texts use plural forms (``{n:minute|minutes}`` → "1 minute", "5 minutes");
    Chinese has none (``{n}分钟``).
    """
    text = str(count).strip()
    return "one" if text in ("1", "-1") else "other"


def plural_key(key: str, count: int) -> str:
    """``<key>_one`` or ``<key>_other`` by English's plural category of ``count``: for texts
    that differ by more than one word (both catalogues have both keys; Chinese the same text)."""
    return f"{key}_{plural_category(count)}"


def plural(count: int, one: str, other: str) -> str:
    """``count`` with the English word in its plural form: ``plural(1, "day", "days")``."""
    return f"{count} {one if plural_category(count) == 'one' else other}"


class _Escaped(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return _Value("{" + key + "}")


def template(locale: str, key: str) -> str | None:
    """The raw text ``key`` in ``locale`` (English if missing), or ``None`` if there is none."""
    return catalogue(locale if locale in LOCALES else FALLBACK).get(key) or catalogue(
        FALLBACK
    ).get(key)


def label(locale: str, key: str, /, **params: Any) -> str:
    """A button label: like ``t`` but not HTML-escaped (Telegram shows labels as plain text)."""
    text = template(locale, key)
    if text is None:
        raise KeyError(key)
    return text.format_map({name: _Value(value) for name, value in params.items()})


def t(locale: str, key: str, /, **params: Any) -> str:
    """The text ``key`` in ``locale`` (English if missing), with HTML-escaped parameters.

    Parameters whose name ends in ``_html`` are inserted as they are (already safe markup). A
    count written ``{n:minute|minutes}`` comes with its word in the right plural form.
    """
    text = template(locale, key) or key
    safe = _Escaped(
        {
            name: _Value(value if name.endswith("_html") else html.escape(str(value), quote=False))
            for name, value in params.items()
        }
    )
    return text.format_map(safe)


def module_names(
    policy: Policy, keys: Iterable[str], locale: str, sep: str, empty: str = "—"
) -> str:
    """Module keys as names in ``locale``, in catalogue order (unknown keys as they are)."""
    wanted = list(keys)
    known = policy.sorted_modules(wanted)
    names = [m.name(locale) for k in known if (m := policy.module(k)) is not None]
    names += [k for k in wanted if k not in known]
    return sep.join(names) if names else empty
