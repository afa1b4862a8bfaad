"""Spherical interpolation of embeddings, as used for unCLIP's image interpolations and text diffs."""

from __future__ import annotations

import torch

_PARALLEL_EPS = 1e-4  # below this sin(angle), directions are treated as parallel and interpolated linearly


def slerp(v0: torch.Tensor, v1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    r"""Spherical linear interpolation of the directions of `v0` and `v1`, with their norms interpolated linearly.

    The direction moves at constant angular speed along the great circle from `v0 / |v0|` to `v1 / |v1|` (Shoemake
    1985; unCLIP §3.2 interpolates CLIP image embeddings this way); the result is rescaled to `(1 - t)|v0| + t|v1|`,
    so `t = 0` gives `v0` and `t = 1` gives `v1` exactly.

    Args:
        v0 (`torch.Tensor` of shape `(..., D)`): start vectors.
        v1 (`torch.Tensor` of shape `(..., D)`): end vectors, broadcastable with `v0`.
        t (`float` or `torch.Tensor` of shape `(...)`): interpolation weights, broadcast against the leading
            dimensions of `v0`/`v1` (e.g. `t` of shape `(S,)` with `v0`, `v1` of shape `(D,)` gives `(S, D)`).

    Returns:
        `torch.Tensor` of shape `(..., D)`.
    """
    if v0.shape[-1] != v1.shape[-1]:
        raise ValueError(f"slerp needs vectors of the same width, got {tuple(v0.shape)} and {tuple(v1.shape)}.")
    dtype = torch.promote_types(v0.dtype, torch.float32)
    a, b = v0.to(dtype), v1.to(dtype)
    t = torch.as_tensor(t, dtype=dtype, device=a.device)
    if not torch.all(torch.isfinite(t)):
        raise ValueError(f"slerp weights must be finite, got {t}.")
    t = t.unsqueeze(-1)  # (..., 1)

    norm_a = a.norm(dim=-1, keepdim=True)
    norm_b = b.norm(dim=-1, keepdim=True)
    unit_a = a / norm_a.clamp_min(torch.finfo(dtype).tiny)
    unit_b = b / norm_b.clamp_min(torch.finfo(dtype).tiny)
    cos = (unit_a * unit_b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    if torch.any(cos < -1.0 + 1e-6):
        raise ValueError("slerp is undefined between opposite directions (the angle between them is 180 degrees).")
    theta = torch.acos(cos)
    sin = torch.sin(theta)
    parallel = sin < _PARALLEL_EPS
    safe_sin = torch.where(parallel, torch.ones_like(sin), sin)
    w_a = torch.where(parallel, 1.0 - t, torch.sin((1.0 - t) * theta) / safe_sin)
    w_b = torch.where(parallel, t, torch.sin(t * theta) / safe_sin)
    direction = w_a * unit_a + w_b * unit_b
    # Linear interpolation of (nearly) parallel unit vectors leaves the sphere slightly; project back onto it.
    direction = torch.where(parallel, direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12), direction)
    out = direction * ((1.0 - t) * norm_a + t * norm_b)
    return out.to(torch.promote_types(v0.dtype, v1.dtype))
