"""`--init_from` (start a run from trained weights) and `unclip-train restore` (run folders from a pipeline folder)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from test_training_stages import STAGES, _config, tiny_runs
from unclip_diffusers.training.export import export_checkpoint
from unclip_diffusers.training.trainer import make_accelerator, prepare_run, reset_accelerate_state, run_training


def _prepared(stage_name, root, **overrides):
    if stage_name in ("prior", "decoder"):
        overrides.setdefault("clip_dir", str(tiny_runs()["clip"][0]))
    stage = STAGES[stage_name](_config(stage_name, root, **overrides))
    try:
        return stage, prepare_run(stage, make_accelerator(stage.config))
    finally:
        reset_accelerate_state()


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", list(STAGES))
def test_init_from_final_loads_the_weights_and_starts_at_step_zero(name, tmp_path):
    run_dir = tiny_runs()[name][0]
    _, fresh = _prepared(name, tmp_path)
    _, warm = _prepared(name, tmp_path, init_from=str(run_dir / "final"))
    fresh_state, warm_state = _state(fresh.unwrapped), _state(warm.unwrapped)
    assert warm.state.step == 0
    assert any(not torch.equal(fresh_state[k], warm_state[k]) for k in fresh_state)
    # the EMA starts from the loaded weights too, so an immediate export reproduces them
    warm.ema.copy_to(warm.unwrapped.parameters())
    assert all(torch.equal(warm_state[k], v) for k, v in _state(warm.unwrapped).items())


def test_init_from_a_snapshot_continues_its_step_schedule_and_ema(tmp_path):
    run_dir = tmp_path / "decoder"
    shutil.copytree(tiny_runs()["decoder"][0], run_dir)
    snapshot = export_checkpoint(run_dir, run_dir / "checkpoint-15")
    clip_dir = str(tiny_runs()["clip"][0])
    stage, warm = _prepared("decoder", tmp_path / "b", init_from=str(snapshot))
    assert warm.state.step == 15 and warm.ema.optimization_step == 15
    expected = stage.config.learning_rate * warm.lr_scheduler.lr_lambdas[0](15)  # the schedule at step 15
    lrs = warm.lr_scheduler.get_last_lr()  # one per parameter group
    assert lrs == pytest.approx([expected] * len(lrs)) and 0 < expected < stage.config.learning_rate

    stage = STAGES["decoder"](_config("decoder", tmp_path / "c", clip_dir=clip_dir, init_from=str(snapshot)))
    out = run_training(stage)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[0] == 16 and steps[-1] == 30 and (out / "final" / "decoder").is_dir()


def test_init_from_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        _prepared("prior", tmp_path, init_from=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="No safetensors weights"):
        _prepared("prior", tmp_path, init_from=str(tmp_path))
    run_dir = tmp_path / "prior"
    shutil.copytree(tiny_runs()["prior"][0], run_dir)
    snapshot = export_checkpoint(run_dir)  # step 30 = max_steps: nothing left to train
    with pytest.raises(ValueError, match="raise max_steps"):
        _prepared("prior", tmp_path / "x", init_from=str(snapshot))
    with pytest.raises(ValueError, match="do not fit this model"):  # a decoder's folder offered to the upsampler
        shutil.copytree(tiny_runs()["decoder"][0] / "final" / "decoder", tmp_path / "wrong" / "super_res_first")
        _prepared("upsampler", tmp_path / "y", init_from=str(tmp_path / "wrong"))


def test_restore_recreates_runs_that_reassemble_and_continue(tmp_path):
    from unclip_diffusers.training.assemble import assemble_components
    from unclip_diffusers.training.assemble import main as assemble
    from unclip_diffusers.training.cli import main as cli
    from unclip_diffusers.training.provenance import read_provenance

    runs = {name: run for name, (run, _, _) in tiny_runs().items()}
    decoder = tmp_path / "old" / "decoder"
    shutil.copytree(runs["decoder"], decoder)
    snapshot = export_checkpoint(decoder, decoder / "checkpoint-15")
    release = tmp_path / "release"
    assemble(["--clip", str(runs["clip"]), "--prior", str(runs["prior"]), "--decoder", str(snapshot),
              "--upsampler", str(runs["upsampler"]), "--output", str(release), "--fp16"])

    restored_root = tmp_path / "runs"
    cli(["restore", str(release), "--runs", str(restored_root)])
    restored = {stage: restored_root / entry["source"] for stage, entry in read_provenance(release).items()}
    assert restored["decoder"] == restored_root / "decoder" / "snapshot-15"
    assert restored["clip"] == restored_root / "clip" / "final"
    for stage, folder in restored.items():
        config = json.loads((folder.parent / "config.json").read_text())
        assert config["stage"] == stage and config["training"]["output_dir"] == str(folder.parent)
        for file in folder.rglob("*.safetensors"):  # float32 again, equal to the release's fp16 values
            released = load_file(release / file.relative_to(folder))
            for key, value in load_file(file).items():
                assert value.dtype == torch.float32 and torch.equal(value, released[key].float())

    components = assemble_components(restored_root / "clip", restored_root / "prior", restored["decoder"],
                                     restored_root / "upsampler")  # the CLIP references match the restored CLIP
    assert components["decoder"].dtype == torch.float32

    stage = STAGES["decoder"](_config("decoder", restored_root, clip_dir=str(restored_root / "clip"),
                                      init_from=str(restored["decoder"])))
    out = run_training(stage, resume=True)  # the restored run folder, continued from its snapshot
    assert (out / "final" / "decoder").is_dir() and (out / "checkpoint-30").is_dir()

    before = sorted(p.name for p in (restored_root / "prior").iterdir())
    cli(["restore", str(release), "--runs", str(restored_root)])  # existing runs are left alone
    assert sorted(p.name for p in (restored_root / "prior").iterdir()) == before
    with pytest.raises(ValueError, match="no training_provenance.json"):
        cli(["restore", str(tmp_path), "--runs", str(restored_root)])


def test_a_prior_with_a_longer_caption_context_is_warm_started_from_a_shorter_one(tmp_path):
    """Fine-tuning the prior on a text tower with more tokens keeps every trained weight and each position's role."""
    from dataclasses import replace

    from unclip_diffusers.configs import build_prior, get_model_config
    from unclip_diffusers.training.warm_start import load_prior

    config = get_model_config("tiny")
    config.clip = replace(config.clip, max_text_length=8)
    short = build_prior(config)
    torch.nn.init.normal_(short.positional_embedding)
    short.save_pretrained(tmp_path / "prior", safe_serialization=True)
    config.clip = replace(config.clip, max_text_length=12)
    long = build_prior(config)
    load_prior(long, tmp_path / "prior")
    old, new = short.positional_embedding.detach(), long.positional_embedding.detach()
    assert new.shape[1] == old.shape[1] + 4
    torch.testing.assert_close(new[:, :8], old[:, :8])  # the caption tokens it was trained with
    torch.testing.assert_close(new[:, 8:12], old[:, 7:8].expand(-1, 4, -1))  # new slots start as the last token's
    torch.testing.assert_close(new[:, 12:], old[:, 8:])  # z_t, timestep, noised z_i, query keep theirs
    torch.testing.assert_close(long.proj_in.weight, short.proj_in.weight)

    config.clip = replace(config.clip, max_text_length=4)
    with pytest.raises(ValueError, match="cannot be widened"):
        load_prior(build_prior(config), tmp_path / "prior")
