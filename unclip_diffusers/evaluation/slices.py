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
from . import metrics

UNSLICED = "all"  # the slice name used when a dataset has no `slice` column


def slice_rows(slices: Sequence[str]) -> dict[str, list[int]]:
    """Row positions per slice, in SLICES order, only slices that occur; {'all': every row} when unsliced."""
    if not slices or all(s == UNSLICED for s in slices):
        return {UNSLICED: list(range(len(slices)))}
    known = [s for s in SLICES if s in set(slices)] + sorted(set(slices) - set(SLICES))
    return {name: [i for i, s in enumerate(slices) if s == name] for name in known}


def concept_top1(
    query: torch.Tensor,
    true_rows: Sequence[int],
    captions: Sequence[str],
    styles: Sequence[str],
    slices: Sequence[str],
    text_embeds: torch.Tensor,
) -> dict[str, float]:
    """Evaluator concept top-1 of images `query` whose true captions are those of `true_rows` of a split.

    The candidates are the split's distinct captions of the query's own style and slice (a held-out cat competes
    with the other held-out everyday things drawn in its style), embedded in `text_embeds` (one row per caption
    row of the split). Queries without a rival candidate decide nothing and are skipped.
    """
    first: dict[str, int] = {}
    for i, caption in enumerate(captions):
        first.setdefault(caption, i)
    candidates = list(first.values())
    position = {row: k for k, row in enumerate(candidates)}
    groups = [(styles[r], slices[r]) for r in candidates]
    true = torch.tensor([position[first[captions[r]]] for r in true_rows])
    query_groups = [(styles[r], slices[r]) for r in true_rows]
    return metrics.group_accuracy(query, text_embeds[candidates], true, query_groups, groups)


def ratio(value: float | None, ceiling: float | None) -> float | None:
    """value / ceiling, or None when either is missing or the ceiling is 0."""
    if value is None or not ceiling:
        return None
    return value / ceiling


def slice_scores(
    rows: Sequence[int], e_gen: torch.Tensor, e_real: torch.Tensor, data: Any, text_embeds: torch.Tensor
) -> dict[str, Any]:
    """Concept top-1 of generated images `e_gen` (one per row of `rows`, split positions) and of the real images of
    those rows (`e_real`, one per split row), with chance and their ratio; `data` is the split (`SplitData`)."""
    generated = concept_top1(e_gen, rows, data.captions, data.styles, data.slices, text_embeds)
    real = concept_top1(e_real[list(rows)], rows, data.captions, data.styles, data.slices, text_embeds)
    return {
        "count": len(rows),
        "concept_top1": generated["accuracy"],
        "concept_top1_real": real["accuracy"],  # the ceiling
        "concept_top1_chance": real["chance"],
        "concept_top1_count": real["count"],
        "ratio_to_ceiling": ratio(generated["accuracy"], real["accuracy"]),
    }


__all__ = ["UNSLICED", "concept_top1", "ratio", "slice_rows", "slice_scores"]
