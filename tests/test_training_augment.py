"""Image augmentation for contrastive training: crops zoom in, jitter keeps hue, settings are checked."""

from __future__ import annotations

import math

import pytest
import torch

from test_training_stages import _config, _fixed_loss
from unclip_diffusers.training.augment import AugmentationSettings, augment_images, color_jitter, random_resized_crop
from unclip_diffusers.training.clip import CLIPStage


def _ramps(count: int = 16, size: int = 32) -> torch.Tensor:
    """Float images whose red channel rises left to right and green top to bottom, blue constant."""
    ramp = torch.linspace(0.0, 1.0, size)
    image = torch.stack([ramp.view(1, -1).expand(size, size), ramp.view(-1, 1).expand(size, size),
                         torch.full((size, size), 0.5)])
    return image.unsqueeze(0).repeat(count, 1, 1, 1)


def test_inactive_settings_leave_the_batch_untouched():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert augment_images(images, AugmentationSettings(), torch.Generator().manual_seed(0)) is images
    assert not AugmentationSettings().active


def test_a_full_area_square_crop_is_the_identity():
    images = _ramps()
    settings = AugmentationSettings(min_crop_area=1.0, max_aspect_change=1.0)
    out = random_resized_crop(images, settings, torch.Generator().manual_seed(0))
    assert torch.allclose(out, images, atol=1e-5)


def test_crops_zoom_into_a_box_of_the_drawn_area_and_aspect():
    images = _ramps()
    settings = AugmentationSettings(min_crop_area=0.25, max_aspect_change=1.0)
    out = random_resized_crop(images, settings, torch.Generator().manual_seed(3))
    assert out.shape == images.shape
    x_span = out[:, 0].amax(dim=(1, 2)) - out[:, 0].amin(dim=(1, 2))  # the share of the width each crop kept
    y_span = out[:, 1].amax(dim=(1, 2)) - out[:, 1].amin(dim=(1, 2))
    assert torch.allclose(x_span, y_span, atol=0.05)  # aspect 1: square boxes
    assert (x_span < 0.999).all() and (x_span > 0.45).all()  # area in [0.25, 1]: side in [0.5, 1] (less a pixel)
    assert x_span.std() > 0.02  # each image its own box


def test_color_jitter_keeps_grays_gray_and_values_in_range():
    gray = torch.rand(8, 1, 8, 8).repeat(1, 3, 1, 1)
    out = color_jitter(gray, 0.5, torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.allclose(out, gray)
    red = torch.zeros(8, 3, 4, 4)
    red[:, 0] = 0.8
    jittered = color_jitter(red, 0.3, torch.Generator().manual_seed(1))
    assert (jittered[:, 0] > jittered[:, 1]).all() and (jittered[:, 0] > jittered[:, 2]).all()  # still red


def test_augmentation_is_reproducible_from_the_generator():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    settings = AugmentationSettings(min_crop_area=0.5, color_jitter=0.3)
    first = augment_images(images, settings, torch.Generator().manual_seed(7))
    again = augment_images(images, settings, torch.Generator().manual_seed(7))
    other = augment_images(images, settings, torch.Generator().manual_seed(8))
    assert first.dtype == torch.uint8 and torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("bad", [dict(min_crop_area=0.0), dict(min_crop_area=1.5), dict(max_aspect_change=0.5),
                                 dict(color_jitter=1.0), dict(color_jitter=-0.1)])
def test_out_of_range_settings_are_refused(bad):
    with pytest.raises(ValueError):
        AugmentationSettings(**bad)


def test_clip_training_augments_its_images(tmp_path):
    with pytest.raises(ValueError, match="min_crop_area"):
        _config("clip", tmp_path, augment_min_crop_area=0.0)
    plain = CLIPStage(_config("clip", tmp_path))
    augmented = CLIPStage(_config("clip", tmp_path, augment_min_crop_area=0.5, augment_color_jitter=0.3))
    assert augmented.config.augmentation.active and not plain.config.augmentation.active
    torch.manual_seed(0)
    model = plain.setup(None)
    augmented.setup(None)
    plain_loss, augmented_loss = _fixed_loss(plain, model), _fixed_loss(augmented, model)
    assert math.isfinite(augmented_loss) and augmented_loss != plain_loss  # same weights, other pixels
