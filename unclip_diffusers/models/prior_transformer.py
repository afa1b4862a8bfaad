"""The unCLIP diffusion prior: diffusers' `PriorTransformer` with the paper's causal mask always on and the CLIP
image-embedding normalisation statistics kept with the weights."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.transformers.prior_transformer import PriorTransformer, PriorTransformerOutput

MASKED = -10000.0  # the additive mask value of `PriorTransformer` (padding and causal)


@dataclass
class CaptionKVCache:
    """The caption tokens' attention keys and values in every layer of a prior, reused across denoising steps.

    Under the causal mask the caption tokens come first and attend only to each other, so their states do not depend
    on the timestep or the noised embedding: one sampling loop computes them once. Entries are keyed by batch size
    (a guidance interval's unguided steps run the conditional half of the batch). Create one per sampling loop and
    pass it as `forward(..., caption_cache=...)`; the captions of every call must be the same.
    """

    entries: dict[int, tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]] = field(default_factory=dict)


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
        caption_cache: CaptionKVCache | None = None,
    ) -> PriorTransformerOutput | tuple[torch.Tensor]:
        """`PriorTransformer.forward`; with `caption_cache` the caption tokens' keys and values are computed on the
        first call and reused (same result, the caption tokens' work done once per sampling loop)."""
        if attention_mask is None:
            num_text_tokens = 0 if encoder_hidden_states is None else encoder_hidden_states.shape[1]
            attention_mask = torch.ones(hidden_states.shape[0], num_text_tokens, dtype=torch.bool, device=hidden_states.device)
        if caption_cache is not None and encoder_hidden_states is not None and self.prd_embedding is not None:
            output = self._forward_cached(hidden_states, timestep, proj_embedding, encoder_hidden_states,
                                          attention_mask, caption_cache)
            return PriorTransformerOutput(predicted_image_embedding=output) if return_dict else (output,)
        return super().forward(
            hidden_states,
            timestep,
            proj_embedding,
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=attention_mask,
            return_dict=return_dict,
        )

    def _forward_cached(self, hidden_states: torch.Tensor, timestep: torch.Tensor | float | int,
                        proj_embedding: torch.Tensor, encoder_hidden_states: torch.Tensor,
                        attention_mask: torch.Tensor, cache: CaptionKVCache) -> torch.Tensor:
        """The forward pass over the last 4 positions only, attending to the cached caption keys and values."""
        batch, tokens = encoder_hidden_states.shape[:2]
        if batch not in cache.entries:
            cache.entries[batch] = self._caption_keys_values(encoder_hidden_states, attention_mask)
        keys, values, caption_mask = cache.entries[batch]

        timesteps = torch.as_tensor(timestep, device=hidden_states.device).reshape(-1).expand(batch)
        time_embeddings = self.time_embedding(self.time_proj(timesteps).to(dtype=self.dtype))
        if self.embedding_proj_norm is not None:
            proj_embedding = self.embedding_proj_norm(proj_embedding)
        suffix = torch.stack([self.embedding_proj(proj_embedding), time_embeddings, self.proj_in(hidden_states),
                              self.prd_embedding.to(hidden_states.dtype)[:, 0].expand(batch, -1)], dim=1)
        suffix = suffix + self.positional_embedding.to(suffix.dtype)[:, tokens:]
        if self.norm_in is not None:
            suffix = self.norm_in(suffix)
        causal = self.causal_attention_mask[:, tokens:, tokens:].expand(batch, -1, -1)
        mask = torch.cat([caption_mask[:, None, :].expand(-1, suffix.shape[1], -1), causal], dim=2)
        mask = mask.to(suffix.dtype)[:, None]  # (B, 1, Q, prefix + Q): every head alike
        for block, block_keys, block_values in zip(self.transformer_blocks, keys, values):
            suffix = _block_with_prefix(block, suffix, block_keys, block_values, mask)
        return self.proj_to_clip_embeddings(self.norm_out(suffix)[:, -1])

    def _caption_keys_values(
        self, encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Each layer's keys and values of the caption tokens (run alone: they never see later positions)."""
        tokens = encoder_hidden_states.shape[1]
        if self.encoder_hidden_states_proj is not None:
            encoder_hidden_states = self.encoder_hidden_states_proj(encoder_hidden_states)
        states = encoder_hidden_states + self.positional_embedding.to(encoder_hidden_states.dtype)[:, :tokens]
        if self.norm_in is not None:
            states = self.norm_in(states)
        caption_mask = (1 - attention_mask.to(states.dtype)) * MASKED  # (B, T) additive
        mask = caption_mask[:, None, :] + self.causal_attention_mask[:, :tokens, :tokens]
        mask = mask.to(states.dtype).repeat_interleave(self.config.num_attention_heads, dim=0)
        keys, values = [], []
        for block in self.transformer_blocks:
            normed = block.norm1(states)
            keys.append(_heads(block.attn1.to_k(normed), block.attn1.heads))
            values.append(_heads(block.attn1.to_v(normed), block.attn1.heads))
            states = block(states, attention_mask=mask)
        return keys, values, caption_mask

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


def _heads(states: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, H * d) -> (B, H, T, d)."""
    batch, tokens, width = states.shape
    return states.reshape(batch, tokens, heads, width // heads).transpose(1, 2)


def _block_with_prefix(block: BasicTransformerBlock, states: torch.Tensor, prefix_keys: torch.Tensor,
                       prefix_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One pre-norm transformer block (self-attention, feed-forward) for `states` whose keys and values are preceded
    by a cached prefix's; `mask` (B, 1, Q, prefix + Q) is additive."""
    attn = block.attn1
    normed = block.norm1(states)
    query = _heads(attn.to_q(normed), attn.heads)
    key = torch.cat([prefix_keys.to(query.dtype), _heads(attn.to_k(normed), attn.heads)], dim=2)
    value = torch.cat([prefix_values.to(query.dtype), _heads(attn.to_v(normed), attn.heads)], dim=2)
    attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.to(query.dtype),
                                              scale=attn.scale)
    attended = attended.transpose(1, 2).reshape(states.shape[0], states.shape[1], -1)
    states = states + attn.to_out[1](attn.to_out[0](attended)) / attn.rescale_output_factor
    return states + block.ff(block.norm3(states))
