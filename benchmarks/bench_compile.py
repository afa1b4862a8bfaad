"""`torch.compile` (inductor, CPU) of the prior, decoder and upsampler vs eager, on the same weights and noise.

Two pipelines in one process: eager, and one whose three denoising models are wrapped in `torch.compile`. The compile
cost is the first compiled call's extra time (paid once per process); then both are timed interleaved at the given
step counts, and the images are compared (mean absolute difference on the 0-255 scale).

    python benchmarks/bench_compile.py --threads 1 --steps 8/10/10 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import time

import _common

from unclip_diffusers import UnCLIPPipeline


def build_parser() -> argparse.ArgumentParser:
    """The command line of this benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="checkpoints/unclip-emoji", help="saved pipeline folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed interleaved rounds")
    parser.add_argument("--steps", default="8/10/10", help="prior/decoder/upsampler steps, e.g. 25/25/10")
    parser.add_argument("--prompt", default="a cat")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: both pipelines under enable_cpu_bf16_autocast, as the app runs on native-bf16 CPUs")
    parser.add_argument("--models", nargs="+", default=["prior", "decoder", "super_res_first"],
                        choices=["prior", "decoder", "super_res_first", "super_res_second"],
                        help="which denoising models to compile")
    parser.add_argument("--output", default="benchmarks/results/compile.json")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Measure and print the compile cost, the per-image times and the speed-up."""
    args = build_parser().parse_args(argv)
    _common.ensure_malloc_env()
    _common.setup_torch(args.threads)
    import numpy as np
    import torch

    prior_steps, decoder_steps, super_res_steps = (int(s) for s in args.steps.split("/"))
    eager = UnCLIPPipeline.from_pretrained(args.model)
    eager.set_progress_bar_config(disable=True)
    compiled = copy.deepcopy(eager)
    if args.precision == "bf16":  # after the copy: each pipeline wraps its own models' forward
        from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

        enable_cpu_bf16_autocast(eager)
        enable_cpu_bf16_autocast(compiled)
    for name in args.models:
        if getattr(compiled, name, None) is None:
            raise SystemExit(f"{args.model} has no {name} to compile.")
        setattr(compiled, name, torch.compile(getattr(compiled, name)))

    def generate(pipe: UnCLIPPipeline) -> np.ndarray:
        return pipe([args.prompt], generator=torch.Generator().manual_seed(0), output_type="np",
                    prior_num_inference_steps=prior_steps, decoder_num_inference_steps=decoder_steps,
                    super_res_num_inference_steps=super_res_steps).images  # fmt: skip

    reference = generate(eager)
    start = time.perf_counter()
    first = generate(compiled)
    first_call = time.perf_counter() - start
    times = _common.interleaved({"eager": lambda: generate(eager), "compiled": lambda: generate(compiled)},
                                repeats=args.repeats)  # fmt: skip
    eager_stats, compiled_stats = _common.summarize(times["eager"]), _common.summarize(times["compiled"])
    results = {
        "machine": _common.machine_info(args.threads),
        "steps": args.steps,
        "precision": args.precision,
        "compiled_models": args.models,
        "compile_s": first_call - eager_stats["median"],  # the first compiled call less one ordinary call
        "eager_s": eager_stats,
        "compiled_s": compiled_stats,
        "speedup": _common.ratio_stats(times["eager"], times["compiled"]),
        "mad_0_255": float(np.abs(first - reference).mean() * 255),
    }
    _common.write_json(results, args.output)
    print(_common.format_table(
        ["variant", "s / image (min / median / max)", "speed-up vs eager (median)"],
        [["eager", _common.fmt_stats(eager_stats), "1.00"],
         ["torch.compile", _common.fmt_stats(compiled_stats), f"{results['speedup']['median']:.2f}"]],
    ))  # fmt: skip
    print(f"compile cost: {results['compile_s']:.0f} s once per process; images differ by {results['mad_0_255']:.4f}/255")


if __name__ == "__main__":
    main()
