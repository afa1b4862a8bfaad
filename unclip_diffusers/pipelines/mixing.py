"""Weighted blends of several CLIP image embeddings: what `UnCLIPPipeline.mix` decodes.

Two inputs are blended by `slerp` (the path `interpolate` walks, so `mix([a, b], [1 - w, w])` is a frame of
`interpolate(a, b)`); more inputs by the normalised weighted mean of their unit directions, rescaled to the weighted
mean of their norms. The exact spherical (Karcher) mean needs an iteration and differs from this one by little for
embeddings that are not far apart, and the weighted mean keeps every input's pull proportional to its weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..utils.slerp import slerp


def check_mix_weights(num_inputs: int, weights: Sequence[float] | None) -> list[float]:
    """The weights of a mix, normalised to sum to 1 (equal when None), or a ValueError naming what is wrong."""
    if num_inputs < 1:
        raise ValueError("mix needs at least one input (a prompt or an image), got none.")
    if weights is None:
        return [1.0 / num_inputs] * num_inputs
    weights = list(weights)
    if len(weights) != num_inputs:
        raise ValueError(f"mix got {num_inputs} inputs but {len(weights)} weights; give one weight per input.")
    for i, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"weights[{i}] must be a finite number, got {weight!r}.")
        if weight < 0:
            raise ValueError(f"weights[{i}] is {weight}; mix weights must be >= 0 (0 leaves an input out).")
    total = float(sum(weights))
    if not total > 0:
        raise ValueError(f"mix weights must sum to a positive number, got {weights} (sum {total}).")
    return [float(w) / total for w in weights]


def mix_embeddings(embeds: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Blend `embeds` (N, D) with normalised `weights` (N,) into one embedding (1, D): slerp for two inputs, the
    normalised weighted mean of directions (times the weighted mean norm) for more."""
    if embeds.ndim != 2 or embeds.shape[0] != len(weights):
        raise ValueError(f"mix_embeddings needs (N, D) embeddings and N weights, got {tuple(embeds.shape)} and "
                         f"{len(weights)} weights.")  # fmt: skip
    if embeds.shape[0] == 1:
        return embeds.clone()
    if embeds.shape[0] == 2:
        return slerp(embeds[0], embeds[1], weights[1])[None].to(embeds.dtype)
    w = torch.tensor(weights, dtype=torch.float32, device=embeds.device)[:, None]  # (N, 1)
    values = embeds.float()
    summed = (w * F.normalize(values, dim=-1)).sum(0, keepdim=True)  # (1, D)
    if summed.norm() < 1e-6:
        raise ValueError("The weighted directions of the mix cancel out (opposite embeddings with equal weights); "
                         "change the weights.")
    direction = F.normalize(summed, dim=-1)
    norm = (w * values.norm(dim=-1, keepdim=True)).sum(0, keepdim=True)  # (1, 1)
    return (direction * norm).to(embeds.dtype)


__all__ = ["check_mix_weights", "mix_embeddings"]
