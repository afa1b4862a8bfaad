"""Stage 3: the base decoder, p(x | z_i, caption), trained jointly with the text projection (GLIDE + unCLIP).

`text_proj` turns the normalised CLIP image embedding z_i (and the caption's z_t and token encodings) into an
additive time embedding (the UNet's `class_labels`) and 4 extra context tokens in front of the caption tokens.
The image embedding is replaced by the learned null embedding for `image_drop_prob` of the samples and the caption
by the empty prompt for `text_drop_prob`, independently (classifier-free guidance on either).

Objective: epsilon prediction with fixed variance (the simple MSE loss of DDPM, optionally Min-SNR-γ weighted; the
`small` preset uses γ = 5). The paper's decoder learns the variance (hybrid loss); we do not, which keeps the loss
one term and lets any diffusers scheduler sample it.
Images are scaled to [-1, 1].
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers import UNet2DConditionModel
from torch import nn
from torch.nn import functional as F

from ..configs import build_decoder, build_sampling_scheduler, build_text_proj, build_train_scheduler
from ..models import UnCLIPTextProjection
from ..pipelines.sampling import denoise
from .batches import (
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
    caption_examples,
    images_to_uint8,
    model_device,
    save_image_grid,
    to_uint8,
    to_unit_range,
)
from .config import DecoderTrainingConfig
from .embeddings import (
    EmbeddingCache,
    clip_final_dir,
    fingerprint_files,
    primary_caption_rows,
    resolve_clip_dir,
    sample_caption_rows,
    split_with_embeddings,
)
from .losses import epsilon_loss
from .pack import check_pack_size, head, is_pack, load_pack
from .prior import Conditioning, guidance_conditioning, write_clip_reference
from .trainer import Stage, run_training
from .warm_start import load_component

logger = logging.getLogger(__name__)


class DecoderWithProjection(nn.Module):
    """The decoder UNet and its text projection as one module, so data parallelism sees a single forward pass."""

    def __init__(self, decoder: UNet2DConditionModel, text_proj: UnCLIPTextProjection) -> None:
        super().__init__()
        self.decoder = decoder
        self.text_proj = text_proj

    def forward(
        self,
        sample: torch.Tensor,  # (B, 3, H, W) noisy images x_t
        timestep: torch.Tensor,  # (B,) or scalar
        image_embeds: torch.Tensor,  # (B, D) normalised z_i
        drop_image: torch.Tensor,  # (B,) bool: use the learned null image embedding instead
        text_embeds: torch.Tensor,  # (B, D) normalised z_t
        text_hidden: torch.Tensor,  # (B, T, D) caption token encodings
        text_mask: torch.Tensor,  # (B, T) bool
    ) -> torch.Tensor:
        """Predicted noise (B, 3, H, W)."""
        null = self.text_proj.null_image_embeddings(image_embeds.shape[0]).to(image_embeds.dtype)
        image_embeds = torch.where(drop_image[:, None], null, image_embeds)
        context, time_embeddings = self.text_proj(
            image_embeddings=image_embeds, prompt_embeds=text_embeds, text_encoder_hidden_states=text_hidden
        )
        mask = F.pad(text_mask.long(), (self.text_proj.config.clip_extra_context_tokens, 0), value=1)  # (B, extra + T)
        return self.decoder(
            sample, timestep, encoder_hidden_states=context, class_labels=time_embeddings, attention_mask=mask
        ).sample


@torch.no_grad()
def sample_decoder_images(
    model: DecoderWithProjection,
    image_embeds: torch.Tensor,
    text: Conditioning,
    empty: Conditioning,
    num_inference_steps: int = 10,
    guidance_scale: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode z_i (with its caption) into images in [-1, 1] with the pipeline's loop, DPMSolver and guidance."""
    batch, size = image_embeds.shape[0], model.decoder.config.sample_size
    text = guidance_conditioning(text, empty, guidance_scale)
    drop = torch.zeros(batch, dtype=torch.bool)
    if guidance_scale != 1.0:  # the unconditional half also drops z_i for the learned null embedding
        image_embeds = torch.cat([image_embeds, image_embeds])
        drop = torch.cat([torch.ones(batch, dtype=torch.bool), drop])

    device = model_device(model)

    def predict(model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inputs = (model_input, t, image_embeds, drop, *text)
        return model(*(x.to(device) for x in inputs)).float().cpu()  # the sampler runs on the CPU

    noise = torch.randn(batch, 3, size, size, generator=generator)
    latents = denoise(predict, build_sampling_scheduler("epsilon"), latents=noise,
                      num_inference_steps=num_inference_steps, generator=generator,
                      guidance_scale=guidance_scale)
    return latents.clamp(-1.0, 1.0)


class DecoderStage(Stage):
    """Epsilon-prediction training of the base decoder and `text_proj` on cached CLIP embeddings."""

    config: DecoderTrainingConfig
    teacher: DecoderWithProjection | None = None  # the frozen decoder a guidance-distillation run learns from

    def setup(self, accelerator: Accelerator) -> nn.Module:
        if self.model_config.decoder.learned_variance:
            raise ValueError(
                f"Model preset {self.config.model_preset!r} has a learned-variance decoder; this trainer implements "
                "epsilon prediction with fixed variance only (set learned_variance=False)."
            )
        if is_pack(self.config.data_path):
            self._setup_from_pack(accelerator)
        else:
            self._setup_from_dataset(accelerator)
        self.noise_scheduler = build_train_scheduler("epsilon")
        text_proj = build_text_proj(self.model_config)
        if text_proj.config.clip_embeddings_dim != self.cache.image_embeds.shape[1]:
            raise ValueError(
                f"Model preset {self.config.model_preset!r} expects {text_proj.config.clip_embeddings_dim}-wide CLIP "
                f"embeddings but the CLIP in {str(self.clip_dir)!r} embeds to {self.cache.image_embeds.shape[1]}."
            )
        if self.config.distill_from:
            self.teacher = DecoderWithProjection(build_decoder(self.model_config), build_text_proj(self.model_config))
            self.load_weights(self.teacher, Path(self.config.distill_from))
            self.teacher.requires_grad_(False).eval().to(accelerator.device if accelerator is not None else "cpu")
            logger.info("Distilling guidance %.1f of the decoder in %s", self.config.distill_guidance_scale,
                        self.config.distill_from)
        return DecoderWithProjection(build_decoder(self.model_config), text_proj)

    def _setup_from_dataset(self, accelerator: Accelerator) -> None:
        """Training (and validation) images and embeddings from the dataset and the CLIP run's embedding cache."""
        size = self.model_config.decoder.sample_size
        data, self.cache, self.examples = split_with_embeddings(self.config, TRAIN_SPLIT, self.config.max_train_examples,
                                                                accelerator)  # fmt: skip
        self.balance_families(data)
        self.images = images_to_uint8(data["image"], size, desc="decoding train images")
        self.validation = None
        if self.config.num_validation_examples:
            heldout, cache, heldout_examples = split_with_embeddings(
                self.config, VALIDATION_SPLIT, self.config.num_validation_examples, accelerator
            )
            images = images_to_uint8(heldout["image"], size, desc="decoding held-out images")
            self.validation = (cache, heldout_examples, images)
        self.clip_dir = resolve_clip_dir(self.config)
        self.clip_fingerprint = fingerprint_files(clip_final_dir(self.clip_dir))

    def _setup_from_pack(self, accelerator: Accelerator | None) -> None:
        """The same from a pack (`unclip-train pack`): no dataset and no CLIP run needed."""
        pack = load_pack(self.config.data_path, "decoder", accelerator.device if accelerator is not None else "cpu")
        check_pack_size(pack, self.config, self.model_config.decoder.sample_size)
        train = head(pack.splits[TRAIN_SPLIT], self.config.max_train_examples)
        self.cache, self.images, self.examples = train.cache, train.images, caption_examples(train.table)
        self.balance_families(train.table)
        self.validation = None
        heldout = pack.splits.get(VALIDATION_SPLIT)
        if self.config.num_validation_examples and heldout is not None:
            heldout = head(heldout, self.config.num_validation_examples)
            self.validation = (heldout.cache, caption_examples(heldout.table), heldout.images)
        self.clip_dir, self.clip_fingerprint = Path(pack.clip_dir), pack.clip_fingerprint

    @property
    def num_train_examples(self) -> int:
        return len(self.cache)

    def _noised(self, images: torch.Tensor, indices: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(x_t, noise, timesteps)`: the images at `indices` in [-1, 1], noised at random training timesteps."""
        x_start = to_unit_range(images[indices])  # (B, 3, H, W)
        noise = torch.randn(x_start.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(indices),), generator=generator)
        return self.noise_scheduler.add_noise(x_start, noise, timesteps), noise, timesteps

    def diffusion_loss(
        self, model: nn.Module, cache: EmbeddingCache, images: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor,
        drop_image: torch.Tensor, drop_text: torch.Tensor | None, generator: torch.Generator,
    ) -> torch.Tensor:
        """(Min-SNR-weighted) MSE between the true and the predicted noise at random timesteps."""
        x_t, noise, timesteps = self._noised(images, indices, generator)
        inputs = (x_t, timesteps, cache.image_embeds[indices], drop_image, *cache.conditioning(rows, drop_text))
        device = model_device(model)  # drawn on the CPU (the same draws on any device), then moved
        pred = model(*(x.to(device) for x in inputs))
        return epsilon_loss(pred, noise.to(device), timesteps, self.noise_scheduler, self.config.snr_gamma)

    def distillation_loss(
        self, model: nn.Module, indices: torch.Tensor, rows: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """(Min-SNR-weighted) MSE between the model's conditional prediction and the teacher's guided one,
        `uncond + w * (cond - uncond)` (the unconditional branch: null image embedding and empty caption, as sampling)."""
        x_t, _, timesteps = self._noised(self.images, indices, generator)
        batch = len(indices)
        keep, drop = torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)
        image_embeds = self.cache.image_embeds[indices]
        cond = (x_t, timesteps, image_embeds, keep, *self.cache.conditioning(rows, None))
        uncond = (x_t, timesteps, image_embeds, drop, *self.cache.conditioning(rows, drop))
        device = model_device(model)
        with torch.no_grad():
            doubled = [torch.cat([u, c]).to(device) for u, c in zip(uncond, cond)]
            teacher_uncond, teacher_cond = self.teacher(*doubled).chunk(2)
            target = teacher_uncond + self.config.distill_guidance_scale * (teacher_cond - teacher_uncond)
        pred = model(*(x.to(device) for x in cond))
        return epsilon_loss(pred, target.float(), timesteps, self.noise_scheduler, self.config.snr_gamma)

    def loss(self, model: nn.Module, indices: torch.Tensor, generator: torch.Generator, rng: random.Random) -> torch.Tensor:
        rows = sample_caption_rows(self.cache, self.examples, indices, rng)
        if self.teacher is not None:
            return self.distillation_loss(model, indices, rows, generator)
        drop_image = torch.rand(len(indices), generator=generator) < self.config.image_drop_prob
        drop_text = torch.rand(len(indices), generator=generator) < self.config.text_drop_prob
        return self.diffusion_loss(model, self.cache, self.images, indices, rows, drop_image, drop_text, generator)

    def validate(self, model: nn.Module, step: int, output_dir: Path) -> dict[str, float]:
        """Held-out loss (fixed noise) and a grid: held-out images (top) and their decodings from z_i + caption."""
        metrics: dict[str, float] = {}
        generator = torch.Generator().manual_seed(self.config.seed)
        count = self.config.num_validation_examples or 64
        indices = torch.arange(min(count, len(self.cache)))
        rows = primary_caption_rows(self.cache, self.examples, indices)
        no_drop = torch.zeros(len(indices), dtype=torch.bool)
        metrics["train_loss"] = self.diffusion_loss(
            model, self.cache, self.images, indices, rows, no_drop, None, generator).item()
        cache, examples, images = self.validation or (self.cache, self.examples, self.images)
        indices = torch.arange(min(count, len(cache)))
        rows = primary_caption_rows(cache, examples, indices)
        generator = torch.Generator().manual_seed(self.config.seed)
        if self.validation is not None:
            no_drop = torch.zeros(len(indices), dtype=torch.bool)
            metrics["heldout_loss"] = self.diffusion_loss(
                model, cache, images, indices, rows, no_drop, None, generator).item()
        shown = indices[: self.config.num_validation_images]
        samples = sample_decoder_images(
            model, cache.image_embeds[shown], text=cache.conditioning(rows[: len(shown)]),
            empty=cache.empty_conditioning(), num_inference_steps=self.config.validation_inference_steps,
            guidance_scale=1.0 if self.teacher is not None else self.config.validation_guidance_scale,
            generator=generator,  # a guidance-distilled decoder is sampled unguided
        )
        grid_dir = output_dir / "samples"
        grid_dir.mkdir(exist_ok=True)
        save_image_grid([images[shown], to_uint8(samples)], grid_dir / f"decoder-step-{step:07d}.png")
        return metrics

    def load_weights(self, model: nn.Module, folder: Path) -> None:
        """`decoder/` and `text_proj/`."""
        load_component(model.decoder, folder / "decoder")
        load_component(model.text_proj, folder / "text_proj")

    def save_final(self, model: nn.Module, directory: Path) -> None:
        """`decoder/`, `text_proj/` and `clip_reference.json`."""
        model.decoder.save_pretrained(directory / "decoder", safe_serialization=True)
        model.text_proj.save_pretrained(directory / "text_proj", safe_serialization=True)
        write_clip_reference(directory, self.clip_dir, self.clip_fingerprint)


def train_decoder(config: DecoderTrainingConfig, resume: bool = False) -> Path:
    """Train the decoder and text projection on the CLIP run `config.clip_dir`; returns the run folder."""
    return run_training(DecoderStage(config), resume=resume)
