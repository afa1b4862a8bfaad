"""Caption building, held-out wordings, evaluation prompts and per-step caption sampling."""

import random

import pytest
from test_data_language import language_search

from unclip_diffusers.data import build_captions, primary_caption, sample_caption
from unclip_diffusers.data.captions import MAX_CAPTIONS, clean_words, evaluation_prompts
from unclip_diffusers.data.concepts import emoji_concepts
from unclip_diffusers.data.language import load_language_data
from unclip_diffusers.data.sources import STYLES
from unclip_diffusers.data.wording import (
    HELDOUT_KEYWORD_TEMPLATES,
    HELDOUT_TEMPLATES,
    KEYWORD_TEMPLATES,
    PLAIN_TEMPLATES,
    STYLE_NAMES,
    STYLED_TEMPLATES,
    fill,
    matches_heldout,
    style_names,
    template_fields,
    with_article,
)

CAT_TAGS = ["cat", "Face", "pouting", "animal", "grumpy"]


def _fixture_captions() -> dict[tuple[str, str], list[str]]:
    """Captions of every concept of the language fixture in every style, built as `unclip-data build` does."""
    data = load_language_data(language_search())
    concepts = emoji_concepts()
    result = {}
    for key in sorted(data.annotations["en"]):
        if key not in concepts:
            continue
        english = data.annotation(key, "en")
        for style in STYLES:
            result[(key, style)] = build_captions(concepts[key].name, style, english.names + concepts[key].aliases,
                                                  english.keywords, data.localized(key), data.shortcodes.get(key, []))
    return result


def test_primary_caption():
    assert primary_caption("pouting cat", "Fluent 3D") == "pouting cat, Fluent 3D style"
    with pytest.raises(ValueError, match="style=''"):
        primary_caption("pouting cat", "")


def test_build_captions_uses_names_articles_styles_and_keywords():
    captions = build_captions("pouting cat", "OpenMoji outline", aliases=["Pouting Cat Face", "pouting cat"],
                              tags=CAT_TAGS, shortcodes=["pouting_cat"])
    assert captions[0] == "pouting cat, OpenMoji outline style"
    assert len(captions) == len(set(captions)) <= MAX_CAPTIONS
    text = "\n".join(captions)
    assert "pouting cat face" in text  # the alias, lower-cased; its duplicate of the name is dropped
    assert "a pouting cat" in text and "the pouting cat" in text
    assert "pouting cat" in captions and ":pouting_cat:" in captions  # bare name and shortcode
    synonyms = {s for s in style_names("OpenMoji outline")[1:] if s != "outline"}
    assert any(s in text for s in synonyms)  # the style named other ways than its canonical name
    assert sum("OpenMoji" not in c and "outline" not in c and "line art" not in c and "black" not in c
               for c in captions) >= 5  # captions naming no style
    keyword_captions = [c for c in captions if "grumpy" in c or "animal" in c]
    assert keyword_captions


def test_build_captions_is_stable_and_varies_by_style():
    first = build_captions("cat", "Noto", tags=[f"tag{i}" for i in range(12)])
    assert first == build_captions("cat", "Noto", tags=[f"tag{i}" for i in range(12)])
    others = [build_captions("cat", s, tags=[f"tag{i}" for i in range(12)]) for s in ("Twemoji", "Fluent 3D")]
    assert all(set(o) != set(first) for o in others)


def test_build_captions_without_metadata():
    captions = build_captions("rocket", "Twemoji")
    assert captions[0] == "rocket, Twemoji style"
    assert {"rocket", "a rocket", "the rocket", "rocket emoji", "picture of a rocket"} <= set(captions)
    assert len(captions) == 1 + len(STYLED_TEMPLATES) + len(PLAIN_TEMPLATES)  # primary + each template once
    with pytest.raises(ValueError, match="max_captions"):
        build_captions("rocket", "Twemoji", max_captions=0)


def test_build_captions_in_other_languages():
    data = load_language_data(language_search())
    english = data.annotation("1f63e", "en")
    captions = build_captions("pouting cat", "Fluent 3D", english.names, english.keywords, data.localized("1f63e"))
    for name in ("schmollende Katze", "不機嫌な猫", "وجه قطة عابس"):
        assert name in captions  # the bare localised name of every locale
    assert len(captions) <= MAX_CAPTIONS
    short = build_captions("pouting cat", "Fluent 3D", english.names, english.keywords, data.localized("1f63e"),
                           max_captions=8)
    assert short[0] == "pouting cat, Fluent 3D style" and len(short) == 8


def test_no_heldout_wording_in_any_training_caption():
    captions = _fixture_captions()
    assert len(captions) >= 8 * len(STYLES)
    data = load_language_data(language_search())
    concepts = emoji_concepts()
    for (key, style), texts in captions.items():
        prompts = evaluation_prompts(concepts[key].name, style, data.annotation(key, "en").keywords, data.names(key))
        heldout = prompts["heldout"] + prompts.get("heldout_keywords", [])
        assert all(matches_heldout(p) for p in heldout)  # the check recognises what it must keep out
        assert not set(heldout) & set(texts), (key, style)
        assert not [c for c in texts if matches_heldout(c)], (key, style)


def test_heldout_templates_differ_from_training_templates():
    training = {*STYLED_TEMPLATES, *PLAIN_TEMPLATES, *KEYWORD_TEMPLATES}
    assert not training & {*HELDOUT_TEMPLATES, *HELDOUT_KEYWORD_TEMPLATES}
    for template in training:  # no training template, however filled, has a held-out wording
        assert not matches_heldout(fill(template, "cat", "Noto", ("soft", "warm", "small")))


def test_evaluation_prompts_per_family():
    prompts = evaluation_prompts("owl", "Noto", ["bird", "night", "wise"], {"en": "owl", "de": "Eule", "ja": "フクロウ"})
    assert prompts["training"][0] == "owl, Noto style"
    assert "an owl drawn in the Noto style" in prompts["heldout"]
    assert prompts["bare_name"] == ["owl"]
    assert prompts["heldout_keywords"][0] == "an emoji about bird and night"
    assert prompts["lang:de"] == ["Eule", "Eule im Noto-Stil"] and prompts["lang:ja"][0] == "フクロウ"
    assert "lang:en" not in prompts
    assert "heldout_keywords" not in evaluation_prompts("owl", "Noto", ["bird"])


def test_style_names_cover_every_style():
    assert set(STYLE_NAMES) == set(STYLES)
    assert all(names[0] == style for style, names in STYLE_NAMES.items())
    assert style_names("Unknown") == ("Unknown",)


def test_articles_and_fill():
    assert with_article("owl", "a") == "an owl" and with_article("cat", "a") == "a cat"
    assert with_article("cat", "the") == "the cat" and with_article("flag: Egypt", "a") == "flag: Egypt"
    with pytest.raises(ValueError, match="article"):
        with_article("cat", "an")
    assert fill("{a} in {style} style", "owl", "Noto") == "an owl in Noto style"
    assert template_fields("{kw1} and {kw2}") == {"kw1", "kw2"}
    with pytest.raises(ValueError, match="kw3"):
        fill("{kw3}", "cat", "Noto", ("a", "b"))


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
