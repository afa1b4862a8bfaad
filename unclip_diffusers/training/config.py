"""Training settings of every stage as dataclasses, with named presets (`tiny` for tests, `small` for the release).

A run writes its settings and the full model config to `OUTPUT_DIR/config.json`, so a run folder says what it is.
Model sizes live in `unclip_diffusers.configs`; a training preset names the model preset it trains.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..configs import UnCLIPModelConfig, get_model_config
from .augment import AugmentationSettings

if TYPE_CHECKING:
    from .degradation import DegradationSettings

STAGES = ("clip", "prior", "decoder", "upsampler", "upsampler2")
MIXED_PRECISION_CHOICES = ("no", "bf16", "fp16")
LR_SCHEDULER_CHOICES = ("constant", "constant_with_warmup", "linear", "cosine")


@dataclass
class TrainingConfig:
    """Settings every stage shares."""

    model_preset: str = "tiny"  # model sizes from unclip_diffusers.configs.MODEL_PRESETS
    data_path: str = "data/emoji"  # a saved DatasetDict, any save_to_disk dataset, or an imagefolder
    image_column: str = "image"
    caption_column: str = "caption"
    output_dir: str = ""  # run folder; empty = runs/<stage>-<model_preset>
    seed: int = 0  # every random draw of the run derives from it
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 32  # examples per process per micro-step
    gradient_accumulation_steps: int = 1  # micro-steps per optimizer step
    learning_rate: float = 3e-4
    lr_scheduler: str = "cosine"  # one of LR_SCHEDULER_CHOICES
    lr_warmup_steps: int = 100
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0  # applied to weight matrices only, never to biases, norms or embeddings of rank 1
    max_grad_norm: float = 1.0  # 0 disables clipping
    mixed_precision: str = "no"  # "bf16" = autocast (measured per stage on this CPU, see README "Training")
    ema_decay: float = 0.9999  # upper bound of the EMA decay
    ema_power: float = 0.75  # EMA warm-up: decay = 1 - (1 + step) ** -power, capped at ema_decay
    checkpoint_every: int = 200  # optimizer steps between checkpoints (a SIGKILL loses at most these)
    checkpoints_total_limit: int = 2  # older checkpoint-<step> folders are deleted
    validate_every: int = 1000  # optimizer steps between validations (and at the end); 0 = only at the end
    log_every: int = 10  # optimizer steps between metrics.jsonl lines
    num_threads: int = 0  # torch intra-op threads per process; 0 keeps torch's default
    max_train_examples: int = 0  # use only the first N training examples (overfitting, smoke runs); 0 = all
    num_validation_examples: int = 64  # held-out examples used by validation
    init_from: str = ""  # start from these weights (training/warm_start.py): a final/, snapshot or pipeline folder
    # Family-balanced batches (data/sampling.py): 0 = every image equally likely; 1 = every family (a concept with its
    # skin-tone and gender variants) equally likely, its images sharing the family's weight; in between a family of
    # n images weighs n ** (1 - family_balance). Needs the dataset's `family` column when > 0.
    family_balance: float = 0.0
    # Wall-clock budget of the run in minutes, counted from its start (setup and embedding caches included: a lent
    # GPU's lease counts them too): when it is spent, the run writes
    # checkpoint-<step> and snapshot-<step>/ (the EMA weights, continue with --init_from or --resume) and stops
    # before max_steps. 0 = no budget.
    max_minutes: float = 0.0

    stage = ""  # class attribute, set by each subclass

    def validate(self) -> None:
        """Raise a `ValueError` naming the first bad setting."""
        get_model_config(self.model_preset)
        positive = ["max_steps", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "log_every"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ["lr_warmup_steps", "validate_every", "num_threads", "max_train_examples", "num_validation_examples"]:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if not 0.0 <= self.family_balance <= 1.0:
            raise ValueError(f"family_balance must be in [0, 1] (0: images equally likely, 1: families), got "
                             f"{self.family_balance}.")
        if self.max_minutes < 0:
            raise ValueError(f"max_minutes must be >= 0 (0 = no time budget), got {self.max_minutes}.")
        if self.checkpoints_total_limit < 1:
            raise ValueError(f"checkpoints_total_limit must be >= 1, got {self.checkpoints_total_limit}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION_CHOICES}, got {self.mixed_precision!r}.")
        if self.lr_scheduler not in LR_SCHEDULER_CHOICES:
            raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULER_CHOICES}, got {self.lr_scheduler!r}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        for name in [f.name for f in fields(self) if f.name.endswith("_prob")]:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}.")

    @property
    def model_config(self) -> UnCLIPModelConfig:
        return get_model_config(self.model_preset)

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir or os.path.join("runs", f"{self.stage}-{self.model_preset}"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CLIPTrainingConfig(TrainingConfig):
    """CLIP: symmetric contrastive loss over the batch with a learnable temperature."""

    stage = "clip"
    learning_rate: float = 5e-4
    weight_decay: float = 0.2  # CLIP paper
    max_logit_scale: float = 100.0  # the temperature is clamped so logits are scaled by at most this (CLIP paper)
    # 1 = batches of random examples. k > 1 = batches of concept groups, up to k styles of each concept together, so
    # the contrastive loss must tell a concept's styles apart (in random batches other styles nearly always differ in
    # concept too, and style barely counts). Needs the dataset's `concept` column. With family_balance the groups are
    # drawn by the summed balance weights of their rows, so families stay equally likely.
    styles_per_concept: int = 1
    # Count every pair of the same concept in a batch as a match (any style, any caption), not only identical
    # caption texts: the image tower learns what a thing is across art styles, which the evaluator's concept top-1
    # asks. Not for the generation CLIP, whose image embeddings must keep the style. Needs the `concept` column;
    # with styles_per_concept > 1 each batch holds such pairs.
    concept_positives: bool = False
    # Locked-image tuning (LiT, Zhai et al. 2022): a folder (a CLIP run's final/, a snapshot or a pipeline folder)
    # whose image tower is loaded and frozen; only the text tower and the temperature train, so every image
    # embedding (and the decoder trained on them) stays valid. Empty = train both towers.
    locked_image_tower: str = ""
    # Warm start of the text tower from an older CLIP (a folder like locked_image_tower's) whose vocabulary or context
    # may be smaller (training/warm_start.py load_text_tower): shared token rows, positions, layers, final norm and
    # projection are copied. With locked_image_tower this is LiT from the old text side. Empty = a fresh text tower.
    init_text_from: str = ""
    # Probability that a step uses an example's primary caption ("cat, Twemoji style") instead of one drawn from all
    # its captions. 0 = always drawn (the generation CLIP). The evaluator scores against primary-style English
    # captions, and with ~64 mostly non-English captions per image it sees each English wording rarely, so it trains
    # with a share of primary captions.
    primary_caption_prob: float = 0.0
    # Image augmentation of the towers being trained (training/augment.py), so the image tower generalises to styles
    # it has not seen a concept in (the evaluator): each image is a random resized crop keeping at least this share
    # of its area (1.0 = none), with brightness, contrast and saturation jittered by up to `augment_color_jitter`.
    # Ignored with locked_image_tower (the frozen tower's embeddings are fixed).
    augment_min_crop_area: float = 1.0
    augment_color_jitter: float = 0.0

    def validate(self) -> None:
        super().validate()
        self.augmentation  # raises on out-of-range settings
        if self.styles_per_concept < 1:
            raise ValueError(f"styles_per_concept must be >= 1 (1 = random batches), got {self.styles_per_concept}.")
        if self.locked_image_tower and not Path(self.locked_image_tower).is_dir():
            raise ValueError(f"locked_image_tower: {self.locked_image_tower!r} is not a folder.")
        if self.init_text_from and not Path(self.init_text_from).is_dir():
            raise ValueError(f"init_text_from: {self.init_text_from!r} is not a folder.")
        if self.init_text_from and self.init_from:
            raise ValueError("init_text_from warm-starts the text tower and init_from the whole model; set one of them.")

    @property
    def augmentation(self) -> AugmentationSettings:
        """The image augmentation these settings ask for (training/augment.py)."""
        return AugmentationSettings(min_crop_area=self.augment_min_crop_area, color_jitter=self.augment_color_jitter)


def _check_cache_captions(value: int) -> None:
    if value < 0:
        raise ValueError(f"cache_captions_per_image must be >= 0 (0 = all captions), got {value}.")


@dataclass
class PriorTrainingConfig(TrainingConfig):
    """Diffusion prior: x0-prediction (MSE) of the standardised CLIP image embedding."""

    stage = "prior"
    clip_dir: str = ""  # a CLIP run folder; empty = runs/clip-<model_preset>
    # Captions per image the embedding cache keeps (training/embeddings.py cached_captions): the primary one plus
    # K - 1 others drawn once (seeded), and training draws among those; 0 = all (~30 GB for ~1M distinct captions
    # at 64 tokens; the multilingual data wants 8). CLIP training always draws from all captions.
    cache_captions_per_image: int = 0
    text_drop_prob: float = 0.1  # caption replaced by the empty prompt (classifier-free guidance)
    weight_decay: float = 0.01

    def validate(self) -> None:
        super().validate()
        _check_cache_captions(self.cache_captions_per_image)


@dataclass
class DecoderTrainingConfig(TrainingConfig):
    """Base decoder UNet + text projection: epsilon prediction, fixed variance (no learned-variance VLB term)."""

    stage = "decoder"
    clip_dir: str = ""
    cache_captions_per_image: int = 0  # as the prior's
    image_drop_prob: float = 0.1  # image embedding replaced by text_proj's learned null embedding
    text_drop_prob: float = 0.5  # caption replaced by the empty prompt, independently of the image drop
    learning_rate: float = 2e-4
    validation_inference_steps: int = 10  # DPMSolver steps for the validation grid
    validation_guidance_scale: float = 3.0
    num_validation_images: int = 8  # images in the validation grid
    snr_gamma: float = 0.0  # Min-SNR-γ loss weighting (training/losses.py); 0 = plain epsilon MSE
    # Guidance distillation (Meng et al. 2023): a decoder run folder (final/ or snapshot-<step>/) whose guided
    # prediction at `distill_guidance_scale` the model learns to give in one conditional forward pass ("" = off).
    distill_from: str = ""
    distill_guidance_scale: float = 8.0  # the pipeline's default decoder guidance

    def validate(self) -> None:
        super().validate()
        _check_cache_captions(self.cache_captions_per_image)
        if self.snr_gamma < 0:
            raise ValueError(f"snr_gamma must be >= 0 (0 disables the weighting), got {self.snr_gamma}.")
        if self.distill_from and self.distill_guidance_scale < 1.0:
            raise ValueError(f"distill_guidance_scale must be >= 1, got {self.distill_guidance_scale}.")


@dataclass
class SuperResTrainingConfig(TrainingConfig):
    """Settings both upsamplers share: epsilon prediction on random crops of a high-resolution column."""

    high_res_column: str = "image_256"  # high-resolution source images; rows where it is None are skipped
    crop_size: int = 0  # training crop of the high-res target; 0 = the full image
    learning_rate: float = 2e-4
    validation_inference_steps: int = 10
    num_validation_images: int = 4
    validation_strength: float = 0.3  # also validate starting from the noised input (the release's super_res_strength)
    snr_gamma: float = 0.0  # Min-SNR-γ loss weighting (training/losses.py); 0 = plain epsilon MSE

    def validate(self) -> None:
        super().validate()
        if self.snr_gamma < 0:
            raise ValueError(f"snr_gamma must be >= 0 (0 disables the weighting), got {self.snr_gamma}.")
        if self.crop_size < 0 or self.crop_size % 8:
            raise ValueError(f"crop_size must be 0 or a positive multiple of 8, got {self.crop_size}.")
        if not 0.0 < self.validation_strength <= 1.0:
            raise ValueError(f"validation_strength must be in (0, 1], got {self.validation_strength}.")


@dataclass
class UpsamplerTrainingConfig(SuperResTrainingConfig):
    """x4 upsampler: epsilon prediction on random crops, conditioned on a blurred, re-upsampled low-res image."""

    stage = "upsampler"
    blur_kernel_size: int = 3  # Gaussian blur of the low-res conditioning image (the paper: 3, sigma 0.6)
    blur_sigma: float = 0.6

    def validate(self) -> None:
        super().validate()
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be a positive odd number, got {self.blur_kernel_size}.")
        if self.blur_sigma <= 0:
            raise ValueError(f"blur_sigma must be > 0, got {self.blur_sigma}.")


@dataclass
class Upsampler2TrainingConfig(SuperResTrainingConfig):
    """The cascade's second upsampler (x2, 128 → 256 px in `small`): random crops, BSR-like degraded input."""

    stage = "upsampler2"
    # The degradation of the input (training/degradation.py; ranges of BSR, Zhang et al. 2021, milder noise and JPEG
    # for flat emoji art). The scale is the ratio of the two upsamplers' output sizes.
    blur_prob: float = 1.0  # chance of a Gaussian blur before the downscale
    blur_sigma_min: float = 0.2  # blur sigma range, in high-resolution pixels
    blur_sigma_max: float = 2.0
    anisotropic_prob: float = 0.5  # chance a blur has two sigmas and a random angle
    noise_level_max: float = 10.0  # Gaussian noise sigma drawn from [0, noise_level_max] / 255
    jpeg_prob: float = 0.75  # chance of a JPEG round trip at a random quality
    jpeg_quality_min: int = 40
    jpeg_quality_max: int = 95

    def degradation(self, scale: int) -> DegradationSettings:
        """The degradation these settings describe, for a down-scale factor `scale`."""
        from .degradation import DegradationSettings

        return DegradationSettings(
            scale=scale, blur_prob=self.blur_prob, blur_sigma_min=self.blur_sigma_min,
            blur_sigma_max=self.blur_sigma_max, anisotropic_prob=self.anisotropic_prob,
            noise_level_max=self.noise_level_max, jpeg_prob=self.jpeg_prob, jpeg_quality_min=self.jpeg_quality_min,
            jpeg_quality_max=self.jpeg_quality_max,
        )

    def validate(self) -> None:
        super().validate()
        model = get_model_config(self.model_preset)
        if model.super_res is None or model.super_res_second is None:
            raise ValueError(f"Model preset {self.model_preset!r} has no second upsampler (super_res_second) or no "
                             "first one for it to follow; pick a preset with both, e.g. 'small' or 'tiny'.")
        self.degradation(second_stage_scale(model))  # raises a ValueError naming a bad range


