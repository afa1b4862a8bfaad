"""Family-balanced sampling weights, so the many variants of one person emoji do not outweigh a single cat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def family_sampling_weights(families: Sequence[str], temperature: float = 1.0) -> np.ndarray:
    """Per-image sampling probabilities (float64, summing to 1) that weight each family by size**(1 - temperature).

    Args:
        families: the family key of every image (the dataset's `family` column), in dataset order.
        temperature: 1.0 makes every family equally likely (its images share the family's weight); 0.0 is uniform
            per image, as without balancing; values in between weight a family by size**(1 - temperature).

    Returns:
        An array of shape (len(families),), e.g. for `torch.utils.data.WeightedRandomSampler`.
    """
    if not 0.0 <= temperature <= 1.0:
        raise ValueError(f"temperature must be in [0, 1] (1: families equally likely, 0: images equally likely), "
                         f"got {temperature}")  # fmt: skip
    if len(families) == 0:
        raise ValueError("family_sampling_weights needs at least one image, got an empty sequence")
    _, inverse, sizes = np.unique(np.asarray(list(families), dtype=str), return_inverse=True, return_counts=True)
    weights = sizes[inverse].astype(np.float64) ** -temperature  # a family of n images weighs n * n**-t
    return weights / weights.sum()


def sampled_share(selected: Sequence[bool], weights: Sequence[float] | None = None) -> float:
    """Expected share of draws that land on a `selected` image, under `weights` (None: uniform per image)."""
    mask = np.asarray(selected, dtype=bool)
    if mask.size == 0:
        raise ValueError("sampled_share needs at least one image, got an empty sequence")
    if weights is None:
        return float(mask.mean())
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != mask.shape:
        raise ValueError(f"weights has shape {weights.shape} but selected has {mask.shape}; give one weight per image")
    return float(weights[mask].sum() / weights.sum())


__all__ = ["family_sampling_weights", "sampled_share"]
