"""Concept keys, the @lobehub naming fixes, names and the fluentui-emoji slug mapping."""

import pytest

from unclip_diffusers.data.concepts import (
    concept_key,
    display_name,
    emoji_concepts,
    fix_lobehub_key,
    fluent_slug_to_key,
    key_from_filename,
    skin_tones_of,
    strip_skin_tones,
)

ENGLAND = "1f3f4-e0067-e0062-e0065-e006e-e0067-e007f"


def test_concept_key_drops_variation_selector_and_pads():
    assert concept_key("😾") == "1f63e"
    assert concept_key("\u2764\ufe0f") == "2764"
    assert concept_key("#\ufe0f\u20e3") == "0023-20e3"
    assert concept_key([0x1F44D, 0x1F3FD]) == "1f44d-1f3fd"
    with pytest.raises(ValueError, match="empty"):
        concept_key("")


@pytest.mark.parametrize(
    "stem, key",
    [
        ("1F44D-1F3FD", "1f44d-1f3fd"),
        ("263a-fe0f", "263a"),
        ("23-fe0f-20e3", "0023-20e3"),
        ("1f3f4-e0067_e0062_e0065_e006e_e0067", "1f3f4-e0067-e0062-e0065-e006e-e0067"),
    ],
)
def test_key_from_filename(stem, key):
    assert key_from_filename(stem) == key


def test_key_from_filename_rejects_names():
    with pytest.raises(ValueError, match="hex code points"):
        key_from_filename("thumbs-up")


def test_lobehub_fix_swaps_medium_light_and_medium():
    assert fix_lobehub_key("1f44d-1f3fc") == "1f44d-1f3fd"
    assert fix_lobehub_key("1f44d-1f3fd") == "1f44d-1f3fc"
    for untouched in ("1f44d", "1f44d-1f3fb", "1f44d-1f3fe", "1f44d-1f3ff", "1f63e"):
        assert fix_lobehub_key(untouched) == untouched
    # both people of a mixed-tone pair are fixed
    assert fix_lobehub_key("1f9d1-1f3fc-200d-1f91d-200d-1f9d1-1f3fd") == "1f9d1-1f3fd-200d-1f91d-200d-1f9d1-1f3fc"


def test_lobehub_fix_completes_subdivision_flags():
    assert fix_lobehub_key(key_from_filename("1f3f4-e0067_e0062_e0065_e006e_e0067")) == ENGLAND
    assert fix_lobehub_key(ENGLAND) == ENGLAND  # already complete: unchanged
    assert fix_lobehub_key("1f3f4") == "1f3f4"  # black flag
    assert fix_lobehub_key("1f3f4-200d-2620") == "1f3f4-200d-2620"  # pirate flag
    assert ENGLAND in emoji_concepts()


def test_skin_tone_helpers():
    assert strip_skin_tones("1f44d-1f3fd") == "1f44d"
    assert skin_tones_of("1f9d1-1f3fc-200d-1f91d-200d-1f9d1-1f3fd") == ["medium-light", "medium"]
    assert skin_tones_of("1f63e") == []


@pytest.mark.parametrize(
    "raw, key, name",
    [
        (":pouting_cat:", "1f63e", "pouting cat"),
        (":thumbs_up_medium_skin_tone:", "1f44d-1f3fd", "thumbs up: medium skin tone"),
        (":person_medium-light_skin_tone_curly_hair:", "1f9d1-1f3fc-200d-1f9b1", "person: medium-light skin tone, curly hair"),
        (":England:", ENGLAND, "flag: England"),
        (":keycap_#:", "0023-20e3", "keycap: #"),
    ],
)  # fmt: skip
def test_display_name(raw, key, name):
    assert display_name(raw, key) == name


def test_universe_names():
    concepts = emoji_concepts()
    assert len(concepts) > 3000
    assert concepts["1f63e"].name == "pouting cat"
    assert concepts["1f44d-1f3fc"].name == "thumbs up: medium-light skin tone"


def test_fluent_slugs():
    slugs = fluent_slug_to_key()
    assert slugs["thumbs-up-medium-light"] == "1f44d-1f3fc"
    assert slugs["thumbs-up-default"] == "1f44d"
    assert slugs["pouting-cat"] == "1f63e"
    assert slugs["pinata"] == "1fa85"  # accent stripped
    assert slugs["keycap-hashtag"] == "0023-20e3"  # Microsoft's own name
    assert slugs["man-bald-dark"] == "1f468-1f3ff-200d-1f9b2"  # tone sits inside the sequence
