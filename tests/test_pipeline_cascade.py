"""The upsampler cascade: none, one or two upsamplers in sequence, saved and loaded through model_index.json."""

from __future__ import annotations

import json

import PIL.Image
import pytest
import torch

from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.configs import build_components

STEPS = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
             super_res_second_num_inference_steps=2)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def cascade() -> UnCLIPPipeline:
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny", second_upsampler=True), super_res_second_strength=0.5)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_output_size_follows_the_last_stage_and_each_stage_runs(cascade):
    assert cascade.base_size == (16, 16) and cascade.output_size == (128, 128)
    assert [(s.name, s.size) for s in cascade.upsampler_stages] == [("super_res", (64, 64)),
                                                                    ("super_res_second", (128, 128))]
    stages = []

    def record(pipe, step, t, kwargs):
        stages.append(kwargs["stage"])
        return {}

    out = cascade("a cat", generator=_generator(), output_type="pt", callback_on_step_end=record,
                  **dict(STEPS, super_res_second_num_inference_steps=4))
    assert out.images.shape == (1, 3, 128, 128) and out.base_images.shape == (1, 3, 16, 16)
    # per-stage steps and strengths: first stage 2 steps at strength 1, second 4 steps at its saved 0.5
    assert stages == ["prior"] * 2 + ["decoder"] * 2 + ["super_res"] * 2 + ["super_res_second"] * 2


def test_the_cascade_is_the_first_stage_then_the_second(cascade):
    base = torch.rand(1, 3, 16, 16, generator=_generator(1))
    whole = cascade.super_resolve(base, num_inference_steps=[2, 3], generator=_generator(2), output_type="pt")
    generator = _generator(2)  # one generator flows through both stages, as in the cascade
    first = cascade.super_resolve(base, num_inference_steps=2, generator=generator, output_type="pt", stage=0)
    second = cascade.super_resolve(first, num_inference_steps=3, generator=generator, output_type="pt", stage=1)
    assert first.shape[-1] == 64 and whole.shape[-1] == 128
    torch.testing.assert_close(whole, second, atol=2e-3, rtol=0)  # the hand-over is quantised nowhere (pt in [0, 1])


def test_super_res_slicing_gives_the_same_images_one_forward_per_image(cascade):
    base = torch.rand(3, 3, 16, 16, generator=_generator(1))
    whole = cascade.super_resolve(base, num_inference_steps=[2, 2], generator=_generator(2), output_type="pt")
    batches = []
    hook = cascade.super_res_second.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    first_batches = []
    first_hook = cascade.super_res_first.register_forward_pre_hook(
        lambda module, args: first_batches.append(args[0].shape[0]))
    try:
        cascade.enable_super_res_slicing(max_pixels=2 * 64 * 64)  # 2 images of the 64-px stage, 1 of the 128-px one
        sliced = cascade.super_resolve(base, num_inference_steps=[2, 2], generator=_generator(2), output_type="pt")
    finally:
        cascade.disable_super_res_slicing()
        hook.remove()
        first_hook.remove()
    assert first_batches == [2, 1] * 2  # 2 steps of 3 images, at most 2 per forward
    assert batches == [1, 1, 1]  # the saved strength 0.5 of 2 steps runs 1 step: 3 images, one per forward
    torch.testing.assert_close(sliced, whole, atol=2e-4, rtol=0)  # batch-size-dependent conv kernels; 1/255 = 4e-3


def test_super_resolve_stages_yields_each_stage_and_ends_as_super_resolve(cascade):
    base = torch.rand(2, 3, 16, 16, generator=_generator(1))
    whole = cascade.super_resolve(base, num_inference_steps=[2, 3], generator=_generator(2), output_type="pt")
    staged = list(cascade.super_resolve_stages(base, num_inference_steps=[2, 3], generator=_generator(2),
                                               output_type="pt"))
    assert [tuple(images.shape) for images in staged] == [(2, 3, 64, 64), (2, 3, 128, 128)]
    assert torch.equal(staged[-1], whole)  # each stage hands its output on unconverted, as in the cascade
    with pytest.raises(ValueError, match="3 entries"):
        list(cascade.super_resolve_stages(base, num_inference_steps=[2, 2, 2]))


def test_round_trip_through_save_pretrained(cascade, tmp_path):
    cascade.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["super_res_second"] == ["diffusers", "UNet2DModel"] and index["super_res_second_strength"] == 0.5
    from unclip_diffusers.hub.folders import resolutions

    assert resolutions(tmp_path) == {"base": 16, "upsampled": 128}  # what a model card states: the last stage's
    loaded = UnCLIPPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.output_size == (128, 128) and loaded.config.super_res_second_strength == 0.5
    expected = cascade("a cat", generator=_generator(), output_type="pt", **STEPS).images
    images = loaded("a cat", generator=_generator(), output_type="pt", **STEPS).images
    torch.testing.assert_close(images, expected, atol=1e-4, rtol=0)  # float32 round trip; kernels may reorder sums


