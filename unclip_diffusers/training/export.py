"""Export the EMA weights of a run's checkpoint as a `final/`-shaped folder, while the run is still going.

`unclip-train export RUN_DIR` writes `RUN_DIR/snapshot-<step>/` with exactly what the run's `final/` will hold, so a
release can be assembled (`unclip-assemble --decoder RUN_DIR/snapshot-<step> ...`), evaluated or tried in the app
from a long training run that is not finished yet. The run itself is only read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import torch

from .checkpointing import latest_checkpoint, load_checkpoint
from .config import TrainingConfig, load_config
from .trainer import Stage, _save_final, make_accelerator, prepare_run, reset_accelerate_state

logger = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "snapshot-"


def stage_for(config: TrainingConfig) -> Stage:
    """The `Stage` that trains `config.stage`."""
    if config.stage == "clip":
        from .clip import CLIPStage as stage_cls
    elif config.stage == "prior":
        from .prior import PriorStage as stage_cls
    elif config.stage == "decoder":
        from .decoder import DecoderStage as stage_cls
    else:
        from .upsampler import UpsamplerStage as stage_cls
    return stage_cls(config)


def export_checkpoint(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> Path:
    """Write the EMA weights of `checkpoint` (default: the run's newest) to `RUN_DIR/snapshot-<step>/`; returns it."""
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
        run.ema.copy_to(unwrapped.parameters())
        unwrapped.eval()
        snapshot = _save_final(stage, unwrapped, run_dir, name=f"{SNAPSHOT_PREFIX}{run.state.step}")
    finally:
        reset_accelerate_state()
    logger.info("Wrote the EMA weights of %s (step %d) to %s", checkpoint, run.state.step, snapshot)
    return snapshot
