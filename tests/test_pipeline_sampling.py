"""`denoise`, the package's one sampling loop: training validation samples exactly like the pipeline's stages."""

import copy
import json

import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, HeunDiscreteScheduler

from unclip_diffusers.pipelines.sampling import denoise, noise_level, working_copy
from unclip_diffusers.training.decoder import DecoderWithProjection, sample_decoder_images
from unclip_diffusers.training.prior import sample_prior_embeddings
from unclip_diffusers.training.upsampler import sample_super_res
from unclip_diffusers.utils.images import upsample_for_super_res


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _conditioning(pipe, prompts):
    cond = pipe.encode_prompt(prompts)
    empty = tuple(t[0] for t in pipe.encode_prompt(""))
    return cond, empty


def test_prior_validation_samples_like_sample_prior(pipe):
    cond, empty = _conditioning(pipe, ["a cat", "a red heart"])
    trained = sample_prior_embeddings(pipe.prior, *cond, empty=empty, num_inference_steps=3, guidance_scale=2.0,
                                      generator=_generator(1))
    shipped = pipe.sample_prior(cond, num_inference_steps=3, guidance_scale=2.0, generator=_generator(1))
    torch.testing.assert_close(F.normalize(trained, dim=-1), shipped)  # the pipeline normalises between stages


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
def test_decoder_validation_samples_like_decode(pipe, guidance_scale):
    cond, empty = _conditioning(pipe, ["a cat", "a red heart"])
    image_embeds = F.normalize(torch.randn(2, pipe.embedding_dim, generator=_generator(2)), dim=-1)
    model = DecoderWithProjection(pipe.decoder, pipe.text_proj)
    trained = sample_decoder_images(model, image_embeds, text=tuple(cond), empty=empty, num_inference_steps=3,
                                    guidance_scale=guidance_scale, generator=_generator(3))
    shipped = pipe.decode(image_embeds, cond, num_inference_steps=3, guidance_scale=guidance_scale,
                          generator=_generator(3), upscale=False, output_type="pt")
    torch.testing.assert_close((trained + 1) / 2, shipped, atol=1e-5, rtol=0)


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_upsampler_validation_samples_like_super_resolve(pipe, strength):
    low = torch.rand(2, 3, *pipe.base_size, generator=_generator(4))
    conditioning = upsample_for_super_res(low * 2 - 1, pipe.output_size)
    trained = sample_super_res(pipe.super_res_first, conditioning, num_inference_steps=4, generator=_generator(5),
                               strength=strength)
    shipped = pipe.super_resolve(low, num_inference_steps=4, generator=_generator(5), output_type="pt",
                                 strength=strength)
    torch.testing.assert_close((trained + 1) / 2, shipped, atol=1e-5, rtol=0)


def test_predict_last_is_the_final_model_call_of_an_order_2_scheduler():
    calls = []

    def model(name):
        def predict(model_input, t):
            calls.append(name)
            return torch.zeros_like(model_input)
        return predict

    scheduler = HeunDiscreteScheduler()
    denoise(model("first"), scheduler, latents=torch.randn(1, 3, 4, 4), num_inference_steps=3,
            predict_last=model("last"))
    assert calls == ["first"] * 4 + ["last"]  # 2N - 1 model calls for N = 3 steps


def test_guidance_mixes_the_doubled_batch_and_keeps_the_conditional_variance():
    seen = []

    def predict(model_input, t):
        seen.append(model_input.shape[0])
        uncond = torch.cat([torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), -1.0)], dim=1)
        cond = torch.cat([torch.ones(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)], dim=1)
        return torch.cat([uncond, cond])

    class Recording(DDPMScheduler):
        def step(self, model_output, timestep, sample, **kwargs):
            self.outputs = [*getattr(self, "outputs", []), model_output]
            return super().step(model_output, timestep, sample, **kwargs)

    scheduler = Recording(variance_type="learned_range")
    denoise(predict, scheduler, latents=torch.randn(1, 3, 2, 2), num_inference_steps=2, guidance_scale=3.0,
            generator=_generator())
    assert seen == [2, 2]
    mean, variance = scheduler.outputs[0].split(3, dim=1)
    assert torch.all(mean == 3.0) and torch.all(variance == 0.5)  # 0 + 3 * (1 - 0); the conditional variance


def test_strength_below_one_needs_a_start_sample():
    scheduler = working_copy(DDPMScheduler())
    with pytest.raises(ValueError, match="start"):
        denoise(lambda x, t: x, scheduler, latents=torch.randn(1, 3, 2, 2), num_inference_steps=4, strength=0.5)


