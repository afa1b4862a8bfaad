"""Image validation and conversion between PIL images and the pipeline's tensors (no torchvision)."""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

ACCEPTED_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr")
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def to_rgb(image: PIL.Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> PIL.Image.Image:
    """Return an RGB copy of `image`; transparent pixels are composited over `background` (white, like the emoji)."""
    if not isinstance(image, PIL.Image.Image):
        raise TypeError(f"Expected a PIL.Image.Image, got {type(image).__name__}.")
    if image.mode not in ACCEPTED_MODES:
        raise ValueError(
            f"Unsupported image mode {image.mode!r}; expected one of {ACCEPTED_MODES} (e.g. convert a 16-bit or float "
            "image to 8-bit RGB first)."
        )
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = PIL.Image.new("RGBA", rgba.size, background + (255,))
        return PIL.Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def validate_pil_images(image: Any, name: str = "image") -> list[PIL.Image.Image]:
    """Check that `image` is a PIL image or a non-empty list of them, and return them as a list of RGB images."""
    images = [image] if isinstance(image, PIL.Image.Image) else image
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise TypeError(f"`{name}` must be a PIL.Image.Image or a non-empty list of them, got {type(image).__name__}.")
    for i, item in enumerate(images):
        if not isinstance(item, PIL.Image.Image):
            raise TypeError(f"`{name}[{i}]` must be a PIL.Image.Image, got {type(item).__name__}.")
    return [to_rgb(item) for item in images]


def to_tensor_images(images: Any, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Convert images to a float tensor of shape `(B, 3, H, W)` in [-1, 1], the range the diffusion models use.

    Accepts what the pipeline outputs: PIL image(s), a numpy array `(B, H, W, 3)` or a tensor `(B, 3, H, W)` with
    values in [0, 1] (a single image may omit the batch dimension). With `size`, PIL images are fitted (centre crop
    to the aspect ratio, bicubic resize) and arrays/tensors are bicubic-resized to `(H, W)`.
    """
    if isinstance(images, PIL.Image.Image) or (isinstance(images, (list, tuple)) and images
                                               and isinstance(images[0], PIL.Image.Image)):
        pil = validate_pil_images(images)
        if size is not None:
            pil = [_fit(image, size) for image in pil]
        if len({image.size for image in pil}) > 1:
            raise ValueError(f"Images must share one size to be batched, got {sorted({i.size for i in pil})}.")
        array = np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in pil])  # (B, H, W, 3)
        tensor = torch.from_numpy(array).permute(0, 3, 1, 2)
        return tensor * 2.0 - 1.0
    if isinstance(images, np.ndarray):
        array = images[None] if images.ndim == 3 else images
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"A numpy image batch must have shape (B, H, W, 3), got {images.shape}.")
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(0, 3, 1, 2)
    elif isinstance(images, torch.Tensor):
        tensor = images[None] if images.ndim == 3 else images
        if tensor.ndim != 4 or tensor.shape[1] != 3:
            raise ValueError(f"An image tensor must have shape (B, 3, H, W), got {tuple(images.shape)}.")
        tensor = tensor.float()
    else:
        raise TypeError(
            f"Expected PIL image(s), a numpy array or a torch tensor, got {type(images).__name__}."
        )
    if tensor.numel() and (tensor.min() < -1e-3 or tensor.max() > 1 + 1e-3):
        raise ValueError(
            f"Array and tensor images must hold values in [0, 1] (the pipeline's 'np'/'pt' output), got the range "
            f"[{tensor.min().item():.3f}, {tensor.max().item():.3f}]."
        )
    tensor = tensor.clamp(0, 1) * 2.0 - 1.0
    if size is not None and tuple(tensor.shape[-2:]) != tuple(size):
        tensor = F.interpolate(tensor, size=size, mode="bicubic", align_corners=False, antialias=True)
    return tensor


def _fit(image: PIL.Image.Image, size: tuple[int, int]) -> PIL.Image.Image:
    """Centre-crop to the aspect ratio of `size` = (H, W) and resize with bicubic filtering."""
    from PIL import ImageOps

    return ImageOps.fit(image, (size[1], size[0]), method=PIL.Image.BICUBIC)


def postprocess_images(images: torch.Tensor, output_type: str) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
    """Map model-space images `(B, 3, H, W)` in [-1, 1] to the requested output type.

    "pt": a float tensor `(B, 3, H, W)` in [0, 1]; "np": a float32 array `(B, H, W, 3)` in [0, 1]; "pil": a list of
    RGB PIL images; "latent": `images` themselves (diffusers' convention for the last stage's unconverted latents).
    """
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
    if output_type == "latent":
        return images
    images = (images.float() / 2 + 0.5).clamp(0, 1)
    if output_type == "pt":
        return images
    array = images.permute(0, 2, 3, 1).cpu().numpy()
    if output_type == "np":
        return array
    return [PIL.Image.fromarray((image * 255).round().astype(np.uint8)) for image in array]


def upsample_for_super_res(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic (antialiased, PIL-style kernel) resize of low-res images to the upsampler's output size.

    This is the conditioning the upsampler receives next to its noisy input; training must build it the same way
    (after its blur augmentation), so the one definition lives here.
    """
    # Computed in float32: the antialiased kernel has no half-precision CPU implementation.
    upsampled = F.interpolate(images.float(), size=tuple(size), mode="bicubic", align_corners=False, antialias=True)
    return upsampled.to(images.dtype)
