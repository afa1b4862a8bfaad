"""`UnCLIPPipeline.inpaint`: the known region is kept exactly, the masked one repainted; masks are checked."""

import numpy as np
import PIL.Image
import pytest
import torch

from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.configs import build_components
from unclip_diffusers.pipelines.inpainting import mask_to_tensor
from unclip_diffusers.utils import to_tensor_images

STEPS = dict(decoder_num_inference_steps=3, super_res_num_inference_steps=2, decoder_guidance_scale=2.0)


def _image(size: int = 64) -> PIL.Image.Image:
    ramp = np.linspace(0, 255, size).astype(np.uint8)
    return PIL.Image.fromarray(np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                                         np.full((size, size), 90, np.uint8)], axis=-1))  # fmt: skip


def _left_half_mask(size: int = 64) -> PIL.Image.Image:
    mask = np.zeros((size, size), np.uint8)
    mask[:, : size // 2] = 255
    return PIL.Image.fromarray(mask)


@pytest.fixture(scope="module")
def pipe() -> UnCLIPPipeline:
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("jumps", [0, 2])
def test_outside_the_mask_the_source_is_kept_inside_it_is_repainted(pipe, jumps):
    source = _image()
    out = pipe.inpaint(source, _left_half_mask(), num_images_per_prompt=2, jumps=jumps, output_type="pt",
                       generator=torch.Generator().manual_seed(0), **STEPS)
    expected = (to_tensor_images(source, pipe.output_size) + 1) / 2
    images = out.images
    half = images.shape[-1] // 2
    torch.testing.assert_close(images[..., half:], expected.expand_as(images)[..., half:], atol=1e-5, rtol=0)
    assert (images[..., :half] - expected[..., :half]).abs().mean() > 0.05  # repainted, not copied
    base_half = out.base_images.shape[-1] // 2  # the base image keeps the (downsized) source outside the mask
    known_base = (to_tensor_images(source, pipe.base_size) + 1) / 2
    torch.testing.assert_close(out.base_images[..., base_half:], known_base.expand_as(out.base_images)[..., base_half:],
                               atol=1e-4, rtol=0)


def test_a_prompt_conditions_the_repainted_region_and_runs_are_seeded(pipe):
    kwargs = dict(prompt="a red heart", prior_num_inference_steps=2, output_type="np", **STEPS)
    first = pipe.inpaint(_image(), _left_half_mask(), generator=torch.Generator().manual_seed(1), **kwargs)
    again = pipe.inpaint(_image(), _left_half_mask(), generator=torch.Generator().manual_seed(1), **kwargs)
    np.testing.assert_array_equal(first.images, again.images)
    plain = pipe.inpaint(_image(), _left_half_mask(), generator=torch.Generator().manual_seed(1), output_type="np",
                         **STEPS)
    assert not np.allclose(first.image_embeds.numpy(), plain.image_embeds.numpy())


def test_masks_of_any_kind_and_size_are_fitted_and_binarised():
    pil = mask_to_tensor(_left_half_mask(128), (16, 16))
    array = mask_to_tensor(np.asarray(_left_half_mask(32)) / 255.0, (16, 16))
    tensor = mask_to_tensor(torch.from_numpy(np.asarray(_left_half_mask(16))).float()[None, None], (16, 16))
    for mask in (pil, array, tensor):
        assert mask.shape == (1, 1, 16, 16) and set(mask.unique().tolist()) == {0.0, 1.0}
        assert mask[..., :8].mean() == 1 and mask[..., 8:].mean() == 0
    grey = mask_to_tensor(np.full((8, 8), 0.4), (4, 4))
    assert grey.sum() == 0  # below the 0.5 threshold: kept


def test_bad_masks_and_arguments_get_clear_errors(pipe):
    with pytest.raises(ValueError, match="nothing to repaint"):
        pipe.inpaint(_image(), PIL.Image.new("L", (64, 64), 0), **STEPS)
    with pytest.raises(ValueError, match="whole image"):
        pipe.inpaint(_image(), PIL.Image.new("L", (64, 64), 255), **STEPS)
    with pytest.raises(ValueError, match="2-D mask"):
        pipe.inpaint(_image(), np.zeros((2, 3, 4, 5)), **STEPS)
    with pytest.raises(ValueError, match=">= 0"):
        pipe.inpaint(_image(), -np.ones((8, 8)), **STEPS)
    with pytest.raises(TypeError, match="one image"):
        pipe.inpaint([_image()], _left_half_mask(), **STEPS)
    with pytest.raises(ValueError, match="jumps"):
        pipe.inpaint(_image(), _left_half_mask(), jumps=-1, **STEPS)
