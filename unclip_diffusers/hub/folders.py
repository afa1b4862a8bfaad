"""What a folder given to `unclip-push` holds (a pipeline, a Karlo-layout pipeline, or one training stage), and the
files of it that are uploaded: configs, tokenizer files and safetensors weights only."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..pipelines.karlo import is_karlo_layout

logger = logging.getLogger(__name__)

KINDS = ("pipeline", "karlo", "clip", "prior", "decoder", "upsampler")
# The sub-folders each training stage writes into its run's `final/` (required ones first).
STAGE_PARTS: dict[str, tuple[str, ...]] = {
    "clip": ("text_encoder", "image_encoder", "tokenizer", "feature_extractor", "clip"),
    "prior": ("prior",),
    "decoder": ("decoder", "text_proj"),
    "upsampler": ("super_res_first",),
}
REQUIRED_PARTS = {"clip": ("text_encoder", "image_encoder", "tokenizer"), "prior": ("prior",),
                  "decoder": ("decoder", "text_proj"), "upsampler": ("super_res_first",)}
# This package's model classes by the folder they are saved in (their code is shipped with a stage upload).
CUSTOM_COMPONENTS = {"prior": "UnCLIPPriorTransformer", "text_proj": "UnCLIPTextProjection"}
UPLOADED_SUFFIXES = (".json", ".txt", ".safetensors", ".model", ".md", ".png", ".jpg")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".npy", ".npz", ".h5", ".msgpack")
TRAINING_CONFIG = "training_config.json"  # a run's config.json, renamed so nothing mistakes it for a model config


@dataclass
class SourceFolder:
    """A folder to push: its kind, where its weights are, and the training run it came from (stages only)."""

    kind: str
    root: Path  # the pipeline folder, or the run's `final/`
    run_dir: Path | None = None
    training_config: dict[str, Any] | None = None
    model_index: dict[str, Any] | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object.")
    return data


def inspect_folder(path: str | os.PathLike) -> SourceFolder:
    """Recognise a pipeline folder, a Karlo-layout folder, or a training stage (its run folder or its `final/`)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a folder.")
    if (path / "model_index.json").is_file():
        index = _read_json(path / "model_index.json")
        return SourceFolder("karlo" if is_karlo_layout(index) else "pipeline", path, model_index=index)
    root, run_dir = (path / "final", path) if (path / "final").is_dir() else (path, None)
    if run_dir is None and path.name == "final" and (path.parent / "config.json").is_file():
        run_dir = path.parent
    config = _read_json(root / "config.json") if (root / "config.json").is_file() else None
    stage = config.get("stage") if config else None
    if stage is None:
        present = [s for s, parts in REQUIRED_PARTS.items() if all((root / p).is_dir() for p in parts)]
        stage = present[0] if len(present) == 1 else None
    if stage not in STAGE_PARTS:
        raise ValueError(f"{str(path)!r} is neither a pipeline folder (no model_index.json) nor a training stage "
                         f"(its config.json names no stage and its sub-folders match none of {list(STAGE_PARTS)}).")
    missing = [p for p in REQUIRED_PARTS[stage] if not (root / p).is_dir()]
    if missing:
        raise ValueError(f"The {stage} checkpoint {str(root)!r} lacks {missing}; has its training run finished?")
    return SourceFolder(stage, root, run_dir=run_dir, training_config=config)


def _check_weights(folder: Path) -> None:
    """Refuse pickled weights; require safetensors next to every model config."""
    pickled = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    if pickled:
        raise ValueError(f"{folder} holds pickled files {pickled}; unclip-push uploads safetensors weights only.")
    for config in folder.rglob("config.json"):
        data = _read_json(config)
        is_model = "_class_name" in data and "_diffusers_version" in data and "scheduler" not in config.parent.name
        if (is_model or "architectures" in data) and not list(config.parent.glob("*.safetensors")):
            raise ValueError(f"{config.parent} has a model config but no .safetensors weights.")


