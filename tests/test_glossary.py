"""Every catalogue follows the one glossary (``handlers/locales/glossary.toml``): no variant
of a term it refuses, no Chinese in English texts, no space between Chinese and a number, and
every count in English said with its plural form."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from handlers.i18n import LOCALES_DIR, _flatten, plural, t

GLOSSARY = LOCALES_DIR / "glossary.toml"
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@cache
def glossary() -> dict[str, Any]:
    return tomllib.loads(GLOSSARY.read_text(encoding="utf-8"))


def texts(locale: str) -> list[tuple[str, str, str]]:
    """(file, key, text) of every checked catalogue file of ``locale``."""
    skipped = set(glossary()["rules"]["checked_after_merge"])
    found = []
    for path in sorted((LOCALES_DIR / locale).glob("*.toml")):
        if path.name in skipped:
            continue
        table = tomllib.loads(path.read_text(encoding="utf-8"))
        found += [(path.name, key, text) for key, text in _flatten(table).items()]
    return found


def avoided(side: str) -> list[tuple[str, str]]:
    """(term, variant) the glossary refuses in ``side`` ("en" / "zh")."""
    return [(name, variant) for name, term in glossary()["terms"].items()
            for variant in term.get(f"avoid_{side}", [])]


def test_the_glossary_names_every_term_in_both_languages() -> None:
    for name, term in glossary()["terms"].items():
        assert term.get("zh"), name
        assert name == "polite_you" or term.get("en"), name


def test_no_text_uses_a_variant_the_glossary_refuses() -> None:
    wrong = []
    for locale, side in (("en", "en"), ("zh-Hans", "zh")):
        for file, key, text in texts(locale):
            for term, variant in avoided(side):
                haystack, needle = ((text.lower(), variant.lower()) if side == "en"
                                    else (text, variant))
                if needle in haystack:
                    wrong.append(f"{locale}/{file} {key}: “{variant}” ({term})")
    assert wrong == []


def test_english_texts_have_no_chinese_glosses() -> None:
    allowed = glossary()["rules"]["cjk_allowed_in_en"]
    wrong = []
    for file, key, text in texts("en"):
        for word in allowed:
            text = text.replace(word, "")
        if CJK.search(text):
            wrong.append(f"en/{file} {key}: {text}")
    assert wrong == []


def test_chinese_has_no_space_between_chinese_and_numbers() -> None:
    numbers = "|".join(glossary()["rules"]["number_placeholders"])
    number = rf"(?:\d|\{{(?:{numbers})(?::[^}}]*)?\}})"
    chinese = r"[\u3400-\u9fff]"
    spaced = re.compile(rf"{chinese} +{number}|{number} +{chinese}")
    wrong = [f"zh-Hans/{file} {key}: {text}" for file, key, text in texts("zh-Hans")
             if spaced.search(text)]
    assert wrong == []


def test_english_counts_have_plural_forms() -> None:
    nouns = "|".join(re.escape(n) for n in glossary()["rules"]["counted_nouns"])
    bare = re.compile(rf"\{{\w+\}} (?:{nouns})s?\b|\{{\w+\}} ?(?:min|secs?|s|h)\b\.?"
                      rf"|\(s\)|\b1 (?:{nouns})s\b")
    wrong = [f"en/{file} {key}: {text}" for file, key, text in texts("en")
             if bare.search(text) and not key.endswith(("_one", "_other"))]  # plural forms
    assert wrong == []


def test_the_files_checked_after_merge_still_exist() -> None:
    """The exception is for files being rewritten elsewhere; it goes once they are merged."""
    for name in glossary()["rules"]["checked_after_merge"]:
        assert (LOCALES_DIR / "en" / name).exists(), name


@pytest.mark.parametrize(("n", "shown"), [(0, "0 minutes"), (1, "1 minute"), (2, "2 minutes")])
def test_plural_forms_in_english(n: int, shown: str) -> None:
    assert plural(n, "minute", "minutes") == shown
    assert t("en", "times.valid_until", minutes=n, time="16:47") \
        == f"valid for {shown}, until 16:47"


def test_chinese_has_no_plural_forms() -> None:
    assert t("zh-Hans", "times.valid_until", minutes=1, time="16:47") == "1分钟内有效（16:47前）"
    assert t("zh-Hans", "times.valid_until", minutes=5, time="16:47") == "5分钟内有效（16:47前）"


def test_glossary_file_is_where_the_catalogues_are() -> None:
    assert GLOSSARY.parent == Path(LOCALES_DIR)
