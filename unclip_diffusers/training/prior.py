"""Stage 2: the diffusion prior, p(z_i | caption), on cached CLIP embeddings.

The model sees [caption token encodings, z_t, timestep, noised z_i, query] and predicts the clean image embedding
(x0-prediction, MSE), in the space standardised by the training split's per-dimension mean and std
(`prior.set_embedding_stats`). z_t and z_i are L2-normalised CLIP embeddings. The caption is replaced by the empty
prompt's encodings for `text_drop_prob` of the samples, which is what the pipeline's unconditional branch uses.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from torch.nn import functional as F

from ..configs import build_prior, build_sampling_scheduler, build_train_scheduler
from ..models import UnCLIPPriorTransformer
from ..pipelines.sampling import denoise
from .batches import TRAIN_SPLIT, VALIDATION_SPLIT
from .config import PriorTrainingConfig
from .embeddings import (
    IMAGE_TOWER_PARTS,
    EmbeddingCache,
    clip_final_dir,
    fingerprint_files,
    primary_caption_rows,
    resolve_clip_dir,
    sample_caption_rows,
    split_with_embeddings,
)
from .trainer import Stage, run_training
from .warm_start import load_prior

logger = logging.getLogger(__name__)


def embedding_stats(image_embeds: torch.Tensor, min_std: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of normalised image embeddings (std floored so every entry is positive)."""
    return image_embeds.mean(0), image_embeds.std(0).clamp_min(min_std)


def write_clip_reference(directory: Path, clip_dir: Path, fingerprint: str) -> None:
    """Record which CLIP a stage was trained on, whole and its image tower alone (`assemble` checks them)."""
    reference = {"clip_dir": str(clip_dir), "clip_fingerprint": fingerprint,
                 "image_tower_fingerprint": fingerprint_files(clip_final_dir(clip_dir), IMAGE_TOWER_PARTS)}
    (directory / "clip_reference.json").write_text(json.dumps(reference, indent=2) + "\n", encoding="utf-8")


Conditioning = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (text_embeds (B, D), token encodings, mask)


def guidance_conditioning(text: Conditioning, empty: Conditioning, guidance_scale: float) -> Conditioning:
    """`text` with the empty caption's rows first (the unconditional half `denoise` expects) when guiding."""
    if guidance_scale == 1.0:
        return text
    batch = text[0].shape[0]
    return tuple(torch.cat([e[None].expand(batch, *e.shape).to(c.dtype), c]) for e, c in zip(empty, text))


