"""Data-parallel training through `accelerate launch` with two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from test_training_data import dataset_path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="the accelerate launcher is not installed")
def test_two_process_clip_training(tmp_path):
    # On a CPU-only machine `accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is set up;
    # `--multi_gpu` goes through torchrun, and the trainer selects the CPU (gloo) when no GPU is present.
    command = [
        "accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "unclip_diffusers.training.cli",
        "clip", "--config", "tiny", "--data_path", dataset_path(), "--output_dir", str(tmp_path / "clip"),
        "--max_steps", "4", "--checkpoint_every", "2", "--batch_size", "4", "--num_threads", "1",
        "--num_validation_examples", "4",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    process = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert process.returncode == 0, process.stderr[-3000:]
    run = tmp_path / "clip"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if "loss" in line]
    assert [line["step"] for line in train] == [1, 2, 3, 4]  # written once, by the main process
    assert all(line["processes"] == 2 for line in train)
    assert train[-1]["epoch"] == pytest.approx(4 * 4 * 2 / 30)  # 2 processes x batch 4 per step over 30 examples
    assert sorted(p.name for p in (run / "checkpoint-4").glob("random_states_*.pkl")) == [
        "random_states_0.pkl", "random_states_1.pkl"]
    assert (run / "final" / "text_encoder" / "model.safetensors").exists()
