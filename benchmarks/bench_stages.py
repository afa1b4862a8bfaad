"""Where one text-to-image request's time goes: each stage timed separately, as the app runs it.

Stages: `encode` (CLIP text), `prior`, `decoder` (base image), then each upsampler stage (`super_res`,
`super_res_second`). Every variant (fp32, bf16 autocast + channels-last where the CPU has native bf16, any
`--guidance-intervals` as in `bench_sampling.py`, `--no-caption-cache`: the prior recomputing its caption tokens at every step, as
before `CaptionKVCache`, and `--slicing`: the upsamplers one image per forward) runs the same request; variants are interleaved round by round (`_common.interleaved`)
so a load spike hits all of them. Prints seconds per stage (median of the rounds, min-max) and each stage's share.

    python benchmarks/bench_stages.py --threads 2 --repeats 3 --batch 2
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

import torch

from _common import (
    ensure_malloc_env,
    format_table,
    machine_info,
    setup_torch,
    summarize,
    with_guidance_intervals,
    write_json,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="saved pipeline folder (default: the bundled release)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed interleaved rounds")
    parser.add_argument("--batch", type=int, default=2, help="images per request (the app's default is 2)")
    parser.add_argument("--prompt", default="a cat")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=None,
                        help="default: fp32, and bf16 where the CPU computes it natively")
    parser.add_argument("--guidance-intervals", nargs="*", default=[], metavar="STAGE=LO:HI[,STAGE=LO:HI]",
                        help="extra variants per precision with these saved guidance intervals (prior, decoder)")
    parser.add_argument("--no-caption-cache", action="store_true",
                        help="extra variant per precision: the prior's full forward at every step (the baseline)")
    parser.add_argument("--slicing", action="store_true",
                        help="extra variant per precision: enable_super_res_slicing (one image per upsampler forward)")
    parser.add_argument("--output", default="benchmarks/results/stages.json")
    return parser


def without_caption_cache(pipe: Any) -> Any:
    """A copy of `pipe` (sharing its models' weights) whose prior ignores `caption_cache`: the full forward at every
    step, as sampling ran before the cache."""
    copied = copy.copy(pipe)
    prior = copy.copy(pipe.prior)  # a shallow module copy: same parameters, its own `forward` attribute
    forward = prior.forward

    def full_forward(*args: Any, caption_cache: Any = None, **kwargs: Any) -> Any:
        return forward(*args, **kwargs)

    prior.forward = full_forward
    copied.prior = prior
    return copied


def with_slicing(pipe: Any) -> Any:
    """A copy of `pipe` with `enable_super_res_slicing`."""
    copied = copy.copy(pipe)
    copied.enable_super_res_slicing()
    return copied


def stage_runner(pipe: Any, args: argparse.Namespace, times: dict[str, list[float]]) -> Callable[[], None]:
    """One request, appending each stage's seconds to `times[stage]`."""

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        times.setdefault(stage, []).append(time.perf_counter() - start)
        return result

    def run() -> None:
        generator = torch.Generator().manual_seed(0)
        encodings = timed("encode", lambda: pipe.encode_prompt(args.prompt))
        embeds = timed("prior", lambda: pipe.sample_prior(encodings, num_images_per_prompt=args.batch,
                                                          generator=generator))
        base = timed("decoder", lambda: pipe.decode(embeds, prompt=encodings, generator=generator, upscale=False,
                                                    output_type="pt"))
        stages = iter(pipe.super_resolve_stages(base, generator=generator, output_type="pt"))
        for stage in pipe.upsampler_stages:
            timed(stage.name, lambda: next(stages))

    return run


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    setup_torch(args.threads)
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.utils.cpu_bf16 import cpu_has_native_bf16, enable_cpu_bf16_autocast

    base = UnCLIPPipeline.from_pretrained(args.model) if args.model else UnCLIPPipeline.from_pretrained()
    base.set_progress_bar_config(disable=True)
    precisions = args.precisions or (["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"])
    pipes = {"fp32": base}
    if "bf16" in precisions:
        pipes["bf16"] = enable_cpu_bf16_autocast(copy.deepcopy(base))
    variants: dict[str, tuple[Callable[[], None], dict[str, list[float]]]] = {}
    for precision in precisions:
        candidates = [(precision, pipes[precision])]
        candidates += [(f"{precision} guidance {text}", with_guidance_intervals(pipes[precision], text))
                       for text in args.guidance_intervals]
        if args.no_caption_cache:
            candidates.append((f"{precision} without the prior's caption cache", without_caption_cache(pipes[precision])))
        if args.slicing:
            candidates.append((f"{precision} super-res slicing", with_slicing(pipes[precision])))
        for name, pipe in candidates:
            times: dict[str, list[float]] = {}
            variants[name] = (stage_runner(pipe, args, times), times)

    for round_index in range(1 + args.repeats):  # round 0 warms up
        for name, (run, times) in variants.items():
            run()
            if round_index == 0:
                times.clear()
        print(f"round {round_index}/{args.repeats} done", flush=True)

    results: dict[str, Any] = {"machine": machine_info(args.threads), "batch": args.batch, "prompt": args.prompt,
                               "variants": {}}
    rows = []
    for name, (_, times) in variants.items():
        stats = {stage: summarize(values) for stage, values in times.items()}
        totals = [sum(values[i] for values in times.values()) for i in range(args.repeats)]
        stats["total"] = summarize(totals)
        results["variants"][name] = stats
        total = stats["total"]["median"]
        for stage, value in stats.items():
            share = value["median"] / total
            rows.append([name, stage, f"{value['median']:.3f} ({value['min']:.3f}-{value['max']:.3f})",
                         f"{share:.0%}"])
    print(format_table(["variant", "stage", f"s per request of {args.batch} (median, min-max)", "share"], rows))
    write_json(results, args.output)
    return results


if __name__ == "__main__":
    ensure_malloc_env()
    main()