@torch.no_grad()
def sample_prior_embeddings(
    prior: UnCLIPPriorTransformer,
    text_embeds: torch.Tensor,
    text_hidden: torch.Tensor,
    text_mask: torch.Tensor,
    empty: Conditioning,
    num_inference_steps: int = 10,
    guidance_scale: float = 4.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw image embeddings z_i (standardisation undone) with the pipeline's loop, DPMSolver and guidance."""
    embeds, hidden, mask = guidance_conditioning((text_embeds, text_hidden.float(), text_mask), empty, guidance_scale)

    def predict(model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return prior(model_input, t, proj_embedding=embeds, encoder_hidden_states=hidden, attention_mask=mask,
                     return_dict=False)[0]

    noise = torch.randn(text_embeds.shape[0], prior.config.embedding_dim, generator=generator)
    latents = denoise(predict, build_sampling_scheduler("sample"), latents=noise,
                      num_inference_steps=num_inference_steps, generator=generator,
                      guidance_scale=guidance_scale)
    return prior.post_process_latents(latents)


class PriorStage(Stage):
    """x0-prediction training of the prior on cached, normalised CLIP embeddings."""

    config: PriorTrainingConfig

    def setup(self, accelerator: Accelerator) -> nn.Module:
        data, self.cache, self.examples = split_with_embeddings(self.config, TRAIN_SPLIT, self.config.max_train_examples,
                                                                accelerator)  # fmt: skip
        self.balance_families(data)
        self.validation = None
        if self.config.num_validation_examples:
            heldout, cache, heldout_examples = split_with_embeddings(
                self.config, VALIDATION_SPLIT, self.config.num_validation_examples, accelerator
            )
            self.validation = (cache, heldout_examples)
        self.clip_dir = resolve_clip_dir(self.config)
        self.clip_fingerprint = fingerprint_files(clip_final_dir(self.clip_dir))
        self.noise_scheduler = build_train_scheduler("sample")
        self.prior = build_prior(self.model_config)
        if self.prior.config.embedding_dim != self.cache.image_embeds.shape[1]:
            raise ValueError(
                f"Model preset {self.config.model_preset!r} has a {self.prior.config.embedding_dim}-wide prior but the "
                f"CLIP in {str(self.clip_dir)!r} embeds to {self.cache.image_embeds.shape[1]}."
            )
        self.prior.set_embedding_stats(*embedding_stats(self.cache.image_embeds))
        self.prior.clip_mean.requires_grad_(False)
        self.prior.clip_std.requires_grad_(False)
        return self.prior

    @property
    def num_train_examples(self) -> int:
        return len(self.cache)

    def diffusion_loss(
        self, model: nn.Module, cache: EmbeddingCache, indices: torch.Tensor, rows: torch.Tensor,
        drop: torch.Tensor | None, generator: torch.Generator,
    ) -> torch.Tensor:
        """MSE between the predicted and the true standardised z_i at random timesteps."""
        text_embeds, text_hidden, text_mask = cache.conditioning(rows, drop)
        x_start = self.prior.normalize_embeddings(cache.image_embeds[indices])  # (B, D)
        noise = torch.randn(x_start.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(indices),), generator=generator)
        x_t = self.noise_scheduler.add_noise(x_start, noise, timesteps)
        pred_xstart = model(x_t, timesteps, proj_embedding=text_embeds, encoder_hidden_states=text_hidden,
                            attention_mask=text_mask, return_dict=False)[0]
        return F.mse_loss(pred_xstart.float(), x_start)

    def loss(self, model: nn.Module, indices: torch.Tensor, generator: torch.Generator, rng: random.Random) -> torch.Tensor:
        rows = sample_caption_rows(self.cache, self.examples, indices, rng)
        drop = torch.rand(len(indices), generator=generator) < self.config.text_drop_prob
        return self.diffusion_loss(model, self.cache, indices, rows, drop, generator)

    def validate(self, model: nn.Module, step: int, output_dir: Path) -> dict[str, float]:
        """Loss on held-out pairs and training pairs (fixed noise), and how close sampled z_i come to the true one."""
        metrics: dict[str, float] = {}
        count = self.config.num_validation_examples or 64
        sets = {"train": (self.cache, self.examples)}
        if self.validation is not None:
            sets["heldout"] = self.validation
        for name, (cache, examples) in sets.items():
            indices = torch.arange(min(count, len(cache)))
            rows = primary_caption_rows(cache, examples, indices)
            generator = torch.Generator().manual_seed(self.config.seed)
            metrics[f"{name}_loss"] = self.diffusion_loss(model, cache, indices, rows, None, generator).item()
            text = cache.conditioning(rows)
            sampled = sample_prior_embeddings(model, *text, empty=cache.empty_conditioning(), generator=generator)
            target = cache.image_embeds[indices]
            metrics[f"{name}_sample_cosine"] = F.cosine_similarity(sampled, target).mean().item()
            # Baseline: the same samples against other examples' image embeddings (no caption information).
            metrics[f"{name}_sample_cosine_other"] = F.cosine_similarity(sampled, target.roll(1, 0)).mean().item()
            # Reference: how close the caption's own text embedding is to the image embedding.
            metrics[f"{name}_text_cosine"] = F.cosine_similarity(text[0], target).mean().item()
        return metrics

    def load_weights(self, model: nn.Module, folder: Path) -> None:
        """`prior/`, with the embedding statistics it was trained with (a shorter caption context is widened)."""
        load_prior(model, folder / "prior")

    def save_final(self, model: nn.Module, directory: Path) -> None:
        """`prior/` (with its embedding statistics) and `clip_reference.json`."""
        model.save_pretrained(directory / "prior", safe_serialization=True)
        write_clip_reference(directory, self.clip_dir, self.clip_fingerprint)


def train_prior(config: PriorTrainingConfig, resume: bool = False) -> Path:
    """Train the prior on the CLIP run `config.clip_dir`; returns the run folder (weights in `final/prior`)."""
    return run_training(PriorStage(config), resume=resume)
