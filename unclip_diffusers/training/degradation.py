"""A BSR-like degradation of high-resolution images (Zhang et al. 2021, "Designing a Practical Degradation Model for
Deep Blind Image Super-Resolution"), the second upsampler's training input.

DALL·E 2 trains its second upsampler on "a more diverse BSR degradation" of its input; per image this draws a
Gaussian blur (isotropic or anisotropic, rotated), a downscale by `scale` with a random interpolation kernel,
Gaussian noise and a JPEG round trip at a random quality, in BSR's usual order (the paper's random shuffling of the
steps and camera-sensor noise are left out). Every random draw comes from the `torch.Generator` passed in, so a
seeded generator gives the same degradation on any machine.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from torch.nn import functional as F

DOWNSCALE_MODES = ("bicubic", "bilinear", "area")  # the random down-scale kernels
MAX_BLUR_KERNEL = 21  # BSR's largest blur kernel


@dataclass(frozen=True)
class DegradationSettings:
    """Ranges the degradation draws from; images are in [-1, 1], noise levels in 8-bit steps (of 255)."""

    scale: int = 2  # down-scale factor (the upsampler's)
    blur_prob: float = 1.0  # chance of a blur
    blur_sigma_min: float = 0.2  # Gaussian blur sigma range, in high-resolution pixels
    blur_sigma_max: float = 2.0
    anisotropic_prob: float = 0.5  # chance that a blur has two sigmas and a random angle
    noise_level_max: float = 10.0  # Gaussian noise sigma drawn from [0, noise_level_max] / 255
    jpeg_prob: float = 0.75  # chance of a JPEG round trip
    jpeg_quality_min: int = 40  # JPEG quality range (BSR: 30-95)
    jpeg_quality_max: int = 95

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.scale}.")
        for name in ("blur_prob", "anisotropic_prob", "jpeg_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}.")
        if not 0.0 < self.blur_sigma_min <= self.blur_sigma_max:
            raise ValueError(f"Need 0 < blur_sigma_min <= blur_sigma_max, got {self.blur_sigma_min} and "
                             f"{self.blur_sigma_max}.")
        if self.noise_level_max < 0:
            raise ValueError(f"noise_level_max must be >= 0, got {self.noise_level_max}.")
        if not 1 <= self.jpeg_quality_min <= self.jpeg_quality_max <= 100:
            raise ValueError(f"Need 1 <= jpeg_quality_min <= jpeg_quality_max <= 100, got {self.jpeg_quality_min} "
                             f"and {self.jpeg_quality_max}.")


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def anisotropic_gaussian_kernel(sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """Normalised 2-D Gaussian with standard deviations `sigma_x`, `sigma_y` along axes rotated by `theta` radians."""
    radius = min(MAX_BLUR_KERNEL // 2, math.ceil(3 * max(sigma_x, sigma_y)))
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cos, sin = math.cos(theta), math.sin(theta)
    u, v = cos * x + sin * y, -sin * x + cos * y  # coordinates along the rotated axes
    kernel = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (kernel / kernel.sum()).float()


def _blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Blur one (C, H, W) image with a (k, k) kernel, reflect padding."""
    channels, pad = image.shape[0], kernel.shape[-1] // 2
    weight = kernel.to(image.dtype).expand(channels, 1, *kernel.shape)
    padded = F.pad(image[None], (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(padded, weight, groups=channels)[0]


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """A JPEG encode/decode round trip (PIL) of one (3, H, W) image in [-1, 1]."""
    array = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(PIL.Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1) / 127.5 - 1.0


def degrade_image(image: torch.Tensor, generator: torch.Generator, settings: DegradationSettings) -> torch.Tensor:
    """Degrade one (3, H, W) image in [-1, 1]: blur, downscale by `settings.scale`, noise, JPEG; (3, H/s, W/s)."""
    height, width = image.shape[-2:]
    scale = settings.scale
    if height % scale or width % scale:
        raise ValueError(f"Image size {(height, width)} is not divisible by the degradation's scale {scale}.")
    image = image.float()
    if torch.rand((), generator=generator).item() < settings.blur_prob:
        sigma_x = _uniform(generator, settings.blur_sigma_min, settings.blur_sigma_max)
        sigma_y, theta = sigma_x, 0.0
        if torch.rand((), generator=generator).item() < settings.anisotropic_prob:
            sigma_y = _uniform(generator, settings.blur_sigma_min, settings.blur_sigma_max)
            theta = _uniform(generator, 0.0, math.pi)
        kernel = anisotropic_gaussian_kernel(sigma_x, sigma_y, theta)
        if kernel.shape[-1] // 2 < min(height, width):  # reflect padding needs the image to be wider than the pad
            image = _blur(image, kernel)
    mode = DOWNSCALE_MODES[int(torch.randint(len(DOWNSCALE_MODES), (), generator=generator))]
    size = (height // scale, width // scale)
    if scale > 1:
        antialias = {"antialias": True, "align_corners": False} if mode != "area" else {}
        image = F.interpolate(image[None], size=size, mode=mode, **antialias)[0]
    level = _uniform(generator, 0.0, settings.noise_level_max) / 255.0 * 2.0  # in [-1, 1] units
    image = image + level * torch.randn(image.shape, generator=generator)
    if torch.rand((), generator=generator).item() < settings.jpeg_prob:
        quality = int(torch.randint(settings.jpeg_quality_min, settings.jpeg_quality_max + 1, (),
                                    generator=generator))
        image = _jpeg(image, quality)
    return image.clamp(-1.0, 1.0)


def degrade(images: torch.Tensor, generator: torch.Generator, settings: DegradationSettings) -> torch.Tensor:
    """Degrade each image of a (B, 3, H, W) batch in [-1, 1] with its own random draws; (B, 3, H/s, W/s)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"degrade takes a (B, 3, H, W) batch, got shape {tuple(images.shape)}.")
    # In fp32 even under a training step's bf16 autocast: antialiased bicubic resizing has no bf16 kernel on CPU.
    with torch.autocast(device_type=images.device.type, enabled=False):
        degraded = [degrade_image(image, generator, settings) for image in images]
    return torch.stack(degraded).to(images.dtype)
