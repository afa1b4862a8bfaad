"""Export the EMA weights of a run's checkpoint as a `final/`-shaped folder, while the run is still going.

`unclip-train export RUN_DIR` writes `RUN_DIR/snapshot-<step>/` with exactly what the run's `final/` will hold, so a
release can be assembled (`unclip-assemble --decoder RUN_DIR/snapshot-<step> ...`), evaluated or tried in the app
from a long training run that is not finished yet. `--raw` writes the optimiser's own weights instead of their EMA,
to `RUN_DIR/raw-<step>/` (a name `restore` and the release never take for a snapshot), to measure what the EMA buys.
The run itself is only read.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .checkpointing import latest_checkpoint, load_checkpoint
from .config import TrainingConfig, load_config
from .provenance import SNAPSHOT_PREFIX

RAW_PREFIX = "raw-"  # RUN_DIR/raw-<step>/: the raw (not averaged) weights at <step>, for comparisons only
from .trainer import Stage, _save_final, make_accelerator, prepare_run, reset_accelerate_state

logger = logging.getLogger(__name__)


def stage_for(config: TrainingConfig) -> Stage:
    """The `Stage` that trains `config.stage`."""
    if config.stage == "clip":
        from .clip import CLIPStage as stage_cls
    elif config.stage == "prior":
        from .prior import PriorStage as stage_cls
    elif config.stage == "decoder":
        from .decoder import DecoderStage as stage_cls
    elif config.stage == "upsampler":
        from .upsampler import UpsamplerStage as stage_cls
    else:
        from .upsampler2 import Upsampler2Stage as stage_cls
    return stage_cls(config)


def half_precision_copy(folder: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Copy a `final/`-shaped folder to `output`, every floating-point safetensors tensor stored as float16."""
    folder, output = Path(folder), Path(output)
    if output.exists():
        shutil.rmtree(output)
    shutil.copytree(folder, output, ignore=shutil.ignore_patterns("*.safetensors"))
    for file in folder.rglob("*.safetensors"):
        state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(file).items()}
        save_file(state, output / file.relative_to(folder), metadata={"format": "pt"})
    return output


def export_checkpoint(
    run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None, fp16: bool = False,
    output: str | os.PathLike | None = None, raw: bool = False,
) -> Path:
    """Write the EMA weights of `checkpoint` (default: the run's newest) to `RUN_DIR/snapshot-<step>/`; returns it.

    With `raw`, the optimiser's weights instead, to `RUN_DIR/raw-<step>/`. With `fp16`, also copy it in float16 to
    `output/<name>/` (default RUN_DIR/fp16/) and return that copy.
    """
    run_dir = Path(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.exists():
        raise ValueError(f"{str(run_dir)!r} is not a training run folder (no config.json).")
    checkpoint = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ValueError(f"{str(run_dir)!r} has no checkpoint yet; wait for the first `checkpoint-<step>` folder.")
    config, _ = load_config(config_file)
    # Only the model is needed: set the stage up on one batch of training data and no validation set.
    config = replace(config, output_dir=str(run_dir), max_train_examples=config.batch_size, num_validation_examples=0,
                     init_from="")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    stage = stage_for(config)
    try:
        run = prepare_run(stage, make_accelerator(config))
        load_checkpoint(run.accelerator, checkpoint)
        unwrapped = run.unwrapped
        if not raw:
            run.ema.copy_to(unwrapped.parameters())
        unwrapped.eval()
        prefix = RAW_PREFIX if raw else SNAPSHOT_PREFIX
        snapshot = _save_final(stage, unwrapped, run_dir, name=f"{prefix}{run.state.step}")
    finally:
        reset_accelerate_state()
    logger.info("Wrote the %s weights of %s (step %d) to %s", "raw" if raw else "EMA", checkpoint, run.state.step,
                snapshot)
    if fp16:
        snapshot = half_precision_copy(snapshot, Path(output or run_dir / "fp16") / snapshot.name)
        logger.info("Wrote them in float16 to %s", snapshot)
    return snapshot
