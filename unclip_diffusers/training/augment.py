"""Image augmentation for contrastive training: random resized crops and colour jitter on uint8 batches.

Written with plain torch (`affine_grid` / `grid_sample`), since torchvision has no CPU build here. Hue is never
changed: many emoji concepts are named by their colour ("red heart", "green circle"), and a left/right flip is not
offered because arrows and hands point one way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class AugmentationSettings:
    """How strongly each training image is perturbed; the defaults leave images unchanged."""

    min_crop_area: float = 1.0  # random resized crop keeps this fraction of the area at least (1.0 = no crop)
    max_aspect_change: float = 4 / 3  # the crop's aspect ratio is drawn log-uniformly in [1/x, x]
    color_jitter: float = 0.0  # brightness, contrast and saturation each scaled by a factor in [1 - j, 1 + j]

    def __post_init__(self) -> None:
        if not 0.05 <= self.min_crop_area <= 1.0:
            raise ValueError(f"min_crop_area must be in [0.05, 1] (1 = no crop), got {self.min_crop_area}.")
        if self.max_aspect_change < 1.0:
            raise ValueError(f"max_aspect_change must be >= 1, got {self.max_aspect_change}.")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}.")

    @property
    def active(self) -> bool:
        """Whether these settings change any image."""
        return self.min_crop_area < 1.0 or self.color_jitter > 0.0


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def random_resized_crop(images: torch.Tensor, settings: AugmentationSettings, generator: torch.Generator) -> torch.Tensor:
    """Crop a random box of each float image `(N, C, H, W)` and resize it back to `H x W` (bilinear)."""
    count = images.shape[0]
    area = _uniform(count, settings.min_crop_area, 1.0, generator)
    log_ratio = math.log(settings.max_aspect_change)
    ratio = torch.exp(_uniform(count, -log_ratio, log_ratio, generator))
    width = torch.sqrt(area * ratio).clamp(max=1.0)  # as fractions of the image side
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    center_x = _uniform(count, -1.0, 1.0, generator) * (1.0 - width)  # in grid coordinates [-1, 1]
    center_y = _uniform(count, -1.0, 1.0, generator) * (1.0 - height)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width, center_x
    theta[:, 1, 1], theta[:, 1, 2] = height, center_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Scale brightness, contrast and saturation of float images in [0, 1] `(N, 3, H, W)` by random factors."""
    count = images.shape[0]
    factors = [_uniform(count, 1.0 - strength, 1.0 + strength, generator).view(count, 1, 1, 1) for _ in range(3)]
    brightness, contrast, saturation = factors
    images = images * brightness
    mean_luma = _luma(images).mean(dim=(2, 3), keepdim=True)
    images = mean_luma + contrast * (images - mean_luma)
    luma = _luma(images)
    images = luma + saturation * (images - luma)
    return images.clamp(0.0, 1.0)


def _luma(images: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma `(N, 1, H, W)` of RGB images `(N, 3, H, W)`."""
    return 0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3]


def augment_images(images: torch.Tensor, settings: AugmentationSettings, generator: torch.Generator) -> torch.Tensor:
    """A randomly cropped and colour-jittered copy of a uint8 batch `(N, 3, H, W)` (the batch itself if inactive)."""
    if not settings.active:
        return images
    pixels = images.float() / 255.0
    if settings.min_crop_area < 1.0:
        pixels = random_resized_crop(pixels, settings, generator)
    if settings.color_jitter > 0.0:
        pixels = color_jitter(pixels, settings.color_jitter, generator)
    return (pixels * 255.0).round().clamp(0, 255).to(torch.uint8)