def second_stage_scale(model: UnCLIPModelConfig) -> int:
    """The second upsampler's factor: its output size over the first one's (a whole number, e.g. 256 / 128 = 2)."""
    first, second = model.super_res.sample_size, model.super_res_second.sample_size
    if second <= first or second % first:
        raise ValueError(f"The second upsampler's size {second} must be a whole multiple (> 1) of the first one's "
                         f"{first}.")
    return second // first


CONFIG_CLASSES: dict[str, type[TrainingConfig]] = {
    "clip": CLIPTrainingConfig,
    "prior": PriorTrainingConfig,
    "decoder": DecoderTrainingConfig,
    "upsampler": UpsamplerTrainingConfig,
    "upsampler2": Upsampler2TrainingConfig,
}

# Per stage and preset, the values that differ from the dataclass defaults. `small` is sized from measurements on a
# 2-core CPU with AMX (see README "Training"); `tiny` trains in seconds for tests.
_TINY = dict(model_preset="tiny", max_steps=20, batch_size=8, lr_warmup_steps=2, checkpoint_every=10, validate_every=0,
             log_every=1, num_validation_examples=8)
_PRESET_VALUES: dict[str, dict[str, dict[str, Any]]] = {
    "clip": {
        "tiny": dict(_TINY, learning_rate=1e-3),
        "small": dict(model_preset="small", max_steps=2000, batch_size=128, lr_warmup_steps=200, checkpoint_every=250,
                      validate_every=500, num_validation_examples=512, mixed_precision="bf16"),
    },
    "prior": {
        "tiny": dict(_TINY, learning_rate=1e-3),
        "small": dict(model_preset="small", max_steps=4000, batch_size=128, learning_rate=3e-4, lr_warmup_steps=300,
                      checkpoint_every=500, validate_every=1000, num_validation_examples=512, mixed_precision="bf16"),
    },
    "decoder": {
        "tiny": dict(_TINY, learning_rate=1e-3, num_validation_images=4, validation_inference_steps=2),
        "small": dict(model_preset="small", max_steps=40000, batch_size=32, lr_warmup_steps=500, checkpoint_every=250,
                      validate_every=2500, mixed_precision="bf16", snr_gamma=5.0),
    },
    "upsampler": {
        "tiny": dict(_TINY, learning_rate=1e-3, crop_size=32, num_validation_images=2, validation_inference_steps=2),
        "small": dict(model_preset="small", max_steps=12000, batch_size=32, crop_size=64, lr_warmup_steps=500,
                      checkpoint_every=250, validate_every=2500, mixed_precision="bf16"),
    },
    # 64-px crops of the 256-px art (a quarter of an image per example); validation upsamples whole 128-px images.
    "upsampler2": {
        "tiny": dict(_TINY, learning_rate=1e-3, crop_size=32, num_validation_images=2, validation_inference_steps=2),
        "small": dict(model_preset="small", max_steps=8000, batch_size=32, crop_size=64, lr_warmup_steps=500,
                      checkpoint_every=250, validate_every=2000, num_validation_examples=32, mixed_precision="bf16"),
    },
}
TRAINING_PRESETS = ("tiny", "small")


