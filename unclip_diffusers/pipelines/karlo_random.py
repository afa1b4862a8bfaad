"""A randomly initialised, reduced-width folder in Karlo's exact layout (for tests and trying the Karlo loader)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import torch
import transformers
from diffusers import ModelMixin, PriorTransformer, UnCLIPScheduler

from ..configs import build_decoder, build_super_res, build_tokenizer, clip_text_config, get_model_config
from ..models import UnCLIPTextProjection
from .karlo import KARLO_MODEL_INDEX


def write_random_karlo_layout(directory: str | os.PathLike, preset: str = "tiny", seed: int = 0) -> str:
    """Write a randomly initialised, reduced-width folder with Karlo's exact layout and stock class names.

    For tests and for trying the Karlo loader offline: `prior` is a stock `PriorTransformer` with non-trivial
    `clip_mean`/`clip_std`, `text_proj` a stock `UnCLIPTextProjModel` where diffusers still ships it, the decoder
    predicts a learned variance (6 channels), there are two upsamplers and three `UnCLIPScheduler`s configured as
    Karlo's. The global RNG state is restored afterwards.
    """
    config = get_model_config(preset)
    config = replace(config, decoder=replace(config.decoder, learned_variance=True))
    if config.super_res is None:
        raise ValueError(f"Preset {preset!r} has no super-resolution stage; Karlo has two.")
    os.makedirs(directory, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build_tokenizer(config.clip).save_pretrained(os.path.join(directory, "tokenizer"))
        transformers.CLIPTextModelWithProjection(clip_text_config(config.clip)).save_pretrained(
            os.path.join(directory, "text_encoder"), safe_serialization=True)
        prior = PriorTransformer(num_attention_heads=config.prior.num_attention_heads,
                                 attention_head_dim=config.prior.attention_head_dim,
                                 num_layers=config.prior.num_layers, embedding_dim=config.clip.embed_dim,
                                 num_embeddings=config.clip.max_text_length, additional_embeddings=4)
        with torch.no_grad():
            prior.clip_mean.normal_(0.0, 0.1)
            prior.clip_std.uniform_(0.5, 1.5)
        prior.save_pretrained(os.path.join(directory, "prior"))
        text_proj_args = dict(clip_extra_context_tokens=4, clip_embeddings_dim=config.clip.embed_dim,
                              time_embed_dim=config.decoder.block_out_channels[0] * 4,
                              cross_attention_dim=config.decoder.block_out_channels[-1])
        _stock_text_projection(text_proj_args).save_pretrained(os.path.join(directory, "text_proj"))
        build_decoder(config).save_pretrained(os.path.join(directory, "decoder"))
        build_super_res(config).save_pretrained(os.path.join(directory, "super_res_first"))
        build_super_res(config).save_pretrained(os.path.join(directory, "super_res_last"))
    schedulers = {
        "prior_scheduler": UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                           clip_sample_range=5.0),
        "decoder_scheduler": UnCLIPScheduler(variance_type="learned_range", prediction_type="epsilon"),
        "super_res_scheduler": UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon"),
    }
    for name, scheduler in schedulers.items():
        scheduler.save_pretrained(os.path.join(directory, name))
    with open(os.path.join(directory, "model_index.json"), "w", encoding="utf-8") as f:
        json.dump(KARLO_MODEL_INDEX, f, indent=2)
    _set_class_name(os.path.join(directory, "text_proj", "config.json"), "UnCLIPTextProjModel")
    return str(directory)


def _stock_text_projection(kwargs: dict[str, int]) -> ModelMixin:
    """diffusers' own (deprecated) `UnCLIPTextProjModel` when importable, else ours (same parameters)."""
    try:
        from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
    except ImportError:
        return UnCLIPTextProjection(**kwargs)
    return UnCLIPTextProjModel(**kwargs)


def _set_class_name(config_path: str, class_name: str) -> None:
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["_class_name"] = class_name
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
