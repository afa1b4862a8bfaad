"""Guidance settings: held-out text-to-image R-precision, CLIP-FD and prior cosine for each classifier-free guidance
scale of the prior (and, optionally, the decoder).

Every setting generates the same held-out prompts from the same noise, so the rows differ only by their guidance.
The prompts are drawn with `--seed` (default 1): a different draw from the model card's evaluation (seed 0), so a
default picked here is not picked on the examples the card reports. R-precision on N prompts has a standard error
of about sqrt(p(1-p)/N) (0.05 at N = 100): read small differences as ties. Writes JSON and a plot.

    python benchmarks/bench_guidance.py --pipeline checkpoints/unclip-emoji --data data/emoji \\
        --evaluator checkpoints/evaluator-clip-small/evaluator --prior-scales 1 2 4 --examples 100
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import _common
from bench_sampling import QUALITY_ONLY, load_evaluator, parse_steps  # (text-to-image metrics only)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default="checkpoints/unclip-emoji", help="a saved pipeline folder")
    parser.add_argument("--data", default="data/emoji", help="dataset folder with the held-out splits")
    parser.add_argument("--evaluator", default="checkpoints/evaluator-clip-small/evaluator",
                        help="the evaluator CLIP folder (`<run>/evaluator`)")
    parser.add_argument("--prior-scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--decoder-scales", type=float, nargs="+", default=[None],
                        help="decoder guidance scales (default: the pipeline's)")
    parser.add_argument("--examples", type=int, default=100, help="held-out prompts per split")
    parser.add_argument("--steps", default=None, metavar="P/D/SR",
                        help="prior/decoder/super-res steps (default: the pipeline's)")
    parser.add_argument("--splits", nargs="+", default=["heldout_pairs", "heldout_concepts"])
    parser.add_argument("--seed", type=int, default=1, help="draw of prompts and noise (the card's evaluation: 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast per model (the app's CPU default)")
    parser.add_argument("--output", default="benchmarks/results/guidance.json")
    return parser


def check_args(args: argparse.Namespace) -> dict[str, int]:
    """Refuse settings that cannot be measured, with the reason; return the `--steps` as pipeline arguments."""
    if args.examples < 2:
        raise SystemExit("bench_guidance: --examples must be >= 2 (R-precision and CLIP-FD need pairs).")
    bad = [s for s in args.prior_scales + [s for s in args.decoder_scales if s is not None] if not s >= 0]
    if bad:
        raise SystemExit(f"bench_guidance: guidance scales must be >= 0, got {bad}.")
    for name in ("pipeline", "data", "evaluator"):
        if not Path(getattr(args, name)).exists():
            raise SystemExit(f"bench_guidance: --{name} {getattr(args, name)!r} does not exist.")
    try:
        return parse_steps(args.steps) if args.steps is not None else {}
    except ValueError as error:
        raise SystemExit(f"bench_guidance: {error}")


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def setting_name(prior_scale: float, decoder_scale: float | None) -> str:
    return f"prior {prior_scale:g}" + ("" if decoder_scale is None else f", decoder {decoder_scale:g}")


def score(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per split: R-precision (with its standard error), CLIP-FD and its floor, prior cosine."""
    out = {}
    for split, section in results["splits"].items():
        t2i = section["text_to_image"]["via_prior"]
        r = t2i["r_precision"]["r_precision"]
        n = t2i["r_precision"]["count"]
        out[split] = {"r_precision": r, "r_precision_se": math.sqrt(r * (1 - r) / n), "count": n,
                      "clip_fd": t2i.get("clip_fd"), "clip_fd_floor": t2i.get("clip_fd_floor"),
                      "cos_prior": section["prior"]["cos_prior"]}
    return out


def plot(rows: dict[str, dict[str, Any]], path: Path) -> Path:
    """R-precision (with standard errors) and CLIP-FD against the prior guidance scale, one line per split."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    by_decoder: dict[Any, list[dict[str, Any]]] = {}
    for row in rows.values():
        by_decoder.setdefault(row["decoder_guidance_scale"], []).append(row)
    for decoder_scale, group in by_decoder.items():
        group.sort(key=lambda row: row["prior_guidance_scale"])
        x = [row["prior_guidance_scale"] for row in group]
        for split in group[0]["splits"]:
            label = split + ("" if decoder_scale is None else f", decoder {decoder_scale:g}")
            ys = [row["splits"][split] for row in group]
            axes[0].errorbar(x, [s["r_precision"] for s in ys], yerr=[s["r_precision_se"] for s in ys], marker="o",
                             capsize=3, label=label)
            axes[1].plot(x, [math.nan if s["clip_fd"] is None else s["clip_fd"] for s in ys], "o-", label=label)
            axes[2].plot(x, [s["cos_prior"] for s in ys], "o-", label=label)
    for ax, title in zip(axes, ("R-precision (higher is better)", "CLIP-FD (lower is better)",
                                "prior cos(ẑ_i, z_i) (higher is better)")):
        ax.set_xlabel("prior guidance scale")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    steps = check_args(args)
    _common.setup_torch(args.threads)
    from tqdm.auto import tqdm

    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.evaluation.runner import get_eval_settings, run_evaluation
    from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

    pipe = UnCLIPPipeline.from_pretrained(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    if args.bf16:
        enable_cpu_bf16_autocast(pipe)
    evaluator = load_evaluator(args)  # its caption embeddings are computed once for all settings
    settings_list = [(p, d) for d in args.decoder_scales for p in args.prior_scales]
    rows: dict[str, dict[str, Any]] = {}
    for prior_scale, decoder_scale in tqdm(settings_list, desc="guidance settings"):
        settings = get_eval_settings("full", max_examples=args.examples, seed=args.seed, splits=tuple(args.splits),
                                     prior_guidance_scale=prior_scale, decoder_guidance_scale=decoder_scale,
                                     **QUALITY_ONLY, **steps)
        results, _ = run_evaluation(pipe, args.data, evaluator, settings, progress=lambda line: None)
        rows[setting_name(prior_scale, decoder_scale)] = {
            "prior_guidance_scale": prior_scale, "decoder_guidance_scale": decoder_scale, "splits": score(results)}
    output = Path(args.output)
    result = {"command": " ".join(sys.argv), "pipeline": args.pipeline, "examples_per_split": args.examples,
              "seed": args.seed, "bf16": args.bf16, "steps": steps or "pipeline defaults",
              "machine": _common.machine_info(args.threads), "rows": rows}
    _common.write_json(result, output)
    figure = plot(rows, output.with_suffix(".png"))
    table = [[name] + [f"{s['r_precision']:.2f}±{s['r_precision_se']:.2f} / {fmt(s['clip_fd'])} / {s['cos_prior']:.3f}"
                       for s in row["splits"].values()] for name, row in rows.items()]
    print(_common.format_table(["setting"] + [f"{split}: R-prec / CLIP-FD / prior cos" for split in args.splits],
                               table))
    print(f"wrote {output} and {figure}")
    return result


if __name__ == "__main__":
    main()
