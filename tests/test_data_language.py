"""Names and keywords per locale from an excerpt of the CLDR and emojibase npm packages (tests/fixtures/language)."""

import logging
from pathlib import Path

import pytest

from unclip_diffusers.data.language import LANGUAGE_PACKAGES, LOCALES, load_language_data
from unclip_diffusers.data.sources import SearchPaths

LANGUAGE_FIXTURE = Path(__file__).parent / "fixtures" / "language"
ENGLAND = "1f3f4-e0067-e0062-e0065-e006e-e0067-e007f"


def language_search() -> SearchPaths:
    """Search paths that find only the committed excerpt of the language packages."""
    return SearchPaths(npm_prefixes=[LANGUAGE_FIXTURE], noto_fonts=[], gemojione_dirs=[])


def test_locales_cover_the_issue_languages():
    assert set(LOCALES) >= {"en", "es", "fr", "de", "it", "pt", "ja", "zh", "ko", "ru", "hi", "ar"}
    assert {"nl", "tr"} & set(LOCALES) and len(LOCALES) >= 13


def test_names_and_keywords_by_concept_key():
    data = load_language_data(language_search())
    assert data.missing == []
    found = {f.spec.package: f for f in data.found}
    assert found["cldr-annotations-full"].version == "48.2.0"
    assert found["emojibase-data"].locales == ["en", "es", "de", "ja", "zh"]  # emojibase has no Arabic
    assert data.locales == ["en", "es", "de", "ja", "zh", "ar"]
    names = data.names("1f63e")
    assert names["en"] == "pouting cat" and names["de"] == "schmollende Katze" and names["ja"] == "不機嫌な猫"
    assert "katze" in data.annotation("1f63e", "de").keywords  # an emojibase tag
    assert "cat" in data.annotation("1f63e", "en").keywords  # a CLDR keyword
    # the derived package covers skin tones; keys drop U+FE0F ('2764', not '2764-fe0f')
    assert data.names("1f44d-1f3fd")["de"] == "Daumen hoch: mittlere Hautfarbe"
    assert data.names("2764")["es"] and data.names(ENGLAND)["en"] == "flag: England"
    assert data.shortcodes["1f63e"] == ["pouting_cat"]
    assert set(data.localized("1f63e")) == {"es", "de", "ja", "zh", "ar"}
    assert data.annotation("ffff", "de").names == []


def test_subset_keeps_only_the_given_keys():
    data = load_language_data(language_search()).subset(["1f63e"])
    assert set(data.annotations["de"]) == {"1f63e"} and set(data.shortcodes) == {"1f63e"}


def test_missing_packages_are_logged_with_the_install_command(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        data = load_language_data(SearchPaths(npm_prefixes=[tmp_path], noto_fonts=[], gemojione_dirs=[]))
    assert [m.package for m in data.missing] == [p.package for p in LANGUAGE_PACKAGES]
    assert data.locales == [] and data.names("1f63e") == {}
    assert "npm install --prefix data/npm cldr-annotations-derived-full cldr-annotations-full emojibase-data" in caplog.text


def test_no_locales_is_an_error():
    with pytest.raises(ValueError, match="at least one locale"):
        load_language_data(language_search(), locales=())
