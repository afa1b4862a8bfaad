"""Writes an evaluation: `metrics.json`, a Markdown report, labelled image grids and matplotlib plots.

The results dictionary is the one `runner.run_evaluation` returns: `{"meta": ..., "splits": {split: sections}}`.
Every table row and plot names the held-out split its numbers come from.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["to_jsonable", "save_metrics_json", "make_grid", "write_markdown", "write_plots", "write_report"]


def to_jsonable(value: Any) -> Any:
    """Turn tensors, numpy values, paths and non-finite floats (→ `null`) into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def save_metrics_json(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `results` as indented, strict JSON (no NaN) and return the path."""
    path = Path(path)
    path.write_text(json.dumps(to_jsonable(results), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def make_grid(
    rows: Sequence[Sequence[Image.Image]],
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    cell_size: int = 96,
    label_width: int = 220,
    title: str | None = None,
) -> Image.Image:
    """Lay images out in a labelled grid (rows may differ in length); every image is resized to `cell_size`.

    `title` (e.g. what the grid shows and which split) is written on a header line above the column labels. Not
    `diffusers.utils.make_image_grid`, which tiles a full rows x cols block of same-size images without text: these
    grids have row and column labels, a title and ragged rows (a missing cell is left white).
    """
    if not rows or not any(rows):
        raise ValueError("make_grid needs at least one image.")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"Got {len(row_labels)} row labels for {len(rows)} rows.")
    columns = max(len(r) for r in rows)
    font = ImageFont.load_default()
    left = label_width if row_labels else 0
    header = 18 if title else 0
    top = header + (16 if column_labels else 0)
    grid = Image.new("RGB", (left + columns * cell_size, top + len(rows) * cell_size), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 3), title, fill="black", font=font)
    for j, label in enumerate(column_labels or []):
        draw.text((left + j * cell_size + 2, header + 2), str(label)[:18], fill="black", font=font)
    for i, row in enumerate(rows):
        y = top + i * cell_size
        if row_labels:
            _draw_wrapped(draw, str(row_labels[i]), (4, y + 4), label_width - 8, font)
        for j, image in enumerate(row):
            grid.paste(image.convert("RGB").resize((cell_size, cell_size), Image.Resampling.BICUBIC),
                       (left + j * cell_size, y))
    return grid


def _draw_wrapped(draw: ImageDraw.ImageDraw, text: str, xy: tuple[int, int], width: int, font: Any) -> None:
    line, lines = "", []
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > width and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    for k, text_line in enumerate(lines[:6]):
        draw.text((xy[0], xy[1] + 12 * k), text_line, fill="black", font=font)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _slice_rows(splits: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for split, s in splits.items():
        fidelity = s.get("variation_fidelity") or {}
        alone = s.get("slices_image_embedding_alone") or {}
        for name, t in (s.get("slices") or {}).items():
            f = fidelity.get(name) or {}
            rows.append([split, name, t.get("concept_top1"), _get(alone, name, "concept_top1"),
                         t.get("concept_top1_real"), t.get("ratio_to_ceiling"),
                         t.get("concept_top1_chance"), f.get("variation_concept_top1"), f.get("ratio_to_ceiling"),
                         _get(t, "r_precision", "r_precision"), _get(t, "r_precision", "chance"),
                         t.get("clip_fd"), t.get("clip_fd_floor"), t.get("count")])  # fmt: skip
    return rows


def slice_and_wording_sections(splits: dict[str, dict[str, Any]], heading: str = "##") -> list[str]:
    """The per-slice and per-wording tables of an evaluation's `splits` as Markdown lines (none when it has neither);
    the report and the model card both show them, under `heading`-level titles."""
    out: list[str] = []
    slice_rows = _slice_rows(splits)
    if slice_rows:
        out += [f"{heading} By slice: what users ask for (evaluator CLIP)", "",
                "Slices: *everyday* (smileys, animals, food, travel, activities, objects, symbols; no skin tones), "
                "*people* (people, body and hands, any skin tone), *flags*. Concept top-1: the image's true caption "
                "beats every caption of the same style and slice. *Ceiling*: the same score for the real held-out "
                "images, the most this evaluator can confirm. Variation fidelity: concept top-1 of one variation "
                "of each real image. R-precision: the prompt against up to 99 other captions of the slice. *Image emb. "
                "alone*: the same prior samples and seeds decoded with the empty caption (what the decoder's caption "
                "context adds).", ""]
        out += _table(["split", "slice", "text→image top-1", "image emb. alone", "ceiling (real)", "ratio", "(chance)",
                       "variation top-1", "ratio", "R-precision", "(chance)", "CLIP-FD", "(floor)", "n"],
                      slice_rows)  # fmt: skip
    wording_rows = [[split, family, w.get("concept_top1"), w.get("ceiling"), w.get("ratio_to_ceiling"), w.get("count"),
                     w.get("prompts")] for split, s in splits.items() for family, w in (s.get("wording") or {}).items()]
    if wording_rows:
        out += [f"{heading} By wording: training wording, held-out wordings, bare name, other languages (everyday "
                "slice)", "",
                "The same everyday rows drawn from each wording family's prompts (`data.captions.evaluation_prompts`; "
                "the held-out templates never appear in training); concept top-1 as in the slice table, ceiling = the "
                "real images of those rows.", ""]
        out += _table(["split", "wording", "concept top-1", "ceiling (real)", "ratio", "rows", "prompts"],
                      wording_rows)  # fmt: skip
    return out


def _markdown_sections(splits: dict[str, dict[str, Any]]) -> list[str]:
    out = slice_and_wording_sections(splits)
    clip_rows = []
    for split, s in splits.items():
        for who in ("generation_clip", "evaluator_clip"):
            c = _get(s, "clip", who)
            if c:
                clip_rows.append([split, who.replace("_", " "), _get(c, "image_to_text", "top1"),
                                  _get(c, "image_to_text", "top5"), _get(c, "text_to_image", "top1"),
                                  _get(c, "text_to_image", "top5"), _get(c, "style_accuracy", "accuracy"),
                                  _get(c, "style_accuracy", "chance"), _get(c, "concept_accuracy", "accuracy"),
                                  _get(c, "concept_accuracy", "chance"), _get(c, "num_captions")])
    if clip_rows:
        out += ["## CLIP retrieval (real held-out images)", "",
                "Retrieval is among all captions of the split; style accuracy: the true caption beats the same "
                "concept's captions in the other styles; concept accuracy: it beats the same style's captions of "
                "other concepts (candidate captions from every split, text only).", ""]
        out += _table(["split", "model", "img→txt top-1", "img→txt top-5", "txt→img top-1", "txt→img top-5",
                       "style acc.", "(chance)", "concept acc.", "(chance)", "captions"], clip_rows)

    prior_rows, guidance_rows, draw_rows = [], [], []
    for split, s in splits.items():
        p = s.get("prior")
        if not p:
            continue
        prior_rows.append([split, p.get("cos_prior"), p.get("cos_text_embedding"), p.get("cos_concept_mean"),
                           p.get("concept_mean_coverage"), p.get("count")])
        guidance_rows += [[split, str(g["guidance_scale"]), g["cos_prior"]] for g in p.get("by_guidance_scale", [])]
        draw_rows += [[split, d["sample_count"], d["cos_prior"], d.get("cos_with_text")]
                      for d in p.get("by_sample_count", [])]
    if prior_rows:
        out += ["## Prior: cosine between sampled ẑ_i and the true z_i (generation CLIP space)", ""]
        out += _table(["split", "prior ẑ_i", "baseline z_t", "baseline: mean train z_i of the concept",
                       "(share with a train mean)", "n"], prior_rows)
        out += _table(["split", "prior guidance scale", "cos(ẑ_i, z_i)"], guidance_rows) if guidance_rows else []
        if draw_rows:
            out += _table(["split", "prior samples drawn (best kept)", "cos(ẑ_i, z_i)", "cos(ẑ_i, z_t)"], draw_rows)

    t2i_rows = []
    for split, s in splits.items():
        for mode, t in (s.get("text_to_image") or {}).items():
            if not isinstance(t, dict) or "r_precision" not in t:
                continue
            t2i_rows.append([split, mode.replace("_", " "), _get(t, "r_precision", "r_precision"),
                             _get(t, "r_precision", "chance"), _get(t, "r_precision_real"), t.get("clip_fd"),
                             t.get("clip_fd_floor"), _get(t, "kid", "kid"), _get(t, "kid_floor", "kid"),
                             _get(t, "style_accuracy", "accuracy"), _get(t, "style_accuracy", "chance"),
                             t.get("count")])
    if t2i_rows:
        out += ["## Text-to-image (scored by the independent evaluator CLIP)", "",
                "R-precision: the prompt beats 99 random other captions of the split (fewer if the split is "
                "smaller: see chance). CLIP-FD / KID compare generated images of one half of the prompts with the "
                "real images of the other half; the floor compares the real images of the two halves (same sizes). "
                "`text embedding direct` feeds the decoder the CLIP text embedding instead of the prior's output "
                "(the paper's ablation). Scored images are the pipeline's final output, resized to the evaluator's "
                "input.", ""]
        out += _table(["split", "conditioning", "R-precision", "(chance)", "(real images)", "CLIP-FD",
                       "(real-vs-real floor)", "KID", "(floor)", "style acc.", "(chance)", "n"], t2i_rows)

    var_rows = []
    for split, s in splits.items():
        v = s.get("variations")
        if v:
            var_rows.append([split, v.get("cos_input_variation"), v.get("cos_input_random"),
                             v.get("embedding_diversity"), v.get("pixel_diversity"), v.get("count")])
    if var_rows:
        out += ["## Image variations (evaluator CLIP)", ""]
        out += _table(["split", "cos(input, variation)", "cos(input, random image)", "diversity (1−cos)",
                       "pixel diversity (RMS)", "inputs"], var_rows)

    edit_rows = [[split, _get(s, "inpaint", "psnr_outside_min_db"), _get(s, "inpaint", "cos_prompt_edited"),
                  _get(s, "inpaint", "cos_prompt_text_to_image"), _get(s, "inpaint", "region_concept_top1_edited"),
                  _get(s, "inpaint", "region_concept_top1_text_to_image"),
                  _get(s, "inpaint", "region_concept_top1_chance"), _get(s, "inpaint", "count"),
                  " → ".join(f"{v:.3f}" for v in _get(s, "mix", "cos_to_b") or []), _get(s, "mix", "monotonic")]
                 for split, s in splits.items() if s.get("inpaint") or s.get("mix")]  # fmt: skip
    if edit_rows:
        out += ["## Edit and mix (evaluator CLIP)", "",
                "Inpainting repaints the centre (the middle 3/4 of each side) of real held-out images with another "
                "row's prompt, keeping the border ring: PSNR outside the mask at the final resolution (worst image; "
                "capped at 100 dB = unchanged); the evaluator's cosine of the edit to its prompt, and its concept "
                "top-1 on the repainted region alone (cropped to the mask's box), each next to plain text-to-image "
                "of that prompt and seed cropped the same way. Mix blends two real images at weights 0, 0.25, ..., 1 "
                "of the second: its cosine to the second input should rise.", ""]
        out += _table(["split", "PSNR outside (dB, min)", "cos(edit, prompt)", "cos(text-to-image, prompt)",
                       "region top-1, edit", "region top-1, text-to-image", "chance", "edits",
                       "mix: cos to 2nd input by weight", "monotonic"], edit_rows)  # fmt: skip

    interp_rows = []
    for split, s in splits.items():
        i = s.get("interpolation")
        if i:
            interp_rows.append([split, i.get("mean_step"), i.get("max_over_mean"), i.get("straightness"),
                                i.get("endpoint_cos_start"), i.get("endpoint_cos_end"), i.get("count")])
    if interp_rows:
        out += ["## Interpolation (evaluator CLIP)", "",
                "Steps: distances between consecutive frames' normalised embeddings (max/mean = 1 and straightness "
                "= 1 for an evenly walked straight path). Endpoint fidelity: cosine between the first/last frame "
                "and the endpoint it should show.", ""]
        out += _table(["split", "mean step", "max/mean step", "straightness", "cos(frame 0, start)",
                       "cos(last frame, end)", "pairs"], interp_rows)
    return out


def write_markdown(results: dict[str, Any], path: str | os.PathLike, figures: Sequence[str] = ()) -> Path:
    """Write the human-readable report: setup, one table per stage (a row per held-out split), the figures."""
    meta = results.get("meta", {})
    lines = ["# unCLIP evaluation report", ""]
    splits = ", ".join(f"`{s}` ({_get(results, 'splits', s, 'num_examples')} examples)"
                       for s in results.get("splits", {}))
    lines += [f"- pipeline: `{meta.get('pipeline')}`", f"- data: `{meta.get('data')}`, held-out splits: {splits}"]
    evaluator = meta.get("evaluator") or {}
    if evaluator:
        steps = f" for {evaluator['training_steps']} steps" if evaluator.get("training_steps") else ""
        lines.append(f"- evaluator CLIP: `{evaluator.get('path')}` (preset {evaluator.get('preset')}, seed "
                     f"{evaluator.get('seed')}, {evaluator.get('num_parameters')} parameters, trained on "
                     f"`{evaluator.get('trained_on_split')}`{steps}; generation CLIP: "
                     f"{meta.get('generation_clip_parameters')} parameters)")
        if not evaluator.get("trained", False):
            lines.append("- **warning: the evaluator CLIP is untrained (random weights); its figures are not "
                         "meaningful.**")
    if meta.get("settings"):
        lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in meta["settings"].items()))
    if meta.get("mode"):
        lines.append(f"- mode: {meta['mode']}")
    fid = meta.get("inception_fid") or {}
    lines.append(f"- standard Inception FID: {fid.get('status', 'not computed')}")
    for split, value in (fid.get("values") or {}).items():
        lines.append(f"  - `{split}`: {_fmt(value, 2)}")
    lines.append("")
    lines += _markdown_sections(results.get("splits", {}))
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    path = Path(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_plots(results: dict[str, Any], output_dir: str | os.PathLike) -> list[Path]:
    """Matplotlib plots of the sweeps and comparisons (one file each; split names in legends and titles)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    output_dir = Path(output_dir)
    splits = results.get("splits", {})
    written: list[Path] = []

    guided = {s: v["prior"]["by_guidance_scale"] for s, v in splits.items() if _get(v, "prior", "by_guidance_scale")}
    if guided:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for split, points in guided.items():
            line = ax.plot([p["guidance_scale"] for p in points], [p["cos_prior"] for p in points], "o-",
                           label=f"prior ({split})")[0]
            base = _get(splits, split, "prior", "cos_text_embedding")
            if base is not None:
                ax.axhline(base, ls="--", color=line.get_color(), alpha=0.6, label=f"baseline z_t ({split})")
        ax.set_xlabel("prior guidance scale")
        ax.set_ylabel("mean cos(ẑ_i, z_i)")
        ax.set_title("Prior guidance sweep: " + ", ".join(guided))
        ax.legend(fontsize=7)
        written.append(_save(fig, output_dir / "prior_guidance.png", plt))

    fd_bars = []
    for split, s in splits.items():
        for mode, t in (s.get("text_to_image") or {}).items():
            if isinstance(t, dict) and t.get("clip_fd") is not None:
                fd_bars.append((f"{split}\n{mode.replace('_', ' ')}", t["clip_fd"], t.get("clip_fd_floor")))
    if fd_bars:
        fig, ax = plt.subplots(figsize=(max(4, 1.8 * len(fd_bars)), 3.5))
        x = np.arange(len(fd_bars))
        ax.bar(x - 0.2, [b[1] for b in fd_bars], 0.4, label="generated vs real")
        ax.bar(x + 0.2, [b[2] if b[2] is not None else 0 for b in fd_bars], 0.4, label="real vs real (floor)")
        ax.set_xticks(x, [b[0] for b in fd_bars], fontsize=7)
        ax.set_ylabel("CLIP-FD (evaluator space)")
        ax.set_title("Text-to-image CLIP-FD on held-out splits")
        ax.legend(fontsize=7)
        written.append(_save(fig, output_dir / "clip_fd.png", plt))

    steps = {s: v["interpolation"]["mean_steps_along_path"] for s, v in splits.items()
             if _get(v, "interpolation", "mean_steps_along_path")}
    if steps:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for split, values in steps.items():
            ax.plot(range(1, len(values) + 1), values, "o-", label=split)
        ax.set_xlabel("step along the interpolation")
        ax.set_ylabel("embedding distance to previous frame")
        ax.set_title("Interpolation smoothness: " + ", ".join(steps))
        ax.legend(fontsize=7)
        written.append(_save(fig, output_dir / "interpolation_steps.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    results: dict[str, Any], output_dir: str | os.PathLike, grids: dict[str, Image.Image] | None = None
) -> dict[str, Path]:
    """Write `metrics.json`, `report.md`, the grids (`<name>.png`) and the plots into `output_dir`; return the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": save_metrics_json(results, output_dir / "metrics.json")}
    figures = []
    for name, image in (grids or {}).items():
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"Grid name {name!r} must be a plain file stem.")
        image.save(output_dir / f"{name}.png")
        paths[name] = output_dir / f"{name}.png"
        figures.append(f"{name}.png")
    for plot in write_plots(results, output_dir):
        paths[plot.stem] = plot
        figures.append(plot.name)
    paths["report"] = write_markdown(results, output_dir / "report.md", figures)
    return paths
