"""Resuming after SIGKILL reproduces an uninterrupted run exactly; runs are never silently overwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_training_data import dataset_path
from test_training_stages import tiny_runs
from unclip_diffusers.training.cli import main

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS, KILL_STEP = 8, 6

# Runs the CLI, but when the checkpoint of KILL_STEP is due it writes the temporary folder and then SIGKILLs itself,
# as if the machine died mid-checkpoint.
KILLER = f"""
import os, signal, sys
import unclip_diffusers.training.trainer as trainer
real_save = trainer.save_checkpoint
def save_then_die(accelerator, output_dir, step, *args, **kwargs):
    if step == {KILL_STEP}:
        accelerator.save_state(str(output_dir / ".tmp-checkpoint-{KILL_STEP}"))
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(accelerator, output_dir, step, *args, **kwargs)
trainer.save_checkpoint = save_then_die
from unclip_diffusers.training.cli import main
main(sys.argv[1:])
"""


def _args(output_dir: Path, clip_dir: Path) -> list[str]:
    return [
        "decoder", "--config", "tiny", "--data_path", dataset_path(), "--clip_dir", str(clip_dir),
        "--output_dir", str(output_dir), "--max_steps", str(MAX_STEPS), "--checkpoint_every", "2",
        "--batch_size", "4", "--max_train_examples", "8", "--num_validation_examples", "2",
        "--num_validation_images", "1", "--num_threads", "1",
    ]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for path in sorted(folder.rglob("*.safetensors")):
        out.update({f"{path.relative_to(folder)}:{k}": v for k, v in load_file(path).items()})
    return out


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, one_thread):
    clip_dir = tiny_runs()["clip"][0]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    main(_args(straight, clip_dir))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               HF_HUB_OFFLINE="1")
    process = subprocess.run([sys.executable, "-c", KILLER, *_args(killed, clip_dir)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == -9, process.stderr[-2000:]
    assert sorted(p.name for p in killed.iterdir() if "checkpoint" in p.name) == [
        ".tmp-checkpoint-6", "checkpoint-2", "checkpoint-4"]
    assert not (killed / "final").exists()

    with pytest.raises(ValueError, match="--resume"):
        main(_args(killed, clip_dir))  # never silently restart over an existing run
    main(_args(killed, clip_dir) + ["--resume"])
    assert not (killed / ".tmp-checkpoint-6").exists()
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]

    for sub in ["final", "checkpoint-8"]:
        a, b = _weights(straight / sub), _weights(killed / sub)
        assert a.keys() == b.keys() and a
        for key in a:
            assert torch.equal(a[key], b[key]), f"{sub}/{key} differs after resume"
    def state(run: Path, index: int):
        return torch.load(run / "checkpoint-8" / f"custom_checkpoint_{index}.pkl", weights_only=False)

    assert state(straight, 0) == state(killed, 0)  # LR scheduler
    ema_a, ema_b = state(straight, 1), state(killed, 1)
    assert ema_a["optimization_step"] == ema_b["optimization_step"] == MAX_STEPS
    assert all(torch.equal(x, y) for x, y in zip(ema_a["shadow_params"], ema_b["shadow_params"]))
    assert state(straight, 2) == state(killed, 2) == {"step": MAX_STEPS}

    def logged(run: Path) -> list[tuple[int, float]]:
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(line["step"], line["loss"]) for line in lines if "loss" in line]

    # The killed run logged steps 1-6, then the resumed one continued from checkpoint-4 (not from scratch) with the
    # same losses as the uninterrupted run; steps 5-6 were lost to the kill and recomputed identically.
    assert [step for step, _ in logged(killed)] == [1, 2, 3, 4, 5, 6, 5, 6, 7, 8]
    assert dict(logged(killed)) == dict(logged(straight))


def test_resume_refuses_a_different_model(tmp_path, one_thread):
    clip_dir = tiny_runs()["clip"][0]
    run = tmp_path / "run"
    main(_args(run, clip_dir)[:-2] + ["--max_steps", "2", "--num_threads", "1"])
    before = _weights(run / "final")
    main(_args(run, clip_dir)[:-2] + ["--max_steps", "2", "--num_threads", "1", "--resume"])  # finished: a no-op
    after = _weights(run / "final")
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="model config differs"):
        main(_args(run, clip_dir)[:-2] + ["--max_steps", "2", "--model_preset", "small", "--resume"])


def test_continuation_flags_carry_the_recorded_settings(tmp_path):
    import json as _json

    from unclip_diffusers.training.restore import continuation_flags

    assert continuation_flags(tmp_path) == []  # no config.json: nothing recorded
    training = {"model_preset": "small-multilingual", "family_balance": 1.0, "cache_captions_per_image": 8,
                "mixed_precision": "bf16", "learning_rate": 2e-4}
    (tmp_path / "config.json").write_text(_json.dumps({"stage": "decoder", "training": training}))
    assert continuation_flags(tmp_path) == ["--model_preset", "small-multilingual", "--family_balance", "1.0",
                                            "--cache_captions_per_image", "8", "--mixed_precision", "bf16"]
    from unclip_diffusers.training.cli import build_parser

    args = build_parser().parse_args(["decoder", *continuation_flags(tmp_path)])  # the flags parse as given
    assert (args.model_preset, args.family_balance, args.cache_captions_per_image) == ("small-multilingual", 1.0, 8)
