"""Concept keys and names: one key per emoji so that every art style lines up on the same concept."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

VARIATION_SELECTOR_16 = 0xFE0F
CANCEL_TAG = 0xE007F
# Fitzpatrick modifiers and their CLDR names, in order from light to dark.
SKIN_TONES = {
    0x1F3FB: "light",
    0x1F3FC: "medium-light",
    0x1F3FD: "medium",
    0x1F3FE: "medium-dark",
    0x1F3FF: "dark",
}
_KEY_PATTERN = re.compile(r"^[0-9a-f]{4,6}(-[0-9a-f]{4,6})*$")
_PLAIN_WORDS = re.compile(r"^[a-z][a-z' -]*[a-z]$")


def concept_key(codepoints: str | list[int] | tuple[int, ...]) -> str:
    """Key of an emoji: lower-case 4-digit hex code points joined by '-', without U+FE0F (so styles line up)."""
    if isinstance(codepoints, str):
        codepoints = [ord(c) for c in codepoints]
    if len(codepoints) == 0:
        raise ValueError("concept_key needs at least one code point, got an empty sequence")
    return "-".join(f"{cp:04x}" for cp in codepoints if cp != VARIATION_SELECTOR_16)


def key_to_codepoints(key: str) -> list[int]:
    """Parse a concept key such as '1f44d-1f3fd' back to code points."""
    if not _KEY_PATTERN.match(key):
        raise ValueError(f"not a concept key (lower-case hex code points joined by '-'): {key!r}")
    return [int(part, 16) for part in key.split("-")]


def key_from_filename(stem: str) -> str:
    """Concept key from an artwork file name like '1F44D-1F3FD', '263a-fe0f' or 'u1f600' (case, FE0F, '_' ignored)."""
    stem = stem.lower().removeprefix("u").removeprefix("emoji_u")
    parts = [p for p in re.split(r"[-_ ]", stem) if p]
    try:
        codepoints = [int(p, 16) for p in parts]
    except ValueError:
        raise ValueError(f"file name {stem!r} is not a sequence of hex code points") from None
    return concept_key(codepoints)


def fix_lobehub_key(key: str) -> str:
    """Repair the two known naming bugs of the @lobehub/fluent-emoji packages.

    Their files for U+1F3FC (medium-light) and U+1F3FD (medium) skin tones are swapped, and the England, Scotland and
    Wales tag-sequence flags lack the final CANCEL TAG (U+E007F).
    """
    codepoints = key_to_codepoints(key)
    swap = {0x1F3FC: 0x1F3FD, 0x1F3FD: 0x1F3FC}
    codepoints = [swap.get(cp, cp) for cp in codepoints]
    is_tag_sequence = len(codepoints) > 1 and all(0xE0020 <= cp <= 0xE007E for cp in codepoints[1:])
    if codepoints[0] == 0x1F3F4 and is_tag_sequence:
        codepoints.append(CANCEL_TAG)
    return concept_key(codepoints)


def strip_skin_tones(key: str) -> str:
    """Key with every skin-tone modifier removed: the 'family' a concept belongs to (all tones share it)."""
    codepoints = [cp for cp in key_to_codepoints(key) if cp not in SKIN_TONES]
    return concept_key(codepoints) if codepoints else key


def skin_tones_of(key: str) -> list[str]:
    """CLDR names of the skin tones in a key, in order of appearance (empty for tone-less emoji)."""
    return [SKIN_TONES[cp] for cp in key_to_codepoints(key) if cp in SKIN_TONES]


def display_name(cldr_name: str, key: str) -> str:
    """Readable name from the `emoji` package's ':snake_case:' name, e.g. ':thumbs_up_medium_skin_tone:' ->
    'thumbs up: medium skin tone' and ':flag_Egypt:' -> 'flag: Egypt'."""
    name = cldr_name.strip(":").replace("_", " ").strip()
    codepoints = key_to_codepoints(key)
    is_flag = all(0x1F1E6 <= cp <= 0x1F1FF for cp in codepoints) or (
        codepoints[0] == 0x1F3F4 and len(codepoints) > 1 and codepoints[1] >= 0xE0020
    )
    if is_flag:  # the `emoji` package calls flags just ':Egypt:'
        name = "flag: " + name.removeprefix("flag ")
    if name.startswith("keycap "):
        name = "keycap: " + name[len("keycap ") :]
    # Put a ':' before the first skin tone and ',' before later ones, as CLDR does.
    tone_words = "|".join(sorted((re.escape(t) for t in SKIN_TONES.values()), key=len, reverse=True))
    first = True

    def _sep(match: re.Match) -> str:
        nonlocal first
        sep = ": " if first and ":" not in name else ", "
        first = False
        return sep + match.group(1)

    name = re.sub(rf" ({tone_words}) skin tone", lambda m: _sep(m) + " skin tone", name)
    return re.sub(r"skin tone (?=\w)", "skin tone, ", name)  # 'person: light skin tone, curly hair'


def slugify(text: str) -> str:
    """File-name slug as used by `fluentui-emoji`: ASCII letters/digits joined by '-' ('piñata' -> 'pinata')."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = text.replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


