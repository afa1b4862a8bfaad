"""Opt-in bfloat16 autocast for CPU inference, and whether this CPU computes bfloat16 natively."""

from __future__ import annotations

from typing import Any

import torch


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
    for name in ("prior", "decoder", "super_res_first", "super_res_last", "super_res_second"):
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
