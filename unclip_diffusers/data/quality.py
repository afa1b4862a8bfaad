"""Drop images whose caption names something the picture cannot show.

Some styles draw several concepts identically: OpenMoji outline has no colour, so its skin-tone variants, flags and
coloured circles are all the same line drawing; Noto's snowboarder shows no skin. Training on such pairs teaches the
model to ignore the words that differ, so within each style:

1. among identical images of one concept family (skin-tone, gender and other variants, `families.py`), only one
   stays: the one with the fewest skin tones, preferring the family's own (gender-neutral) concept;
2. an image still shared by `max_families` or more different families is a placeholder and is dropped entirely.

Small groups of different concepts (France and St. Martin share a flag) are real and stay.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .concepts import skin_tones_of
from .families import family_of

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
            by_family[family_of(key)].append(key)
        kept = []
        for family, members in by_family.items():
            members.sort(key=lambda k: (len(skin_tones_of(k)), k != family, len(k), k))
            kept.append(members[0])
            for key in members[1:]:
                dropped[(key, style)] = f"same image as {members[0]} (skin tone or gender not visible)"
        if len(kept) >= max_families:
            for key in kept:
                dropped[(key, style)] = f"same image as {len(kept) - 1} other concepts (placeholder)"
    return dropped


NEAR_DUPLICATE_SIZE = 32  # px: compare at this size, so antialiasing and tiny offsets do not hide a copy
NEAR_DUPLICATE_THRESHOLD = 8 / 255  # RMS pixel difference in [0, 1] below which two images count as the same


def nearest_distances(queries: np.ndarray, references: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """RMS pixel distance from each query image to its nearest reference image, and that reference's index.

    Args:
        queries: (Q, D) float32 images in [0, 1], flattened.
        references: (R, D) float32 images in [0, 1], flattened, R >= 1.
        chunk: queries compared at once (memory: chunk * R floats).
    """
    if references.ndim != 2 or queries.ndim != 2 or queries.shape[1] != references.shape[1] or len(references) == 0:
        raise ValueError(f"need (Q, D) queries and (R >= 1, D) references, got {queries.shape} and {references.shape}")
    queries, references = queries.astype(np.float32), references.astype(np.float32)
    reference_norms = (references**2).sum(1)
    distances = np.empty(len(queries), np.float32)
    nearest = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk]
        squared = (block**2).sum(1, keepdims=True) + reference_norms[None] - 2 * block @ references.T  # (q, R)
        index = squared.argmin(1)
        nearest[start : start + chunk] = index
        distances[start : start + chunk] = np.sqrt(np.maximum(squared[np.arange(len(block)), index], 0) / block.shape[1])
    return distances, nearest
