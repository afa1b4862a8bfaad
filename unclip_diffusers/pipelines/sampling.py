"""The reverse diffusion loop (`denoise`) and its stage-independent pieces: guidance, learned variance, stepping.

`denoise` is the only sampling loop of the package: every pipeline stage, DDIM inversion (with an inverse
scheduler) and every training validation run it. Any diffusers scheduler works: keyword arguments only some
schedulers accept (`generator`, `prev_timestep` for `UnCLIPScheduler`) are passed when the scheduler's `step` takes
them.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

LEARNED_VARIANCE_TYPES = ("learned", "learned_range")
# Default denoising steps of the prior and the decoder in every pipeline method (the app reads them from the
# signatures): 10 kept the everyday figures of 25 at 2-2.7x the speed (`benchmarks/RESULTS.md`, "The fast path").
DEFAULT_PRIOR_STEPS = 10
DEFAULT_DECODER_STEPS = 10

Generator = torch.Generator | list[torch.Generator] | None
# `predict(model_input, t)`: the model's raw output for a (scaled) model input; with guidance the input is the batch
# `[x_t; x_t]` and the output `[unconditional; conditional]`.
ModelPrediction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# `callback(step, t, callback_kwargs)` after every step; a returned `"latents"` replaces the current latents.
StepCallback = Callable[[int, torch.Tensor, dict[str, Any]], dict[str, Any] | None]


def denoise(
    predict: ModelPrediction,
    scheduler: SchedulerMixin,
    *,
    latents: torch.Tensor,
    num_inference_steps: int,
    generator: Generator = None,
    guidance_scale: float = 1.0,
    guidance_interval: Sequence[float] | None = None,
    strength: float = 1.0,
    start: torch.Tensor | None = None,
    predict_last: ModelPrediction | None = None,
    callback_on_step_end: StepCallback | None = None,
    callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    progress_bar: Callable[[Iterable], Iterable] | None = None,
    known: KnownRegion | None = None,
) -> torch.Tensor:
    r"""The reverse diffusion loop `x_T -> x_0`: scale the input, predict, guide, step, report; returns the last sample.

    Args:
        predict (`ModelPrediction`): `predict(model_input, t)`, the model's output for the scaled input.
        scheduler (`SchedulerMixin`): the sampler; `set_timesteps(num_inference_steps)` is called here, so pass a
            private copy (`working_copy`). An inverse scheduler (`DDIMInverseScheduler`) runs DDIM inversion.
        latents (`torch.Tensor`): the starting noise (scaled by `init_noise_sigma`); with `strength < 1` the noise
            `start` is noised with; for inversion, the clean sample.
        num_inference_steps (`int`): steps of the full schedule.
        generator (`torch.Generator` or `list[torch.Generator]`, *optional*): for stochastic schedulers' noise.
        guidance_scale (`float`, *optional*, defaults to 1.0): classifier-free guidance; other than 1, `predict`
            gets the doubled batch `[x_t; x_t]` and returns `[unconditional; conditional]`, mixed here.
        guidance_interval (`tuple[float, float]`, *optional*): guide only the steps whose noise level
            `sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)` lies in `[low, high]` (Kynkaanniemi et al. 2024); the
            other steps call `predict` once on the single batch `x_t`, which must then return the conditional
            prediction alone (see `conditional_half`). `None` guides every step.
        strength (`float`, *optional*, defaults to 1.0): run only the last `round(num_inference_steps * strength)`
            steps, starting from `start` noised with `latents` to the level where they begin.
        start (`torch.Tensor`, *optional*): the clean sample a `strength < 1` loop starts from.
        predict_last (`ModelPrediction`, *optional*): replaces `predict` for the loop's final model call (Karlo's
            `super_res_last`; 2N - 1 calls for N steps of an order-2 scheduler).
        callback_on_step_end (`StepCallback`, *optional*): `callback(step, t, callback_kwargs)` after every step.
        callback_on_step_end_tensor_inputs (`Sequence[str]`, *optional*, defaults to `("latents",)`): tensors put
            in `callback_kwargs`.
        progress_bar (`Callable`, *optional*): wraps the timesteps (a pipeline's `progress_bar`).
        known (`KnownRegion`, *optional*): inpainting (RePaint, Lugmayr et al. 2022): after every step the region
            outside `known.mask` is replaced by the known image noised to the step's level, and each step but the
            last is redone `known.jumps` times from its output re-noised one step up (first-order schedulers only).
    """
    if strength < 1.0 and start is None:
        raise ValueError(f"strength {strength} < 1 needs the clean `start` sample that the loop starts from.")
    check_guidance_interval(guidance_interval)
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    timesteps = scheduler.timesteps
    if strength < 1.0:
        timesteps = strength_timesteps(scheduler, num_inference_steps, strength)
        latents = scheduler.add_noise(start, latents, timesteps[:1])
    else:
        latents = latents * scheduler.init_noise_sigma
    if known is not None and known.jumps and (getattr(scheduler, "order", 1) != 1 or hasattr(scheduler, "model_outputs")):
        raise ValueError(f"RePaint resampling (jumps={known.jumps}) redoes steps, which needs a first-order scheduler "
                         f"without step history (DDIM, DDPM), not {type(scheduler).__name__}.")
    for i, t in enumerate(progress_bar(timesteps) if progress_bar is not None else timesteps):
        model = predict_last if predict_last is not None and i == len(timesteps) - 1 else predict
        model_input = scheduler.scale_model_input(latents, t)
        scale = guidance_scale if guides_at(scheduler, t, guidance_interval) else 1.0
        output = _guided(model, model_input, t, scale, latents.shape[1])
        next_t = timesteps[i + 1] if i + 1 < len(timesteps) else None
        latents = scheduler_step(scheduler, output, timestep=t, sample=latents, next_timestep=next_t,
                                 generator=generator)
        if known is not None:
            latents = known.paste(scheduler, latents, next_t)
            for _ in range(known.jumps if next_t is not None else 0):
                latents = known.renoise(scheduler, latents, from_t=next_t, to_t=t)
                output = _guided(model, scheduler.scale_model_input(latents, t), t, scale, latents.shape[1])
                latents = known.paste(scheduler, scheduler_step(scheduler, output, timestep=t, sample=latents,
                                                                next_timestep=next_t, generator=generator), next_t)
        if callback_on_step_end is not None:
            callback_kwargs = {"latents": latents} if "latents" in callback_on_step_end_tensor_inputs else {}
            returned = callback_on_step_end(i, t, callback_kwargs) or {}
            latents = returned.get("latents", latents)
    return latents


def _guided(model: ModelPrediction, model_input: torch.Tensor, t: torch.Tensor, guidance_scale: float,
            channels: int) -> torch.Tensor:
    """One (guided) model evaluation of the loop."""
    if guidance_scale != 1.0:
        return classifier_free_guidance(model(torch.cat([model_input, model_input]), t), guidance_scale, channels)
    return model(model_input, t)


def check_guidance_interval(interval: Sequence[float] | None) -> None:
    """Raise a `ValueError` unless `interval` is `None` or a pair `0 <= low <= high` of noise levels."""
    if interval is None:
        return
    try:
        low, high = (float(x) for x in interval)
    except (TypeError, ValueError):  # not iterable, not two items, not numbers
        raise ValueError(f"A guidance interval is a pair (low, high) of noise levels sigma, got {interval!r}.") from None
    if not 0.0 <= low <= high:
        raise ValueError(f"A guidance interval needs 0 <= low <= high, got ({low:g}, {high:g}).")


def as_interval(interval: Sequence[float] | None) -> tuple[float, float] | None:
    """A guidance interval as a `(low, high)` tuple of floats (JSON configs store it as a list); `None` stays `None`."""
    return None if interval is None else (float(interval[0]), float(interval[1]))


def noise_level(scheduler: SchedulerMixin, t: torch.Tensor) -> float:
    """`sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)` of discrete timestep `t` in the scheduler's training schedule."""
    alpha_bar = float(scheduler.alphas_cumprod[int(t)])
    return ((1.0 - alpha_bar) / alpha_bar) ** 0.5


def guides_at(scheduler: SchedulerMixin, t: torch.Tensor, interval: Sequence[float] | None) -> bool:
    """Whether the step at timestep `t` is guided: always without an interval, else when its sigma lies in it."""
    if interval is None:
        return True
    return interval[0] <= noise_level(scheduler, t) <= interval[1]


def conditional_half(condition: torch.Tensor, batch: int) -> torch.Tensor:
    """The conditional rows of a guidance-doubled `[unconditional; conditional]` condition when the model input has
    only `batch` rows (an unguided step of a `guidance_interval`); the condition itself otherwise."""
    if condition.shape[0] == 2 * batch:
        return condition[batch:]
    return condition


@dataclass
class KnownRegion:
    """What inpainting keeps: `image` (N, C, h, w) in the sampler's space, `mask` (N or 1, 1, h, w) with 1 where the
    image is repainted, fixed `noise` like `image`, and `jumps` RePaint resamplings per step."""

    image: torch.Tensor
    mask: torch.Tensor
    noise: torch.Tensor
    jumps: int = 0
    generator: Generator = None

    def paste(self, scheduler: SchedulerMixin, latents: torch.Tensor, next_t: torch.Tensor | None) -> torch.Tensor:
        """`latents` inside the mask, the known image noised to `next_t` (clean at the end) outside it."""
        if next_t is None:
            known = self.image
        else:
            known = scheduler.add_noise(self.image, self.noise, next_t.reshape(1))
        return self.mask * latents + (1 - self.mask) * known.to(latents.dtype)

    def renoise(self, scheduler: SchedulerMixin, latents: torch.Tensor, from_t: torch.Tensor,
                to_t: torch.Tensor) -> torch.Tensor:
        """Diffuse `latents` from `from_t` up to `to_t`: q(x_to | x_from) of the scheduler's noise schedule."""
        alphas = scheduler.alphas_cumprod.to(latents.device)
        ratio = (alphas[to_t.long()] / alphas[from_t.long()]).to(latents.dtype)
        fresh = draw_noise(tuple(latents.shape), generator=self.generator, device=latents.device, dtype=latents.dtype)
        return ratio.sqrt() * latents + (1 - ratio).sqrt() * fresh


def working_copy(scheduler: SchedulerMixin) -> SchedulerMixin:
    """A private copy of `scheduler`, so sampling never mutates the pipeline's (shared, possibly concurrent) one."""
    return copy.deepcopy(scheduler)


def uses_learned_variance(scheduler: SchedulerMixin) -> bool:
    """Whether the scheduler consumes the model's predicted variance channels (DDPM/UnCLIP `learned_range`)."""
    return getattr(scheduler.config, "variance_type", None) in LEARNED_VARIANCE_TYPES


def classifier_free_guidance(model_output: torch.Tensor, scale: float, channels: int) -> torch.Tensor:
    r"""Combine a batch `[unconditional; conditional]` into `uncond + scale * (cond - uncond)` (Ho & Salimans 2021).

    For learned-variance models (`model_output.shape[1] == 2 * channels`) only the mean part is guided; the variance
    channels of the conditional half are kept.
    """
    uncond, cond = model_output.chunk(2)
    if model_output.ndim == 4 and model_output.shape[1] == 2 * channels:
        uncond_mean, _ = uncond.split(channels, dim=1)
        cond_mean, variance = cond.split(channels, dim=1)
        return torch.cat([uncond_mean + scale * (cond_mean - uncond_mean), variance], dim=1)
    return uncond + scale * (cond - uncond)


def scheduler_step(
    scheduler: SchedulerMixin,
    model_output: torch.Tensor,
    timestep: torch.Tensor,
    sample: torch.Tensor,
    next_timestep: torch.Tensor | None,
    generator: torch.Generator | list[torch.Generator] | None,
) -> torch.Tensor:
    """One reverse step `x_t -> x_{t-1}` with any diffusers scheduler; returns the previous sample."""
    if model_output.ndim == 4 and model_output.shape[1] == 2 * sample.shape[1] and not uses_learned_variance(scheduler):
        model_output = model_output[:, : sample.shape[1]]  # fixed-variance sampler: drop the predicted variance
    parameters = _step_parameters(type(scheduler))
    kwargs: dict[str, Any] = {}
    if "generator" in parameters:
        kwargs["generator"] = generator
    if "prev_timestep" in parameters:
        kwargs["prev_timestep"] = next_timestep
    return scheduler.step(model_output, timestep, sample, **kwargs).prev_sample


def _step_parameters(scheduler_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(scheduler_class.step).parameters)


def steps_for_strength(num_inference_steps: int, strength: float) -> int:
    """Steps an image-to-image style loop runs: the last `strength` of `num_inference_steps`, at least one."""
    return max(1, min(num_inference_steps, round(num_inference_steps * strength)))


def strength_start_index(num_inference_steps: int, strength: float, order: int = 1) -> int:
    """Index into `scheduler.timesteps` where the last `strength` of the steps begin; each step holds `order` entries.

    An order-2 scheduler (Heun, KDPM2) already lists 2N - 1 timesteps for N steps, so the index counts steps of the
    requested schedule, not entries, as diffusers' image-to-image pipelines do (`t_start * scheduler.order`).
    """
    return (num_inference_steps - steps_for_strength(num_inference_steps, strength)) * order


def strength_timesteps(scheduler: SchedulerMixin, num_inference_steps: int, strength: float) -> torch.Tensor:
    """The tail of `scheduler.timesteps` (after `set_timesteps(num_inference_steps)`) that `strength` runs.

    Also tells the scheduler where sampling begins (`set_begin_index`), so its step counter and `add_noise` agree.
    """
    begin = strength_start_index(num_inference_steps, strength, getattr(scheduler, "order", 1))
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


def draw_noise(
    shape: tuple[int, ...],
    generator: torch.Generator | list[torch.Generator] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Standard normal noise; with a list of generators, entry `i` of the batch comes from `generator[i]`."""
    return randn_tensor(shape, generator=generator, device=device, dtype=dtype)


def check_latents(latents: torch.Tensor | None, shape: tuple[int, ...], name: str) -> None:
    """Raise a `ValueError` naming `name` when user-supplied latents have the wrong shape."""
    if latents is None:
        return
    if not isinstance(latents, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(latents).__name__}.")
    if tuple(latents.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {tuple(latents.shape)}.")


def check_generator(generator: Any, num_images: int) -> None:
    """A list of generators needs exactly one generator per output image."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not isinstance(generator, (list, tuple)) or not all(isinstance(g, torch.Generator) for g in generator):
        raise TypeError(f"`generator` must be a torch.Generator or a list of them, got {type(generator).__name__}.")
    if len(generator) != num_images:
        raise ValueError(
            f"Got a list of {len(generator)} generators for {num_images} images; pass one generator per image "
            "(batch size x num_images_per_prompt) or a single generator."
        )
