"""Captions for one (concept, style) image: a primary caption plus up to ~64 alternatives, one drawn per step."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .language import Annotation
from .wording import (
    GENERIC_LOCALE_TEMPLATES,
    HELDOUT_KEYWORD_TEMPLATES,
    HELDOUT_TEMPLATES,
    KEYWORD_TEMPLATES,
    LOCALE_TEMPLATES,
    PLAIN_TEMPLATES,
    STYLED_TEMPLATES,
    brand_style_names,
    fill,
    matches_heldout,
    style_names,
)

MAX_CAPTIONS = 64
MAX_ALIASES = 3  # other English names besides the main one
MAX_SHORTCODES = 2
CAPTIONS_PER_LOCALE = 2  # the bare localised name plus one other form
KEYWORDS_PER_CAPTION = (2, 4)  # fewest and most keywords in a keyword caption


def clean_words(words: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Lower-cased, stripped, de-duplicated words in their original order, minus empties and `exclude`."""
    excluded = {w.strip().lower() for w in exclude}
    seen: dict[str, None] = {}
    for word in words:
        word = re.sub(r"\s+", " ", word.replace("_", " ")).strip().lower()
        if word and word not in excluded:
            seen.setdefault(word, None)
    return list(seen)


def primary_caption(name: str, style: str) -> str:
    """The caption used for evaluation and display, e.g. 'pouting cat, Fluent 3D style'."""
    if not name or not style:
        raise ValueError(f"a caption needs a non-empty name and style, got name={name!r}, style={style!r}")
    return f"{name}, {style} style"


def caption_rng(name: str, style: str) -> random.Random:
    """A generator seeded by the (name, style) pair (stable across runs, unlike Python's `hash`)."""
    return random.Random(int.from_bytes(hashlib.sha256(f"{name}|{style}".encode()).digest()[:8], "big"))


def _keywords(rng: random.Random, keywords: Sequence[str]) -> tuple[str, ...]:
    fewest, most = KEYWORDS_PER_CAPTION
    return tuple(rng.sample(list(keywords), min(len(keywords), rng.randint(fewest, most))))


def _style(rng: random.Random, style: str) -> str:
    names = style_names(style)
    return rng.choice((names[0], *names))  # the canonical name twice as often as each other one


def english_captions(
    name: str, style: str, aliases: Sequence[str], keywords: Sequence[str], shortcodes: Sequence[str],
    rng: random.Random,
) -> list[str]:
    """Every English training caption of one image (primary first): templates, keyword lists and shortcodes."""

    def pick() -> str:  # the main name more often than each alias
        return name if not aliases or rng.random() < 0.6 else rng.choice(list(aliases))

    captions = [primary_caption(name, style), name]  # the bare main name always, as people type it
    captions += [fill(t, pick(), _style(rng, style)) for t in STYLED_TEMPLATES]
    captions += [fill(t, pick()) for t in PLAIN_TEMPLATES]
    if keywords:
        captions += [fill(t, pick(), _style(rng, style), _keywords(rng, keywords)) for t in KEYWORD_TEMPLATES]
    for code in shortcodes[:MAX_SHORTCODES]:
        captions += [f":{code}:", f":{code}: {_style(rng, style)}"]
    return captions


def localized_captions(locale: str, style: str, annotation: Annotation, rng: random.Random) -> list[str]:
    """The bare localised name plus one other form: emoji word, style, keywords or a second name."""
    name, *others = annotation.names
    emoji_form, style_form = LOCALE_TEMPLATES.get(locale, GENERIC_LOCALE_TEMPLATES)
    keywords = [k for k in annotation.keywords if k not in annotation.names]
    brand = rng.choice(brand_style_names(style))
    forms = [fill(emoji_form, name), fill(style_form, name, brand), f"{name}, {brand}"]
    if keywords:
        forms.append(", ".join(_keywords(rng, keywords)))
    if others:
        forms.append(rng.choice(others))
    return [name, *rng.sample(forms, CAPTIONS_PER_LOCALE - 1)]


