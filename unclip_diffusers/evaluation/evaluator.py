"""The independent evaluator CLIP: which model, where it lives, how it is trained, cached, loaded and used.

Scoring generated images with the CLIP that generated them rewards the pipeline for fooling its own encoder. The
evaluator is a separate `transformers.CLIPModel`, larger than the generation CLIP (model presets `evaluator-tiny` /
`evaluator-small` in `unclip_diffusers.configs`), trained by the same CLIP training loop on the `train` split with
another seed, and never used for generation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from ..configs import (
    CLIPSize,
    build_image_processor,
    build_tokenizer,
    clip_text_config,
    clip_vision_config,
    get_model_config,
)
from ..data import load_image_text_dataset

logger = logging.getLogger(__name__)

EVALUATOR_SEED = 20220413  # the generation CLIP trains with seed 0 by default; the evaluator never shares it
EVALUATOR_MODEL_PRESETS = {"tiny": "evaluator-tiny", "small": "evaluator-small"}  # generation preset -> evaluator's
INFO_FILE = "evaluator.json"  # written last: a folder without it holds no finished evaluator
SHIPPED_SHARD_SIZE = "15MB"  # the shipped evaluator's weight files stay under the repository's 20 MiB per-file limit


def evaluator_size(preset: str) -> CLIPSize:
    """The evaluator CLIP's sizes for a generation preset name (`tiny`, `small`) or an evaluator preset name."""
    name = EVALUATOR_MODEL_PRESETS.get(preset, preset)
    if name not in EVALUATOR_MODEL_PRESETS.values():
        raise ValueError(f"Unknown evaluator preset {preset!r}; choose one of {sorted(EVALUATOR_MODEL_PRESETS)}.")
    return get_model_config(name).clip


def default_evaluator_dir(preset: str, root: str | os.PathLike = "runs") -> Path:
    """Where an evaluator is trained and cached unless told otherwise: `runs/evaluator-clip-<preset>`."""
    evaluator_size(preset)
    return Path(root) / f"evaluator-clip-{EVALUATOR_MODEL_PRESETS.get(preset, preset).removeprefix('evaluator-')}"


def shipped_evaluator_dir(preset: str, root: str | os.PathLike | None = None) -> Path | None:
    """The evaluator committed beside the release, `checkpoints/evaluator-clip-<preset>` under the repository root
    (or `root`), if it holds a finished one; else `None`."""
    from ..defaults import repo_root

    folder = Path(root if root is not None else repo_root()) / "checkpoints" / default_evaluator_dir(preset).name
    return folder if (folder / "evaluator" / INFO_FILE).is_file() else None


def dataset_fingerprint(data_path: str | os.PathLike, split: str = "train") -> str:
    """A content hash of the split the evaluator trains on: its captions and encoded image bytes, in order.

    Content rather than `datasets`' own fingerprint (which depends on how and where the split was built), so an
    evaluator committed with a release is accepted on a fresh machine that rebuilt the same data.
    """
    dataset = load_image_text_dataset(data_path, split)
    digest = hashlib.sha256(f"{len(dataset)}\n".encode())
    for caption in dataset["caption"]:
        digest.update(caption.encode() + b"\n")
    if isinstance(dataset.features.get("image"), datasets.Image):
        table = dataset.cast_column("image", datasets.Image(decode=False)).data.column("image")
        for image in table.to_pylist():
            digest.update((image.get("bytes") or (image.get("path") or "").encode()) if image else b"")
    return digest.hexdigest()[:16]


def clip_model_config(size: CLIPSize) -> CLIPConfig:
    """A `CLIPConfig` whose text and vision towers match the generation CLIP's builders, at `size`."""
    text, vision = clip_text_config(size), clip_vision_config(size)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=size.embed_dim)


