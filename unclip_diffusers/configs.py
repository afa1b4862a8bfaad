"""Model-size presets for every unCLIP component and the factory that builds randomly initialised components.

`tiny` is for tests (seconds on a CPU); `small` is the CPU-trainable release model (base 32 px, one x4 upsampler
to 128 px, and the optional second upsampler x2 to 256 px, `super_res_second`). Training configs (steps, learning
rates) live in `unclip_diffusers.training.config` and name one of these presets.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel, UNet2DModel
from transformers import (
    CLIPImageProcessorPil,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from .models import UnCLIPPriorTransformer, UnCLIPTextProjection
from .tokenizer import build_clip_tokenizer, clip_vocab_size

NUM_TRAIN_TIMESTEPS = 1000
BETA_SCHEDULE = "squaredcos_cap_v2"  # the cosine schedule of improved DDPM, as in the paper


# The defaults below are the `small` preset, sized by measured training throughput on a 2-core CPU with AMX
# (README "Training"): CLIP 7.8M parameters, prior 5.1M, decoder 6.2M (+0.3M text projection), upsampler 4.9M.


@dataclass
class CLIPSize:
    embed_dim: int = 256  # CLIP projection width == text width (the prior and text_proj read token encodings at this width)
    num_merges: int = 7678  # BPE merges kept: vocabulary = 512 + merges + 2 = 8,192 ids
    max_text_length: int = 32  # tokens per caption; emoji captions are short
    # merges learned from the non-English captions after CLIP's (assets/clip_bpe/extra_merges.txt, needs
    # num_merges=7678); each adds one id. 0 = CLIP's merges only (every model trained before issue 20).
    extra_merges: int = 0
    text_layers: int = 3  # short captions: 3 layers train ~10% faster than 4
    text_heads: int = 4
    image_size: int = 64  # the CLIP image encoder's input resolution
    patch_size: int = 8
    vision_width: int = 256
    vision_layers: int = 4
    vision_heads: int = 4


@dataclass
class PriorSize:
    num_layers: int = 6
    num_attention_heads: int = 4
    attention_head_dim: int = 64  # inner width = heads * head_dim


@dataclass
class DecoderSize:
    sample_size: int = 32  # base image resolution
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    cross_attention_levels: tuple[bool, ...] = (False, True, True)  # which resolutions get cross-attention
    learned_variance: bool = False  # epsilon prediction with fixed variance; True doubles out_channels (Karlo-style)


@dataclass
class SuperResSize:
    sample_size: int = 128  # output resolution; the first upsampler's input is sample_size // 4
    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    norm_num_groups: int = 32  # GroupNorm groups; must divide every block width


@dataclass
class UnCLIPModelConfig:
    """Sizes of every component of one unCLIP model."""

    clip: CLIPSize = field(default_factory=CLIPSize)
    prior: PriorSize = field(default_factory=PriorSize)
    decoder: DecoderSize = field(default_factory=DecoderSize)
    super_res: SuperResSize | None = field(default_factory=SuperResSize)
    # The cascade's second upsampler (the paper's 256 -> 1024, here 128 -> 256 on random crops, BSR-degraded input).
    # None = no second stage; runs saved before it existed read back as None.
    super_res_second: SuperResSize | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UnCLIPModelConfig":
        def tuples(d: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        return cls(
            clip=CLIPSize(**data["clip"]),
            prior=PriorSize(**data["prior"]),
            decoder=DecoderSize(**tuples(data["decoder"])),
            super_res=SuperResSize(**tuples(data["super_res"])) if data.get("super_res") else None,
            super_res_second=(SuperResSize(**tuples(data["super_res_second"])) if data.get("super_res_second")
                              else None),
        )


# The second upsampler doubles the first one's output; it has no attention and one level less than the first (its
# job is local: sharpen and clean up an image that is already drawn), so it trains on 64-px crops at about the first
# one's cost per image.
SMALL_SUPER_RES_SECOND = SuperResSize(sample_size=256, block_out_channels=(32, 64, 128), layers_per_block=1,
                                      norm_num_groups=32)

MODEL_PRESETS: dict[str, UnCLIPModelConfig] = {
    "small": UnCLIPModelConfig(super_res_second=SMALL_SUPER_RES_SECOND),
    "tiny": UnCLIPModelConfig(
        clip=CLIPSize(embed_dim=32, num_merges=1000, max_text_length=77, text_layers=2, text_heads=2, image_size=32,
                      patch_size=8, vision_width=32, vision_layers=2, vision_heads=2),
        prior=PriorSize(num_layers=2, num_attention_heads=2, attention_head_dim=16),
        decoder=DecoderSize(sample_size=16, block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=8,
                            cross_attention_levels=(False, True)),
        super_res=SuperResSize(sample_size=64, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8),
        super_res_second=SuperResSize(sample_size=128, block_out_channels=(8, 16), layers_per_block=1,
                                      norm_num_groups=4),
    ),
}


# The multilingual text side (issue 20): CLIP's 7,678 merges + 8,190 learned from the non-English captions (16,382
# ids) and a 64-token context (every language's captions p99 <= 30 tokens, benchmarks/RESULTS.md). The image tower,
# decoder and upsampler sizes are `small`'s, so a LiT run (`--locked_image_tower`) keeps `small`'s image embeddings;
# the prior's token positions follow max_text_length and it is retrained. A separate preset, not a change to
# `small`: every saved `small` run is rebuilt from the preset name and must keep its recorded sizes.
MODEL_PRESETS["tiny-multilingual"] = replace(
    MODEL_PRESETS["tiny"], clip=replace(MODEL_PRESETS["tiny"].clip, num_merges=7678, extra_merges=8190)
)
MODEL_PRESETS["small-multilingual"] = replace(
    MODEL_PRESETS["small"], clip=replace(MODEL_PRESETS["small"].clip, extra_merges=8190, max_text_length=64)
)


# The independent evaluator CLIP (`unclip_diffusers.evaluation`): wider and deeper than the generation CLIP of the same
# name, trained separately with another seed, never used for generation. Only the `clip` sizes are used.
MODEL_PRESETS["evaluator-tiny"] = replace(
    MODEL_PRESETS["tiny"],
    clip=replace(MODEL_PRESETS["tiny"].clip, embed_dim=48, text_layers=3, text_heads=3, vision_width=48,
                 vision_layers=3, vision_heads=3),
)
MODEL_PRESETS["evaluator-small"] = replace(
    MODEL_PRESETS["small"],
    clip=replace(MODEL_PRESETS["small"].clip, embed_dim=320, text_layers=6, text_heads=5, vision_width=320,
                 vision_layers=6, vision_heads=5),
)


def get_model_config(name_or_config: str | UnCLIPModelConfig) -> UnCLIPModelConfig:
    """Look up a preset by name (a deep copy, safe to modify) or pass a config through."""
    if isinstance(name_or_config, UnCLIPModelConfig):
        return name_or_config
    if name_or_config not in MODEL_PRESETS:
        raise ValueError(f"Unknown model preset {name_or_config!r}; choose one of {sorted(MODEL_PRESETS)}.")
    return copy.deepcopy(MODEL_PRESETS[name_or_config])


def build_tokenizer(size: CLIPSize):
    return build_clip_tokenizer(size.num_merges, model_max_length=size.max_text_length, extra_merges=size.extra_merges)


def _clip_token_ids(size: CLIPSize) -> dict[str, int]:
    vocab = clip_vocab_size(size.num_merges, size.extra_merges)
    # CLIP pools the text at the end-of-text token; pad with it too, as OpenAI's tokenizer does.
    return {"vocab_size": vocab, "bos_token_id": vocab - 2, "eos_token_id": vocab - 1, "pad_token_id": vocab - 1}


def clip_text_config(size: CLIPSize) -> CLIPTextConfig:
    return CLIPTextConfig(
        **_clip_token_ids(size),
        hidden_size=size.embed_dim,
        intermediate_size=4 * size.embed_dim,
        projection_dim=size.embed_dim,
        num_hidden_layers=size.text_layers,
        num_attention_heads=size.text_heads,
        max_position_embeddings=size.max_text_length,
    )


def clip_vision_config(size: CLIPSize) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=size.vision_width,
        intermediate_size=4 * size.vision_width,
        projection_dim=size.embed_dim,
        num_hidden_layers=size.vision_layers,
        num_attention_heads=size.vision_heads,
        image_size=size.image_size,
        patch_size=size.patch_size,
    )


def build_image_processor(size: CLIPSize) -> CLIPImageProcessorPil:
    """CLIP's resize-centre-crop-normalise, in the PIL backend (no torchvision needed)."""
    return CLIPImageProcessorPil(
        size={"shortest_edge": size.image_size}, crop_size={"height": size.image_size, "width": size.image_size}
    )


