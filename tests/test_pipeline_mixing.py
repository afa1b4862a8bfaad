"""`UnCLIPPipeline.mix`: weighted blends of prompts and images, and the embedding blend behind it."""

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.configs import build_components
from unclip_diffusers.pipelines.mixing import check_mix_weights, mix_embeddings
from unclip_diffusers.utils.slerp import slerp

STEPS = dict(decoder_num_inference_steps=2, super_res_num_inference_steps=2, decoder_guidance_scale=2.0)


def _image(seed: int, size: int = 16) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def pipe() -> UnCLIPPipeline:
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_two_inputs_blend_by_slerp_and_weights_are_normalised():
    embeds = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    blend = mix_embeddings(embeds, check_mix_weights(2, [3.0, 1.0]))
    torch.testing.assert_close(blend[0], slerp(embeds[0], embeds[1], 0.25))
    torch.testing.assert_close(mix_embeddings(embeds, check_mix_weights(2, [1, 0])), embeds[:1])


def test_many_inputs_blend_by_the_weighted_mean_direction():
    embeds = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    weights = check_mix_weights(3, [1, 2, 1])
    blend = mix_embeddings(embeds, weights)
    units = F.normalize(embeds, dim=-1)
    expected = F.normalize(0.25 * units[0] + 0.5 * units[1] + 0.25 * units[2], dim=0)
    torch.testing.assert_close(F.normalize(blend[0], dim=0), expected)
    assert blend.norm().item() == pytest.approx((torch.tensor(weights) * embeds.norm(dim=-1)).sum().item(), rel=1e-5)
    torch.testing.assert_close(mix_embeddings(embeds[:1], [1.0]), embeds[:1])


@pytest.mark.parametrize("count", [2, 3, 4])
def test_similarity_to_an_input_grows_with_its_weight(count):
    embeds = torch.randn(count, 16, generator=torch.Generator().manual_seed(count))
    cosines = []
    for w in np.linspace(0.0, 1.0, 9):
        rest = [(1 - w) / (count - 1)] * (count - 1)
        blend = mix_embeddings(embeds, check_mix_weights(count, [w, *rest]))
        cosines.append(F.cosine_similarity(blend, embeds[:1]).item())
    assert all(b > a for a, b in zip(cosines, cosines[1:]))
    assert cosines[-1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "count, weights, message",
    [(0, None, "at least one input"), (2, [1.0], "one weight per input"), (2, [1.0, -0.5], "must be >= 0"),
     (2, [0.0, 0.0], "sum to a positive"), (2, [1.0, float("nan")], "finite number"), (2, [1, "a"], "finite number")],
)  # fmt: skip
def test_bad_weights_are_refused(count, weights, message):
    with pytest.raises(ValueError, match=message):
        check_mix_weights(count, weights)


def test_opposite_directions_with_equal_weights_are_refused():
    embeds = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0001]])
    with pytest.raises(ValueError, match="cancel out"):
        mix_embeddings(embeds, [0.5, 0.5, 0.0])


def test_mix_with_all_weight_on_one_image_is_that_image_s_variation(pipe):
    a, b = _image(0), _image(1)
    mixed = pipe.mix([a, b], weights=[1.0, 0.0], num_images_per_prompt=2, output_type="np",
                     generator=torch.Generator().manual_seed(3), **STEPS)
    variation = pipe.image_variation(a, num_images_per_prompt=2, output_type="np",
                                     generator=torch.Generator().manual_seed(3), **STEPS)
    np.testing.assert_allclose(mixed.images, variation.images, atol=1e-5)
    torch.testing.assert_close(mixed.image_embeds, variation.image_embeds)


def test_mix_of_prompts_and_images_decodes_the_blend(pipe):
    out = pipe.mix(["a cat", _image(2), "a rocket"], weights=[1, 1, 2], num_images_per_prompt=2, output_type="pt",
                   prior_num_inference_steps=2, generator=torch.Generator().manual_seed(0), **STEPS)
    assert out.images.shape[0] == 2 and torch.equal(out.image_embeds[0], out.image_embeds[1])
    again = pipe.mix(["a cat", _image(2), "a rocket"], weights=[1, 1, 2], num_images_per_prompt=2, output_type="pt",
                     prior_num_inference_steps=2, generator=torch.Generator().manual_seed(0), **STEPS)
    torch.testing.assert_close(out.images, again.images)  # seeded


def test_mix_rejects_bad_inputs(pipe):
    with pytest.raises(TypeError, match="list of prompts"):
        pipe.mix("a cat")
    with pytest.raises(TypeError, match=r"inputs\[1\]"):
        pipe.mix(["a cat", 3])
    with pytest.raises(ValueError, match="one weight per input"):
        pipe.mix(["a cat", "a dog"], weights=[1.0])
