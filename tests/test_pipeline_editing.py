"""Image variations, interpolations, text diffs and DDIM inversion (unCLIP §3) on tiny seeded components."""

import math

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.configs import build_components
from unclip_diffusers.utils import to_tensor_images

STEPS = dict(decoder_num_inference_steps=2, super_res_num_inference_steps=2, decoder_guidance_scale=2.0)
PRIOR = dict(prior_num_inference_steps=2, prior_guidance_scale=2.0)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(seed: int, size: int = 16) -> PIL.Image.Image:
    """A smooth colour gradient (distinct per seed), so images are easy to reconstruct and to tell apart."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)
    a, b, c = rng.uniform(0.2, 1.0, 3)
    array = np.stack([a * np.outer(ramp, np.ones(size)), b * np.outer(np.ones(size), ramp[::-1]),
                      np.full((size, size), c)], axis=-1)
    return PIL.Image.fromarray((array * 255).round().astype(np.uint8))


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.acos(float(F.cosine_similarity(a, b, dim=-1).clamp(-1, 1)))



@pytest.fixture(scope="module")
def pipe() -> UnCLIPPipeline:
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def zero_noise_pipe() -> UnCLIPPipeline:
    """A decoder that predicts zero noise: DDIM is then exactly invertible, which isolates the inversion plumbing
    (timestep pairing between the inverse and forward samplers) from a random model's chaotic predictions."""
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    with torch.no_grad():
        pipe.decoder.conv_out.weight.zero_()
        pipe.decoder.conv_out.bias.zero_()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def time_only_pipe() -> UnCLIPPipeline:
    """A decoder whose noise prediction depends on the timestep only: DDIM inversion is then exact in exact
    arithmetic, while the predicted x0 along the inverted path leaves [-1, 1], so any x0 clipping shows."""
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))

    def noise_of_timestep(sample, timestep, **kwargs):
        pattern = torch.randn(sample.shape[1:], generator=_generator(0))
        return UNet2DConditionOutput(sample=pattern.expand_as(sample) * (float(timestep) / 1000))

    pipe.decoder.forward = noise_of_timestep
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_image_variation_shapes_embeddings_and_seeds(pipe):
    images = [_image(1), _image(2)]
    out = pipe.image_variation(images, num_images_per_prompt=2, generator=_generator(), output_type="np", **STEPS)
    assert out.images.shape == (4, 64, 64, 3) and out.base_images.shape == (4, 16, 16, 3)
    expected = pipe.encode_image(images).repeat_interleave(2, dim=0)
    torch.testing.assert_close(out.image_embeds, expected)
    assert np.abs(out.images[0] - out.images[1]).max() > 0.1  # new noise per variation
    again = pipe.image_variation(images, num_images_per_prompt=2, generator=_generator(), output_type="np",
                                 return_dict=False, **STEPS)
    np.testing.assert_array_equal(again[0], out.images)
    np.testing.assert_array_equal(again[2], out.base_images)
    other = pipe.image_variation(images[0], generator=_generator(1), output_type="pil", **STEPS)
    assert len(other.images) == 1 and other.images[0].size == (64, 64)
    with pytest.raises(TypeError, match="PIL.Image.Image"):
        pipe.image_variation("a cat", **STEPS)
    with pytest.raises(ValueError, match="2 generators for 1 images"):
        pipe.image_variation(images[0], generator=[_generator(), _generator()], **STEPS)


def test_interpolation_between_images_follows_the_slerp_path(pipe):
    start, end = _image(3), _image(4)
    out = pipe.interpolate(start, end, steps=4, generator=_generator(), output_type="np", **STEPS, **PRIOR)
    assert out.images.shape == (4, 64, 64, 3) and out.image_embeds.shape == (4, 32)
    z = pipe.encode_image([start, end])
    torch.testing.assert_close(out.image_embeds[0], z[0])
    torch.testing.assert_close(out.image_embeds[-1], z[1])
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(4))
    total = _angle(z[0], z[1])
    for i in range(4):
        assert _angle(z[0], out.image_embeds[i]) == pytest.approx(total * i / 3, abs=1e-3)


def test_interpolation_holds_the_noise_fixed_across_frames(pipe):
    image = _image(5)
    out = pipe.interpolate(image, image, steps=3, generator=_generator(2), output_type="np", **STEPS, **PRIOR)
    # Same embedding at every frame + the same decoder and upsampler noise = the same image at every frame.
    np.testing.assert_allclose(out.images[0], out.images[1], atol=1e-5)
    np.testing.assert_allclose(out.images[0], out.images[2], atol=1e-5)
    other_seed = pipe.interpolate(image, image, steps=2, generator=_generator(3), output_type="np", **STEPS, **PRIOR)
    assert np.abs(other_seed.images[0] - out.images[0]).max() > 0.1


def test_interpolation_from_a_caption_uses_the_prior_sample(pipe):
    out = pipe.interpolate("a cat", _image(6), steps=2, generator=_generator(4), output_type="pt", **STEPS, **PRIOR)
    prior_sample = pipe.sample_prior("a cat", num_inference_steps=2, guidance_scale=2.0, generator=_generator(4))
    torch.testing.assert_close(out.image_embeds[0], prior_sample[0])
    assert out.images.shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="at least 2"):
        pipe.interpolate("a", "b", steps=1)
    with pytest.raises(TypeError, match="start must be a caption"):
        pipe.interpolate(3, "b")
    with pytest.raises(ValueError, match="one generator"):
        pipe.interpolate("a", "b", generator=[_generator(), _generator()])


