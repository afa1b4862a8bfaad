"""Stage-independent pieces of the reverse diffusion loops: guidance, learned variance and scheduler stepping.

Any diffusers scheduler works: keyword arguments only some schedulers accept (`generator`, `prev_timestep` for
`UnCLIPScheduler`) are passed when the scheduler's `step` takes them.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

LEARNED_VARIANCE_TYPES = ("learned", "learned_range")


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


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU from `/proc/cpuinfo` (empty where it cannot be read, e.g. not Linux)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 dot products natively (AVX512-BF16 or AMX), where bf16 autocast was measured
    faster at unchanged quality (`benchmarks/RESULTS.md`); elsewhere bfloat16 is emulated and can be slower."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def enable_cpu_bf16_autocast(pipe: Any, channels_last: bool = True) -> Any:
    """Run each denoising model (prior, decoder, upsamplers) of `pipe` under bfloat16 autocast; outputs stay float32.

    Per model rather than around the whole pipeline: the bicubic resize of the super-resolution conditioning and the
    schedulers' arithmetic stay in float32. On CPUs with AMX/AVX512-BF16 this roughly halves the UNets' time (see
    `benchmarks/RESULTS.md`); on other CPUs bfloat16 can be slower, so it is opt-in. `channels_last` also switches
    the UNets to the channels-last memory format (measured slightly faster with bfloat16 convolutions).
    Returns `pipe`; the weights are not converted.
    """
    for name in ("prior", "decoder", "super_res_first", "super_res_last"):
        module = getattr(pipe, name, None)
        if module is None or getattr(module, "_bf16_autocast", False):
            continue
        if channels_last and name != "prior":
            module.to(memory_format=torch.channels_last)
        module.forward = _autocast_forward(module.forward)
        module._bf16_autocast = True
    return pipe


def _autocast_forward(forward: Any) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = forward(*args, **kwargs)
        return _to_float32(output)

    return wrapped


def _to_float32(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.float()
    if isinstance(output, tuple) and not hasattr(output, "keys"):
        return type(output)(_to_float32(o) for o in output)
    if hasattr(output, "keys"):  # diffusers BaseOutput (an OrderedDict dataclass)
        for key in list(output.keys()):
            output[key] = _to_float32(output[key])
        return output
    return output
