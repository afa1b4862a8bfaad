"""Training every unCLIP stage (CLIP, prior, decoder, upsampler, second upsampler) with accelerate, and assembling
the pipeline.

Console scripts: `unclip-train {clip,prior,decoder,upsampler,upsampler2,embed,export,restore,pack} --config
{tiny,small} ...` and `unclip-assemble`.
Names are imported lazily so `unclip-train` can set up the allocator before torch loads.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "get_training_config": ".config",
    "TrainingConfig": ".config",
    "CLIPTrainingConfig": ".config",
    "PriorTrainingConfig": ".config",
    "DecoderTrainingConfig": ".config",
    "UpsamplerTrainingConfig": ".config",
    "Upsampler2TrainingConfig": ".config",
    "train_clip": ".clip",
    "train_prior": ".prior",
    "train_decoder": ".decoder",
    "train_upsampler": ".upsampler",
    "train_upsampler2": ".upsampler2",
    "assemble_components": ".assemble",
    "load_or_compute_embeddings": ".embeddings",
    "export_checkpoint": ".export",
    "pack_stage": ".pack",
    "load_pack": ".pack",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
