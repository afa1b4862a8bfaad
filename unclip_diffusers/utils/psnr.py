"""Peak signal-to-noise ratio, the one PSNR of the upsampler's validation, its benchmark and the inpainting score."""

from __future__ import annotations

import numpy as np
import torch


def psnr(images: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """Mean over a batch of each image's PSNR in dB, 10·log10(data_range² / MSE), computed in float64.

    Args:
        images (`torch.Tensor` or `np.ndarray` of shape `(N, ...)`): a batch of images (any layout after `N`).
        targets (`torch.Tensor` or `np.ndarray` of the same shape): the reference images.
        data_range (`float`, *optional*, defaults to 1.0): the peak-to-peak range of the values, 1 for images in
            [0, 1] and 2 for [-1, 1].

    An image identical to its target scores inf, and so does the mean.
    """
    images, targets = torch.as_tensor(images), torch.as_tensor(targets)
    if images.shape != targets.shape:
        raise ValueError(f"psnr needs images and targets of one shape, got {tuple(images.shape)} and "
                         f"{tuple(targets.shape)}.")
    mse = (images.double() - targets.double().to(images.device)).pow(2).flatten(1).mean(1)  # (N,)
    return float((10 * torch.log10(data_range**2 / mse)).mean())