def test_text_diff_rotates_the_embedding_toward_the_caption_change(pipe):
    image = _image(7)
    amounts = [0.0, 0.25, 0.5]
    out = pipe.text_diff(image, "a cat", "a dog", amounts, generator=_generator(), output_type="np", **STEPS, **PRIOR)
    assert out.images.shape == (3, 64, 64, 3)
    z_i = pipe.encode_image(image)[0]
    torch.testing.assert_close(out.image_embeds[0], z_i)
    texts = pipe.encode_prompt(["a cat", "a dog"]).text_embeds
    z_d = F.normalize(texts[1] - texts[0], dim=-1)
    total = _angle(z_i, z_d)
    for amount, embedding in zip(amounts, out.image_embeds, strict=True):
        assert _angle(z_i, embedding) == pytest.approx(amount * total, abs=1e-3)
        assert _angle(embedding, z_d) == pytest.approx((1 - amount) * total, abs=1e-3)
    single = pipe.text_diff("a cat", "a cat", "a dog", 0.3, generator=_generator(), output_type="pil", **STEPS, **PRIOR)
    assert len(single.images) == 1
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="amount"):
            pipe.text_diff(image, "a cat", "a dog", bad)
    with pytest.raises(ValueError, match="same CLIP text embedding"):
        pipe.text_diff(image, "a cat", "a cat", 0.5)


def test_ddim_inversion_reconstructs_the_image(zero_noise_pipe):
    pipe = zero_noise_pipe
    image = _image(8)
    latents = pipe.ddim_invert(image, num_inference_steps=4, guidance_scale=2.0)
    assert latents.shape == (1, 3, 16, 16)
    from diffusers import DDIMScheduler

    from unclip_diffusers.pipelines.editing import _scheduler_from

    ddim = _scheduler_from(DDIMScheduler, pipe.decoder_scheduler)
    reconstruction = pipe.decode(pipe.encode_image(image), latents=latents, num_inference_steps=4, guidance_scale=2.0,
                                 scheduler=ddim, upscale=False, output_type="pt")
    torch.testing.assert_close(reconstruction * 2 - 1, to_tensor_images(image), atol=1e-4, rtol=0)


def test_ddim_inversion_samples_without_clipping_x0(time_only_pipe):
    """With x0 clipped (the decoder's DPM-Solver `thresholding`), the same pipeline's mean error was 0.2-0.5."""
    from diffusers import DDIMScheduler

    from unclip_diffusers.pipelines.editing import _scheduler_from

    pipe, image = time_only_pipe, _image(8)
    ddim = _scheduler_from(DDIMScheduler, pipe.decoder_scheduler)
    assert pipe.decoder_scheduler.config.thresholding and not ddim.config.thresholding and not ddim.config.clip_sample
    image_embeds = pipe.encode_image(image)
    for steps in (4, 10):
        latents = pipe.ddim_invert(image, image_embeds, num_inference_steps=steps, guidance_scale=2.0)
        reconstruction = pipe.decode(image_embeds, latents=latents, num_inference_steps=steps, guidance_scale=2.0,
                                     scheduler=ddim, upscale=False, output_type="pt")
        error = (reconstruction * 2 - 1 - to_tensor_images(image)).abs()
        assert error.max() < 1e-2 and error.mean() < 1e-3, (steps, error.max(), error.mean())
    edit = pipe.text_diff(image, "a cat", "a dog", [0.0], invert=True, generator=_generator(), output_type="pt",
                          **STEPS, **PRIOR)
    torch.testing.assert_close(edit.base_images[0] * 2 - 1, to_tensor_images(image)[0], atol=1e-2, rtol=0)


def test_inverted_interpolation_starts_and_ends_at_the_images(zero_noise_pipe):
    pipe = zero_noise_pipe
    start, end = _image(9), _image(10)
    out = pipe.interpolate(start, end, steps=3, invert=True, generator=_generator(), output_type="pt", **STEPS, **PRIOR)
    assert out.base_images.shape == (3, 3, 16, 16) and out.images.shape == (3, 3, 64, 64)
    torch.testing.assert_close(out.base_images[0] * 2 - 1, to_tensor_images(start)[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.base_images[-1] * 2 - 1, to_tensor_images(end)[0], atol=1e-4, rtol=0)
    edit = pipe.text_diff(start, "a cat", "a dog", [0.0], invert=True, generator=_generator(), output_type="pt",
                          **STEPS, **PRIOR)
    torch.testing.assert_close(edit.base_images[0] * 2 - 1, to_tensor_images(start)[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["image_variation", "interpolate", "text_diff"])
def test_generator_none_draws_from_torchs_global_rng(pipe, method):
    calls = {
        "image_variation": lambda: pipe.image_variation(_image(0), output_type="pt", **STEPS),
        "interpolate": lambda: pipe.interpolate(_image(0), "a cat", steps=2, output_type="pt", **STEPS, **PRIOR),
        "text_diff": lambda: pipe.text_diff(_image(0), "a cat", "a dog", amount=[0.0, 0.5], output_type="pt",
                                            **STEPS, **PRIOR),
    }
    torch.manual_seed(7)
    first = calls[method]().images
    torch.manual_seed(7)
    again = calls[method]().images
    other = calls[method]().images  # the global RNG has moved on
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert (first - other).abs().max() > 0.05


def test_latent_output_is_the_last_stages_latents(pipe):
    images = pipe.image_variation(_image(0), generator=_generator(2), output_type="pt", **STEPS)
    latents = pipe.image_variation(_image(0), generator=_generator(2), output_type="latent", **STEPS)
    assert latents.images.shape == (1, 3, 64, 64) and latents.base_images.shape == (1, 3, 16, 16)
    assert latents.images.min() < 0 <= latents.images.min() + 1  # model space [-1, 1], not [0, 1]
    torch.testing.assert_close(latents.images / 2 + 0.5, images.images)
    torch.testing.assert_close(latents.base_images / 2 + 0.5, images.base_images)