def test_folders_without_the_second_stage_still_load(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index_file = tmp_path / "model_index.json"
    index = json.loads(index_file.read_text())
    for key in ("super_res_second", "super_res_second_scheduler", "super_res_second_strength"):
        index.pop(key)  # as written before the second stage existed
    index_file.write_text(json.dumps(index))
    loaded = UnCLIPPipeline.from_pretrained(tmp_path)
    assert loaded.super_res_second is None and loaded.config.super_res_second_strength == 1.0
    assert loaded.output_size == (64, 64) and len(loaded.upsampler_stages) == 1
    loaded.set_progress_bar_config(disable=True)
    image = loaded("a cat", generator=_generator(), output_type="pt", **STEPS).images  # the second-stage steps unused
    assert image.shape == (1, 3, 64, 64)


def test_inpainting_keeps_the_known_region_at_every_stage(cascade):
    source = PIL.Image.new("RGB", (128, 128), (200, 40, 40))
    mask = PIL.Image.new("L", (128, 128), 0)
    mask.paste(255, (0, 0, 64, 128))  # repaint the left half
    seen = []
    original = cascade._super_resolve

    def spy(*args, **kwargs):
        seen.append(kwargs["stage"].name)
        return original(*args, **kwargs)

    cascade._super_resolve = spy
    try:
        out = cascade.inpaint(source, mask, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
                              super_res_second_num_inference_steps=2, generator=_generator(), output_type="np")
    finally:
        del cascade._super_resolve
    assert seen == ["super_res", "super_res_second"]
    kept = out.images[0, :, 64:]  # the right half is the source at the output size
    assert out.images.shape == (1, 128, 128, 3)
    assert abs(kept[..., 0].mean() - 200 / 255) < 0.02 and abs(kept[..., 1].mean() - 40 / 255) < 0.02


def test_variations_go_through_both_stages(cascade):
    image = PIL.Image.new("RGB", (32, 32), (10, 120, 200))
    out = cascade.image_variation(image, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
                                  super_res_second_num_inference_steps=2, generator=_generator(), output_type="pt")
    assert out.images.shape == (1, 3, 128, 128)


def test_bad_cascades_and_arguments_raise(cascade, pipe):
    components = build_components("tiny", second_upsampler=True)
    first = components.pop("super_res_first")
    with pytest.raises(ValueError, match="needs super_res_first|pass super_res_first"):
        UnCLIPPipeline(**components, super_res_first=None)
    with pytest.raises(ValueError, match="super_res_second_scheduler"):
        UnCLIPPipeline(**dict(components, super_res_first=first, super_res_second_scheduler=None))
    with pytest.raises(ValueError, match="must raise the resolution"):
        UnCLIPPipeline(**dict(components, super_res_first=first, super_res_second=first))
    with pytest.raises(ValueError, match="super_res_second_strength"):
        UnCLIPPipeline(**dict(components, super_res_first=first), super_res_second_strength=1.5)
    with pytest.raises(ValueError, match="needs a first upsampler"):
        build_components(_config_without_first_upsampler(), second_upsampler=True)
    with pytest.raises(ValueError, match="no second upsampler"):
        pipe("a cat", super_res_second_latents=torch.zeros(1, 3, 128, 128), **STEPS)
    with pytest.raises(ValueError, match="super_res_second_latents"):
        cascade("a cat", super_res_second_latents=torch.zeros(1, 3, 64, 64), **STEPS)
    with pytest.raises(ValueError, match="super_res_second_num_inference_steps"):
        cascade("a cat", **dict(STEPS, super_res_second_num_inference_steps=0))
    base = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="stage must be"):
        cascade.super_resolve(base, stage=2)
    with pytest.raises(ValueError, match="stage must be"):
        pipe.super_resolve(base, stage=1)
    with pytest.raises(ValueError, match="one entry"):
        cascade.super_resolve(base, latents=torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="3 entries"):
        cascade.super_resolve(base, num_inference_steps=[2, 2, 2])


def _config_without_first_upsampler():
    """The tiny model config without a first upsampler (so a second one has nothing to follow)."""
    from dataclasses import replace

    from unclip_diffusers.configs import get_model_config

    return replace(get_model_config("tiny"), super_res=None)
