"""Dropping images whose caption names something the picture cannot show."""

import pytest

from unclip_diffusers.data.quality import find_duplicates


def test_invisible_skin_tones_keep_only_the_base():
    digests = {("1f44d", "OpenMoji outline"): "a", ("1f44d-1f3fb", "OpenMoji outline"): "a",
               ("1f44d-1f3ff", "OpenMoji outline"): "a", ("1f44d-1f3ff", "Noto"): "a",  # other style: untouched
               ("1f44d", "Noto"): "b"}  # fmt: skip
    dropped = find_duplicates(digests)
    assert set(dropped) == {("1f44d-1f3fb", "OpenMoji outline"), ("1f44d-1f3ff", "OpenMoji outline")}
    assert "skin tone" in dropped[("1f44d-1f3fb", "OpenMoji outline")]


def test_tone_variants_without_base_keep_the_first():
    digests = {("1f3c2-1f3fd", "Noto"): "x", ("1f3c2-1f3fb", "Noto"): "x"}
    assert set(find_duplicates(digests)) == {("1f3c2-1f3fd", "Noto")}


def test_placeholders_shared_by_many_concepts_are_dropped_and_small_groups_kept():
    flags = ["1f1eb-1f1f7", "1f1e9-1f1ea", "1f1ee-1f1f9", "1f1ef-1f1f5"]
    digests = {(k, "OpenMoji outline"): "rect" for k in flags}
    digests |= {("1f1eb-1f1f7", "Twemoji"): "fr", ("1f1f2-1f1eb", "Twemoji"): "fr"}  # France and St. Martin
    assert set(find_duplicates(digests)) == {(k, "OpenMoji outline") for k in flags}
    assert find_duplicates(digests, max_families=5) == {}
    with pytest.raises(ValueError, match="max_families"):
        find_duplicates(digests, max_families=1)
