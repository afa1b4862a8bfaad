"""Drop images whose caption names something the picture cannot show.

Some styles draw several concepts identically: OpenMoji outline has no colour, so its skin-tone variants, flags and
coloured circles are all the same line drawing; Noto's snowboarder shows no skin. Training on such pairs teaches the
model to ignore the words that differ, so within each style:

1. among identical images of one concept family (skin-tone variants), only the one with the fewest skin tones stays;
2. an image still shared by `max_families` or more different families is a placeholder and is dropped entirely.

Small groups of different concepts (France and St. Martin share a flag) are real and stay.
"""

from __future__ import annotations

from collections import defaultdict

from .concepts import skin_tones_of, strip_skin_tones

DEFAULT_MAX_FAMILIES = 4


def find_duplicates(
    digests: dict[tuple[str, str], str], max_families: int = DEFAULT_MAX_FAMILIES
) -> dict[tuple[str, str], str]:
    """Return {(concept, style): reason} for the pairs to drop, given a content digest per (concept, style) image."""
    if max_families < 2:
        raise ValueError(f"max_families must be >= 2, got {max_families}")
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)  # (style, digest) -> concept keys
    for (key, style), digest in digests.items():
        groups[(style, digest)].append(key)
    dropped: dict[tuple[str, str], str] = {}
    for (style, _), keys in groups.items():
        if len(keys) < 2:
            continue
        by_family: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_family[strip_skin_tones(key)].append(key)
        kept = []
        for members in by_family.values():
            members.sort(key=lambda k: (len(skin_tones_of(k)), len(k), k))
            kept.append(members[0])
            for key in members[1:]:
                dropped[(key, style)] = f"same image as {members[0]} (skin tone not visible)"
        if len(kept) >= max_families:
            for key in kept:
                dropped[(key, style)] = f"same image as {len(kept) - 1} other concepts (placeholder)"
    return dropped
