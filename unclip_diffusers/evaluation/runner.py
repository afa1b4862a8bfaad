"""Runs an unCLIP pipeline over held-out data and scores every stage (the numbers behind `unclip-eval`).

Only held-out splits are scored (`heldout_pairs`: (concept, style) pairs never seen in training; `heldout_concepts`:
concepts never seen at all); the `train` split is read only for the "mean train embedding of the concept" prior
baseline and as text-only candidate captions for the style/concept accuracies. Generated images are scored by the
independent evaluator CLIP; the prior is scored in the generation CLIP's own space (it is trained to match it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from PIL import Image

from ..data import load_image_text_dataset
from . import metrics
from .calls import (
    _call_kwargs,
    decode_embeddings,
    generate_images,
    image_embeddings,
    sample_prior_embeddings,
    text_embeddings,
)
from .editing import MIX_WEIGHTS, inpaint_section, mix_section
from .evaluator import EvaluatorCLIP
from .inception import inception_fid
from .report import make_grid
from .sections import (
    clip_section,
    image_set_section,
    interpolation_section,
    prior_section,
    slices_text_to_image_section,
    variation_fidelity_section,
    variation_section,
)
from .settings import EVAL_PRESETS, HELDOUT_SPLITS, EvalSettings, get_eval_settings
from .slices import UNSLICED
from .splits import SplitData, caption_pool, load_split
from .wording import wording_section

logger = logging.getLogger(__name__)

__all__ = [  # the runner's names, and those of the modules it was split into (imported from here before)
    "EVAL_PRESETS", "HELDOUT_SPLITS", "EvalSettings", "SplitData", "caption_pool", "decode_embeddings",
    "generate_images", "get_eval_settings", "image_embeddings", "load_split", "run_evaluation",
    "sample_prior_embeddings", "spread_positions", "text_embeddings",
]  # fmt: skip


def run_evaluation(
    pipe: Any,
    data_path: str,
    evaluator: EvaluatorCLIP,
    settings: EvalSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Image.Image]]:
    """Score `pipe` on the held-out splits of `data_path`.

    Args:
        pipe: an `UnCLIPPipeline` (or any object with its methods).
        data_path: a dataset folder with `train` and held-out splits.
        evaluator (`EvaluatorCLIP`): the independent CLIP that scores generated images.
        settings (`EvalSettings`, *optional*): defaults to `EVAL_PRESETS["full"]`.
        progress (`Callable[[str], None]`, *optional*): called with a line per finished section.

    Returns:
        `(results, grids)`: the nested metrics (`{"meta": ..., "splits": {split: sections}}`) and the image grids
        by file stem, ready for `report.write_report`.
    """
    settings = settings or EVAL_PRESETS["full"]
    settings.validate()
    say = progress or (lambda line: logger.info(line))
    timings: dict[str, float] = {}
    grids: dict[str, Image.Image] = {}
    splits: dict[str, Any] = {}

    pool = caption_pool(data_path)
    pool_gen = text_embeddings(pipe, pool[0]) if pool[0] and settings.clip_retrieval else torch.empty(0)
    pool_eval = evaluator.embed_texts(pool[0], progress=True) if pool[0] else torch.empty(0)

    for split in settings.splits:
        t0 = time.perf_counter()
        data = load_split(data_path, split, settings)
        z_t = text_embeddings(pipe, data.captions)
        z_i = image_embeddings(pipe, data.images)
        e_text = evaluator.embed_texts(data.captions, progress=True)
        e_real = evaluator.embed_images(data.images, progress=True)
        section: dict[str, Any] = {"num_examples": data.num_rows, "num_scored": len(data.picked)}
        if settings.clip_retrieval:
            section["clip"] = {
                "generation_clip": clip_section(z_t, z_i, data, pool, pool_gen),
                "evaluator_clip": clip_section(e_text, e_real, data, pool, pool_eval),
            }
            say(f"[{split}] CLIP retrieval done")
        timings[f"{split}/clip"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        concept_means = _train_concept_means(pipe, data_path, set(data.subset("concepts")))
        section["prior"] = prior_section(pipe, data, z_t, z_i, settings, concept_means)
        timings[f"{split}/prior"] = time.perf_counter() - t0
        say(f"[{split}] prior done")

        t0 = time.perf_counter()
        captions, concepts = data.subset("captions"), data.subset("concepts")
        images, prior_embeds = generate_images(pipe, captions, settings, seed_offset=0)
        e_gen = evaluator.embed_images(images)
        text_sub, real_sub = e_text[data.picked], e_real[data.picked]
        section["text_to_image"] = {
            "via_prior": image_set_section(e_gen, real_sub, text_sub, captions, concepts, settings, pool, pool_eval)
        }
        section["slices"] = slices_text_to_image_section(e_gen, e_real, e_text, data, settings, pool, pool_eval)
        if settings.num_wording_inputs:
            section["wording"] = wording_section(
                data, e_real, e_text, settings.num_wording_inputs,
                generate=lambda prompts, offset: generate_images(pipe, prompts, settings, seed_offset=offset)[0],
                embed_images=evaluator.embed_images)
        if settings.text_embedding_ablation:
            direct = decode_embeddings(pipe, z_t[data.picked], captions, settings, seed_offset=0)
            section["text_to_image"]["text_embedding_direct"] = image_set_section(
                evaluator.embed_images(direct), real_sub, text_sub, captions, concepts, settings, pool, pool_eval)
        if settings.caption_context_ablation:  # the same prior samples and seeds, the decoder without the caption
            alone = evaluator.embed_images(decode_embeddings(pipe, prior_embeds, None, settings, seed_offset=0))
            section["text_to_image"]["image_embedding_alone"] = image_set_section(
                alone, real_sub, text_sub, captions, concepts, settings, pool, pool_eval)
            section["slices_image_embedding_alone"] = slices_text_to_image_section(
                alone, e_real, e_text, data, settings, pool, pool_eval)
        if settings.grid_prompts:  # 0 = no grid (e.g. the sampling benchmark's quality columns)
            grids[f"text_to_image_{split}"] = _prompt_seed_grid(pipe, data, images, settings)
        timings[f"{split}/text_to_image"] = time.perf_counter() - t0
        say(f"[{split}] text-to-image done")

        t0 = time.perf_counter()
        section["variations"], var_grid = variation_section(pipe, data, evaluator, e_real, settings)
        if var_grid:
            grids[f"variations_{split}"] = make_grid(
                var_grid, column_labels=["input"] + [f"variation {i + 1}" for i in range(len(var_grid[0]) - 1)],
                title=f"Image variations of real {split} images")
        if settings.num_fidelity_inputs:
            section["variation_fidelity"] = variation_fidelity_section(pipe, data, evaluator, e_real, e_text, settings)
        if settings.num_edit_inputs:
            everyday = [r for r in data.picked if data.slices[r] in ("everyday", UNSLICED)]
            rows = (everyday or data.picked)[: settings.num_edit_inputs]
            kwargs = _call_kwargs(settings)
            section["inpaint"], edit_grid = inpaint_section(pipe, data, evaluator, rows, kwargs, settings.seed + 700,
                                                            text_embeds=e_text)
            section["mix"], mix_grid = mix_section(pipe, data, evaluator, rows, kwargs, settings.seed + 800)
            if edit_grid:
                grids[f"edit_{split}"] = make_grid(
                    edit_grid, column_labels=["source (real)", "mask (grey = repainted)", "edit", "text-to-image"],
                    row_labels=[data.captions[rows[(j + 1) % len(rows)]] for j in range(len(rows))],
                    title=f"Inpainting the centre of real {split} images with another row's prompt")
            if mix_grid:
                grids[f"mix_{split}"] = make_grid(
                    mix_grid, column_labels=["input A"] + [f"B weight {w:.2f}" for w in MIX_WEIGHTS] + ["input B"],
                    title=f"Mixes of two real {split} images by weight")
        section["interpolation"], strips = interpolation_section(pipe, data, evaluator, e_real, settings)
        if strips:
            frames = [f"t={i / (settings.interpolation_steps - 1):.2f}" for i in range(settings.interpolation_steps)]
            grids[f"interpolation_{split}"] = make_grid(
                strips, column_labels=["start (real)"] + frames + ["end (real)"],
                title=f"Interpolations between real {split} images")
        timings[f"{split}/variations_interpolation"] = time.perf_counter() - t0
        say(f"[{split}] variations and interpolation done")

        section["inception_fid"] = inception_fid(images, [data.images[i] for i in data.picked])
        splits[split] = section

    fid_status = next((s["inception_fid"]["status"] for s in splits.values()), None)
    results = {
        "meta": {
            "settings": asdict(settings),
            "inception_fid": {"status": fid_status,
                              "values": {k: s["inception_fid"]["value"] for k, s in splits.items()}},
            "timings_s": timings,
            "generation_clip_parameters": _num_parameters(getattr(pipe, "image_encoder", None))
            + _num_parameters(getattr(pipe, "text_encoder", None)),
            "evaluator": dict(evaluator.info, num_parameters=evaluator.num_parameters),
        },
        "splits": splits,
    }
    return results, grids


def _num_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def _train_concept_means(pipe: Any, data_path: str, wanted: set[str]) -> dict[str, torch.Tensor]:
    """Mean (normalised) generation-CLIP image embedding of each training concept in `wanted` (the concepts of the
    scored rows: only their training images are embedded)."""
    train = load_image_text_dataset(data_path, "train")
    if "concept" not in train.column_names or not wanted:
        return {}
    rows = [i for i, c in enumerate(train["concept"]) if c in wanted]
    if not rows:
        return {}
    subset = train.select(rows)
    embeds = image_embeddings(pipe, [im.convert("RGB") for im in subset["image"]])
    return metrics.group_means(embeds, list(subset["concept"]))


def spread_positions(total: int, count: int) -> list[int]:
    """`min(count, total)` positions in `range(total)`, evenly spaced from the first."""
    count = min(count, total)
    return [i * total // count for i in range(count)]


def _prompt_seed_grid(pipe: Any, data: SplitData, first_seed: list[Image.Image], settings: EvalSettings) -> Image.Image:
    """Rows: held-out prompts spread evenly over the scored ones (the splits keep the emoji's code-point order, so
    the first few would all be one kind, e.g. flags); columns: the real image, then one generated image per seed.
    Cells show the generated images at their own (final) resolution, at least 96 px."""
    chosen = spread_positions(len(data.picked), settings.grid_prompts)  # positions in data.picked
    all_captions = data.subset("captions")
    captions = [all_captions[i] for i in chosen]
    columns = [[first_seed[i] for i in chosen]]
    for seed in range(1, settings.grid_seeds):
        columns.append(generate_images(pipe, captions, settings, seed_offset=1000 * seed)[0])
    rows = [[data.images[data.picked[i]]] + [col[row] for col in columns] for row, i in enumerate(chosen)]
    seeds = [f"seed {s}" for s in range(settings.grid_seeds)]
    cell = max(96, max(image.width for image in first_seed))
    return make_grid(rows, row_labels=captions, column_labels=["real"] + seeds, cell_size=cell,
                     title=f"Text-to-image on {data.name} prompts (prompt x seed, {cell}-px cells)")
