"""SIGTERM/SIGINT stop a run at the next step with a checkpoint, and `--resume` carries on from it."""

from __future__ import annotations

import json
import os
import signal

import pytest

from test_training_stages import STAGES, _config, tiny_runs
from unclip_diffusers.training.checkpointing import list_checkpoints
from unclip_diffusers.training.stopping import TrainingInterrupted
from unclip_diffusers.training.trainer import run_training


class _SignalAt(STAGES["prior"]):
    """The tiny prior stage, which sends itself `number` after optimizer step `step`."""

    def __init__(self, config, step: int, number: int) -> None:
        super().__init__(config)
        self.at, self.number, self.steps = step, number, 0

    def after_optimizer_step(self, model) -> None:
        super().after_optimizer_step(model)
        self.steps += 1
        if self.steps == self.at:
            os.kill(os.getpid(), self.number)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_the_next_step_with_a_checkpoint(number, tmp_path):
    before = signal.getsignal(number)
    config = _config("prior", tmp_path, clip_dir=str(tiny_runs()["clip"][0]))
    with pytest.raises(TrainingInterrupted) as stopped:
        run_training(_SignalAt(config, step=7, number=number))
    assert stopped.value.step == 7 and stopped.value.exit_code == 128 + number
    assert signal.getsignal(number) == before  # the handler is removed again
    run_dir = tmp_path / "prior"
    assert [step for step, _ in list_checkpoints(run_dir)] == [7] and not (run_dir / "final").exists()

    run_training(STAGES["prior"](config), resume=True)
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert (run_dir / "final" / "prior").is_dir() and steps[-1] == 30


def test_a_signal_on_a_checkpoint_step_does_not_write_it_twice(tmp_path):
    config = _config("prior", tmp_path, clip_dir=str(tiny_runs()["clip"][0]))
    with pytest.raises(TrainingInterrupted) as stopped:
        run_training(_SignalAt(config, step=15, number=signal.SIGTERM))  # checkpoint_every = 15
    assert stopped.value.checkpoint == tmp_path / "prior" / "checkpoint-15"
    assert [step for step, _ in list_checkpoints(tmp_path / "prior")] == [15]


def test_unclip_train_exits_with_128_plus_the_signal(monkeypatch, tmp_path):
    from unclip_diffusers.training import cli

    def stopped(args):
        raise TrainingInterrupted(signal.SIGTERM, 7, tmp_path / "checkpoint-7")

    monkeypatch.setattr(cli, "run", stopped)
    with pytest.raises(SystemExit) as exited:
        cli.main(["prior", "--config", "tiny"])
    assert exited.value.code == 143
