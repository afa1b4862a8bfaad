"""Shared helpers of the benchmark scripts: thread/allocator setup, interleaved timing, peak RSS, JSON and tables.

The machine's cores are shared, so every comparison is timed interleaved (A, B, A, B, ...) in one process and
reported as min/median/max; the load average at start and end goes into the JSON so noisy runs can be spotted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Allocator settings for the reported figures (glibc reads them at start-up, so a script re-executes itself with them).
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def ensure_malloc_env() -> None:
    """Re-execute the current script with the tuned glibc allocator settings unless they are already set."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    os.execvpe(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})


def setup_torch(threads: int) -> None:
    """Fix the thread count (intra- and inter-op) so runs are comparable."""
    import torch

    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}.")
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def peak_rss_gib() -> float:
    """Peak resident set size of this process image so far, in GiB.

    Linux's `VmHWM` (KiB) belongs to the address space and starts afresh at `exec`, whereas `ru_maxrss` keeps the
    high-water mark of the parent that forked us: a child started by a 3 GiB benchmark would report 3 GiB.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def summarize(times: Sequence[float]) -> dict[str, float]:
    """min/median/max/mean of a list of seconds."""
    if not times:
        raise ValueError("No timings to summarise.")
    return {"min": min(times), "median": statistics.median(times), "max": max(times),
            "mean": statistics.fmean(times), "n": len(times)}


def interleaved(
    variants: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1, progress: bool = True
) -> dict[str, list[float]]:
    """Time every variant `repeats` times in round-robin order (A, B, C, A, B, C, ...) after `warmup` rounds.

    Round-robin spreads load spikes from other jobs over all variants instead of one; returns seconds per call.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    from tqdm.auto import tqdm

    times: dict[str, list[float]] = {name: [] for name in variants}
    rounds = tqdm(range(warmup + repeats), desc="interleaved rounds", disable=not progress, leave=False)
    for round_index in rounds:
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