def test_guidance_interval_guides_only_the_steps_whose_noise_level_lies_in_it():
    scheduler = working_copy(DDPMScheduler(beta_schedule="squaredcos_cap_v2"))
    scheduler.set_timesteps(5)
    levels = [noise_level(scheduler, t) for t in scheduler.timesteps]
    low, high = levels[3], levels[1]  # steps 1..3 of 5 inside the interval, the first and the last outside
    seen = []

    def predict(model_input, t):
        seen.append((int(t), model_input.shape[0]))
        return torch.zeros_like(model_input)

    denoise(predict, scheduler, latents=torch.randn(2, 3, 2, 2), num_inference_steps=5, guidance_scale=4.0,
            guidance_interval=(low, high), generator=_generator())
    assert [rows for _, rows in seen] == [2, 4, 4, 4, 2]  # unguided steps see the single batch


def test_guidance_interval_covering_everything_or_nothing_matches_guided_or_unguided_sampling(pipe):
    encodings = pipe.encode_prompt("a cat")

    def sample(**kwargs):
        generator = _generator(3)
        embeds = pipe.sample_prior(encodings, num_images_per_prompt=2, generator=generator,
                                   guidance_scale=kwargs.get("scale"), guidance_interval=kwargs.get("interval"))
        images = pipe.decode(embeds, prompt=encodings, generator=generator, upscale=False, output_type="pt",
                             guidance_scale=kwargs.get("scale") or 8.0, guidance_interval=kwargs.get("interval"))
        return embeds, images

    guided, everywhere = sample(), sample(interval=(0.0, float("inf")))
    nowhere, unguided = sample(interval=(0.0, 0.0)), sample(scale=1.0)
    for a, b in [(guided, everywhere), (nowhere, unguided)]:
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(a[1], b[1], atol=1e-4, rtol=0)
    assert (guided[1] - nowhere[1]).abs().max() > 1e-3  # guidance did change the images


def test_the_pipelines_saved_guidance_interval_is_the_default_and_survives_save_and_load(pipe, tmp_path):
    copied = copy.copy(pipe)
    copied.register_to_config(decoder_guidance_interval=(0.0, 0.0))
    generator = _generator(5)
    embeds = torch.nn.functional.normalize(torch.randn(1, pipe.embedding_dim, generator=generator), dim=-1)
    saved = copied.decode(embeds, generator=_generator(1), upscale=False, output_type="pt")
    explicit = pipe.decode(embeds, generator=_generator(1), upscale=False, output_type="pt",
                           guidance_interval=(0.0, 0.0))
    torch.testing.assert_close(saved, explicit)
    copied.save_pretrained(tmp_path)
    reloaded = type(pipe).from_pretrained(tmp_path)
    assert reloaded.config.decoder_guidance_interval == pytest.approx([0.0, 0.0])
    assert reloaded.config.prior_guidance_interval is None


@pytest.mark.parametrize("interval", [(2.0, 1.0), (-1.0, 1.0), (1.0,), "low", (1.0, "x")])
def test_a_bad_guidance_interval_is_refused_with_a_clear_message(pipe, interval):
    with pytest.raises(ValueError, match="guidance interval"):
        pipe("a cat", decoder_guidance_interval=interval, prior_num_inference_steps=2, decoder_num_inference_steps=2,
             super_res_num_inference_steps=2)


def test_the_saved_decoder_guidance_scale_is_every_methods_default(pipe, tmp_path):
    distilled = copy.copy(pipe)
    distilled.register_to_config(decoder_guidance_scale=1.0)  # as a guidance-distilled decoder's pipeline saves it
    embeds = torch.nn.functional.normalize(torch.randn(1, pipe.embedding_dim, generator=_generator(5)), dim=-1)
    batches = []
    hook = pipe.decoder.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        saved = distilled.decode(embeds, generator=_generator(1), upscale=False, output_type="pt")
        explicit = pipe.decode(embeds, generator=_generator(1), upscale=False, output_type="pt", guidance_scale=1.0)
        distilled.image_variation(PIL.Image.new("RGB", (64, 64), "red"), decoder_num_inference_steps=2,
                                  super_res_num_inference_steps=1, generator=_generator(2))
    finally:
        hook.remove()
    torch.testing.assert_close(saved, explicit)
    assert set(batches) == {1}  # no guidance-doubled batch anywhere
    distilled.save_pretrained(tmp_path)
    assert type(pipe).from_pretrained(tmp_path).config.decoder_guidance_scale == 1.0


def test_a_folder_saved_before_the_saved_guidance_settings_loads_with_the_old_behaviour(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = tmp_path / "model_index.json"
    config = json.loads(index.read_text())
    for key in ("decoder_guidance_scale", "prior_guidance_interval", "decoder_guidance_interval"):
        del config[key]
    index.write_text(json.dumps(config))
    old = type(pipe).from_pretrained(tmp_path)
    assert old.config.decoder_guidance_scale == 8.0
    assert old.config.prior_guidance_interval is None and old.config.decoder_guidance_interval is None
    batches = []
    hook = old.decoder.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        old.decode(torch.nn.functional.normalize(torch.randn(1, pipe.embedding_dim), dim=-1), upscale=False,
                   num_inference_steps=3, generator=_generator(1))
    finally:
        hook.remove()
    assert batches == [2, 2, 2]  # guidance 8 at every step, as before
