"""Deterministic train / held-out split over (concept, style) pairs.

Two kinds of held-out data test two kinds of generalisation:

- `heldout_concepts`: whole concept families (a concept with all its skin-tone, gender and other variants, see
  `families.py`) never seen in any style;
- `heldout_pairs`: (family, style) pairs whose family is trained in other styles and whose style is trained on other
  concepts, so generating them tests composition.

Membership comes from a seeded hash of the family (and style), so it does not change when sources are added.
`assign_splits` hashes skin-tone families, as the first releases did; `leak_free_splits` then moves to training
every held-out image whose wider family (gender and other variants) is trained, so a later release's held-out
splits are subsets of the earlier ones and weights trained on the earlier training split stay clean to evaluate.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from .concepts import strip_skin_tones
from .families import family_of

SPLITS = ("train", "heldout_pairs", "heldout_concepts")


def unit_hash(seed: int, *parts: str) -> float:
    """A stable pseudo-random number in [0, 1) for `parts` (independent of Python's hash seed)."""
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    pairs: Iterable[tuple[str, str]],
    heldout_pair_fraction: float = 0.05,
    heldout_concept_fraction: float = 0.02,
    seed: int = 0,
    min_per_split: int = 1,
) -> dict[tuple[str, str], str]:
    """Map every (concept key, style) pair to 'train', 'heldout_pairs' or 'heldout_concepts'.

    Args:
        pairs: the (concept key, style) pairs that have an image.
        heldout_pair_fraction: share of (family, style) units held out for composition tests.
        heldout_concept_fraction: share of concept families held out entirely.
        seed: changes which units are held out.
        min_per_split: each held-out split gets at least this many units when the data allows (for tiny sets).
    """
    for label, value in (("heldout_pair_fraction", heldout_pair_fraction),
                         ("heldout_concept_fraction", heldout_concept_fraction)):  # fmt: skip
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{label} must be in [0, 1), got {value}")
    if min_per_split < 0:
        raise ValueError(f"min_per_split must be >= 0, got {min_per_split}")
    pairs = sorted(set(pairs))
    styles_of: dict[str, set[str]] = defaultdict(set)  # family -> styles
    for key, style in pairs:
        styles_of[strip_skin_tones(key)].add(style)
    families = sorted(styles_of, key=lambda f: unit_hash(seed, "concept", f))

    # Whole families: below the threshold, or the first few by hash when a tiny set would leave the split empty.
    # At least two families always stay in training.
    chosen = [f for f in families if unit_hash(seed, "concept", f) < heldout_concept_fraction]
    if len(chosen) < min_per_split and heldout_concept_fraction > 0:
        chosen = families[:min_per_split]
    heldout_families = set(chosen[: max(len(families) - 2, 0)])

    # (family, style) units among the remaining families, lowest hash first, keeping every family and every style
    # trained elsewhere.
    train_styles = {f: set(s) for f, s in styles_of.items() if f not in heldout_families}
    families_per_style: dict[str, int] = defaultdict(int)
    for styles in train_styles.values():
        for style in styles:
            families_per_style[style] += 1
    units = sorted(((f, s) for f, styles in train_styles.items() for s in styles),
                   key=lambda u: unit_hash(seed, "pair", *u))  # fmt: skip
    heldout_units: set[tuple[str, str]] = set()
    for family, style in units:
        wanted = unit_hash(seed, "pair", family, style) < heldout_pair_fraction
        topping_up = len(heldout_units) < min_per_split and heldout_pair_fraction > 0
        if not (wanted or topping_up):
            break
        if len(train_styles[family]) > 1 and families_per_style[style] > 1:
            heldout_units.add((family, style))
            train_styles[family].discard(style)
            families_per_style[style] -= 1

    assignment = {}
    for key, style in pairs:
        family = strip_skin_tones(key)
        if family in heldout_families:
            assignment[(key, style)] = "heldout_concepts"
        elif (family, style) in heldout_units:
            assignment[(key, style)] = "heldout_pairs"
        else:
            assignment[(key, style)] = "train"
    return assignment


def leak_free_splits(assignment: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """Re-split so no held-out image has a trained sibling: whole families out, (family, style) units out.

    A family stays in `heldout_concepts` only if every one of its images was there; otherwise its held-out-concept
    images move to training. A (family, style) unit stays in `heldout_pairs` only if none of the family's images in
    that style is trained. Images only ever move to `train`, so each held-out split shrinks.
    """
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in assignment:
        members[family_of(pair[0])].append(pair)
    result: dict[tuple[str, str], str] = {}
    for pairs in members.values():
        splits = {assignment[p] for p in pairs}
        if splits == {"heldout_concepts"}:
            result.update((p, "heldout_concepts") for p in pairs)
            continue
        trained_styles = {p[1] for p in pairs if assignment[p] in ("train", "heldout_concepts")}
        for pair in pairs:
            held = assignment[pair] == "heldout_pairs" and pair[1] not in trained_styles
            result[pair] = "heldout_pairs" if held else "train"
    return result
