"""How good an evaluator CLIP is as an instrument: its scores on *real* images, the ceiling of every generated figure.

For each evaluator, on every image of the held-out splits (and on as many training images, to tell under-fitting
from failing to generalise): concept top-1 per slice among the split's captions of the same style and slice (what
`unclip-eval` reports as the ceiling) and R-precision of the real images against 99 random other captions:

    python benchmarks/bench_evaluator.py --evaluators shipped=checkpoints/evaluator-clip-small/evaluator \\
        v6=runs/evaluator-clip-small-v6/snapshot-1200 --data data/emoji-v4 --output benchmarks/results/evaluator.json

An evaluator is a shipped evaluator folder (`config.json`, `evaluator.json`) or a CLIP run's `final/`/snapshot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import ensure_malloc_env, format_table, machine_info, named_folders, setup_torch, write_json

HELDOUT = ("heldout_pairs", "heldout_concepts")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluators", nargs="+", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--data", required=True, help="the dataset the evaluators were trained on")
    parser.add_argument("--train-sample", type=int, default=661, help="training images scored (0: none)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/evaluator.json")
    return parser


def load_evaluator(folder: Path):
    """A shipped evaluator folder or a CLIP training run's final/-shaped folder."""
    from unclip_diffusers.evaluation.evaluator import EvaluatorCLIP

    if (folder / "clip").is_dir():
        return EvaluatorCLIP.from_training_run(folder)
    return EvaluatorCLIP.from_pretrained(folder)


def score_split(evaluator, data) -> dict:
    """Concept top-1 per slice and R-precision (1 vs 99) of a split's real images."""
    import torch

    from unclip_diffusers.evaluation import metrics
    from unclip_diffusers.evaluation.slices import concept_top1, slice_rows

    captions, styles, slices = list(data["caption"]), list(data["style"]), list(data["slice"])
    images = evaluator.embed_images([image.convert("RGB") for image in data["image"]])
    texts = evaluator.embed_texts(captions)
    scores = {name: concept_top1(images[rows], rows, captions, styles, slices, texts)
              for name, rows in slice_rows(slices).items()}
    same = metrics.same_caption_mask(captions)
    distractors = min(99, int((~same).sum(dim=1).min()))
    scores["r_precision"] = metrics.r_precision(images, texts, distractors, same_caption=same,
                                                generator=torch.Generator().manual_seed(0))
    return scores


def main(argv: list[str] | None = None) -> dict:
    """Score every evaluator; returns what it writes."""
    args = build_parser().parse_args(argv)
    ensure_malloc_env()
    setup_torch(args.threads)
    import torch

    from unclip_diffusers.data import load_image_text_dataset

    evaluators = named_folders(args.evaluators, "--evaluators")
    splits = {split: load_image_text_dataset(args.data, split) for split in HELDOUT}
    if args.train_sample:
        train = load_image_text_dataset(args.data, "train")
        picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: args.train_sample]
        splits["train (sample)"] = train.select(sorted(picked.tolist()))
    results: dict = {"machine": machine_info(args.threads), "data": args.data, "evaluators": {}}
    table = []
    for name, folder in evaluators.items():
        evaluator = load_evaluator(folder)
        results["evaluators"][name] = {"folder": str(folder), "info": evaluator.info, "splits": {}}
        for split, data in splits.items():
            scores = score_split(evaluator, data)
            results["evaluators"][name]["splits"][split] = scores
            for slice_name, score in scores.items():
                value = score["r_precision"] if slice_name == "r_precision" else score["accuracy"]
                label = "R-precision (all)" if slice_name == "r_precision" else f"concept top-1: {slice_name}"
                if not score["count"]:  # no image of this slice had a rival caption: nothing decided
                    value = "n/a"
                table.append([name, split, label, value, score["chance"], score["count"]])
                print(table[-1], flush=True)
    print(format_table(["evaluator", "split", "figure (real images)", "value", "chance", "images"], table))
    print(f"wrote {write_json(results, args.output)}")
    return results


if __name__ == "__main__":
    main()