class EvaluatorCLIP:
    """A CLIP model with its tokenizer and image processor that maps captions and images to normalised embeddings.

    Args:
        model (`CLIPModel`): the evaluator weights.
        tokenizer (`CLIPTokenizer`): the tokenizer it was trained with.
        image_processor: a CLIP image processor (resize, centre crop, normalise) matching the model's input size.
        info (`dict`, *optional*): provenance (preset, seed, dataset fingerprint), saved as `evaluator.json`.
    """

    def __init__(
        self, model: CLIPModel, tokenizer: CLIPTokenizer, image_processor: Any, info: dict[str, Any] | None = None
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.info = dict(info or {})

    @classmethod
    def from_size(
        cls, size: CLIPSize, seed: int = EVALUATOR_SEED, info: dict[str, Any] | None = None
    ) -> "EvaluatorCLIP":
        """A randomly initialised evaluator (seeded; the global RNG state is restored afterwards). For tests."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CLIPModel(clip_model_config(size))
        info = dict(info or {}, seed=seed, clip_size=asdict(size), trained=False)
        return cls(model, build_tokenizer(size), build_image_processor(size), info)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "EvaluatorCLIP":
        """Load an evaluator saved by `save_pretrained` (safetensors only)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(f"{str(path)!r} holds no CLIP model (no config.json).")
        model = CLIPModel.from_pretrained(path, use_safetensors=True, dtype=torch.float32)  # shipped in fp16
        info = json.loads((path / INFO_FILE).read_text()) if (path / INFO_FILE).is_file() else {}
        info["path"] = str(path)
        size = CLIPSize(**info["clip_size"]) if "clip_size" in info else None
        if (path / "tokenizer_config.json").is_file():
            tokenizer = CLIPTokenizer.from_pretrained(path)
        elif size is not None:
            tokenizer = build_tokenizer(size)
        else:
            raise ValueError(f"{str(path)!r} has neither tokenizer files nor {INFO_FILE} to rebuild them from.")
        if (path / "preprocessor_config.json").is_file():
            from transformers import CLIPImageProcessorPil

            processor = CLIPImageProcessorPil.from_pretrained(path)
        else:
            image_size = size.image_size if size is not None else model.config.vision_config.image_size
            processor = build_image_processor(CLIPSize(image_size=image_size))
        return cls(model, tokenizer, processor, info)

    @classmethod
    def from_training_run(cls, final_dir: str | os.PathLike) -> "EvaluatorCLIP":
        """Load the `final/` folder of a CLIP training run (`clip/`, `tokenizer/`, `feature_extractor/`)."""
        from transformers import CLIPImageProcessorPil

        final_dir = Path(final_dir)
        if not (final_dir / "clip" / "config.json").is_file():
            raise ValueError(f"{str(final_dir)!r} is not a CLIP training run's final/ folder (no clip/config.json).")
        model = CLIPModel.from_pretrained(final_dir / "clip", use_safetensors=True)
        tokenizer = CLIPTokenizer.from_pretrained(final_dir / "tokenizer")
        processor = CLIPImageProcessorPil.from_pretrained(final_dir / "feature_extractor")
        return cls(model, tokenizer, processor, {"path": str(final_dir)})

    def save_pretrained(self, path: str | os.PathLike, max_shard_size: str | int | None = None) -> None:
        """Save weights (safetensors, split into files of at most `max_shard_size` when given), tokenizer, image
        processor and `evaluator.json` (written last)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        shard = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
        self.model.save_pretrained(path, safe_serialization=True, **shard)
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)
        (path / INFO_FILE).write_text(json.dumps(self.info, indent=2, sort_keys=True) + "\n")

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """L2-normalised text embeddings `(N, D)` of `texts`."""
        if isinstance(texts, str) or not texts:
            raise ValueError("texts must be a non-empty list of strings.")
        out = []
        for start in tqdm(range(0, len(texts), batch_size), desc="evaluator: texts", disable=not progress, leave=False):
            batch = self.tokenizer(list(texts[start : start + batch_size]), padding="max_length", truncation=True,
                                   max_length=self.tokenizer.model_max_length, return_tensors="pt")
            pooled = self.model.text_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).pooler_output
            out.append(self.model.text_projection(pooled))
        return F.normalize(torch.cat(out).float(), dim=-1)

    @torch.inference_mode()
    def embed_images(
        self, images: Sequence[Image.Image], batch_size: int = 128, progress: bool = False
    ) -> torch.Tensor:
        """L2-normalised image embeddings `(N, D)` of PIL images (resized and centre-cropped to the model's size)."""
        if not images:
            raise ValueError("images must be a non-empty list of PIL images.")
        bad = [type(im).__name__ for im in images if not isinstance(im, Image.Image)]
        if bad:
            raise TypeError(f"images must be PIL images, got {bad[0]}.")
        out = []
        batches = range(0, len(images), batch_size)
        for start in tqdm(batches, desc="evaluator: images", disable=not progress, leave=False):
            batch = [im.convert("RGB") for im in images[start : start + batch_size]]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            pooled = self.model.vision_model(pixel_values=pixels.to(self.model.dtype)).pooler_output
            out.append(self.model.visual_projection(pooled))
        return F.normalize(torch.cat(out).float(), dim=-1)


def train_evaluator(
    data_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    preset: str = "small",
    seed: int = EVALUATOR_SEED,
    **overrides: Any,
) -> EvaluatorCLIP:
    """Train the evaluator with the project's CLIP training loop on the `train` split; save it in
    `output_dir/evaluator`.

    The run folder `output_dir` is an ordinary CLIP training run (config.json, checkpoints, metrics.jsonl, final/); an
    interrupted run is resumed from its last checkpoint.

    Args:
        data_path: the dataset folder (see `unclip_diffusers.data.load_image_text_dataset`).
        output_dir: the training run folder.
        preset (`str`, defaults to `"small"`): the generation preset this evaluator accompanies (`tiny`, `small`);
            the CLIP training settings of that preset are used with the evaluator's larger model.
        seed (`int`, defaults to `EVALUATOR_SEED`): must differ from the generation CLIP's seed.
        overrides: further CLIP training settings (e.g. `max_steps`, `mixed_precision`).
    """
    from ..training.checkpointing import list_checkpoints  # the generation CLIP's loop, imported when needed
    from ..training.clip import train_clip
    from ..training.config import get_training_config
    from ..training.provenance import newest_snapshot, stage_provenance

    size = evaluator_size(preset)
    model_preset = EVALUATOR_MODEL_PRESETS.get(preset, preset)
    output_dir = Path(output_dir)
    config = get_training_config("clip", model_preset.removeprefix("evaluator-"), model_preset=model_preset,
                                 seed=seed, data_path=str(data_path), output_dir=str(output_dir), **overrides)
    final = output_dir / "final"
    if not (final / "clip" / "config.json").is_file():
        resume = bool(list_checkpoints(output_dir))
        logger.info("Training the evaluator CLIP (%s, seed %d) in %s%s.", model_preset, seed, output_dir,
                    ", resuming" if resume else "")
        run_dir = Path(train_clip(config, resume=resume))
        final = run_dir / "final"
        if not final.is_dir():  # stopped by its max_minutes budget: the EMA snapshot it wrote instead
            final = newest_snapshot(run_dir) or final
    evaluator = EvaluatorCLIP.from_training_run(final)
    trained = stage_provenance(final)
    evaluator.info = {
        "preset": model_preset,
        "seed": seed,
        "clip_size": asdict(size),
        "dataset": Path(data_path).name,  # the folder's name, not this machine's path; the fingerprint identifies it
        "train_fingerprint": dataset_fingerprint(data_path),
        "trained_on_split": "train",
        "training_steps": trained.get("step", config.max_steps),
        "trained": True,
    }
    if not trained.get("finished", True):  # a time budget stopped it before its planned steps
        evaluator.info["planned_steps"] = trained["max_steps"]
    if config.init_from:  # a warm start: its steps come on top of `training_steps`
        start = Path(config.init_from)
        evaluator.info["initialised_from"] = start.name
        if (start / INFO_FILE).is_file():  # an evaluator folder: keep what it recorded of its own training
            evaluator.info["initialised_from_info"] = json.loads((start / INFO_FILE).read_text(encoding="utf-8"))
    evaluator.save_pretrained(output_dir / "evaluator")
    evaluator.info["path"] = str(output_dir / "evaluator")
    return evaluator


def export_evaluator(
    source: str | os.PathLike,
    target: str | os.PathLike,
    dtype: torch.dtype = torch.float16,
    max_shard_size: str | int = SHIPPED_SHARD_SIZE,
) -> Path:
    """Copy a saved evaluator (`<run>/evaluator`) to `target` with its weights in `dtype`, replacing `target` whole.

    The release ships its evaluator this way (`checkpoints/evaluator-clip-small/evaluator`), so later releases are
    scored by the same model without retraining it; it loads back in float32. The weights are split into safetensors
    shards of at most `max_shard_size` so that the folder can be committed.
    """
    evaluator = EvaluatorCLIP.from_pretrained(source)
    evaluator.model.to(dtype)
    evaluator.info.pop("path", None)
    if "dataset" in evaluator.info:  # older evaluators recorded the training machine's full path
        evaluator.info["dataset"] = Path(evaluator.info["dataset"]).name
    target = Path(target)
    temporary = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(temporary, ignore_errors=True)
    evaluator.save_pretrained(temporary, max_shard_size=max_shard_size)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(temporary, target)
    return target


def load_or_train_evaluator(
    data_path: str | os.PathLike,
    evaluator_dir: str | os.PathLike | None = None,
    preset: str = "small",
    seed: int = EVALUATOR_SEED,
    **overrides: Any,
) -> EvaluatorCLIP:
    """The evaluator cached in `evaluator_dir`, trained there first if it holds none; a cached evaluator trained on
    a different `train` split is refused with a `ValueError`.

    Without `evaluator_dir`: the one shipped beside the release (`shipped_evaluator_dir`) when it was trained on this
    data, else `runs/evaluator-clip-<preset>`.
    """
    fingerprint = None
    if evaluator_dir is None:
        shipped = shipped_evaluator_dir(preset)
        if shipped is not None:
            evaluator = EvaluatorCLIP.from_pretrained(shipped / "evaluator")
            fingerprint = dataset_fingerprint(data_path)
            if evaluator.info.get("train_fingerprint") == fingerprint:
                logger.info("Using the evaluator CLIP shipped with the release, %s.", shipped / "evaluator")
                return evaluator
    run_dir = Path(evaluator_dir) if evaluator_dir is not None else default_evaluator_dir(preset)
    cached = run_dir / "evaluator"
    if (cached / INFO_FILE).is_file():
        evaluator = EvaluatorCLIP.from_pretrained(cached)
        fingerprint = fingerprint or dataset_fingerprint(data_path)
        if evaluator.info.get("train_fingerprint") == fingerprint:
            logger.info("Using the cached evaluator CLIP in %s.", cached)
            return evaluator
        raise ValueError(
            f"The evaluator in {str(cached)!r} was trained on other data (fingerprint "
            f"{evaluator.info.get('train_fingerprint')}, now {fingerprint}); pass another evaluator folder or retrain."
        )
    return train_evaluator(data_path, run_dir, preset=preset, seed=seed, **overrides)
