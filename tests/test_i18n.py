"""Every text exists in both locales with the same placeholders."""

from __future__ import annotations

from handlers.i18n import LOCALES, catalogue, label, placeholders, t


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
        "✅ Shop <b>&lt;b&gt;&amp;</b> created. You are its main account."
    )


def test_a_count_gets_its_plural_form_in_english_and_none_in_chinese() -> None:
    assert t("en", "errors.role_in_use", name="A", count=1).endswith(
        "used by 1 sub-account. Give them another role first.")
    assert "used by 3 sub-accounts." in t("en", "errors.role_in_use", name="A", count=3)
    assert "仍有1个子账号" in t("zh-Hans", "errors.role_in_use", name="A", count=1)
    assert label("en", "service_admin.mins", m=1, s=2) == "1 minute 2 seconds"


def test_a_missing_parameter_with_a_plural_form_is_left_as_it_is() -> None:
    assert "{count}" in t("en", "errors.role_in_use", name="A")
