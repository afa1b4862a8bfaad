"""The unCLIP diffusion prior: diffusers' `PriorTransformer` with the paper's causal mask always on and the CLIP
image-embedding normalisation statistics kept with the weights."""

from __future__ import annotations

import functools

import torch
from diffusers.models.transformers.prior_transformer import PriorTransformer, PriorTransformerOutput


class UnCLIPPriorTransformer(PriorTransformer):
    r"""
    Decoder-only transformer over `[caption token encodings, CLIP text embedding, timestep embedding, noised CLIP
    image embedding, query token]` that predicts the clean (normalised) CLIP image embedding `z_i` from the query
    token's output.

    It keeps `PriorTransformer`'s parameters and config (so Karlo-layout checkpoints load unchanged) and adds:
    - the causal mask even when no text mask is given (the stock model skips it then);
    - `normalize_embeddings` / `post_process_latents` with `clip_mean` / `clip_std`, which training sets once from
      the data with `set_embedding_stats`;
    - `clip_std` initialised to ones rather than the stock zeros, so an untrained or freshly built prior maps its
      samples through the identity instead of collapsing every output to `clip_mean`.
    """

    @functools.wraps(PriorTransformer.__init__)  # keeps the config signature diffusers reads with `inspect`
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with torch.no_grad():
            self.clip_std.fill_(1.0)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor | float | int,
        proj_embedding: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.BoolTensor | None = None,
        return_dict: bool = True,
    ) -> PriorTransformerOutput | tuple[torch.Tensor]:
        if attention_mask is None:
            num_text_tokens = 0 if encoder_hidden_states is None else encoder_hidden_states.shape[1]
            attention_mask = torch.ones(hidden_states.shape[0], num_text_tokens, dtype=torch.bool, device=hidden_states.device)
        return super().forward(
            hidden_states,
            timestep,
            proj_embedding,
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=attention_mask,
            return_dict=return_dict,
        )

    @torch.no_grad()
    def set_embedding_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-dimension mean and standard deviation of the training CLIP image embeddings."""
        expected = self.clip_mean.shape[-1]
        if mean.shape[-1] != expected or std.shape[-1] != expected:
            raise ValueError(f"Embedding statistics must have {expected} dimensions, got {mean.shape} and {std.shape}.")
        if not torch.all(std > 0):
            raise ValueError("Every entry of the embedding standard deviation must be positive.")
        self.clip_mean.copy_(mean.reshape(1, -1))
        self.clip_std.copy_(std.reshape(1, -1))

    def normalize_embeddings(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Map CLIP image embeddings to the prior's normalised space (the inverse of `post_process_latents`)."""
        mean = self.clip_mean.to(image_embeds.device, image_embeds.dtype)
        std = self.clip_std.to(image_embeds.device, image_embeds.dtype)
        return (image_embeds - mean) / std