def _copy_tree(source: Path, destination: Path, skip: set[str]) -> list[str]:
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if relative.parts[0] in skip or relative.as_posix() in skip:
            continue
        if path.suffix not in UPLOADED_SUFFIXES:
            if path.suffix != ".py":  # code is generated afresh; anything else is not part of a checkpoint
                logger.warning("Not uploading %s (not a config, tokenizer file, safetensors weight or image).", path)
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(relative.as_posix())
    return copied


def copy_checkpoint(source: SourceFolder, destination: str | os.PathLike) -> list[str]:
    """Copy the uploadable files of `source` into `destination` (configs, tokenizer files, safetensors, images).

    Python files are left out (the upload's code is generated by `remote_code`), and so is an existing README.md
    (the card is written afresh). A stage's `config.json` becomes `training_config.json`.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    _check_weights(source.root)
    if source.kind in ("pipeline", "karlo"):
        return _copy_tree(source.root, destination, skip={"README.md"})
    copied = []
    for part in STAGE_PARTS[source.kind]:
        if (source.root / part).is_dir():
            copied += [f"{part}/{name}" for name in _copy_tree(source.root / part, destination / part, skip=set())]
    if (source.root / "clip_reference.json").is_file():
        shutil.copy2(source.root / "clip_reference.json", destination / "clip_reference.json")
        copied.append("clip_reference.json")
    if source.training_config is not None:
        (destination / TRAINING_CONFIG).write_text(json.dumps(source.training_config, indent=2, sort_keys=True) + "\n",
                                                   encoding="utf-8")
        copied.append(TRAINING_CONFIG)
    return copied


def latest_training_samples(run_dir: Path | None, stage: str) -> Path | None:
    """The newest validation grid a training run wrote (`samples/<stage>-step-*.png`), if any."""
    if run_dir is None:
        return None
    grids = sorted((run_dir / "samples").glob(f"{stage}-step-*.png"))
    return grids[-1] if grids else None


def parameter_counts(folder: str | os.PathLike) -> dict[str, int]:
    """Parameters per component folder, read from the safetensors headers (no weights are loaded)."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    folder = Path(folder)
    for weights in sorted(folder.rglob("*.safetensors")):
        component = weights.parent.relative_to(folder).as_posix() or "."
        with safe_open(str(weights), framework="np") as f:
            for key in f.keys():
                size = 1
                for dim in f.get_slice(key).get_shape():
                    size *= dim
                counts[component] = counts.get(component, 0) + size
    return counts


def model_preset(folder: str | os.PathLike) -> str | None:
    """The model-size preset (`tiny`, `small`) whose decoder and CLIP widths a pipeline folder has, if any."""
    from ..configs import MODEL_PRESETS

    folder = Path(folder)
    try:
        decoder = _read_json(folder / "decoder" / "config.json")
        text = _read_json(folder / "text_encoder" / "config.json")
    except ValueError:
        return None
    for name, preset in MODEL_PRESETS.items():
        if (decoder.get("sample_size") == preset.decoder.sample_size
                and list(decoder.get("block_out_channels", [])) == list(preset.decoder.block_out_channels)
                and text.get("projection_dim") == preset.clip.embed_dim
                and text.get("max_position_embeddings", preset.clip.max_text_length) == preset.clip.max_text_length):
            return name
    return None


def resolutions(folder: str | os.PathLike) -> dict[str, int]:
    """Image sizes of a pipeline folder: the decoder's base resolution and the last upsampler's output, where present."""
    folder = Path(folder)
    sizes = {}
    for name, component in (("base", "decoder"), ("upsampled", "super_res_second"), ("upsampled", "super_res_last"),
                            ("upsampled", "super_res_first")):
        config = folder / component / "config.json"
        if config.is_file() and name not in sizes:
            sizes[name] = int(_read_json(config).get("sample_size", 0)) or None
    return {k: v for k, v in sizes.items() if v}
