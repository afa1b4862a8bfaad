"""Scores per evaluation slice (everyday things, people & hands, flags), with the real images' own ceiling.

The held-out splits mix slices very unevenly (people variants outnumber cats), so every figure that users meet is
also reported per slice (`data/groups.py`), next to the same figure for the real held-out images: the evaluator's
concept top-1 on real images is the ceiling a generated image can reach with this evaluator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..data.groups import SLICES
from ..data.loading import load_image_text_dataset
from . import metrics

UNSLICED = "all"  # the slice name used when a dataset has no `slice` column


def caption_slices(data_path: str, splits: Sequence[str]) -> dict[str, str]:
    """Primary caption -> slice over `splits` of `data_path` ({} when the data has no `slice` column)."""
    result: dict[str, str] = {}
    for split in splits:
        try:
            data = load_image_text_dataset(data_path, split)
        except ValueError:
            continue
        if "slice" not in data.column_names:
            return {}
        result.update(zip(data["caption"], data["slice"]))
    return result


def slice_rows(slices: Sequence[str]) -> dict[str, list[int]]:
    """Row positions per slice, in SLICES order, only slices that occur; {'all': every row} when unsliced."""
    if not slices or all(s == UNSLICED for s in slices):
        return {UNSLICED: list(range(len(slices)))}
    known = [s for s in SLICES if s in set(slices)] + sorted(set(slices) - set(SLICES))
    return {name: [i for i, s in enumerate(slices) if s == name] for name in known}


def concept_top1(
    query: torch.Tensor,
    captions: Sequence[str],
    pool: tuple[list[str], list[str], list[str]],
    pool_embeds: torch.Tensor,
    pool_slices: dict[str, str],
) -> dict[str, float] | None:
    """Evaluator concept top-1 of images whose true captions are `captions`: the true caption must score highest
    among the pool captions of the same style and the same slice (so a cat competes with the other everyday things
    drawn in its style). None when a true caption is not in the pool."""
    pool_captions, _, pool_styles = pool
    index = {c: i for i, c in enumerate(pool_captions)}
    if not captions or any(c not in index for c in captions):
        return None
    true = torch.tensor([index[c] for c in captions])
    groups = [(pool_styles[i], pool_slices.get(c, UNSLICED)) for i, c in enumerate(pool_captions)]
    return metrics.group_accuracy(query, pool_embeds, true, [groups[i] for i in true.tolist()], groups)


def ratio(value: float | None, ceiling: float | None) -> float | None:
    """value / ceiling, or None when either is missing or the ceiling is 0."""
    if value is None or not ceiling:
        return None
    return value / ceiling


def slice_scores(
    rows: Sequence[int],
    captions: Sequence[str],
    e_gen: torch.Tensor,
    e_real: torch.Tensor,
    pool: tuple[list[str], list[str], list[str]],
    pool_embeds: torch.Tensor,
    pool_slices: dict[str, str],
) -> dict[str, Any]:
    """Concept top-1 of generated and of real images for the scored `rows` of one slice, and their ratio."""
    picked = [captions[i] for i in rows]
    generated = concept_top1(e_gen[rows], picked, pool, pool_embeds, pool_slices)
    real = concept_top1(e_real[rows], picked, pool, pool_embeds, pool_slices)
    return {
        "count": len(rows),
        "concept_top1": generated["accuracy"] if generated else None,
        "concept_top1_real": real["accuracy"] if real else None,  # the ceiling
        "concept_top1_chance": real["chance"] if real else None,
        "ratio_to_ceiling": ratio(generated["accuracy"] if generated else None, real["accuracy"] if real else None),
    }


__all__ = ["UNSLICED", "caption_slices", "concept_top1", "ratio", "slice_rows", "slice_scores"]
