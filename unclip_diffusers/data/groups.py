"""Unicode emoji groups (npm `emojibase-data`, MIT, noticed with the caption sources) and the evaluation slices.

Slices are what users meet, reported apart so people variants cannot hide how everyday things are drawn:

- `everyday`: Smileys & Emotion, Animals & Nature, Food & Drink, Travel & Places, Activities, Objects and Symbols,
  without skin tones;
- `people`: People & Body, and anything with a skin tone (hands included);
- `flags`: Flags;
- `other`: components and emoji the group data does not know.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

from .concepts import concept_key, key_to_codepoints, skin_tones_of, strip_skin_tones
from .families import family_of
from .sources import SearchPaths, npm_package_dir

logger = logging.getLogger(__name__)

EMOJIBASE_PACKAGE = "emojibase-data"
# emojibase's group numbers, from its meta/groups.json.
GROUPS = ("smileys-emotion", "people-body", "component", "animals-nature", "food-drink", "travel-places",
          "activities", "objects", "symbols", "flags")  # fmt: skip
EVERYDAY_GROUPS = frozenset({"smileys-emotion", "animals-nature", "food-drink", "travel-places", "activities",
                             "objects", "symbols"})  # fmt: skip
SLICES = ("everyday", "people", "flags", "other")
UNKNOWN_GROUP = ""


def _normalised_key(hexcode: str) -> str:
    return concept_key(key_to_codepoints(hexcode.lower()))


def read_emojibase_groups(data_json: Path) -> dict[str, str]:
    """Concept key -> group name from an emojibase `data.json` (skin-tone entries inherit their base's group)."""
    groups: dict[str, str] = {}
    for entry in json.loads(Path(data_json).read_text(encoding="utf-8")):
        group = entry.get("group")
        if group is None:
            continue
        name = GROUPS[group]
        for item in [entry, *entry.get("skins", [])]:
            groups[_normalised_key(item["hexcode"])] = name
    return groups


@lru_cache(maxsize=4)
def _groups_from(root: str) -> dict[str, str]:
    return read_emojibase_groups(Path(root) / "en" / "data.json")


def emoji_groups(search: SearchPaths) -> dict[str, str]:
    """Concept key -> Unicode group, or an empty mapping (with a warning) when emojibase-data is not installed."""
    root = npm_package_dir(EMOJIBASE_PACKAGE, search)
    if root is None or not (root / "en" / "data.json").is_file():
        logger.warning("%s is not installed, so only skin tones tell a slice (the rest is 'other'); install it "
                       "with: npm install --prefix data/npm %s", EMOJIBASE_PACKAGE, EMOJIBASE_PACKAGE)  # fmt: skip
        return {}
    return _groups_from(str(root))


def group_of(key: str, groups: dict[str, str]) -> str:
    """The group of a concept: its own entry, else its skin-tone-free base's, else its family's, else ''."""
    for candidate in (key, strip_skin_tones(key), family_of(key)):
        if candidate in groups:
            return groups[candidate]
    return UNKNOWN_GROUP


def slice_of(key: str, group: str) -> str:
    """The evaluation slice of a concept in `group`: 'everyday', 'people', 'flags' or 'other'."""
    if group == "component":  # the skin-tone and hair swatches themselves
        return "other"
    if skin_tones_of(key) or group == "people-body":
        return "people"
    if group == "flags":
        return "flags"
    if group in EVERYDAY_GROUPS:
        return "everyday"
    return "other"


__all__ = ["GROUPS", "SLICES", "emoji_groups", "group_of",
           "read_emojibase_groups", "slice_of"]  # fmt: skip
