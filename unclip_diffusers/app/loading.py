"""Loading the pipeline the app serves: a saved pipeline folder, the bundled release weights, or - until those exist -
a clearly labelled randomly initialised tiny model so the app still starts."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

PLACEHOLDER_WARNING = (
    "No trained weights were found, so this app runs a **randomly initialised tiny model**: its images are noise. "
    "Start it with `python app.py --model PATH` on a saved pipeline folder to see real samples."
)


@dataclass
class LoadedPipeline:
    """The pipeline and where it came from, for the page's header."""

    pipe: "object"
    source: str  # a folder path, or "random tiny model"
    placeholder: bool  # True when the weights are random: the UI shows a warning banner


def default_device() -> torch.device:
    """CUDA when present, else CPU (the Space runs on CPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_placeholder_pipeline(seed: int = 0):
    """A randomly initialised tiny `UnCLIPPipeline` (seeded, so every start shows the same noise)."""
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_components

    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG as it was
        torch.manual_seed(seed)
        return UnCLIPPipeline(**build_components("tiny"))


def _is_pipeline_folder(path: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(path, "model_index.json"))


def default_model_path() -> str | None:
    """The bundled release weights' folder, or `None` if this install does not have them yet."""
    try:
        from unclip_diffusers.defaults import default_pretrained_path
    except ImportError:
        return None
    try:
        path = default_pretrained_path()
    except (FileNotFoundError, OSError):
        return None
    return str(path) if path is not None and _is_pipeline_folder(path) else None


def load_pipeline(model: str | os.PathLike | None = None, device: str | torch.device | None = None) -> LoadedPipeline:
    """Load the pipeline to serve.

    Args:
        model (`str`, *optional*): a saved pipeline folder. If `None`, the bundled release weights are used, or a
            random tiny model with `placeholder=True` when they are not installed.
        device (`str` or `torch.device`, *optional*): where to run; defaults to `default_device()`.

    Raises:
        `ValueError`: if `model` is given but is not a saved pipeline folder.
    """
    from unclip_diffusers import UnCLIPPipeline

    device = torch.device(device) if device is not None else default_device()
    if model is not None:
        if not _is_pipeline_folder(model):
            raise ValueError(f"--model {os.fspath(model)!r} is not a saved pipeline folder (no model_index.json in it).")
        pipe, source, placeholder = UnCLIPPipeline.from_pretrained(model), os.fspath(model), False
    elif (path := default_model_path()) is not None:
        pipe, source, placeholder = UnCLIPPipeline.from_pretrained(path), path, False
    else:
        logger.warning("No trained weights found; serving a randomly initialised tiny model.")
        pipe, source, placeholder = build_placeholder_pipeline(), "random tiny model", True
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)  # the app reports progress through gr.Progress instead
    return LoadedPipeline(pipe=pipe, source=source, placeholder=placeholder)
