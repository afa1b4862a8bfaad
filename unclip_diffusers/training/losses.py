"""The noise-prediction loss of the diffusion stages, with optional Min-SNR-γ weighting.

Min-SNR-γ (Hang et al., 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy") weights the epsilon MSE
of timestep t by min(SNR(t), γ) / SNR(t): the nearly-clean steps, whose gradients dominate plain MSE yet only shape
fine detail, count less, which the paper reports converges several times faster. γ = 0 gives the plain MSE.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-example Min-SNR-γ weights min(SNR, γ) / SNR for epsilon prediction (all ones when `gamma` is 0), with
    SNR(t) = ᾱ_t / (1 − ᾱ_t) from diffusers' `compute_snr`."""
    if gamma < 0:
        raise ValueError(f"snr_gamma must be >= 0 (0 disables the weighting), got {gamma}.")
    if gamma == 0:
        return torch.ones(len(timesteps), device=timesteps.device)
    snr = compute_snr(scheduler, timesteps)
    return snr.clamp(max=gamma) / snr


def epsilon_loss(
    pred: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, scheduler: DDPMScheduler, snr_gamma: float = 0.0
) -> torch.Tensor:
    """Mean over examples of the (Min-SNR-weighted) per-example MSE between predicted and true noise."""
    per_example = (pred.float() - noise.float()).pow(2).flatten(1).mean(dim=1)
    weights = min_snr_weights(scheduler, timesteps, snr_gamma).to(per_example.device)
    return (weights * per_example).mean()
