"""Atomic, resumable checkpoints: `accelerate`'s `save_state` into a temporary folder that is then renamed.

A run folder holds `checkpoint-<step>/` folders (model, optimizer, LR scheduler, EMA, step and RNG states). A
folder only gets its final name once every file is written and flushed, so a run killed at any moment leaves either
the previous checkpoints or the new one, never a half-written `checkpoint-<step>`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
TEMP_PREFIX = ".tmp-checkpoint-"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class TrainState:
    """The optimizer-step counter, checkpointed with the run through `accelerator.register_for_checkpointing`."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run folder as (step, path), oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = _CHECKPOINT_RE.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1][1] if checkpoints else None


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_stale_temporaries(output_dir: str | os.PathLike) -> None:
    """Delete temporary folders left by a run killed while it was writing a checkpoint."""
    output_dir = Path(output_dir)
    if output_dir.is_dir():
        for child in output_dir.iterdir():
            if child.name.startswith(TEMP_PREFIX) and child.is_dir():
                logger.info("Removing the unfinished checkpoint %s", child)
                shutil.rmtree(child)


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | os.PathLike, step: int, total_limit: int = 2, config_file: Path | None = None
) -> Path:
    """Write `checkpoint-<step>` atomically (every process must call this) and keep the newest `total_limit`."""
    output_dir = Path(output_dir)
    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    temporary = output_dir / f"{TEMP_PREFIX}{step}"
    if accelerator.is_main_process and temporary.exists():
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if config_file is not None and config_file.exists():
            shutil.copyfile(config_file, temporary / "config.json")
        _fsync_tree(temporary)
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        for _, old in list_checkpoints(output_dir)[:-total_limit]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, checkpoint: str | os.PathLike) -> None:
    """Restore every prepared and registered object from a checkpoint folder."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise ValueError(f"Checkpoint folder {str(checkpoint)!r} does not exist.")
    accelerator.load_state(str(checkpoint))