def ratio_stats(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Per-round ratios `numerator[i] / denominator[i]` (same round, so similar load), summarised."""
    if len(numerator) != len(denominator):
        raise ValueError(f"Ratio needs paired timings, got {len(numerator)} and {len(denominator)}.")
    return summarize([a / b for a, b in zip(numerator, denominator)])


def machine_info(threads: int) -> dict[str, Any]:
    """What the figures were measured on: CPU model and flags of interest, threads, library versions, load."""
    import torch

    from unclip_diffusers.utils.cpu_bf16 import cpu_flags

    cpu = platform.processor() or "unknown"
    if cpu in ("unknown", "x86_64", ""):
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
        except OSError:
            pass
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    import diffusers
    import transformers

    return {
        "cpu": cpu, "cpu_flags": flags, "logical_cpus": os.cpu_count(), "threads": threads,
        "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
        "loadavg_start": os.getloadavg(),
    }


def write_json(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `results` (with the final load average) as indented JSON, creating parent folders."""
    # Results updated in place (`bench_sampling.py --sections`) keep the command and load of the run that made them.
    results = {"loadavg_end": os.getloadavg(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), **results}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


HELDOUT_SPLITS = ("heldout_pairs", "heldout_concepts")


def weight_comparison_parser(description: str, stage: str, output: str) -> argparse.ArgumentParser:
    """The options of a paired comparison of one stage's weight sets: --run, --weights, --splits, --threads, --output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", required=True, help=f"the {stage} run folder whose config (data, CLIP) is used")
    parser.add_argument("--weights", nargs="+", required=True, metavar="NAME=FOLDER",
                        help="weight folders to compare, each named")
    parser.add_argument("--splits", nargs="+", default=list(HELDOUT_SPLITS), choices=HELDOUT_SPLITS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=output)
    return parser


def named_folders(items: Sequence[str], flag: str, needs: Sequence[str] = ()) -> dict[str, Path]:
    """`NAME=FOLDER` command-line pairs as {name: folder}; each folder must exist and hold the subfolders `needs`."""
    folders = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not Path(folder).is_dir():
            raise SystemExit(f"{flag} takes NAME=FOLDER pairs of existing folders, got {item!r}.")
        missing = [part for part in needs if not (Path(folder) / part).is_dir()]
        if missing:
            raise SystemExit(f"{folder!r} has no {' or '.join(missing)}/ folder, which {flag} needs.")
        folders[name] = Path(folder)
    return folders


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_stats(stats: dict[str, float], unit: str = "s") -> str:
    """`median (min–max)` in a table cell."""
    return f"{stats['median']:.3f} ({stats['min']:.3f}–{stats['max']:.3f}){unit}"


def component_folder(folder: str | os.PathLike, name: str) -> Path:
    """The `name` component in `folder` (a run folder, its final/, a snapshot or a pipeline), or `folder` itself."""
    path = Path(folder)
    for candidate in (path / name, path / "final" / name):
        if candidate.is_dir():
            return candidate
    return path


def with_second_upsampler(pipe: Any, folder: str | os.PathLike, strength: float | None = None) -> Any:
    """A copy of `pipe` (sharing its models) whose second upsampler is the `super_res_second` UNet saved in `folder`;
    `strength` replaces the saved `super_res_second_strength`."""
    from diffusers import UNet2DModel

    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_sampling_scheduler

    second = UNet2DModel.from_pretrained(component_folder(folder, "super_res_second"), use_safetensors=True)
    components = dict(pipe.components, super_res_second=second,
                      super_res_second_scheduler=build_sampling_scheduler("epsilon"))
    settings = {k: pipe.config[k] for k in ("normalize_embeddings", "super_res_strength", "prior_guidance_scale",
                                            "super_res_second_strength")}
    if strength is not None:
        settings["super_res_second_strength"] = strength
    copied = UnCLIPPipeline(**components, **settings)
    copied.set_progress_bar_config(disable=True)
    return copied


def parse_upsampler_settings(text: str) -> list[tuple[float, int]]:
    """`"1.0:10,0.5:6"` -> [(1.0, 10), (0.5, 6)] (upsampler strength:steps pairs), with a clear error otherwise."""
    settings = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            strength, steps = item.split(":")
            settings.append((float(strength), int(steps)))
        except ValueError:
            raise SystemExit(f"bad upsampler setting {item!r}; expected strength:steps, e.g. 0.5:10.")
        if not 0 < settings[-1][0] <= 1 or settings[-1][1] < 1:
            raise SystemExit(f"bad upsampler setting {item!r}; strength in (0, 1], steps >= 1.")
    if not settings:
        raise SystemExit("no upsampler settings given (expected strength:steps pairs, e.g. 0.3:10).")
    return settings


def parse_guidance_intervals(text: str) -> dict[str, tuple[float, float]]:
    """`"decoder=0.5:10,prior=0.3:10"` -> `{"decoder_guidance_interval": (0.5, 10.0), ...}` (pipeline config keys)."""
    intervals = {}
    for item in text.split(","):
        stage, _, bounds = item.partition("=")
        low, _, high = bounds.partition(":")
        try:
            if stage not in ("prior", "decoder"):
                raise ValueError
            intervals[f"{stage}_guidance_interval"] = (float(low), float(high))
        except ValueError:
            raise ValueError(f"--guidance-intervals takes STAGE=LO:HI items (stage prior or decoder) joined by "
                             f"commas, e.g. decoder=0.5:10; got {text!r}.") from None
    return intervals


def with_guidance_intervals(pipe: Any, text: str) -> Any:
    """A copy of `pipe` (sharing its models) whose saved guidance intervals are `text`'s."""
    copied = copy.copy(pipe)
    copied.register_to_config(**parse_guidance_intervals(text))  # a new config dict: `pipe`'s is untouched
    return copied