def build_prior(config: UnCLIPModelConfig) -> UnCLIPPriorTransformer:
    return UnCLIPPriorTransformer(
        num_attention_heads=config.prior.num_attention_heads,
        attention_head_dim=config.prior.attention_head_dim,
        num_layers=config.prior.num_layers,
        embedding_dim=config.clip.embed_dim,
        num_embeddings=config.clip.max_text_length,
        additional_embeddings=4,
    )


def _decoder_time_dim(size: DecoderSize) -> int:
    return size.block_out_channels[0] * 4


def build_text_proj(config: UnCLIPModelConfig) -> UnCLIPTextProjection:
    width = config.decoder.block_out_channels[-1]
    return UnCLIPTextProjection(
        clip_extra_context_tokens=4,
        clip_embeddings_dim=config.clip.embed_dim,
        time_embed_dim=_decoder_time_dim(config.decoder),
        cross_attention_dim=width,
    )


def build_decoder(config: UnCLIPModelConfig) -> UNet2DConditionModel:
    size = config.decoder
    if len(size.cross_attention_levels) != len(size.block_out_channels):
        raise ValueError("cross_attention_levels needs one entry per block_out_channels entry.")
    down = tuple("SimpleCrossAttnDownBlock2D" if a else "ResnetDownsampleBlock2D" for a in size.cross_attention_levels)
    up = tuple("SimpleCrossAttnUpBlock2D" if a else "ResnetUpsampleBlock2D" for a in reversed(size.cross_attention_levels))
    return UNet2DConditionModel(
        sample_size=size.sample_size,
        in_channels=3,
        out_channels=6 if size.learned_variance else 3,
        down_block_types=down,
        up_block_types=up,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=size.block_out_channels,
        layers_per_block=size.layers_per_block,
        attention_head_dim=size.attention_head_dim,
        cross_attention_dim=size.block_out_channels[-1],
        class_embed_type="identity",
        resnet_time_scale_shift="scale_shift",
    )