def get_training_config(stage: str, preset: str = "tiny", **overrides: Any) -> TrainingConfig:
    """The training config of `stage` (one of `STAGES`) for a named preset, with overrides."""
    if stage not in CONFIG_CLASSES:
        raise ValueError(f"Unknown stage {stage!r}; choose one of {list(STAGES)}.")
    if preset not in _PRESET_VALUES[stage]:
        raise ValueError(f"Unknown training preset {preset!r} for stage {stage!r}; choose one of {list(TRAINING_PRESETS)}.")
    cls = CONFIG_CLASSES[stage]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"Unknown {stage} training setting(s) {unknown}; known: {sorted(known)}.")
    config = replace(cls(**_PRESET_VALUES[stage][preset]), **overrides)
    config.validate()
    return config


def config_to_json(config: TrainingConfig) -> dict[str, Any]:
    """The JSON written as `config.json`: stage, training settings and the full model config they train."""
    return {"stage": config.stage, "training": config.to_dict(), "model": config.model_config.to_dict()}


def save_config(config: TrainingConfig, path: str | os.PathLike) -> None:
    """Write `config_to_json(config)` to `path` (a file)."""
    Path(path).write_text(json.dumps(config_to_json(config), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_config(path: str | os.PathLike) -> tuple[TrainingConfig, UnCLIPModelConfig]:
    """Read a run's `config.json` back: the training config and the model config it was trained with."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("stage") not in CONFIG_CLASSES:
        raise ValueError(f"{path} is not a training config.json (stage {data.get('stage')!r}).")
    cls = CONFIG_CLASSES[data["stage"]]
    known = {f.name for f in fields(cls)}
    config = cls(**{k: v for k, v in data["training"].items() if k in known})
    return config, UnCLIPModelConfig.from_dict(data["model"])
