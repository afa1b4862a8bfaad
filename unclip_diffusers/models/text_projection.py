"""The decoder's conditioning on CLIP embeddings (GLIDE + unCLIP): the image embedding is added to the timestep
embedding and turned into extra context tokens."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class UnCLIPTextProjection(ModelMixin, ConfigMixin):
    r"""
    Turns a CLIP image embedding (and the caption's CLIP text embedding and token encodings) into the decoder UNet's
    conditioning: an additive time embedding (passed as `class_labels` to a UNet with `class_embed_type="identity"`)
    and a context of `clip_extra_context_tokens` image tokens followed by the projected caption tokens.

    A learned null image embedding replaces the CLIP embedding for the unconditional half of classifier-free guidance.
    Parameter names follow Karlo's `text_proj` so its checkpoints load into this class.

    Parameters:
        clip_extra_context_tokens (`int`, defaults to 4): number of context tokens made from the image embedding.
        clip_embeddings_dim (`int`, defaults to 768): width of the CLIP embeddings.
        time_embed_dim (`int`, defaults to 1536): width of the decoder UNet's time embedding.
        cross_attention_dim (`int`, defaults to 1536): width of the decoder UNet's cross-attention context.
    """

    @register_to_config
    def __init__(
        self,
        *,
        clip_extra_context_tokens: int = 4,
        clip_embeddings_dim: int = 768,
        time_embed_dim: int = 1536,
        cross_attention_dim: int = 1536,
    ):
        super().__init__()
        if clip_extra_context_tokens < 0:
            raise ValueError(f"clip_extra_context_tokens must be >= 0, got {clip_extra_context_tokens}.")
        self.learned_classifier_free_guidance_embeddings = nn.Parameter(torch.zeros(clip_embeddings_dim))
        self.embedding_proj = nn.Linear(clip_embeddings_dim, time_embed_dim)
        self.clip_image_embeddings_project_to_time_embeddings = nn.Linear(clip_embeddings_dim, time_embed_dim)
        self.clip_extra_context_tokens_proj = nn.Linear(clip_embeddings_dim, clip_extra_context_tokens * cross_attention_dim)
        self.encoder_hidden_states_proj = nn.Linear(clip_embeddings_dim, cross_attention_dim)
        self.text_encoder_hidden_states_norm = nn.LayerNorm(cross_attention_dim)

    def null_image_embeddings(self, batch_size: int) -> torch.Tensor:
        """The learned "no image" embedding, repeated `batch_size` times, for unconditional decoding."""
        return self.learned_classifier_free_guidance_embeddings.unsqueeze(0).expand(batch_size, -1)

    def forward(
        self,
        *,
        image_embeddings: torch.Tensor,
        prompt_embeds: torch.Tensor,
        text_encoder_hidden_states: torch.Tensor,
        do_classifier_free_guidance: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""
        Args:
            image_embeddings (`torch.Tensor` of shape `(B, clip_embeddings_dim)`): CLIP image embeddings `z_i`.
            prompt_embeds (`torch.Tensor` of shape `(B', clip_embeddings_dim)`): CLIP text embeddings `z_t`.
            text_encoder_hidden_states (`torch.Tensor` of shape `(B', T, clip_embeddings_dim)`): caption token
                encodings.
            do_classifier_free_guidance (`bool`, defaults to `False`): if `True`, the null embedding is prepended to
                `image_embeddings` (so `B' == 2 * B`, unconditional half first, like the text inputs).

        Returns:
            `(encoder_hidden_states, additive_time_embeddings)` of shapes `(B', extra + T, cross_attention_dim)` and
            `(B', time_embed_dim)`.
        """
        if do_classifier_free_guidance:
            image_embeddings = torch.cat([self.null_image_embeddings(image_embeddings.shape[0]), image_embeddings], dim=0)
        batch_size = prompt_embeds.shape[0]
        if image_embeddings.shape[0] != batch_size or text_encoder_hidden_states.shape[0] != batch_size:
            raise ValueError(
                f"Batch sizes differ: image embeddings {image_embeddings.shape[0]}, prompt embeddings {batch_size}, "
                f"token encodings {text_encoder_hidden_states.shape[0]}."
            )
        image_embeddings = image_embeddings.to(prompt_embeds.dtype)
        time_embeddings = self.embedding_proj(prompt_embeds)  # (B', D_time)
        time_embeddings = time_embeddings + self.clip_image_embeddings_project_to_time_embeddings(image_embeddings)

        extra_tokens = self.clip_extra_context_tokens_proj(image_embeddings)  # (B', extra * D_ctx)
        extra_tokens = extra_tokens.reshape(batch_size, -1, self.config.clip_extra_context_tokens)
        extra_tokens = extra_tokens.permute(0, 2, 1)  # (B', extra, D_ctx)

        text_tokens = self.text_encoder_hidden_states_norm(self.encoder_hidden_states_proj(text_encoder_hidden_states))
        return torch.cat([extra_tokens, text_tokens], dim=1), time_embeddings
