"""What the unCLIP pipeline returns: final images, the CLIP image embeddings behind them and the base images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput


@dataclass
class UnCLIPPipelineOutput(BaseOutput):
    r"""
    Output of [`UnCLIPPipeline`] and its editing methods.

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` of shape `(N, H, W, 3)` or `torch.Tensor` of shape
            `(N, 3, H, W)`): the final (upsampled, where the pipeline has an upsampler) images, values in [0, 1].
        image_embeds (`torch.Tensor` of shape `(N, D)`): the CLIP image embeddings `z_i` the decoder was conditioned
            on (after the prior), L2-normalised when the pipeline's `normalize_embeddings` is set.
        base_images (same type as `images`): the decoder's base-resolution output, before super-resolution.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    image_embeds: torch.Tensor
    base_images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class PromptEncodings(NamedTuple):
    """A caption encoded by the CLIP text encoder, in the form the prior and the decoder take it."""

    text_embeds: torch.Tensor  # (B, D): pooled, projected CLIP text embedding z_t (normalised if the pipeline says so)
    token_encodings: torch.Tensor  # (B, T, D): the text encoder's last_hidden_state, as it is
    attention_mask: torch.Tensor  # (B, T) bool: True for real tokens (start, words, end), False for padding

    def repeat_interleave(self, repeats: int) -> PromptEncodings:
        """Repeat every caption `repeats` times along the batch, keeping captions grouped."""
        return PromptEncodings(*(t.repeat_interleave(repeats, dim=0) for t in self))

    def concat(self, other: PromptEncodings) -> PromptEncodings:
        """Stack two batches of encodings (e.g. unconditional before conditional for classifier-free guidance)."""
        return PromptEncodings(*(torch.cat([a, b], dim=0) for a, b in zip(self, other, strict=True)))

    @property
    def batch_size(self) -> int:
        return self.text_embeds.shape[0]


class PromptFit(NamedTuple):
    """How much of one prompt the CLIP text encoder reads (`UnCLIPPipeline.fit_prompt`)."""

    kept: str  # the text the encoder reads, as the tokenizer writes it back (lower case, spaced punctuation)
    dropped: str  # the text cut off the end; empty when the whole prompt fits
    max_tokens: int  # prompt tokens the encoder reads: its context length less the start and end tokens