def build_super_res(config: UnCLIPModelConfig, second: bool = False) -> UNet2DModel:
    """An upsampler without attention (x4, or with `second` the cascade's x2 stage): input is the noisy image
    concatenated with the upsampled low-res image, so it is fully convolutional (trained on crops, run on images)."""
    size = config.super_res_second if second else config.super_res
    if size is None:
        name = "second super-resolution stage (super_res_second)" if second else "super-resolution stage"
        raise ValueError(f"This model config has no {name}.")
    n = len(size.block_out_channels)
    return UNet2DModel(
        sample_size=size.sample_size,
        in_channels=6,
        out_channels=3,
        down_block_types=("ResnetDownsampleBlock2D",) * n,
        up_block_types=("ResnetUpsampleBlock2D",) * n,
        block_out_channels=size.block_out_channels,
        layers_per_block=size.layers_per_block,
        norm_num_groups=size.norm_num_groups,
        resnet_time_scale_shift="scale_shift",
        add_attention=False,
    )


def build_train_scheduler(prediction_type: str = "epsilon") -> DDPMScheduler:
    """The forward-process schedule every stage is trained with."""
    return DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_schedule=BETA_SCHEDULE,
        prediction_type=prediction_type,
        clip_sample=False,
    )


def build_sampling_scheduler(prediction_type: str = "epsilon") -> DPMSolverMultistepScheduler:
    """A fast multistep solver over the same schedule, the pipeline's default for every stage.

    Image stages (noise prediction) clip each predicted clean image to [-1, 1] (`thresholding` with
    `sample_max_value=1`, i.e. static clipping) and skip the last timesteps of the cosine schedule
    (`lambda_min_clipped`): at t = 999 its signal level is 5e-5, so the clean image implied by a noise prediction
    divides the prediction's error by it. Measured on the upsampler at 2,500 steps (`small`, 10 steps): held-out
    PSNR 4.6 dB without the clip, 15.9 dB with it. The prior samples unbounded embeddings and is not clipped.
    """
    pixels = prediction_type != "sample"
    return DPMSolverMultistepScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_schedule=BETA_SCHEDULE,
        prediction_type=prediction_type,
        solver_order=2,
        thresholding=pixels,
        sample_max_value=1.0,
        lambda_min_clipped=-5.1 if pixels else -float("inf"),
    )


def build_components(config: str | UnCLIPModelConfig = "tiny", second_upsampler: bool = False) -> dict[str, Any]:
    """Randomly initialised components of a full unCLIP pipeline, named as `UnCLIPPipeline` expects them.

    The prior predicts the clean embedding (`prediction_type="sample"`); decoder and upsamplers predict noise.
    `second_upsampler` also builds the cascade's second upsampler (`super_res_second`, from the config's size).
    Seed with `torch.manual_seed` first for reproducible weights.
    """
    config = get_model_config(config)
    components: dict[str, Any] = {
        "tokenizer": build_tokenizer(config.clip),
        "text_encoder": CLIPTextModelWithProjection(clip_text_config(config.clip)),
        "image_encoder": CLIPVisionModelWithProjection(clip_vision_config(config.clip)),
        "feature_extractor": build_image_processor(config.clip),
        "prior": build_prior(config),
        "text_proj": build_text_proj(config),
        "decoder": build_decoder(config),
        "prior_scheduler": build_sampling_scheduler("sample"),
        "decoder_scheduler": build_sampling_scheduler("epsilon"),
        "super_res_first": None,
        "super_res_scheduler": None,
    }
    if config.super_res is not None:
        components["super_res_first"] = build_super_res(config)
        components["super_res_scheduler"] = build_sampling_scheduler("epsilon")
    if second_upsampler:
        if config.super_res is None:
            raise ValueError("second_upsampler=True needs a first upsampler: the config's super_res is None.")
        components["super_res_second"] = build_super_res(config, second=True)
        components["super_res_second_scheduler"] = build_sampling_scheduler("epsilon")
    return components
