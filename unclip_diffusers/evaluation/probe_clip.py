"""Does a CLIP's image embedding hold the drawing style? A linear probe on the image embeddings beside the caption-based
style accuracy, per held-out split, with the probe's confusion matrix as a picture. Beside it, the nearest-neighbour
accuracy (per slice): how often a held-out image's most similar training image has its label. With `--label concept`
on a generation CLIP that says whether its image embedding, which the decoder draws from, is organised by what is
drawn or by how (`--no-linear-probe` skips the minutes-long fit over ~3,900 concept classes).

The probe is fitted on the `train` split's image embeddings (style labels) and scored on the held-out splits; it asks
the image tower alone whether the styles are linearly separable in its embedding space, where the caption-based score
(the true caption among the same concept's captions in other styles) asks both towers. Writes `probe.json` and
`confusion.png` into `--output`.

    python -m unclip_diffusers.evaluation.probe_clip --clip checkpoints/unclip-emoji --data data/emoji \
        --output outputs/probe-release
    python -m unclip_diffusers.evaluation.probe_clip --clip runs/clip-small/final --data data/emoji  # a CLIP run
    python -m unclip_diffusers.evaluation.probe_clip --clip checkpoints/evaluator-clip-small/evaluator --data data/emoji
    python -m unclip_diffusers.evaluation.probe_clip --clip checkpoints/unclip-emoji --data data/emoji --label concept \
        --no-linear-probe --output outputs/concept-neighbours

`scripts/probe_clip.py` (which `scripts/build_release.sh` runs) is a thin wrapper around `main`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import load_image_text_dataset
from . import metrics
from .probe import (
    confusion_matrix,
    encode_labels,
    fit_linear_probe,
    nearest_neighbour_predict,
    per_class_accuracy,
    probe_predict,
)
from .runner import HELDOUT_SPLITS, caption_pool, spread_positions

MAX_CONFUSION_CLASSES = 64  # confusion matrices (JSON and picture) only for few classes, e.g. the styles
Encoder = tuple[Callable[[list[Any]], torch.Tensor], Callable[[list[str]], torch.Tensor]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", required=True,
                        help="a pipeline folder (model_index.json), an evaluator folder or a CLIP run's final/ folder")
    parser.add_argument("--data", default="data/emoji", help="dataset folder with train and held-out splits")
    parser.add_argument("--label", default="style", choices=["style", "concept"],
                        help="what the probe predicts (concept: only the held-out pairs share train's concepts)")
    parser.add_argument("--max-train", type=int, default=0, help="train images for the probe, evenly spread (0 = all)")
    parser.add_argument("--no-linear-probe", action="store_true",
                        help="skip the linear probe (minutes for ~3,900 concept classes): nearest-neighbour only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="outputs/probe-clip")
    return parser


def load_encoder(folder: Path) -> Encoder:
    """(embed_images, embed_texts), both returning normalised `(N, D)` embeddings, for any of the accepted folders."""
    if (folder / "model_index.json").is_file():
        from .. import UnCLIPPipeline
        from .runner import image_embeddings, text_embeddings

        pipe = UnCLIPPipeline.from_pretrained(folder)
        return (lambda images: image_embeddings(pipe, images)), (lambda texts: text_embeddings(pipe, texts))
    from .evaluator import EvaluatorCLIP

    if (folder / "clip" / "config.json").is_file():
        clip = EvaluatorCLIP.from_training_run(folder)
    elif (folder / "config.json").is_file():
        clip = EvaluatorCLIP.from_pretrained(folder)
    else:
        raise SystemExit(f"probe_clip: {str(folder)!r} is neither a pipeline, an evaluator nor a CLIP run's final/.")
    return clip.embed_images, clip.embed_texts


def embed_rows(embed_images: Callable[[list[Any]], torch.Tensor], data, rows: Sequence[int], desc: str) -> torch.Tensor:
    """Image embeddings of `rows` of a split, decoding 1,024 images at a time (never the whole split at once)."""
    out = []
    for start in tqdm(range(0, len(rows), 1024), desc=desc, leave=False):
        images = data.select(rows[start : start + 1024])["image"]
        out.append(embed_images([im.convert("RGB") for im in images]))
    return torch.cat(out)


def caption_choices(query: torch.Tensor, pool_embeds: torch.Tensor, query_groups: Sequence[str],
                    pool_groups: Sequence[str], pool_labels: Sequence[str]) -> list[str | None]:
    """For each query image, the label of its best-scoring caption among the captions of its own group (for styles:
    the same concept's captions in every style), as the evaluation's style accuracy picks; None when the group has a
    single caption, which decides nothing."""
    best, group_size = metrics.group_choices(query, pool_embeds, query_groups, pool_groups)
    return [pool_labels[b] if int(n) > 1 else None for b, n in zip(best.tolist(), group_size)]


def style_pixel_distances(data, classes: Sequence[str], size: int = 64, max_concepts: int = 300,
                          seed: int = 0) -> dict[str, dict[str, float]]:
    """Median per-pixel mean absolute difference (0-255, on white, at `size` px) between two styles' drawings of the
    same concept, for every pair of styles, over up to `max_concepts` concepts drawn in most styles: how alike the
    styles are in the data itself."""
    from PIL import Image

    images = data.select_columns(["image"])  # decode only this column, not every image column of a row
    rows: dict[str, dict[str, int]] = {}
    for row, (concept, style) in enumerate(zip(data["concept"], data["style"])):
        rows.setdefault(concept, {})[style] = row
    concepts = sorted(c for c, styles in rows.items() if len(styles) >= max(2, len(classes) - 2))
    generator = torch.Generator().manual_seed(seed)
    concepts = [concepts[i] for i in torch.randperm(len(concepts), generator=generator)[:max_concepts].tolist()]
    pixels: dict[int, torch.Tensor] = {}

    def on_white(row: int) -> torch.Tensor:
        if row not in pixels:
            image = images[row]["image"].convert("RGBA")
            canvas = Image.new("RGBA", image.size, "white")
            canvas.alpha_composite(image)
            pixels[row] = torch.from_numpy(np.asarray(canvas.convert("RGB").resize((size, size)), dtype=np.float32))
        return pixels[row]

    out = {}
    for i, a in enumerate(classes):
        for b in classes[i + 1 :]:
            both = [c for c in concepts if a in rows[c] and b in rows[c]]
            if both:
                mad = torch.tensor([(on_white(rows[c][a]) - on_white(rows[c][b])).abs().mean() for c in both])
                out[f"{a} | {b}"] = {"median_mad": round(float(mad.median()), 2), "concepts": len(both)}
    return dict(sorted(out.items(), key=lambda kv: kv[1]["median_mad"]))


def save_confusion_plot(rows: dict[str, dict[str, torch.Tensor]], classes: Sequence[str], path: Path,
                        title: str) -> None:
    """Row-normalised confusion matrices (true class down, predicted across): one row of panels per method, one
    column per split."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    columns = max(len(panels) for panels in rows.values())
    fig, axes = plt.subplots(len(rows), columns, figsize=(5.2 * columns, 5 * len(rows)), squeeze=False)
    for axes_row, (method, panels) in zip(axes, rows.items()):
        for ax, (split, counts) in zip(axes_row, panels.items()):
            rates = counts.float() / counts.sum(dim=1, keepdim=True).clamp(min=1)
            ax.imshow(rates.numpy(), vmin=0, vmax=1, cmap="Blues")
            ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
            ax.set_yticks(range(len(classes)), classes, fontsize=7)
            for i in range(len(classes)):
                for j in range(len(classes)):
                    if counts[i, j]:
                        ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if rates[i, j] > 0.5 else "black")
            accuracy = float(counts.diag().sum() / counts.sum().clamp(min=1))
            ax.set_title(f"{method}, {split}: accuracy {accuracy:.3f}", fontsize=9)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    for name in ("clip", "data"):
        if not Path(getattr(args, name)).exists():
            raise SystemExit(f"probe_clip: --{name} {getattr(args, name)!r} does not exist.")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    embed_images, embed_texts = load_encoder(Path(args.clip))
    train = load_image_text_dataset(args.data, "train")
    if not {"concept", "style"} <= set(train.column_names):
        raise SystemExit("probe_clip: the dataset needs 'concept' and 'style' columns (an `unclip-data build` dataset).")
    label, other = args.label, ("concept" if args.label == "style" else "style")
    rows = spread_positions(len(train), args.max_train if args.max_train > 0 else len(train))
    classes = sorted(set(train[label]))
    labels = encode_labels([train[label][i] for i in rows], classes)
    features = embed_rows(embed_images, train, rows, "train images")
    probe = None if args.no_linear_probe else fit_linear_probe(features, labels, len(classes))
    fit_accuracy = None if probe is None else float((probe_predict(probe, features) == labels).float().mean())
    result: dict[str, Any] = {
        "clip": str(args.clip), "data": str(args.data), "label": label, "classes": classes,
        "train": {"images": len(rows), "probe_accuracy": fit_accuracy}, "splits": {},
    }
    pool_captions, pool_concepts, pool_styles = caption_pool(args.data)
    pool = {"caption": pool_captions, "concept": pool_concepts, "style": pool_styles}
    pool_embeds = embed_texts(pool_captions)
    index = {c: i for i, c in enumerate(pool_captions)}
    known_classes = set(classes)
    panels: dict[str, dict[str, torch.Tensor]] = {"probe (image tower)": {}, "captions (both towers)": {}}
    for split in HELDOUT_SPLITS:
        try:
            data = load_image_text_dataset(args.data, split)
        except ValueError:
            continue
        known = [i for i, v in enumerate(data[label]) if v in known_classes]
        if not known:  # e.g. concepts never trained on: a concept probe has no class for them
            result["splits"][split] = {"images": 0, "note": f"no {label} of this split occurs in train"}
            continue
        data = data.select(known)
        query = embed_rows(embed_images, data, list(range(len(data))), f"{split} images")
        true = encode_labels(list(data[label]), classes)
        neighbour = nearest_neighbour_predict(features, labels, query) == true
        neighbour_scores = {"all": float(neighbour.float().mean())}
        if "slice" in data.column_names:  # e.g. everyday / people / flags (evaluation/slices.py)
            slices = list(data["slice"])
            for name in sorted(set(slices)):
                neighbour_scores[name] = float(neighbour[[s == name for s in slices]].float().mean())
        truth = torch.tensor([index[c] for c in data["caption"]])
        scores: dict[str, Any] = {
            "images": len(data),
            # the held-out image's most similar training image has its label (per slice too)
            "neighbour_accuracy": neighbour_scores,
            # the evaluation's figure (unclip-eval's style_accuracy), and the choices behind it as a confusion matrix
            "caption_accuracy": metrics.group_accuracy(query, pool_embeds, truth, list(data[other]), pool[other]),
        }
        if len(classes) <= MAX_CONFUSION_CLASSES:
            chosen = caption_choices(query, pool_embeds, list(data[other]), pool[other], pool[label])
            decided = [i for i, c in enumerate(chosen) if c is not None and c in known_classes]
            caption_confusion = confusion_matrix(true[decided], encode_labels([chosen[i] for i in decided], classes),
                                                 len(classes))
            panels["captions (both towers)"][split] = caption_confusion
            scores["caption_confusion"] = caption_confusion.tolist()
        if probe is not None:
            probe_confusion = confusion_matrix(true, probe_predict(probe, query), len(classes))
            scores["probe_accuracy"] = float(probe_confusion.diag().sum() / probe_confusion.sum())
            if len(classes) <= MAX_CONFUSION_CLASSES:
                panels["probe (image tower)"][split] = probe_confusion
                scores["probe_per_class"] = dict(zip(classes, per_class_accuracy(probe_confusion)))
                scores["probe_confusion"] = probe_confusion.tolist()
        result["splits"][split] = scores
    if label == "style":
        result["train"]["style_pixel_distances"] = style_pixel_distances(train, classes)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    (output / "probe.json").write_text(json.dumps(result, indent=2) + "\n")
    panels = {method: split_panels for method, split_panels in panels.items() if split_panels}
    if panels:
        save_confusion_plot(panels, classes, output / "confusion.png",
                            f"{label} on {Path(args.clip).name}: linear probe of the image embeddings and caption choice")
    fit = "no linear probe" if fit_accuracy is None else f"linear probe fit accuracy {fit_accuracy:.3f}"
    print(f"{label} of held-out images from {args.clip}'s image embeddings ({len(rows)} train images, {fit})")
    print("| split | images | linear probe | nearest train image (per slice) | caption accuracy (chance) |")
    print("|---|---|---|---|---|")
    for split, scores in result["splits"].items():
        if scores["images"]:
            caption = scores["caption_accuracy"]
            probe_text = f"{scores['probe_accuracy']:.3f}" if "probe_accuracy" in scores else "-"
            neighbour_text = ", ".join(f"{name} {value:.3f}" for name, value in scores["neighbour_accuracy"].items())
            print(f"| {split} | {scores['images']} | {probe_text} | {neighbour_text} | "
                  f"{caption['accuracy']:.3f} ({caption['chance']:.3f}) |")
    for pair, distance in list(result["train"].get("style_pixel_distances", {}).items())[:4]:
        print(f"closest styles in the data: {pair}: median {distance['median_mad']}/255 per pixel "
              f"({distance['concepts']} concepts)")
    print(f"wrote {output / 'probe.json'}" + (f" and {output / 'confusion.png'}" if panels else ""))
    return result


if __name__ == "__main__":
    main()
