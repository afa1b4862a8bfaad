"""One scoring section per stage (CLIP retrieval, prior, image sets, variations, slices, interpolation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import metrics
from .calls import _call_kwargs, _generators, _seeded, sample_prior_embeddings
from .evaluator import EvaluatorCLIP
from .settings import EvalSettings
from .slices import slice_rows, slice_scores
from .splits import SplitData


def _accuracies(query: torch.Tensor, captions: Sequence[str], concepts: Sequence[str], styles: Sequence[str],
                pool: tuple[list[str], list[str], list[str]], pool_embeds: torch.Tensor) -> dict[str, Any]:
    """Style and concept accuracy of queries (images) whose true captions are `captions`."""
    pool_captions, pool_concepts, pool_styles = pool
    index = {c: i for i, c in enumerate(pool_captions)}
    if not pool_captions or any(c not in index for c in captions):
        return {}
    true = torch.tensor([index[c] for c in captions])
    return {
        "style_accuracy": metrics.group_accuracy(query, pool_embeds, true, list(concepts), pool_concepts),
        "concept_accuracy": metrics.group_accuracy(query, pool_embeds, true, list(styles), pool_styles),
    }


def clip_section(text_embeds: torch.Tensor, image_embeds: torch.Tensor, data: SplitData,
                 pool: tuple[list[str], list[str], list[str]], pool_embeds: torch.Tensor) -> dict[str, Any]:
    """Retrieval among all the split's captions (both directions) and style/concept accuracy, for one CLIP."""
    similarity = metrics.cosine_similarity_matrix(image_embeds, text_embeds)  # (images, captions)
    same = metrics.same_caption_mask(data.captions)
    result = {
        "image_to_text": metrics.retrieval_at_k(similarity, same),
        "text_to_image": metrics.retrieval_at_k(similarity.T, same),
        "num_captions": len(set(data.captions)),
        "count": len(data.captions),
    }
    result.update(_accuracies(image_embeds, data.captions, data.concepts, data.styles, pool, pool_embeds))
    return result


