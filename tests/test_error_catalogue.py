"""Every refusal has words: each ``DomainError`` key raised in ``models/`` or ``handlers/`` has a
text under ``errors.`` in every catalogue, and each text asks only for parameters it is given."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from handlers.i18n import LOCALES, catalogue, placeholders

ROOT = Path(__file__).resolve().parent.parent
#: functions that raise ``DomainError`` with a key they are given (``models.text.clean_line``)
KEY_PARAMETERS = {"clean_line": ("empty", "too_long")}


def _sources() -> Iterator[Path]:
    for package in ("models", "handlers"):
        yield from sorted((ROOT / package).rglob("*.py"))


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def raised_keys() -> dict[str, set[str]]:
    """Each literal key given to ``DomainError(...)`` (or to a function that raises with the key
    it is given), with the parameter names passed along with it, from the source."""
    found: dict[str, set[str]] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name == "DomainError" and node.args and isinstance(node.args[0], ast.Constant):
                key = str(node.args[0].value)
                found.setdefault(key, set()).update(k.arg for k in node.keywords if k.arg)
            for keyword in node.keywords:
                if keyword.arg in KEY_PARAMETERS.get(name, ()) and isinstance(
                        keyword.value, ast.Constant):
                    params = {"max", "length"} if keyword.arg == "too_long" else set()
                    found.setdefault(str(keyword.value.value), set()).update(params)
    return found


def test_the_scan_finds_the_refusals() -> None:
    keys = raised_keys()
    assert len(keys) > 30
    assert {"phone_bound_elsewhere", "role_in_use", "nickname_too_long"} <= keys.keys()
    assert keys["role_in_use"] == {"name", "count"}


def test_every_domain_error_has_a_text_in_every_catalogue() -> None:
    keys = raised_keys()
    for locale in LOCALES:
        texts = catalogue(locale)
        missing = sorted(k for k in keys if f"errors.{k}" not in texts)
        assert missing == [], f"{locale} lacks errors.{missing}"


def test_every_error_text_asks_only_for_parameters_it_is_given() -> None:
    for key, params in raised_keys().items():
        for locale in LOCALES:
            text = catalogue(locale).get(f"errors.{key}", "")
            assert placeholders(text) <= params, f"{locale}:errors.{key}"
