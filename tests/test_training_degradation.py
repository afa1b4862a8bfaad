"""The BSR-like degradation of the second upsampler's input: seeded, actually degrading, and checked."""

from __future__ import annotations

import math

import pytest
import torch

from unclip_diffusers.training.degradation import (
    DegradationSettings,
    anisotropic_gaussian_kernel,
    degrade,
    degrade_image,
)


def _images(n: int = 3, size: int = 32) -> torch.Tensor:
    """Sharp test images in [-1, 1]: a checkerboard with a random colour per image."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    board = (((x // 4) + (y // 4)) % 2).float() * 2 - 1  # (H, W) in {-1, 1}
    colours = torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    return (board * colours).clamp(-1, 1)


def test_same_seed_same_degradation_other_seed_another():
    images = _images()
    settings = DegradationSettings(scale=2)
    first = degrade(images, torch.Generator().manual_seed(7), settings)
    again = degrade(images, torch.Generator().manual_seed(7), settings)
    other = degrade(images, torch.Generator().manual_seed(8), settings)
    assert first.shape == (3, 3, 16, 16) and torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.min() >= -1 and first.max() <= 1


def test_it_degrades_more_than_a_clean_bicubic_downscale():
    images = _images(n=4)
    clean = torch.nn.functional.interpolate(images, size=(16, 16), mode="bicubic", antialias=True)
    heavy = DegradationSettings(scale=2, blur_sigma_min=1.5, blur_sigma_max=2.0, noise_level_max=20.0, jpeg_prob=1.0,
                                jpeg_quality_max=50)
    degraded = degrade(images, torch.Generator().manual_seed(0), heavy)
    assert (degraded - clean).abs().mean() > 0.02  # the blur, noise and JPEG changed the image
    # every step switched off leaves only the random down-scale kernel, close to the clean downscale
    none = DegradationSettings(scale=2, blur_prob=0.0, noise_level_max=0.0, jpeg_prob=0.0)
    mild = degrade(images, torch.Generator().manual_seed(0), none)
    assert (mild - clean).abs().mean() < (degraded - clean).abs().mean()


def test_each_image_draws_its_own_degradation():
    image = _images(n=1)
    batch = degrade(image.repeat(2, 1, 1, 1), torch.Generator().manual_seed(3), DegradationSettings(scale=2))
    assert not torch.equal(batch[0], batch[1])


def test_degradation_runs_in_fp32_under_a_bf16_training_autocast():
    # antialiased bicubic resizing has no bf16 CPU kernel; a bf16 training step must still degrade its batch
    images = _images(n=12)  # 12 draws of the down-scale kernel: every mode comes up
    settings = DegradationSettings(scale=2, jpeg_prob=0.0)  # the blur is a conv2d, which autocast runs in bf16
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        under_autocast = degrade(images, torch.Generator().manual_seed(5), settings)
    plain = degrade(images, torch.Generator().manual_seed(5), settings)
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, plain)


def test_anisotropic_kernel_is_normalised_and_rotates():
    kernel = anisotropic_gaussian_kernel(2.0, 0.5, 0.0)
    assert math.isclose(kernel.sum().item(), 1.0, rel_tol=1e-5)
    assert kernel.shape[0] % 2 == 1 and kernel.shape[0] <= 21
    rotated = anisotropic_gaussian_kernel(2.0, 0.5, math.pi / 2)
    torch.testing.assert_close(rotated, kernel.T, atol=1e-6, rtol=0)  # 90 degrees swaps the axes
    torch.testing.assert_close(anisotropic_gaussian_kernel(1.0, 1.0, 0.3), anisotropic_gaussian_kernel(1.0, 1.0, 0.0),
                               atol=1e-6, rtol=0)  # isotropic: the angle does not matter


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0}, "scale"),
    ({"jpeg_prob": 1.5}, "jpeg_prob"),
    ({"blur_sigma_min": 3.0, "blur_sigma_max": 2.0}, "blur_sigma"),
    ({"noise_level_max": -1.0}, "noise_level_max"),
    ({"jpeg_quality_min": 90, "jpeg_quality_max": 50}, "jpeg_quality"),
])
def test_bad_settings_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DegradationSettings(**kwargs)


def test_bad_images_raise():
    with pytest.raises(ValueError, match="not divisible"):
        degrade_image(torch.zeros(3, 15, 16), torch.Generator(), DegradationSettings(scale=2))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        degrade(torch.zeros(3, 16, 16), torch.Generator(), DegradationSettings())