def captions_by_language(
    name: str,
    style: str,
    aliases: Iterable[str] = (),
    tags: Iterable[str] = (),
    localized: Mapping[str, Annotation] | None = None,
    shortcodes: Iterable[str] = (),
    max_captions: int = MAX_CAPTIONS,
) -> dict[str, list[str]]:
    """The training captions of one image per locale ('en' first, primary caption first); see `build_captions`."""
    if max_captions < 1:
        raise ValueError(f"max_captions must be >= 1, got {max_captions}")
    rng = caption_rng(name, style)
    aliases = clean_words(aliases, exclude=[name])[:MAX_ALIASES]
    keywords = clean_words(tags, exclude=[name, *aliases])
    codes = [c for c in dict.fromkeys(shortcodes) if c][:MAX_SHORTCODES]
    english = english_captions(name, style, aliases, keywords, codes, rng)
    primary = english[0]
    rest = [c for c in dict.fromkeys(english[1:]) if c != primary and not matches_heldout(c)]
    seen = {primary, *rest}
    budget = max_captions - 1 - min(len(rest), max_captions // 2)  # English keeps at least half the list
    other: dict[str, list[str]] = {}
    for locale, annotation in (localized or {}).items():
        if not annotation.names:
            continue
        texts = [c for c in dict.fromkeys(localized_captions(locale, style, annotation, rng))
                 if c not in seen and not matches_heldout(c)][: max(budget, 0)]  # fmt: skip
        budget -= len(texts)
        seen.update(texts)
        if texts:
            other[locale] = texts
    rng.shuffle(rest)
    used = sum(len(t) for t in other.values())
    return {"en": [primary, *rest[: max_captions - 1 - used]], **other}


def build_captions(
    name: str,
    style: str,
    aliases: Iterable[str] = (),
    tags: Iterable[str] = (),
    localized: Mapping[str, Annotation] | None = None,
    shortcodes: Iterable[str] = (),
    max_captions: int = MAX_CAPTIONS,
) -> list[str]:
    """All training captions of one image, primary first, at most `max_captions`, none in a held-out wording.

    Args:
        name: the English name ('pouting cat').
        style: one of `sources.STYLES` (named in several ways, see `wording.STYLE_NAMES`).
        aliases: other English names (CLDR short name, the sources' names); the first `MAX_ALIASES` new ones are used.
        tags: English keywords (CLDR keywords, emojibase and source tags), used in keyword lists.
        localized: names and keywords per other locale (`LanguageData.localized(key)`).
        shortcodes: emojibase shortcodes ('pouting_cat'), written ':pouting_cat:'.
        max_captions: cap on the list; English captions fill what the other languages leave.

    The choices (names, style synonyms, keywords) are seeded by (name, style), so a build is reproducible and the
    styles of one concept show different wordings.
    """
    by_language = captions_by_language(name, style, aliases, tags, localized, shortcodes, max_captions)
    return [caption for texts in by_language.values() for caption in texts]


def evaluation_prompts(
    name: str, style: str, keywords: Sequence[str] = (), localized_names: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """The prompts to score one (concept, style) with, per wording family.

    Families: `training` (wordings used in training, with the canonical style name), `heldout` (templates never
    trained on), `heldout_keywords` (held-out keyword phrasings, when there are 3+ keywords), `bare_name` (just
    the name) and `lang:<locale>` for each entry of `localized_names` (the bare localised name and its style form).
    """
    primary = primary_caption(name, style)
    words = tuple(clean_words(keywords, exclude=[name]))
    families = {
        "training": [primary, fill(STYLED_TEMPLATES[0], name, style), fill(STYLED_TEMPLATES[1], name, style)],
        "heldout": [fill(t, name, style) for t in HELDOUT_TEMPLATES],
        "bare_name": [name],
    }
    if len(words) >= 3:
        families["heldout_keywords"] = [fill(t, name, style, words[:3]) for t in HELDOUT_KEYWORD_TEMPLATES]
    for locale, local_name in (localized_names or {}).items():
        if locale != "en" and local_name:
            _, style_form = LOCALE_TEMPLATES.get(locale, GENERIC_LOCALE_TEMPLATES)
            families[f"lang:{locale}"] = [local_name, fill(style_form, local_name, style)]
    return families


def sample_caption(example: Mapping[str, Any], generator: random.Random) -> str:
    """Pick one of the example's `captions` at random with `generator` (falls back to its `caption`)."""
    captions = example.get("captions") or []
    if len(captions) == 0:
        caption = example.get("caption")
        if not caption:
            raise ValueError(f"example has neither 'captions' nor 'caption' (keys: {sorted(example)})")
        return caption
    return captions[generator.randrange(len(captions))]