def prior_section(pipe: Any, data: SplitData, z_t: torch.Tensor, z_i: torch.Tensor, settings: EvalSettings,
                  train_concept_means: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Cosine between prior samples and the true image embeddings, next to the baselines and the sweeps."""
    captions = data.subset("captions")
    z_t, z_i = z_t[data.picked], z_i[data.picked]
    z_hat = sample_prior_embeddings(pipe, captions, settings)
    concepts = data.subset("concepts")
    covered = [i for i, c in enumerate(concepts) if c in train_concept_means]
    concept_cos = None
    if covered:
        means = torch.stack([train_concept_means[concepts[i]] for i in covered])
        concept_cos = metrics.mean_cosine(means, z_i[covered])
    result: dict[str, Any] = {
        "cos_prior": metrics.mean_cosine(z_hat, z_i),
        "cos_text_embedding": metrics.mean_cosine(z_t, z_i),
        "cos_concept_mean": concept_cos,
        "concept_mean_coverage": len(covered) / len(concepts),
        "count": len(captions),
        "by_guidance_scale": [],
        "by_sample_count": [],
    }
    for k, scale in enumerate(settings.prior_guidance_sweep):
        sample = sample_prior_embeddings(pipe, captions, settings, guidance_scale=scale, seed_offset=100 + k)
        result["by_guidance_scale"].append({"guidance_scale": scale, "cos_prior": metrics.mean_cosine(sample, z_i)})
    for count in settings.prior_sample_counts:
        sample = sample_prior_embeddings(pipe, captions, settings, sample_count=count, seed_offset=200)
        result["by_sample_count"].append({"sample_count": count, "cos_prior": metrics.mean_cosine(sample, z_i),
                                          "cos_with_text": metrics.mean_cosine(sample, z_t)})
    return result


def _half_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=_seeded(seed + 7))
    return order[: n // 2], order[n // 2 : 2 * (n // 2)]


def image_set_section(gen: torch.Tensor, real: torch.Tensor, text: torch.Tensor, captions: Sequence[str],
                      concepts: Sequence[str], settings: EvalSettings, pool: Any,
                      pool_embeds: torch.Tensor) -> dict[str, Any]:
    """Evaluator-space scores of generated images `gen` made from `captions`, against the real images `real`."""
    n = gen.shape[0]
    same = metrics.same_caption_mask(captions)
    distinct_others = int((~same).sum(dim=1).min())
    result: dict[str, Any] = {"count": n}
    if distinct_others >= 1:
        d = min(settings.num_distractors, distinct_others)
        # The same distractors for generated and real images: a paired comparison.
        result["r_precision"] = metrics.r_precision(gen, text, d, same, _seeded(settings.seed))
        result["r_precision_real"] = metrics.r_precision(real, text, d, same, _seeded(settings.seed))["r_precision"]
    a, b = _half_split(n, settings.seed)
    if len(a) >= 2:
        result["clip_fd"] = metrics.frechet_distance(gen[a], real[b])
        result["clip_fd_floor"] = metrics.frechet_distance(real[a], real[b])
        kid = dict(num_subsets=settings.kid_subsets, subset_size=settings.kid_subset_size)
        # The same subsets for both, so the comparison with the floor is paired.
        kid_of = metrics.kernel_inception_distance
        result["kid"] = kid_of(gen[a], real[b], generator=_seeded(settings.seed), **kid)
        result["kid_floor"] = kid_of(real[a], real[b], generator=_seeded(settings.seed), **kid)
        result["fd_half_size"] = len(a)
    pool_captions, pool_concepts, _ = pool
    index = {c: i for i, c in enumerate(pool_captions)}
    if pool_captions and all(c in index for c in captions):
        true = torch.tensor([index[c] for c in captions])
        result["style_accuracy"] = metrics.group_accuracy(gen, pool_embeds, true, list(concepts), pool_concepts)
    return result


def _to_tensor(images: Sequence[Image.Image], size: int = 64) -> torch.Tensor:
    arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255
              for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


@torch.inference_mode()
def variation_section(pipe: Any, data: SplitData, evaluator: EvaluatorCLIP, real_embeds: torch.Tensor,
                      settings: EvalSettings) -> tuple[dict[str, Any], list[list[Image.Image]]]:
    """Evaluator cosine input→variation vs input→random held-out image, and diversity among the variations."""
    rows = data.picked[: settings.num_variation_inputs]
    if not rows:
        return {}, []
    cos_var, cos_rand, emb_div, pix_div, grid = [], [], [], [], []
    k = settings.variations_per_input
    for j, row in enumerate(tqdm(rows, desc="variations", leave=False)):
        out = pipe.image_variation(data.images[row], num_images_per_prompt=k, output_type="pil",
                                   generator=_generators(settings.seed + 300, range(j * k, (j + 1) * k)),
                                   **_call_kwargs(settings, prior=False))
        variations = list(out.images)
        embeds = evaluator.embed_images(variations)
        cos_var.append((embeds @ real_embeds[row]).mean().item())
        others = [i for i in range(len(data.images)) if data.captions[i] != data.captions[row]]
        cos_rand.append((real_embeds[others] @ real_embeds[row]).mean().item())
        emb_div.append(metrics.mean_pairwise_distance(embeds))
        pix_div.append(metrics.pixel_diversity(_to_tensor(variations)))
        grid.append([data.images[row]] + variations)
    result = {
        "cos_input_variation": float(np.mean(cos_var)),
        "cos_input_random": float(np.mean(cos_rand)),
        "embedding_diversity": float(np.mean(emb_div)),
        "pixel_diversity": float(np.mean(pix_div)),
        "count": len(rows),
        "variations_per_input": k,
    }
    return result, grid


@torch.inference_mode()
def variation_fidelity_section(pipe: Any, data: SplitData, evaluator: EvaluatorCLIP, real_embeds: torch.Tensor,
                               text_embeds: torch.Tensor, settings: EvalSettings) -> dict[str, Any]:
    """Per slice: evaluator concept top-1 of one variation of each of the first scored real images, next to the
    real images' own top-1 (the ceiling). The decoder must draw the thing from its exact CLIP image embedding."""
    result: dict[str, Any] = {}
    picked_slices = data.subset("slices")
    for name, positions in slice_rows(picked_slices).items():
        rows = [data.picked[i] for i in positions[: settings.num_fidelity_inputs]]
        if not rows:
            continue
        variations: list[Image.Image] = []
        for start in range(0, len(rows), settings.batch_size):
            chunk = rows[start : start + settings.batch_size]
            out = pipe.image_variation([data.images[r] for r in chunk], output_type="pil",
                                       generator=_generators(settings.seed + 500, chunk),
                                       **_call_kwargs(settings, prior=False))  # fmt: skip
            variations += list(out.images)
        scores = slice_scores(rows, evaluator.embed_images(variations), real_embeds, data, text_embeds)
        result[name] = {"count": scores["count"], "variation_concept_top1": scores["concept_top1"],
                        "real_concept_top1": scores["concept_top1_real"], "chance": scores["concept_top1_chance"],
                        "ratio_to_ceiling": scores["ratio_to_ceiling"]}  # fmt: skip
    return result


def slices_text_to_image_section(e_gen: torch.Tensor, e_real: torch.Tensor, e_text: torch.Tensor, data: SplitData,
                                 settings: EvalSettings, pool: Any, pool_embeds: torch.Tensor) -> dict[str, Any]:
    """Per slice of the scored rows: the text-to-image image-set scores and concept top-1 against the ceiling.

    `e_gen` holds one generated image per scored row; `e_real` and `e_text` one embedding per split row."""
    captions, concepts = data.subset("captions"), data.subset("concepts")
    result: dict[str, Any] = {}
    for name, positions in slice_rows(data.subset("slices")).items():
        rows = [data.picked[i] for i in positions]
        section = image_set_section(e_gen[positions], e_real[rows], e_text[rows], [captions[i] for i in positions],
                                    [concepts[i] for i in positions], settings, pool, pool_embeds)  # fmt: skip
        section.update(slice_scores(rows, e_gen[positions], e_real, data, e_text))
        result[name] = section
    return result


@torch.inference_mode()
def interpolation_section(pipe: Any, data: SplitData, evaluator: EvaluatorCLIP, real_embeds: torch.Tensor,
                          settings: EvalSettings) -> tuple[dict[str, Any], list[list[Image.Image]]]:
    """Interpolations between pairs of real held-out images: step evenness and endpoint fidelity (evaluator)."""
    rows = data.picked
    pairs = [(rows[2 * i], rows[2 * i + 1]) for i in range(min(settings.num_interpolation_pairs, len(rows) // 2))]
    if not pairs:
        return {}, []
    smooth, steps, cos_start, cos_end, strips = [], [], [], [], []
    for j, (a, b) in enumerate(tqdm(pairs, desc="interpolation", leave=False)):
        out = pipe.interpolate(data.images[a], data.images[b], settings.interpolation_steps, output_type="pil",
                               generator=_seeded(settings.seed * 1_000_003 + 400 + j),
                               **_call_kwargs(settings))
        frames = list(out.images)
        embeds = evaluator.embed_images(frames)
        smooth.append(metrics.path_smoothness(embeds))
        steps.append((embeds[1:] - embeds[:-1]).norm(dim=1))
        cos_start.append((embeds[0] @ real_embeds[a]).item())
        cos_end.append((embeds[-1] @ real_embeds[b]).item())
        strips.append([data.images[a]] + frames + [data.images[b]])
    result = {key: float(np.mean([s[key] for s in smooth])) for key in smooth[0]}
    result.update({
        "mean_steps_along_path": torch.stack(steps).mean(dim=0).tolist(),
        "endpoint_cos_start": float(np.mean(cos_start)),
        "endpoint_cos_end": float(np.mean(cos_end)),
        "count": len(pairs),
        "frames": settings.interpolation_steps,
    })
    return result, strips
