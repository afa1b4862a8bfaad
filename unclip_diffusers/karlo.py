"""Load checkpoints laid out like `kakaobrain/karlo-v1-alpha` into `UnCLIPPipeline`.

Karlo's `model_index.json` names diffusers' stock classes: `PriorTransformer`, `UnCLIPTextProjModel` (deprecated and
no longer loadable through `DiffusionPipeline.from_pretrained`) and `UnCLIPScheduler`. Their weights and configs load
unchanged into `UnCLIPPriorTransformer` and `UnCLIPTextProjection` (same parameter names). Karlo was trained on raw,
unnormalised CLIP embeddings, so the pipeline is built with `normalize_embeddings=False`; its decoder predicts a
learned variance (6 output channels), which the pipeline's sampling loop handles; the last super-resolution step uses
`super_res_last`. Karlo ships no CLIP image encoder, so image variations raise a clear error.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

import diffusers
import torch
import transformers
from diffusers import ModelMixin, PriorTransformer, UnCLIPScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .configs import build_decoder, build_super_res, build_tokenizer, clip_text_config, get_model_config
from .models import UnCLIPPriorTransformer, UnCLIPTextProjection
from .pipelines import UnCLIPPipeline
from .pipelines.loading import read_model_index

# Stock class names in Karlo's model_index.json → the classes of this package that load their weights.
KARLO_CLASSES: dict[str, type] = {
    "PriorTransformer": UnCLIPPriorTransformer,
    "UnCLIPTextProjModel": UnCLIPTextProjection,
}

KARLO_MODEL_INDEX: dict[str, Any] = {
    "_class_name": "UnCLIPPipeline",
    "_diffusers_version": "0.12.0.dev0",
    "decoder": ["diffusers", "UNet2DConditionModel"],
    "decoder_scheduler": ["diffusers", "UnCLIPScheduler"],
    "prior": ["diffusers", "PriorTransformer"],
    "prior_scheduler": ["diffusers", "UnCLIPScheduler"],
    "super_res_first": ["diffusers", "UNet2DModel"],
    "super_res_last": ["diffusers", "UNet2DModel"],
    "super_res_scheduler": ["diffusers", "UnCLIPScheduler"],
    "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
    "text_proj": ["unclip", "UnCLIPTextProjModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
}


def is_karlo_layout(model_index: dict[str, Any]) -> bool:
    """Whether a `model_index.json` names Karlo's stock classes (as opposed to a folder saved by this package)."""
    def class_name(key: str) -> str | None:
        entry = model_index.get(key)
        return entry[1] if isinstance(entry, (list, tuple)) and len(entry) == 2 else None

    return class_name("text_proj") == "UnCLIPTextProjModel" or (
        class_name("prior") == "PriorTransformer" and (model_index.get("prior") or [None])[0] == "diffusers"
    )


def load_karlo_pipeline(folder: str | os.PathLike, torch_dtype: torch.dtype | None = None) -> UnCLIPPipeline:
    """Build an `UnCLIPPipeline` from a local folder with Karlo's layout (safetensors weights only)."""
    index = read_model_index(folder)
    if not is_karlo_layout(index):
        raise ValueError(
            f"{folder!s} does not look like a Karlo folder (no stock PriorTransformer/UnCLIPTextProjModel)."
        )
    components: dict[str, Any] = {"image_encoder": None, "feature_extractor": None, "super_res_first": None,
                                  "super_res_scheduler": None, "super_res_last": None}
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, (list, tuple)):
            continue
        library, class_name = entry
        if library is None:
            components[name] = None
            continue
        components[name] = _load_component(os.path.join(folder, name), library, class_name, torch_dtype)
    required = ["tokenizer", "text_encoder", "prior", "text_proj", "decoder", "prior_scheduler", "decoder_scheduler"]
    missing = [name for name in required if components.get(name) is None]
    if missing:
        raise ValueError(f"The Karlo folder {folder!s} lacks the components {missing}.")
    return UnCLIPPipeline(**components, normalize_embeddings=False)


def _load_component(path: str, library: str, class_name: str, torch_dtype: torch.dtype | None) -> Any:
    if class_name in KARLO_CLASSES:
        cls = KARLO_CLASSES[class_name]
    elif library in ("diffusers", "transformers"):
        cls = getattr(diffusers if library == "diffusers" else transformers, class_name, None)
    else:
        cls = None
    if cls is None:
        raise ValueError(f"Cannot map the Karlo component {class_name!r} (library {library!r}) at {path} to a class.")
    if issubclass(cls, SchedulerMixin):
        return cls.from_pretrained(path)
    if issubclass(cls, ModelMixin):
        kwargs = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
        return cls.from_pretrained(path, use_safetensors=True, **kwargs)
    if issubclass(cls, transformers.PreTrainedModel):
        kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}
        return cls.from_pretrained(path, use_safetensors=True, **kwargs)
    return cls.from_pretrained(path)  # tokenizers and processors


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
