"""Argument checks shared by the pipeline's methods: each raises a `ValueError`/`TypeError` naming the bad value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..utils.images import OUTPUT_TYPES
from .pipeline_output import PromptEncodings


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from a config's `sample_size`, which may be one int or a pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def check_prompt(prompt: Any) -> list[str]:
    """Return the captions as a list; reject anything that is not a string or a non-empty list of strings."""
    if isinstance(prompt, str):
        return [prompt]
    if not isinstance(prompt, (list, tuple)):
        raise TypeError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}.")
    if len(prompt) == 0:
        raise ValueError("prompt is an empty list; pass at least one caption (use \"\" for an unconditional sample).")
    for i, item in enumerate(prompt):
        if not isinstance(item, str):
            raise TypeError(f"prompt[{i}] must be a string, got {type(item).__name__}.")
    return list(prompt)


def check_encodings(encodings: PromptEncodings, embedding_dim: int) -> None:
    """Reject precomputed caption encodings whose shapes do not fit together or do not fit the pipeline."""
    text_embeds, token_encodings, attention_mask = encodings
    if not all(isinstance(t, torch.Tensor) for t in encodings):
        raise TypeError("PromptEncodings must hold three tensors (text_embeds, token_encodings, attention_mask).")
    batch = text_embeds.shape[0] if text_embeds.ndim == 2 else -1
    if batch < 1 or text_embeds.shape[1] != embedding_dim:
        raise ValueError(f"PromptEncodings.text_embeds must have shape (B, {embedding_dim}) with B >= 1, got "
                         f"{tuple(text_embeds.shape)}; use `encode_prompt` of a pipeline with the same CLIP.")
    if token_encodings.ndim != 3 or attention_mask.shape != (batch, token_encodings.shape[1]) or \
            token_encodings.shape[0] != batch:
        raise ValueError(f"PromptEncodings of {batch} captions need token_encodings (B, T, D) and attention_mask "
                         f"(B, T); got {tuple(token_encodings.shape)} and {tuple(attention_mask.shape)}.")


def check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_guidance(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (1 disables guidance), got {value!r}.")


def check_strength(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}.")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (1 starts from pure noise), got {value!r}.")


def check_output_type(output_type: Any) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")


def repeat_to(encodings: PromptEncodings, num_images: int) -> PromptEncodings:
    """Repeat caption encodings so there is one row per image (captions grouped, like `num_images_per_prompt`)."""
    count = encodings.batch_size
    if count == num_images:
        return encodings
    if count == 0 or num_images % count:
        raise ValueError(f"Got {count} captions for {num_images} image embeddings; pass one caption per embedding, "
                         "or a number of captions that divides the number of embeddings.")
    return encodings.repeat_interleave(num_images // count)
