"""scripts/build_release.sh end to end on tiny runs: snapshot of an unfinished run, assemble, evaluate, card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import torch
from safetensors.torch import load_file

from test_training_stages import dataset_path, tiny_runs
from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.evaluation.evaluator import EVALUATOR_SEED
from unclip_diffusers.training.config import get_training_config, load_config
from unclip_diffusers.training.provenance import read_provenance
from unclip_diffusers.training.trainer import run_training
from unclip_diffusers.training.upsampler2 import Upsampler2Stage

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
@pytest.mark.timeout(1200)  # the tiny runs in-process, then the script's 600 s: its own timeout reports first
def test_build_release_writes_a_loadable_folder_with_a_card_that_flags_the_snapshot(tmp_path):
    runs = tmp_path / "runs"
    for name, (run, _, _) in tiny_runs().items():
        shutil.copytree(run, runs / f"{name}-tiny")
    shutil.rmtree(runs / "decoder-tiny" / "final")  # as if the decoder were still training
    upsampler2 = get_training_config("upsampler2", "tiny", data_path=dataset_path(), output_dir=str(
        runs / "upsampler2-tiny"), max_steps=2, batch_size=4, checkpoint_every=2, num_validation_examples=2,
        num_validation_images=1, num_threads=1)
    run_training(Upsampler2Stage(upsampler2))
    out = tmp_path / "release"
    env = dict(os.environ, DATA=str(dataset_path()), RUNS=str(runs), OUT=str(out), EVAL=str(tmp_path / "eval"),
               PRESET="tiny", REPO="someone/unclip-tiny", EVAL_ARGS="--quick", HF_HUB_OFFLINE="1", UPSAMPLER2="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "build_release.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(out)

    assert (out / "model_index.json").is_file() and not list(out.rglob("*.bin"))
    assert (runs / "decoder-tiny" / "snapshot-30").is_dir()
    provenance = read_provenance(out)
    assert provenance["decoder"]["finished"] is False and provenance["decoder"]["source"] == "decoder-tiny/snapshot-30"
    assert all(provenance[s]["finished"] for s in ("clip", "prior", "upsampler"))
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "**Interim release:** the decoder is a snapshot" in card
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["meta"]["mode"] == "quick"
    assert (out / "TRAINING_DATA_LICENSES.md").is_file()
    assert (tmp_path / "eval" / "style_probe" / "probe.json").is_file() and "warning" not in result.stderr
    assert (out / "images" / "eval" / "style_probe.png").is_file() and "images/eval/style_probe.png" in card
    shipped = tmp_path / "evaluator-clip-tiny" / "evaluator"  # beside the release, for the next release's scoring
    assert (shipped / "evaluator.json").is_file()
    assert {v.dtype for v in load_file(next(shipped.glob("*.safetensors"))).values()} == {torch.float16}

    stored = load_file(out / "decoder" / "diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in stored.values()} == {torch.float16}  # assembled with --fp16
    pipeline = UnCLIPPipeline.from_pretrained(out)
    assert pipeline.super_res_first is not None and pipeline.super_res_second is not None  # UPSAMPLER2=1
    assert provenance["upsampler2"]["source"] == "upsampler2-tiny/final"


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
def test_build_release_names_a_missing_run(tmp_path):
    env = dict(os.environ, DATA=str(dataset_path()), RUNS=str(tmp_path / "runs"), PRESET="tiny",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "build_release.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "No clip run in" in result.stderr


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
@pytest.mark.timeout(2100)  # two runs of the script, 900 s each: their own timeouts report first
def test_train_release_on_a_fresh_machine_restores_the_committed_release(tmp_path):
    """Train the tiny chain with the script, then lose the runs (a new machine): the script restores them from the
    release folder, skips the finished stages and writes the same weights again."""
    out = tmp_path / "checkpoints" / "unclip-emoji"
    env = dict(os.environ, DATA=str(dataset_path()), RUNS=str(tmp_path / "runs"), OUT=str(out), PRESET="tiny",
               EVAL=str(tmp_path / "eval"), REPO="someone/unclip-tiny", EVAL_ARGS="--quick", HF_HUB_OFFLINE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    script = str(REPO_ROOT / "scripts" / "train_release.sh")
    first = subprocess.run(["bash", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "evaluator-clip-tiny" / "evaluator" / "evaluator.json").is_file()
    evaluator_run, _ = load_config(tmp_path / "runs" / "evaluator-clip-tiny" / "config.json")
    assert evaluator_run.seed == EVALUATOR_SEED  # never the generation CLIP's seed
    released = load_file(out / "decoder" / "diffusion_pytorch_model.safetensors")

    shutil.rmtree(tmp_path / "runs")
    env["SERIAL"] = "1"  # one stage at a time: the same stages are found finished
    env["SKIP_EVAL"] = "1"  # scoring is the first run's (and test_build_release's) job; this one checks restoring
    second = subprocess.run(["bash", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    for stage in ("clip", "prior", "decoder", "upsampler"):
        assert f"{stage}-tiny: finished" in second.stdout  # restored as final/, not retrained
    assert "evaluator-clip-tiny" not in second.stdout  # the shipped evaluator is used, not retrained
    again = load_file(out / "decoder" / "diffusion_pytorch_model.safetensors")
    assert again.keys() == released.keys() and all(torch.equal(again[k], released[k]) for k in again)
