"""Roofline: achieved GFLOP/s of the decoder UNet's forward pass vs a large matmul on the same machine.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, 2 FLOPs per
multiply-add); the matmul is the machine's practical peak for dense work. Timings are interleaved and reported as
min/median/max, in float32 and under bfloat16 autocast.

    python benchmarks/bench_roofline.py                     # release-size decoder, 2 threads
    python benchmarks/bench_roofline.py --preset tiny --quick --output /tmp/r.json
"""

from __future__ import annotations

import argparse
from typing import Any

import _common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2, help="decoder batch (2 = one guided image)")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 256 matmul")
    parser.add_argument("--output", default="benchmarks/results/roofline.json")
    return parser


def count_flops(fn: Any) -> int:
    """FLOPs of one call of `fn` as counted by PyTorch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def decoder_inputs(decoder: Any, text_proj: Any, batch: int) -> dict[str, Any]:
    """Random inputs of the right shapes for one decoder forward pass."""
    import torch

    g = torch.Generator().manual_seed(0)
    size = decoder.config.sample_size
    tokens = text_proj.config.clip_extra_context_tokens + 32
    width = decoder.config.cross_attention_dim
    return {
        "sample": torch.randn(batch, decoder.config.in_channels, size, size, generator=g),
        "timestep": torch.tensor(500),
        "encoder_hidden_states": torch.randn(batch, tokens, width, generator=g),
        "class_labels": torch.randn(batch, text_proj.config.time_embed_dim, generator=g),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    _common.setup_torch(args.threads)
    if args.quick:
        args.repeats, args.matmul_size = 2, 256
    import torch

    from unclip_diffusers.configs import build_components

    machine = _common.machine_info(args.threads)  # load average before the timed work

    torch.manual_seed(0)
    components = build_components(args.preset)
    decoder, text_proj = components["decoder"].eval(), components["text_proj"]
    inputs = decoder_inputs(decoder, text_proj, args.batch)
    n = args.matmul_size
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def autocast(fn: Any) -> Any:
        def run() -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fn()
        return run

    variants = {
        "decoder fp32": lambda: decoder(**inputs),
        "decoder bf16 autocast": autocast(lambda: decoder(**inputs)),
        "matmul fp32": lambda: a32 @ b32,
        "matmul bf16": lambda: a16 @ b16,
    }
    with torch.inference_mode():
        flops = {"decoder": count_flops(variants["decoder fp32"]), "matmul": 2 * n**3}
        times = _common.interleaved(variants, args.repeats, warmup=1)
    results: dict[str, Any] = {"machine": machine, "preset": args.preset,
                               "decoder_batch": args.batch, "matmul_size": n, "flops": flops,
                               "decoder_parameters": sum(p.numel() for p in decoder.parameters()), "rows": {}}
    table = []
    for name, ts in times.items():
        stats = _common.summarize(ts)
        work = flops["decoder"] if name.startswith("decoder") else flops["matmul"]
        gflops = work / stats["median"] / 1e9
        results["rows"][name] = {"seconds": stats, "gflops_median": gflops, "gflops_best": work / stats["min"] / 1e9}
        table.append([name, f"{work / 1e9:.2f}", _common.fmt_stats(stats, ""), f"{gflops:.1f}"])
    for precision in ("fp32", "bf16"):
        decoder_row = results["rows"][f"decoder {precision}" + (" autocast" if precision == "bf16" else "")]
        results[f"decoder_fraction_of_matmul_{precision}"] = (
            decoder_row["gflops_median"] / results["rows"][f"matmul {precision}"]["gflops_median"])
    print(_common.format_table(["kernel", "GFLOP/call", "s/call median (min–max)", "GFLOP/s (median)"], table))
    print(f"decoder reaches {results['decoder_fraction_of_matmul_fp32']:.0%} of the fp32 matmul rate and "
          f"{results['decoder_fraction_of_matmul_bf16']:.0%} of the bf16 one")
    path = _common.write_json(results, args.output)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    _common.ensure_malloc_env()
    main()
