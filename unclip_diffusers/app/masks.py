"""Masks for the Edit tab: the painted layers of a `gr.ImageEditor`, or an uploaded mask image; white = repaint."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from .images import ImageInput, sanitize_image
from .validation import InputError

PAINT_COLOUR = "#ffffff"  # the Edit tab's brush: strokes show white over the image, as the mask reads


def _opaque(image: Image.Image) -> bool:
    """Whether an RGBA image has no transparent pixel at all."""
    return image.mode != "RGBA" or image.getchannel("A").getextrema()[0] == 255


def editor_image_and_mask(value: dict[str, Any] | None) -> tuple[Image.Image, Image.Image]:
    """The background of an image editor's value (`{"background", "layers", "composite"}`, PIL images) and the mask
    painted over it: an `L` image of the background's size, 255 where any layer is painted (its alpha; where the
    editor sent no layers, where the composite differs from the background)."""
    background = (value or {}).get("background")
    if background is None or (background.mode == "RGBA" and background.getchannel("A").getextrema()[1] == 0):
        raise InputError("No image to edit: upload one in the editor, then paint over the part to repaint.")
    if _opaque(background):  # the editor sends RGBA even for opaque uploads: no transparency notice for those
        background = background.convert("RGB")
    layers = [layer for layer in value.get("layers") or [] if layer is not None]
    if layers:
        alphas = [np.asarray(layer.convert("RGBA").resize(background.size).getchannel("A")) for layer in layers]
        mask = np.maximum.reduce(alphas)  # (H, W) uint8
    elif value.get("composite") is not None:
        composite = value["composite"].convert("RGB").resize(background.size)
        difference = np.abs(np.asarray(composite, np.int16) - np.asarray(background.convert("RGB"), np.int16))
        mask = np.where(difference.max(axis=-1) > 8, 255, 0).astype(np.uint8)  # 8: above lossy-format noise
    else:
        mask = np.zeros(background.size[::-1], np.uint8)
    return background, Image.fromarray(mask, mode="L")


def load_mask(source: ImageInput | None, size: tuple[int, int]) -> Image.Image:
    """An uploaded mask as an `L` image resized to `size` (the image's, so the two line up); transparent pixels count
    as black (keep)."""
    if source is None:
        raise InputError("No mask was given: upload a mask image (white = repaint, black = keep).")
    try:
        mask = sanitize_image(source, background=(0, 0, 0)).image
    except ValueError as error:
        raise InputError(f"The mask: {error}") from error
    return mask.convert("L").resize(size, Image.Resampling.BILINEAR)


def check_painted(mask: Image.Image) -> None:
    """Refuse a mask that repaints nothing or everything, with what to do instead."""
    low, high = mask.getextrema()
    if high < 128:
        raise InputError("Nothing is painted: paint over the part of the image to repaint (white = repaint).")
    if low >= 128:
        raise InputError("The whole image is painted, so nothing is kept: use the Text to image or Variations tab, "
                         "or leave part of the image unpainted.")
