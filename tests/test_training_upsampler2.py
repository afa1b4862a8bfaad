"""`unclip-train upsampler2`: the cascade's second upsampler trains on crops of the 256-px art, resumes and exports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from test_training_data import dataset_path
from unclip_diffusers.configs import build_components
from unclip_diffusers.training.config import get_training_config, second_stage_scale
from unclip_diffusers.training.trainer import run_training
from unclip_diffusers.training.upsampler2 import Upsampler2Stage

FEW = dict(max_steps=2, batch_size=4, checkpoint_every=2, num_validation_examples=2, num_validation_images=1,
           num_threads=1, max_train_examples=0)


def _config(root: Path, **overrides):
    return get_training_config("upsampler2", "tiny", **(dict(FEW, data_path=dataset_path(), output_dir=str(root))
                                                         | overrides))


@pytest.fixture
def threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_a_few_steps_write_a_checkpoint_and_resume_continues(tmp_path, caplog, threads):
    caplog.set_level(logging.INFO, logger="unclip_diffusers")
    run_dir = run_training(Upsampler2Stage(_config(tmp_path / "run")))
    assert "styles left out of this stage: Noto, Twemoji" in caplog.text  # the fixture's styles without 256-px art
    assert (run_dir / "checkpoint-2").is_dir()
    final = run_dir / "final" / "super_res_second"
    assert (final / "config.json").is_file() and list(final.glob("*.safetensors"))
    assert json.loads((final / "config.json").read_text())["sample_size"] == 128  # the tiny second stage, x2 of 64
    assert (run_dir / "samples" / "upsampler2-step-0000002.png").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["stage"] == "upsampler2" and config["model"]["super_res_second"]["sample_size"] == 128

    resumed = run_training(Upsampler2Stage(_config(tmp_path / "run", max_steps=4)), resume=True)
    lines = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    steps = [line["step"] for line in lines if "loss" in line]
    assert steps == [1, 2, 3, 4]  # continued from step 2, not restarted
    assert (resumed / "checkpoint-4").is_dir()
    validation = [line["validation"] for line in lines if "validation" in line][-1]
    assert {"heldout_psnr", "heldout_bicubic_psnr"} <= set(validation)


def test_training_input_is_degraded_crop_matched_and_seeded(tmp_path):
    stage = Upsampler2Stage(_config(tmp_path / "unused"))
    stage.setup(None)
    assert stage.num_train_examples == 14 and stage.left_out_styles == ["Noto", "Twemoji"]
    assert stage.targets.shape[-1] == 128 and stage.scale == 2
    x_start = stage.targets[:2].float() / 127.5 - 1
    one = stage.train_conditioning(x_start, torch.Generator().manual_seed(0))
    two = stage.train_conditioning(x_start, torch.Generator().manual_seed(0))
    clean = stage.clean_conditioning(x_start)
    assert one.shape == x_start.shape and torch.equal(one, two)
    assert not torch.allclose(one, clean, atol=1e-3)  # degraded, not just resized
    loss = stage.loss(stage.build_model(), torch.arange(2), torch.Generator().manual_seed(0), None)
    assert torch.isfinite(loss)


def test_bad_setups_raise_clearly(tmp_path):
    with pytest.raises(ValueError, match="crop_size 256 is larger"):
        Upsampler2Stage(_config(tmp_path, crop_size=256)).setup(None)
    with pytest.raises(ValueError, match="jpeg_quality"):
        _config(tmp_path, jpeg_quality_min=99, jpeg_quality_max=10)
    pack = tmp_path / "upsampler.safetensors"
    pack.write_bytes(b"")  # refused by name, before it is read
    with pytest.raises(ValueError, match="is a pack"):
        Upsampler2Stage(_config(tmp_path, data_path=str(pack))).setup(None)


def test_presets_without_a_second_stage_are_refused(monkeypatch, tmp_path):
    from dataclasses import replace

    from unclip_diffusers import configs

    monkeypatch.setitem(configs.MODEL_PRESETS, "tiny-one-upsampler",
                        replace(configs.MODEL_PRESETS["tiny"], super_res_second=None))
    with pytest.raises(ValueError, match="no second upsampler"):
        _config(tmp_path, model_preset="tiny-one-upsampler")
    assert second_stage_scale(configs.get_model_config("small")) == 2


def test_assemble_needs_the_first_upsampler_for_the_second(tmp_path):
    from unclip_diffusers.training.assemble import assemble_components

    with pytest.raises(ValueError, match="--upsampler"):
        assemble_components(tmp_path, tmp_path, tmp_path, upsampler_dir=None, upsampler2_dir=tmp_path)


def test_trained_weights_load_as_the_pipeline_s_second_stage(tmp_path, threads):
    from diffusers import UNet2DModel

    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_sampling_scheduler

    run_dir = run_training(Upsampler2Stage(_config(tmp_path / "run", max_steps=1, checkpoint_every=1)))
    second = UNet2DModel.from_pretrained(run_dir / "final" / "super_res_second", use_safetensors=True)
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"), super_res_second=second,
                          super_res_second_scheduler=build_sampling_scheduler("epsilon"))
    pipe.set_progress_bar_config(disable=True)
    image = pipe.super_resolve(torch.rand(1, 3, 16, 16), num_inference_steps=2, output_type="pt")
    assert image.shape == (1, 3, 128, 128)


def _fake_final(folder: Path, components: dict, names: tuple[str, ...]) -> Path:
    """A `final/` folder holding `names` of randomly initialised tiny components (a stand-in for a trained run)."""
    for name in names:
        components[name].save_pretrained(folder / "final" / name)
    return folder


def test_assemble_export_and_restore_carry_the_second_stage(tmp_path, threads):
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.training.assemble import main as assemble
    from unclip_diffusers.training.export import export_checkpoint
    from unclip_diffusers.training.provenance import read_provenance
    from unclip_diffusers.training.restore import restore_runs

    run_dir = run_training(Upsampler2Stage(_config(tmp_path / "runs" / "upsampler2-tiny", max_steps=1,
                                                   checkpoint_every=1)))
    snapshot = export_checkpoint(run_dir)
    assert snapshot.name == "snapshot-1" and (snapshot / "super_res_second" / "config.json").is_file()

    torch.manual_seed(0)
    parts = build_components("tiny")
    clip = _fake_final(tmp_path / "clip", parts, ("text_encoder", "image_encoder", "tokenizer", "feature_extractor"))
    prior = _fake_final(tmp_path / "prior", parts, ("prior",))
    decoder = _fake_final(tmp_path / "decoder", parts, ("decoder", "text_proj"))
    upsampler = _fake_final(tmp_path / "upsampler", parts, ("super_res_first",))
    output = tmp_path / "pipe"
    assemble(["--clip", str(clip), "--prior", str(prior), "--decoder", str(decoder), "--upsampler", str(upsampler),
              "--upsampler2", str(run_dir), "--super-res-second-strength", "0.4", "--output", str(output)])
    pipe = UnCLIPPipeline.from_pretrained(output)
    assert pipe.output_size == (128, 128) and pipe.config.super_res_second_strength == 0.4
    provenance = read_provenance(output)
    assert provenance["upsampler2"]["recorded"] and provenance["upsampler2"]["source"] == "upsampler2-tiny/final"

    restored = restore_runs(output, tmp_path / "restored")
    assert set(restored) == {"upsampler2"}  # the stand-in stages have no recorded training config
    assert (restored["upsampler2"] / "super_res_second" / "config.json").is_file()


def test_command_line_trains_and_resumes(tmp_path, capsys, threads):
    from unclip_diffusers.training.cli import main

    args = ["upsampler2", "--config", "tiny", "--data_path", dataset_path(), "--output_dir", str(tmp_path / "run"),
            "--batch_size", "2", "--checkpoint_every", "1", "--num_validation_examples", "1",
            "--num_validation_images", "1", "--num_threads", "1", "--crop_size", "64", "--jpeg_prob", "1.0"]
    main(args + ["--max_steps", "1"])
    main(args + ["--max_steps", "2", "--resume"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert config["crop_size"] == 64 and config["jpeg_prob"] == 1.0 and config["max_steps"] == 2
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


def test_throughput_benchmark_covers_the_stage(threads):
    from unclip_diffusers.training.benchmark import benchmark_stage

    result = benchmark_stage("upsampler2", "tiny", seconds=0.0, warmup_steps=1, num_threads=1)
    assert result["stage"] == "upsampler2" and result["timed_steps"] >= 1 and result["samples_per_s"] > 0
