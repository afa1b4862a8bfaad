"""Components of checkpoints laid out like `kakaobrain/karlo-v1-alpha`, for `UnCLIPPipeline.from_karlo`.

Karlo's `model_index.json` names diffusers' stock classes: `PriorTransformer`, `UnCLIPTextProjModel` (deprecated and
no longer loadable through `DiffusionPipeline.from_pretrained`) and `UnCLIPScheduler`. Their weights and configs load
unchanged into `UnCLIPPriorTransformer` and `UnCLIPTextProjection` (same parameter names). Karlo was trained on raw,
unnormalised CLIP embeddings, so the pipeline is built with `normalize_embeddings=False`; its decoder predicts a
learned variance (6 output channels), which the pipeline's sampling loop handles; the last super-resolution step uses
`super_res_last`. Karlo ships no CLIP image encoder, so image variations raise a clear error.
`karlo_random.py` writes a random folder in this layout for tests.
"""

from __future__ import annotations

import os
from typing import Any

import diffusers
import torch
import transformers
from diffusers import ModelMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..models import UnCLIPPriorTransformer, UnCLIPTextProjection

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


def karlo_components(
    folder: str | os.PathLike, model_index: dict[str, Any], torch_dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """The `UnCLIPPipeline` components of a local Karlo-layout folder (safetensors weights only), by name."""
    if not is_karlo_layout(model_index):
        raise ValueError(
            f"{folder!s} does not look like a Karlo folder (no stock PriorTransformer/UnCLIPTextProjModel)."
        )
    components: dict[str, Any] = {"image_encoder": None, "feature_extractor": None, "super_res_first": None,
                                  "super_res_scheduler": None, "super_res_last": None}
    for name, entry in model_index.items():
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
    return components


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
