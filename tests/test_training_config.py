"""Training presets, their validation, the generated command line, and the upsampler's degradation."""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest
import torch

from unclip_diffusers.configs import get_model_config
from unclip_diffusers.training import cli
from unclip_diffusers.training.cli import build_parser, ensure_malloc_env
from unclip_diffusers.training.config import (
    CONFIG_CLASSES,
    STAGES,
    DecoderTrainingConfig,
    TRAINING_PRESETS,
    get_training_config,
    load_config,
    save_config,
)
from unclip_diffusers.training.upsampler import conditioning_image, gaussian_blur, gaussian_kernel, random_crops


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("preset", TRAINING_PRESETS)
def test_presets_are_valid_and_round_trip(stage, preset, tmp_path):
    config = get_training_config(stage, preset)
    assert config.stage == stage and config.model_preset == preset
    save_config(config, tmp_path / "config.json")
    loaded, model = load_config(tmp_path / "config.json")
    assert loaded == config and model == get_model_config(preset)


@pytest.mark.parametrize(
    "stage, overrides, message",
    [
        ("clip", {"batch_size": 0}, "batch_size"),
        ("clip", {"mixed_precision": "fp8"}, "mixed_precision"),
        ("clip", {"lr_scheduler": "exotic"}, "lr_scheduler"),
        ("clip", {"learning_rate": -1.0}, "learning_rate"),
        ("clip", {"model_preset": "huge"}, "huge"),
        ("clip", {"ema_decay": 1.0}, "ema_decay"),
        ("prior", {"text_drop_prob": 1.5}, "text_drop_prob"),
        ("decoder", {"image_drop_prob": -0.1}, "image_drop_prob"),
        ("upsampler", {"crop_size": 30}, "crop_size"),
        ("upsampler", {"blur_kernel_size": 4}, "blur_kernel_size"),
        ("clip", {"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_settings_raise_naming_the_setting(stage, overrides, message):
    with pytest.raises(ValueError, match=message):
        get_training_config(stage, "tiny", **overrides)


def test_unknown_stage_and_preset():
    with pytest.raises(ValueError, match="stage"):
        get_training_config("vae")
    with pytest.raises(ValueError, match="preset"):
        get_training_config("clip", "large")


def test_command_line_has_a_flag_per_setting():
    parser = build_parser()
    for stage, cls in CONFIG_CLASSES.items():
        names = [f.name for f in dataclasses.fields(cls)]
        args = parser.parse_args([stage, "--config", "small", "--seed", "7"])
        assert args.seed == 7 and args.config == "small" and not args.resume
        assert all(hasattr(args, name) for name in names)
    args = parser.parse_args(["decoder", "--learning_rate", "1e-3", "--resume", "--clip_dir", "runs/c"])
    assert args.learning_rate == 1e-3 and args.resume and args.clip_dir == "runs/c" and args.batch_size is None
    with pytest.raises(SystemExit):
        parser.parse_args(["upsampler", "--clip_dir", "x"])  # the upsampler does not use CLIP


@dataclasses.dataclass
class _DecoderWithSwitch(DecoderTrainingConfig):
    use_switch: bool = True  # a bool setting, which no stage has yet


@pytest.mark.parametrize("text, value", [("False", False), ("false", False), ("no", False), ("0", False),
                                         ("True", True), ("true", True), ("YES", True), ("1", True)])
def test_bool_settings_parse_true_and_false(monkeypatch, text, value):
    monkeypatch.setitem(CONFIG_CLASSES, "decoder", _DecoderWithSwitch)
    parser = build_parser()
    assert parser.parse_args(["decoder", "--use_switch", text]).use_switch is value
    assert parser.parse_args(["decoder"]).use_switch is None  # unset: the preset's value stays


def test_bool_settings_reject_other_words(monkeypatch, capsys):
    monkeypatch.setitem(CONFIG_CLASSES, "decoder", _DecoderWithSwitch)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["decoder", "--use_switch", "maybe"])
    error = capsys.readouterr().err
    assert "--use_switch" in error and "'maybe'" in error and "true/false" in error


def _record_execve(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(cli.os, "execve", lambda *args: calls.append(args))
    return calls


def test_malloc_env_already_tuned_does_not_re_execute(monkeypatch):
    calls = _record_execve(monkeypatch)
    monkeypatch.delenv(cli.NO_REEXEC_ENV, raising=False)
    for name, value in cli.MALLOC_ENV.items():
        monkeypatch.setenv(name, value)
    ensure_malloc_env(["clip"])
    assert calls == []  # already tuned: no re-exec


def test_malloc_env_re_executes_the_command_with_the_tuned_allocator(monkeypatch):
    calls = _record_execve(monkeypatch)
    monkeypatch.delenv(cli.NO_REEXEC_ENV, raising=False)
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")
    ensure_malloc_env(["clip", "--max_steps", "3"])
    assert len(calls) == 1
    executable, argv, env = calls[0]
    assert executable == sys.executable
    assert argv == [sys.executable, "-m", "unclip_diffusers.training.cli", "clip", "--max_steps", "3"]
    assert {k: env[k] for k in cli.MALLOC_ENV} == cli.MALLOC_ENV and env["PATH"] == os.environ["PATH"]
    monkeypatch.setenv(cli.NO_REEXEC_ENV, "1")  # opted out: the current settings stay
    ensure_malloc_env(["clip"])
    assert len(calls) == 1


def test_small_preset_sizes():
    """The release model's parameter counts stay in the ranges the README's timings were measured for."""
    from unclip_diffusers.configs import build_decoder, build_prior, build_super_res, build_text_proj
    from unclip_diffusers.training.clip import build_clip_model

    config = get_model_config("small")
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    with torch.device("meta"):
        clip, prior = count(build_clip_model(config)), count(build_prior(config))
        decoder = count(build_decoder(config)) + count(build_text_proj(config))
        upsampler = count(build_super_res(config))
    assert 5 < clip < 9 and 3 < prior < 9 and 4 < decoder < 8 and 1 < upsampler < 8, (clip, prior, decoder, upsampler)


def test_gaussian_blur():
    kernel = gaussian_kernel(3, 0.6)
    assert kernel.shape == (3, 3) and torch.isclose(kernel.sum(), torch.tensor(1.0))
    g = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / (2 * 0.36))
    torch.testing.assert_close(kernel, torch.outer(g, g) / torch.outer(g, g).sum())
    flat = torch.full((2, 3, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(flat), flat)  # constants stay constant (reflect padding)
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1
    torch.testing.assert_close(gaussian_blur(impulse)[0, 0, 1:4, 1:4], kernel)
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel(2, 0.6)


def test_conditioning_image_and_crops():
    targets = torch.rand(2, 3, 32, 32) * 2 - 1
    cond = conditioning_image(targets)
    assert cond.shape == targets.shape
    blurred, sharp = conditioning_image(targets), conditioning_image(targets, blur=False)
    assert not torch.allclose(blurred, sharp) and (sharp - targets).abs().mean() < (torch.rand_like(targets) * 2 - 1 - targets).abs().mean()
    a, b = random_crops([targets, targets.clone()], 16, torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)


def test_bf16_falls_back_to_fp32_on_a_cpu_without_native_bf16(monkeypatch, caplog):
    from unclip_diffusers.training import trainer

    config = get_training_config("decoder", "tiny", mixed_precision="bf16")
    monkeypatch.setattr(trainer.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="unclip_diffusers.training.trainer"):
        assert trainer.effective_mixed_precision(config) == "no"
    assert "no native bf16" in caplog.text
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: True)
    assert trainer.effective_mixed_precision(config) == "bf16"
    assert trainer.effective_mixed_precision(get_training_config("decoder", "tiny")) == "no"


def test_multilingual_preset_grows_only_the_text_side():
    """`small-multilingual`: 16,382 ids and 64 tokens; image tower, decoder and upsampler are `small`'s."""
    from unclip_diffusers.configs import UnCLIPModelConfig, build_prior, clip_text_config, clip_vision_config

    small, multi = get_model_config("small"), get_model_config("small-multilingual")
    assert (small.clip.extra_merges, small.clip.max_text_length, clip_text_config(small.clip).vocab_size) == (0, 32, 8192)
    text = clip_text_config(multi.clip)
    assert (text.vocab_size, text.eos_token_id, text.max_position_embeddings) == (16382, 16381, 64)
    assert clip_vision_config(multi.clip).to_dict() == clip_vision_config(small.clip).to_dict()
    assert (multi.decoder, multi.super_res) == (small.decoder, small.super_res)
    with torch.device("meta"):
        assert build_prior(multi).config.num_embeddings == 64
    saved = small.to_dict()
    del saved["clip"]["extra_merges"]  # a config.json written before extra_merges existed
    assert UnCLIPModelConfig.from_dict(saved) == small
