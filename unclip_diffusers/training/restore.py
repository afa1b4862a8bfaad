"""`unclip-train restore PIPELINE --runs RUNS`: recreate training run folders from an assembled pipeline folder.

Run folders (checkpoints with optimizer state) are not shipped; the release folder is. Its
`training_provenance.json` records each stage's run name, whether it finished, its step and its whole training
config, so this writes, per stage, `RUNS/<run>/config.json` and the released weights as `final/` (a finished stage)
or `snapshot-<step>/` (an interim one), converted back to float32. Then `scripts/train_release.sh` skips the finished
stages, continues the unfinished ones with `--init_from RUNS/<run>/snapshot-<step>` and assembles the next release
from the same folders. Existing run folders are never touched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from .embeddings import clip_final_dir, fingerprint_files
from .provenance import read_provenance

logger = logging.getLogger(__name__)

STAGE_PARTS = {
    "clip": ("text_encoder", "image_encoder", "tokenizer", "feature_extractor"),
    "prior": ("prior",),
    "decoder": ("decoder", "text_proj"),
    "upsampler": ("super_res_first",),
    "upsampler2": ("super_res_second",),
}
_DTYPE_KEYS = ("torch_dtype", "dtype")  # where transformers configs record the saved dtype


def copy_component_as_float32(source: Path, target: Path) -> None:
    """Copy a saved component folder, with floating-point safetensors weights cast to float32."""
    shutil.copytree(source, target)
    for file in target.rglob("*.safetensors"):
        tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(file).items()}
        save_file(tensors, file, metadata={"format": "pt"})
    for config_file in target.rglob("config.json"):
        config = json.loads(config_file.read_text(encoding="utf-8"))
        changed = _set_float32(config)
        if changed:
            config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _set_float32(config: dict) -> bool:
    changed = False
    for key, value in config.items():
        if key in _DTYPE_KEYS and value in ("float16", "bfloat16"):
            config[key] = "float32"
            changed = True
        elif isinstance(value, dict):
            changed = _set_float32(value) or changed
    return changed


def _run_location(entry: dict) -> tuple[str, str]:
    """(run folder name, stage folder name) of a provenance entry, e.g. ('decoder-small', 'snapshot-8000')."""
    run_name, _, folder_name = str(entry["source"]).partition("/")
    if not run_name or not folder_name or "/" in folder_name or run_name in (".", ".."):
        raise ValueError(f"Unexpected provenance source {entry['source']!r}.")
    return run_name, folder_name


def restore_runs(pipeline_dir: str | os.PathLike, runs_dir: str | os.PathLike) -> dict[str, Path]:
    """Recreate the run folder of every recorded stage of `pipeline_dir` under `runs_dir`; returns stage -> folder.

    A stage whose run folder already exists is left alone (its existing folder is returned when it holds the
    recorded stage folder). The CLIP is restored first so the prior and decoder get a `clip_reference.json` that
    matches it.
    """
    pipeline_dir, runs_dir = Path(pipeline_dir), Path(runs_dir)
    provenance = read_provenance(pipeline_dir)
    if provenance is None:
        raise ValueError(f"{str(pipeline_dir)!r} has no training_provenance.json; it was not written by unclip-assemble.")
    restored: dict[str, Path] = {}
    for stage in STAGE_PARTS:
        entry = provenance.get(stage)
        if not entry or not entry.get("recorded") or "config" not in entry:
            if entry:
                logger.warning("%s: no training config recorded in the provenance; not restored.", stage)
            continue
        run_name, folder_name = _run_location(entry)
        run = runs_dir / run_name
        if run.exists():
            logger.info("%s: %s exists; left as it is.", stage, run)
            if (run / folder_name).is_dir():
                restored[stage] = run / folder_name
            continue
        missing = [part for part in STAGE_PARTS[stage] if not (pipeline_dir / part).is_dir()]
        if missing:
            raise ValueError(f"{str(pipeline_dir)!r} lacks {missing} for its {stage}.")
        temporary = runs_dir / f".tmp-restore-{run_name}"
        if temporary.exists():
            shutil.rmtree(temporary)
        folder = temporary / folder_name
        folder.mkdir(parents=True)
        for part in STAGE_PARTS[stage]:
            copy_component_as_float32(pipeline_dir / part, folder / part)
        config = dict(entry["config"])
        config["training"] = dict(config["training"], output_dir=str(run))
        config_text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        (temporary / "config.json").write_text(config_text, encoding="utf-8")
        (folder / "config.json").write_text(config_text, encoding="utf-8")
        per_process = int(config["training"].get("batch_size", 1)) * int(
            config["training"].get("gradient_accumulation_steps", 1))
        record = {"step": entry.get("step"), "restored_from": str(pipeline_dir),
                  "processes": max(1, int(entry.get("batch_size", per_process)) // max(1, per_process))}
        (temporary / "metrics.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
        if stage in ("prior", "decoder") and "clip" in restored:
            clip = clip_final_dir(restored["clip"])
            reference = {"clip_dir": str(restored["clip"].parent), "clip_fingerprint": fingerprint_files(clip)}
            (folder / "clip_reference.json").write_text(json.dumps(reference, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, run)
        restored[stage] = run / folder_name
        logger.info("%s: restored %s (step %s%s)", stage, restored[stage], entry.get("step"),
                    "" if entry.get("finished") else ", unfinished")
    return restored


# Settings a continued run must keep from its recorded config, because the training preset's defaults differ from
# what the run was started with (the release's multilingual text side, family balance, the caption cache's size).
CONTINUED_SETTINGS = ("model_preset", "family_balance", "cache_captions_per_image", "mixed_precision")


def continuation_flags(run_dir: str | os.PathLike) -> list[str]:
    """`unclip-train` flags that continue the run in `run_dir` with its recorded `CONTINUED_SETTINGS` (none when the
    folder has no `config.json`), e.g. `["--model_preset", "small-multilingual", "--family_balance", "1.0", ...]`."""
    config_file = Path(run_dir) / "config.json"
    if not config_file.is_file():
        return []
    training = json.loads(config_file.read_text(encoding="utf-8")).get("training", {})
    flags: list[str] = []
    for key in CONTINUED_SETTINGS:
        if key in training:
            flags += [f"--{key}", str(training[key])]
    return flags


if __name__ == "__main__":  # `python -m unclip_diffusers.training.restore RUN_DIR`: the flags, for shell scripts
    import sys

    print(" ".join(continuation_flags(sys.argv[1])))

