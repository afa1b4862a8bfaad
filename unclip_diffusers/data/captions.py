"""Captions for one (concept, style) image: a primary caption plus alternatives, one of which is drawn per step."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_TAGS_PER_CAPTION = 3
MAX_ALIASES = 2


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


def build_captions(name: str, style: str, aliases: Iterable[str] = (), tags: Iterable[str] = ()) -> list[str]:
    """All captions of one image, primary first.

    Alternatives rephrase the style, use other names of the emoji (`aliases`, e.g. the Unicode name) and prepend
    keywords (`tags`), e.g. 'cat, face, pouting, pouting cat face in the OpenMoji style'. One caption names no style,
    so the model also learns the concept across styles.
    """
    aliases = clean_words(aliases, exclude=[name])[:MAX_ALIASES]
    tags = clean_words(tags, exclude=[name, *aliases])
    if len(tags) > MAX_TAGS_PER_CAPTION:
        # A stable per-(name, style) choice, so the styles of one concept show different keywords.
        seed = int.from_bytes(hashlib.sha256(f"{name}|{style}".encode()).digest()[:8], "big")
        tags = random.Random(seed).sample(tags, MAX_TAGS_PER_CAPTION)
    captions = [
        primary_caption(name, style),
        f"{name} in the {style} style",
        f"{style} emoji of {name}",
        f"{name} emoji",
    ]
    captions += [f"{alias}, {style} style" for alias in aliases]
    if tags:
        described = aliases[0] if aliases else name
        captions.append(f"{', '.join(tags)}, {described} in the {style} style")
    return list(dict.fromkeys(captions))


def sample_caption(example: Mapping[str, Any], generator: random.Random) -> str:
    """Pick one of the example's `captions` at random with `generator` (falls back to its `caption`)."""
    captions = example.get("captions") or []
    if len(captions) == 0:
        caption = example.get("caption")
        if not caption:
            raise ValueError(f"example has neither 'captions' nor 'caption' (keys: {sorted(example)})")
        return caption
    return captions[generator.randrange(len(captions))]
