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
    source: str  # a folder path, a Hub id, or "random tiny model"
    placeholder: bool  # True when the weights are random: the UI shows a warning banner
    bf16: bool = False  # the denoising models run under bfloat16 autocast

    @property
    def label(self) -> str:
        """How the page header names the weights (`weights_label`)."""
        return weights_label(self.source, self.placeholder)


def model_card_name(folder: str | os.PathLike) -> str | None:
    """The model's name in the folder's model card (`model-index[0].name` of README.md), if it has one."""
    readme = os.path.join(folder, "README.md")
    if not os.path.isfile(readme):
        return None
    from huggingface_hub import metadata_load

    try:
        index = (metadata_load(readme) or {}).get("model-index") or [{}]
        name = index[0].get("name")
    except Exception:  # noqa: BLE001 - a malformed card must not stop the app; the folder's name is shown instead
        logger.warning("Could not read the model card %s.", readme)
        return None
    return str(name) if name else None


def weights_label(source: str, placeholder: bool = False) -> str:
    """The weights as the page header names them: the model's name and its folder's name or Hub id, never a
    file-system path (which says nothing to a visitor and shows the server's layout)."""
    if placeholder:
        return source
    if os.path.isdir(source):
        folder = os.path.basename(os.path.normpath(os.path.abspath(source)))
        name = model_card_name(source)
        return f"{name} (folder `{folder}`)" if name else f"folder `{folder}`"
    return f"{source.rstrip('/').rsplit('/', 1)[-1]} (Hub `{source}`)"


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


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def default_model_source() -> str | None:
    """Where the release weights come from: the bundled folder (or `UNCLIP_PRETRAINED`) if it is a local pipeline
    folder, else the Hub id (only when the Hub may be used), else `None`."""
    from unclip_diffusers.defaults import default_pretrained_path

    source = default_pretrained_path()
    if _is_pipeline_folder(source):
        return source
    if os.path.isabs(source) or os.path.exists(source) or _hub_offline():
        return None  # a local path that is not a pipeline, or no network allowed
    return source


def load_pipeline(
    model: str | os.PathLike | None = None, device: str | torch.device | None = None, bf16: bool | None = None
) -> LoadedPipeline:
    """Load the pipeline to serve.

    Args:
        model (`str`, *optional*): a saved pipeline folder. If `None`, the release weights (bundled folder, or the
            Hub when it is reachable); when they cannot be had, a random tiny model with `placeholder=True`.
        device (`str` or `torch.device`, *optional*): where to run; defaults to `default_device()`.
        bf16 (`bool`, *optional*): run the denoising models under bfloat16 autocast (`enable_cpu_bf16_autocast`).
            `None` (auto) turns it on for trained weights on a CPU with native bf16 (AVX512-BF16 or AMX), where it was
            measured 1.3-2x faster at the same CLIP-FD on the release weights (`benchmarks/RESULTS.md`).

    Raises:
        `ValueError`: if `model` is given but is not a saved pipeline folder.
    """
    from unclip_diffusers import UnCLIPPipeline

    device = torch.device(device) if device is not None else default_device()
    pipe = None
    if model is not None:
        if not _is_pipeline_folder(model):
            raise ValueError(f"--model {os.fspath(model)!r} is not a saved pipeline folder (no model_index.json in it).")
        pipe, source = UnCLIPPipeline.from_pretrained(model), os.fspath(model)
    elif (source := default_model_source()) is not None:
        try:
            pipe = UnCLIPPipeline.from_pretrained(source)
        except Exception as error:  # noqa: BLE001 - the Hub may be unreachable; the app must still start
            if _is_pipeline_folder(source):
                raise  # a broken local checkpoint is a real error, not a reason to serve noise
            logger.warning("Could not load %s (%s: %s).", source, type(error).__name__, error)
    placeholder = pipe is None
    if placeholder:
        logger.warning("No trained weights found; serving a randomly initialised tiny model.")
        pipe, source = build_placeholder_pipeline(), "random tiny model"
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)  # the app reports progress through gr.Progress instead
    # Concurrent requests each hold their upsampler activations: the 256-px stage one image per forward keeps the
    # server's peak memory down at the same images (`benchmarks/RESULTS.md`, "Guidance interval and the prior's
    # caption cache").
    pipe.enable_super_res_slicing()
    if bf16 is None:
        from unclip_diffusers.utils.cpu_bf16 import cpu_has_native_bf16

        bf16 = device.type == "cpu" and not placeholder and cpu_has_native_bf16()
    if bf16:
        if device.type != "cpu":
            raise ValueError(f"bf16 autocast is for CPU inference; the pipeline is on {device}.")
        from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

        enable_cpu_bf16_autocast(pipe)
        logger.info("The denoising models run under bfloat16 autocast.")
    return LoadedPipeline(pipe=pipe, source=source, placeholder=placeholder, bf16=bf16)
