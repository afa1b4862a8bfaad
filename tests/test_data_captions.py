"""Caption building and per-step caption sampling."""

import random

import pytest

from unclip_diffusers.data import build_captions, primary_caption, sample_caption
from unclip_diffusers.data.captions import clean_words


def test_primary_caption():
    assert primary_caption("pouting cat", "Fluent 3D") == "pouting cat, Fluent 3D style"
    with pytest.raises(ValueError, match="style=''"):
        primary_caption("pouting cat", "")


def test_build_captions_uses_names_and_tags():
    captions = build_captions(
        "pouting cat", "OpenMoji", aliases=["Pouting Cat Face", "pouting cat"], tags=["cat", "Face", "pouting", "x", "y"]
    )
    assert captions[0] == "pouting cat, OpenMoji style"
    assert "pouting cat in the OpenMoji style" in captions
    assert "pouting cat face, OpenMoji style" in captions  # alias, lower-cased; the duplicate of the name is dropped
    tagged = [c for c in captions if c.endswith("pouting cat face in the OpenMoji style") and c.count(",") == 3]
    assert len(tagged) == 1  # 3 of the 5 tags (a stable choice per name and style)
    assert set(tagged[0].split(", ")[:3]) <= {"cat", "face", "pouting", "x", "y"}
    assert "pouting cat emoji" in captions  # one caption without style
    assert len(captions) == len(set(captions))
    assert all("OpenMoji" in c for c in captions if c != "pouting cat emoji")


def test_build_captions_tag_choice_is_stable_and_varies_by_style():
    tags = [f"tag{i}" for i in range(12)]
    assert build_captions("cat", "Noto", tags=tags) == build_captions("cat", "Noto", tags=tags)
    chosen = {build_captions("cat", style, tags=tags)[-1].split(", cat in")[0] for style in ("Noto", "Twemoji", "A", "B")}
    assert len(chosen) > 1


def test_build_captions_without_metadata():
    captions = build_captions("rocket", "Twemoji")
    assert captions == ["rocket, Twemoji style", "rocket in the Twemoji style", "Twemoji emoji of rocket", "rocket emoji"]


def test_clean_words():
    assert clean_words([" Cat ", "cat", "", "big_cat", "dog"], exclude=["DOG"]) == ["cat", "big cat"]


def test_sample_caption_is_seeded_and_covers_all():
    example = {"caption": "a", "captions": ["a", "b", "c"]}
    first = [sample_caption(example, random.Random(0)) for _ in range(3)]
    again = [sample_caption(example, random.Random(0)) for _ in range(3)]
    assert first == again
    generator = random.Random(1)
    assert {sample_caption(example, generator) for _ in range(200)} == {"a", "b", "c"}


def test_sample_caption_fallbacks():
    assert sample_caption({"caption": "only", "captions": []}, random.Random(0)) == "only"
    assert sample_caption({"caption": "only"}, random.Random(0)) == "only"
    with pytest.raises(ValueError, match="neither"):
        sample_caption({"image": None}, random.Random(0))
