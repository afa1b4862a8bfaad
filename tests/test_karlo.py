"""Karlo-layout folders (`kakaobrain/karlo-v1-alpha`, here randomly initialised and reduced in width) load into
`UnCLIPPipeline` and sample exactly like diffusers' own (deprecated) `UnCLIPPipeline` on the same weights."""

import copy
import json
import warnings

import numpy as np
import PIL.Image
import pytest
import torch

from unclip_diffusers import UnCLIPPipeline, UnCLIPPriorTransformer, UnCLIPTextProjection
from unclip_diffusers.pipelines.karlo import KARLO_MODEL_INDEX, is_karlo_layout
from unclip_diffusers.pipelines.karlo_random import write_random_karlo_layout

STEPS = dict(prior_num_inference_steps=3, decoder_num_inference_steps=3, super_res_num_inference_steps=3)



@pytest.fixture(scope="module")
def karlo_folder(tmp_path_factory):
    return write_random_karlo_layout(tmp_path_factory.mktemp("karlo") / "karlo-tiny", preset="tiny", seed=0)


@pytest.fixture(scope="module")
def pipe(karlo_folder) -> UnCLIPPipeline:
    pipe = UnCLIPPipeline.from_pretrained(karlo_folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_folder_has_karlo_layout_and_stock_class_names(karlo_folder):
    index = json.load(open(f"{karlo_folder}/model_index.json"))
    assert index == KARLO_MODEL_INDEX and is_karlo_layout(index)
    assert json.load(open(f"{karlo_folder}/prior/config.json"))["_class_name"] == "PriorTransformer"
    assert json.load(open(f"{karlo_folder}/text_proj/config.json"))["_class_name"] == "UnCLIPTextProjModel"
    decoder_scheduler = json.load(open(f"{karlo_folder}/decoder_scheduler/scheduler_config.json"))
    assert decoder_scheduler["variance_type"] == "learned_range"
    assert not is_karlo_layout({"prior": ["unclip_diffusers", "UnCLIPPriorTransformer"]})


def test_loads_into_our_classes_with_every_weight(pipe, karlo_folder):
    assert isinstance(pipe.prior, UnCLIPPriorTransformer) and isinstance(pipe.text_proj, UnCLIPTextProjection)
    assert pipe.config.normalize_embeddings is False  # Karlo was trained on raw CLIP embeddings
    assert pipe.decoder.config.out_channels == 6 and pipe.super_res_last is not None
    assert pipe.image_encoder is None
    from diffusers import PriorTransformer
    from safetensors.torch import load_file

    stock_prior = PriorTransformer.from_pretrained(f"{karlo_folder}/prior")
    for (name, a), (_, b) in zip(pipe.prior.state_dict().items(), stock_prior.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert float(pipe.prior.clip_std.min()) >= 0.5  # the stored statistics, not the fresh-model default
    stored = load_file(f"{karlo_folder}/text_proj/diffusion_pytorch_model.safetensors")
    ours = pipe.text_proj.state_dict()
    assert set(stored) == set(ours)
    for name, tensor in stored.items():
        torch.testing.assert_close(ours[name], tensor, msg=name)


def test_samples_exactly_like_diffusers_reference_pipeline(pipe):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import UnCLIPPipeline as ReferencePipeline

    g = torch.Generator().manual_seed(0)
    prior_latents = torch.randn(2, 32, generator=g)
    decoder_latents = torch.randn(2, 3, 16, 16, generator=g)
    super_res_latents = torch.randn(2, 3, 64, 64, generator=g)
    latents = dict(prior_latents=prior_latents, decoder_latents=decoder_latents, super_res_latents=super_res_latents)
    # One caption, two images: both pipelines then encode the empty caption once and repeat it. (With two captions the
    # reference encodes ["", ""] as a batch, which rounds differently in the last bit, and random weights amplify it.)
    kwargs = dict(num_images_per_prompt=2, output_type="np", **latents, **STEPS)
    ours = pipe("a cat", generator=torch.Generator().manual_seed(1), **kwargs)
    reference = ReferencePipeline(
        prior=pipe.prior, decoder=pipe.decoder, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
        text_proj=pipe.text_proj, super_res_first=pipe.super_res_first, super_res_last=pipe.super_res_last,
        prior_scheduler=copy.deepcopy(pipe.prior_scheduler), decoder_scheduler=copy.deepcopy(pipe.decoder_scheduler),
        super_res_scheduler=copy.deepcopy(pipe.super_res_scheduler),
    )
    reference.set_progress_bar_config(disable=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference("a cat", generator=torch.Generator().manual_seed(1), **kwargs)
    # UnCLIPScheduler adds noise at every step from the generator, so this also checks the order of random draws.
    np.testing.assert_allclose(ours.images, expected.images, atol=1e-5)
    assert ours.images.std() > 0.05  # not a constant image


def test_other_samplers_and_editing_work_on_karlo(pipe):
    from diffusers import DPMSolverMultistepScheduler

    schedulers = pipe.make_schedulers(DPMSolverMultistepScheduler)
    embeds = pipe.sample_prior("a cat", num_inference_steps=2, scheduler=schedulers["prior_scheduler"],
                               generator=torch.Generator().manual_seed(0))
    assert embeds.shape == (1, 32) and float(embeds.norm()) != pytest.approx(1.0)  # raw, unnormalised
    images = pipe.decode(embeds, "a cat", num_inference_steps=2, scheduler=schedulers["decoder_scheduler"],
                         super_res_num_inference_steps=2, super_res_scheduler=schedulers["super_res_scheduler"],
                         output_type="pt", generator=torch.Generator().manual_seed(0))
    assert images.shape == (1, 3, 64, 64) and torch.isfinite(images).all()
    frames = pipe.interpolate("a cat", "a dog", steps=3, generator=torch.Generator().manual_seed(0),
                              output_type="np", **STEPS)
    assert frames.images.shape == (3, 64, 64, 3)
    norms = frames.image_embeds.norm(dim=-1)
    torch.testing.assert_close(norms[1], (norms[0] + norms[2]) / 2)  # raw norms interpolate linearly


def test_variations_without_an_image_encoder_raise_a_clear_error(pipe):
    with pytest.raises(ValueError, match="no image_encoder"):
        pipe.image_variation(PIL.Image.new("RGB", (16, 16)))
    with pytest.raises(ValueError, match="no image_encoder"):
        pipe.interpolate(PIL.Image.new("RGB", (16, 16)), "a cat")


def test_loaded_karlo_saves_in_our_format_and_reloads(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "converted")
    index = json.load(open(tmp_path / "converted" / "model_index.json"))
    assert index["text_proj"] == ["unclip_diffusers", "UnCLIPTextProjection"]
    assert index["super_res_last"] == ["diffusers", "UNet2DModel"] and index["normalize_embeddings"] is False
    reloaded = UnCLIPPipeline.from_pretrained(tmp_path / "converted")
    reloaded.set_progress_bar_config(disable=True)
    assert reloaded.config.normalize_embeddings is False and reloaded.super_res_last is not None
    kwargs = dict(generator=torch.Generator().manual_seed(3), output_type="np", **STEPS)
    np.testing.assert_array_equal(pipe("a cat", **kwargs).images,
                                  reloaded("a cat", **{**kwargs, "generator": torch.Generator().manual_seed(3)}).images)
    with pytest.raises(ValueError, match="does not look like a Karlo folder"):
        UnCLIPPipeline.from_karlo(tmp_path / "converted")
