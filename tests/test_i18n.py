"""Every text exists in both locales with the same placeholders."""

from __future__ import annotations

from handlers.i18n import LOCALES, catalogue, placeholders, t


def test_every_locale_has_the_same_keys() -> None:
    english = set(catalogue("en"))
    for locale in LOCALES:
        keys = set(catalogue(locale))
        assert keys - english == set(), f"{locale} has keys English lacks"
        assert english - keys == set(), f"{locale} lacks keys"


def test_placeholders_match_across_locales() -> None:
    english = catalogue("en")
    for locale in LOCALES:
        texts = catalogue(locale)
        for key, text in english.items():
            assert placeholders(texts[key]) == placeholders(text), f"{locale}:{key}"


def test_texts_are_not_empty() -> None:
    for locale in LOCALES:
        assert all(v.strip() for v in catalogue(locale).values())


def test_parameters_are_html_escaped() -> None:
    assert t("en", "newshop.created", shop="<b>&") == (
        "✅ Shop <b>&lt;b&gt;&amp;</b> created. You are its main account (主账号)."
    )
