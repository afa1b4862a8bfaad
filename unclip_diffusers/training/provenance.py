"""What each stage of an assembled pipeline was trained on and for how long, saved as `training_provenance.json`.

A stage folder is a run's `final/` (the run finished) or a `snapshot-<step>/` written by `unclip-train export` from a
run still training; both hold the run's `config.json`. The model card turns this file into its training table and
says plainly when a stage is an interim snapshot.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

PROVENANCE_FILE = "training_provenance.json"
SNAPSHOT_PREFIX = "snapshot-"  # RUN_DIR/snapshot-<step>/: the EMA weights at <step> (export, max_minutes)
SNAPSHOT_RE = re.compile(r"^snapshot-(\d+)$")


def newest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    """The `snapshot-<step>/` folder of `run_dir` with the highest step, or `None` when it has none."""
    snapshots = [p for p in Path(run_dir).glob(f"{SNAPSHOT_PREFIX}*") if p.is_dir() and SNAPSHOT_RE.match(p.name)]
    return max(snapshots, key=lambda p: int(SNAPSHOT_RE.match(p.name).group(1)), default=None)


def _processes(run_dir: Path) -> int:
    """Processes of the run, from the last training line of its `metrics.jsonl` (1 when not recorded)."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return 1
    processes = 1
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        processes = int(record.get("processes", processes))
    return processes


def stage_provenance(folder: str | os.PathLike) -> dict[str, Any]:
    """Training facts of one stage folder: steps trained and planned, samples seen, batch, preset, data, finished."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        return {"source": folder.as_posix(), "recorded": False}
    config = json.loads(config_file.read_text(encoding="utf-8"))
    training = config.get("training", {})
    max_steps = int(training.get("max_steps", 0))
    snapshot = SNAPSHOT_RE.match(folder.name)
    finished = snapshot is None
    step = int(snapshot.group(1)) if snapshot else max_steps
    processes = _processes(folder.parent)
    per_step = int(training.get("batch_size", 0)) * int(training.get("gradient_accumulation_steps", 1)) * processes
    return {
        "source": f"{folder.parent.name}/{folder.name}",
        "recorded": True,
        "finished": finished,
        "step": step,
        "max_steps": max_steps,
        "samples": step * per_step,
        "batch_size": per_step,
        "model_preset": training.get("model_preset"),
        "learning_rate": training.get("learning_rate"),
        "mixed_precision": training.get("mixed_precision"),
        "data_path": training.get("data_path"),
        "config": config,  # the run's whole config.json: `unclip-train restore` recreates the run folder from it
    }


def write_provenance(pipeline_dir: str | os.PathLike, stages: dict[str, str | os.PathLike]) -> Path:
    """Write `training_provenance.json` into `pipeline_dir` for `{stage name: stage folder}`."""
    path = Path(pipeline_dir) / PROVENANCE_FILE
    data = {name: stage_provenance(folder) for name, folder in stages.items()}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_provenance(pipeline_dir: str | os.PathLike) -> dict[str, dict[str, Any]] | None:
    """The `training_provenance.json` of a pipeline folder, or None when it has none."""
    path = Path(pipeline_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