@dataclass
class Concept:
    """One emoji: its key, the fully qualified string (for font rendering) and its names."""

    key: str
    text: str
    name: str
    aliases: list[str] = field(default_factory=list)  # alternative names (from the `emoji` package and the sources)
    tags: list[str] = field(default_factory=list)  # keywords describing the content, gathered from the sources
    emoji_version: float = 0.0


@lru_cache(maxsize=1)
def emoji_concepts() -> dict[str, Concept]:
    """All fully qualified emoji known to the `emoji` package, keyed by concept key (the universe we draw from)."""
    try:
        import emoji
    except ImportError as err:  # pragma: no cover - dependency of the `data` extra
        raise ImportError("building the emoji dataset needs the `emoji` package: pip install emoji") from err
    fully_qualified = emoji.STATUS["fully_qualified"]
    concepts: dict[str, Concept] = {}
    for text, data in emoji.EMOJI_DATA.items():
        if data.get("status") != fully_qualified:
            continue
        key = concept_key(text)
        name = display_name(data["en"], key)
        # Keep plain-word aliases ('heart eyes'), not shortcodes ('clock830') or flag codes.
        aliases = [a.strip(":").replace("_", " ") for a in data.get("alias", [])]
        aliases = [a for a in dict.fromkeys(aliases) if _PLAIN_WORDS.match(a) and a != name.lower()]
        concepts[key] = Concept(
            key=key,
            text=text,
            name=name,
            aliases=aliases,
            emoji_version=float(data.get("E", 0.0)),
        )
    return concepts


# Microsoft's Fluent names that differ from the CLDR names in the `emoji` package (base names, without skin tone).
_FLUENT_NAME_FIXES = {
    "blackbird": "1f426-200d-2b1b",
    "hugging-face": "1f917",
    "keycap-asterisk": "002a-20e3",
    "keycap-hashtag": "0023-20e3",
    "knocked-out-face": "1f635",
    "man-blonde-hair": "1f471-200d-2642",
    "man-deaf": "1f9cf-200d-2642",
    "man-merpeople": "1f9dc-200d-2642",
    "man-with-bunny-ears": "1f46f-200d-2642",
    "man-wrestling": "1f93c-200d-2642",
    "person-blonde-hair": "1f471",
    "person-deaf": "1f9cf",
    "person-elf": "1f9dd",
    "person-fairy": "1f9da",
    "person-genie": "1f9de",
    "person-mage": "1f9d9",
    "person-merpeople": "1f9dc",
    "person-superhero": "1f9b8",
    "person-supervillain": "1f9b9",
    "person-vampire": "1f9db",
    "person-with-bunny-ears": "1f46f",
    "person-wrestling": "1f93c",
    "person-zombie": "1f9df",
    "phoenix-bird": "1f426-200d-1f525",
    "pouting-face": "1f621",
    "red-triangle": "1f53a",
    "stuffedbread": "1f959",
    "woman-blonde-hair": "1f471-200d-2640",
    "woman-deaf": "1f9cf-200d-2640",
    "woman-merpeople": "1f9dc-200d-2640",
    "woman-with-bunny-ears": "1f46f-200d-2640",
    "woman-wrestling": "1f93c-200d-2640",
}


@lru_cache(maxsize=1)
def fluent_slug_to_key() -> dict[str, str]:
    """Map `fluentui-emoji` file slugs ('thumbs-up-medium-light', 'thumbs-up-default') to concept keys."""
    concepts = emoji_concepts()
    base_slugs: dict[str, str] = {}  # tone-less key -> slug
    mapping: dict[str, str] = {}
    for key, concept in concepts.items():
        if not skin_tones_of(key):
            slug = slugify(concept.name)
            base_slugs[key] = slug
            mapping.setdefault(slug, key)
    for slug, key in _FLUENT_NAME_FIXES.items():
        base_slugs[key] = slug
        mapping[slug] = key
    for key in concepts:
        tones = set(skin_tones_of(key))
        base = strip_skin_tones(key)
        if len(tones) == 1 and base in base_slugs:
            mapping.setdefault(f"{base_slugs[base]}-{tones.pop()}", key)
            mapping.setdefault(f"{base_slugs[base]}-default", base)
    return mapping
