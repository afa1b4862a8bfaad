"""`unclip-eval`: score a pipeline folder on the held-out splits and write metrics.json, report.md, grids and plots."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from .evaluator import EVALUATOR_MODEL_PRESETS, EVALUATOR_SEED, EvaluatorCLIP, load_or_train_evaluator
from .report import write_report
from .runner import EVAL_PRESETS, HELDOUT_SPLITS, get_eval_settings, run_evaluation

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `unclip-eval`."""
    p = argparse.ArgumentParser(prog="unclip-eval", description=__doc__)
    p.add_argument("--pipeline", required=True, help="an UnCLIPPipeline folder (save_pretrained output)")
    p.add_argument("--data", default="data/emoji", help="dataset folder with train and held-out splits")
    p.add_argument("--output", default="outputs/eval", help="report folder (created)")
    p.add_argument("--quick", action="store_true", help="CI mode: the `quick` settings and a tiny evaluator")
    p.add_argument("--preset", choices=sorted(EVAL_PRESETS), default=None, help="evaluation settings (default full)")
    p.add_argument("--splits", nargs="+", choices=HELDOUT_SPLITS, default=None, help="held-out splits to score")
    p.add_argument("--max-examples", type=int, default=None, help="held-out examples per split (0 = all)")
    p.add_argument("--seed", type=int, default=None, help="seed of every random draw of the evaluation")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per pipeline call")
    p.add_argument("--evaluator", default=None,
                   help="evaluator CLIP run folder; trained there on the train split if it holds none "
                        "(default: the one shipped in checkpoints/evaluator-clip-<evaluator preset> when it was "
                        "trained on --data, else runs/evaluator-clip-<evaluator preset>)")
    p.add_argument("--evaluator-preset", choices=sorted(EVALUATOR_MODEL_PRESETS), default=None,
                   help="evaluator size (default small; tiny with --quick)")
    p.add_argument("--evaluator-steps", type=int, default=None, help="override the evaluator's training steps")
    p.add_argument("--evaluator-seed", type=int, default=EVALUATOR_SEED, help="the evaluator's training seed")
    p.add_argument("--untrained-evaluator", action="store_true",
                   help="plumbing checks only: score with a randomly initialised evaluator (flagged in the report)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-threads", type=int, default=0,
                   help="torch intra-op threads (0 keeps torch's default; 1 is much faster on a busy shared CPU)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `unclip-eval` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    overrides = {k: v for k, v in {"max_examples": args.max_examples, "seed": args.seed,
                                    "batch_size": args.batch_size}.items() if v is not None}
    if args.splits:
        overrides["splits"] = tuple(args.splits)
    preset = args.preset or ("quick" if args.quick else "full")
    settings = get_eval_settings(preset, **overrides)
    evaluator_preset = args.evaluator_preset or ("tiny" if args.quick else "small")

    if not Path(args.data).exists():
        raise SystemExit(f"unclip-eval: dataset folder {args.data!r} does not exist.")
    if not (Path(args.pipeline) / "model_index.json").is_file():
        raise SystemExit(f"unclip-eval: {args.pipeline!r} is not a pipeline folder (no model_index.json).")

    if args.num_threads < 0:
        raise SystemExit(f"unclip-eval: --num-threads must be >= 0, got {args.num_threads}.")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    started = time.perf_counter()
    if args.untrained_evaluator:
        from .evaluator import evaluator_size

        evaluator = EvaluatorCLIP.from_size(evaluator_size(evaluator_preset), seed=args.evaluator_seed,
                                            info={"preset": evaluator_preset, "path": None})
    else:
        train_overrides = {"max_steps": args.evaluator_steps} if args.evaluator_steps else {}
        evaluator = load_or_train_evaluator(args.data, args.evaluator, preset=evaluator_preset,
                                            seed=args.evaluator_seed, **train_overrides)
    from .. import UnCLIPPipeline  # imported late: the evaluator part works without the pipeline module

    pipe = UnCLIPPipeline.from_pretrained(args.pipeline).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    results, grids = run_evaluation(pipe, args.data, evaluator, settings, progress=print)
    results["meta"].update(pipeline=str(args.pipeline), data=str(args.data), mode=preset,
                           device=args.device, wall_time_s=time.perf_counter() - started)
    paths = write_report(results, args.output, grids)
    print(f"unclip-eval: wrote {paths['report']} and {paths['metrics']} ({len(paths)} files).")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
