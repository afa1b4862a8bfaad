"""Runs an unCLIP pipeline over held-out data and scores every stage (the numbers behind `unclip-eval`).

Only held-out splits are scored (`heldout_pairs`: (concept, style) pairs never seen in training; `heldout_concepts`:
concepts never seen at all); the `train` split is read only for the "mean train embedding of the concept" prior
baseline and as text-only candidate captions for the style/concept accuracies. Generated images are scored by the
independent evaluator CLIP; the prior is scored in the generation CLIP's own space (it is trained to match it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import metrics
from ..data import load_image_text_dataset
from .evaluator import EvaluatorCLIP
from .inception import inception_fid
from .report import make_grid
from .slices import UNSLICED, slice_rows, slice_scores
from .wording import wording_section

logger = logging.getLogger(__name__)

HELDOUT_SPLITS = ("heldout_pairs", "heldout_concepts")


@dataclass
class EvalSettings:
    """What to measure and how much of it; `EVAL_PRESETS` holds `quick` (CI, seconds) and `full` (the report)."""

    splits: tuple[str, ...] = HELDOUT_SPLITS  # held-out splits to score; "train" is refused
    max_examples: int = 200  # held-out examples per split used for the generation metrics (0 = all); seeded pick
    prior_num_inference_steps: int | None = None  # None = the pipeline's default
    decoder_num_inference_steps: int | None = None
    super_res_num_inference_steps: int | None = None
    prior_guidance_scale: float | None = None  # None = the pipeline's default
    decoder_guidance_scale: float | None = None
    prior_guidance_sweep: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # prior guidance scales compared (cosine to z_i)
    prior_sample_counts: tuple[int, ...] = (1, 2)  # prior draws per prompt, best kept (the paper's trick is 2)
    num_distractors: int = 99  # R-precision distractor captions (capped at the split's distinct captions - 1)
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at the half-split size
    text_embedding_ablation: bool = True  # also decode from the CLIP text embedding directly (the paper's ablation)
    num_variation_inputs: int = 8
    num_fidelity_inputs: int = 24  # real held-out images per slice whose one variation the evaluator must recognise
    num_wording_inputs: int = 8  # everyday rows per split drawn from every wording family (evaluation/wording.py)
    variations_per_input: int = 4
    num_interpolation_pairs: int = 6
    interpolation_steps: int = 7  # frames per interpolation, endpoints included
    grid_prompts: int = 8
    grid_seeds: int = 8  # the card shows an 8 x 8 grid: grid_prompts held-out prompts x grid_seeds seeds
    batch_size: int = 16  # prompts per pipeline call
    seed: int = 0  # every random draw (example pick, noise, distractors) derives from it
    clip_retrieval: bool = True  # CLIP retrieval and accuracies over whole splits; False (sampler benchmarks) loads
    # and embeds only the scored rows: the generation metrics come out the same, except that the variations'
    # "random image" reference then averages over the scored rows instead of the whole split

    def validate(self) -> None:
        """Raise a `ValueError` naming the first bad setting."""
        if not self.splits:
            raise ValueError("splits must name at least one held-out split.")
        for split in self.splits:
            if split not in HELDOUT_SPLITS:
                raise ValueError(f"Only held-out splits are evaluated ({HELDOUT_SPLITS}); got {split!r}.")
        for name in ("max_examples", "num_variation_inputs", "num_fidelity_inputs", "num_wording_inputs",
                     "num_interpolation_pairs", "grid_prompts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("num_distractors", "kid_subsets", "kid_subset_size", "batch_size", "grid_seeds",
                     "variations_per_input"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.variations_per_input < 2:
            raise ValueError(f"variations_per_input must be >= 2 (diversity needs pairs), got "
                             f"{self.variations_per_input}.")
        if self.interpolation_steps < 3:
            raise ValueError(f"interpolation_steps must be >= 3, got {self.interpolation_steps}.")
        if any(not g >= 0 for g in self.prior_guidance_sweep):
            raise ValueError(f"prior_guidance_sweep must hold scales >= 0, got {self.prior_guidance_sweep}.")
        if any(c < 1 for c in self.prior_sample_counts):
            raise ValueError(f"prior_sample_counts must be >= 1, got {self.prior_sample_counts}.")


EVAL_PRESETS: dict[str, EvalSettings] = {
    "full": EvalSettings(),
    "quick": EvalSettings(
        max_examples=8, prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
        prior_guidance_sweep=(1.0, 4.0), num_distractors=99, kid_subsets=5, num_variation_inputs=2,
        variations_per_input=2, num_fidelity_inputs=2, num_wording_inputs=2, num_interpolation_pairs=1, interpolation_steps=3, grid_prompts=2, grid_seeds=2,
        batch_size=8,
    ),
}


def get_eval_settings(preset: str = "full", **overrides: Any) -> EvalSettings:
    """The named settings (`quick`, `full`) with overrides, validated."""
    if preset not in EVAL_PRESETS:
        raise ValueError(f"Unknown evaluation preset {preset!r}; choose one of {sorted(EVAL_PRESETS)}.")
    unknown = sorted(set(overrides) - set(asdict(EVAL_PRESETS[preset])))
    if unknown:
        raise ValueError(f"Unknown evaluation setting(s) {unknown}.")
    settings = replace(EVAL_PRESETS[preset], **overrides)
    settings.validate()
    return settings


# --------------------------------------------------------------------------------------------------------------------
# The pipeline calls, in one place.


def _seeded(seed: int) -> torch.Generator:
    """A fresh CPU generator (evaluation draws never touch the global RNG)."""
    return torch.Generator().manual_seed(seed)


def _generators(seed: int, offsets: Sequence[int]) -> list[torch.Generator]:
    """One generator per output row, seeded by (seed, row), so results do not depend on batching."""
    return [_seeded(seed * 1_000_003 + int(o)) for o in offsets]


def _call_kwargs(settings: EvalSettings, prior: bool = True) -> dict[str, Any]:
    """Step counts and guidance scales under the names of `__call__`, `image_variation` and `interpolate`
    (settings left at None keep the pipeline's defaults)."""
    names = ["decoder_num_inference_steps", "super_res_num_inference_steps", "decoder_guidance_scale"]
    if prior:
        names += ["prior_num_inference_steps", "prior_guidance_scale"]
    return {n: getattr(settings, n) for n in names if getattr(settings, n) is not None}


def _prior_kwargs(settings: EvalSettings) -> dict[str, Any]:
    """The same settings under `sample_prior`'s names."""
    values = {"num_inference_steps": settings.prior_num_inference_steps,
              "guidance_scale": settings.prior_guidance_scale}
    return {k: v for k, v in values.items() if v is not None}


def _decode_kwargs(settings: EvalSettings) -> dict[str, Any]:
    """The same settings under `decode`'s names."""
    values = {"num_inference_steps": settings.decoder_num_inference_steps,
              "guidance_scale": settings.decoder_guidance_scale,
              "super_res_num_inference_steps": settings.super_res_num_inference_steps}
    return {k: v for k, v in values.items() if v is not None}


@torch.inference_mode()
def text_embeddings(pipe: Any, captions: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Generation-CLIP text embeddings z_t `(N, D)`, normalised."""
    out = []
    for start in range(0, len(captions), batch_size):
        enc = pipe.encode_prompt(list(captions[start : start + batch_size]), device=pipe.device,
                                 num_images_per_prompt=1, do_classifier_free_guidance=False)
        out.append(enc[0].float())
    return metrics.l2_normalize(torch.cat(out))


@torch.inference_mode()
def image_embeddings(pipe: Any, images: Sequence[Image.Image], batch_size: int = 128) -> torch.Tensor:
    """Generation-CLIP image embeddings z_i `(N, D)` of real images, normalised."""
    out = [pipe.encode_image(list(images[s : s + batch_size])).float() for s in range(0, len(images), batch_size)]
    return metrics.l2_normalize(torch.cat(out))


def _batched(n: int, batch_size: int, desc: str) -> Any:
    return tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=n <= batch_size)


@torch.inference_mode()
def sample_prior_embeddings(
    pipe: Any, captions: Sequence[str], settings: EvalSettings, guidance_scale: float | None = None,
    sample_count: int = 1, seed_offset: int = 0,
) -> torch.Tensor:
    """ẑ_i from the prior for each caption `(N, D)`, normalised."""
    kwargs = _prior_kwargs(settings)
    if guidance_scale is not None:
        kwargs["guidance_scale"] = guidance_scale
    out = []
    for s in _batched(len(captions), settings.batch_size, "prior"):
        batch = list(captions[s : s + settings.batch_size])
        generator = _generators(settings.seed + seed_offset, range(s, s + len(batch)))
        out.append(pipe.sample_prior(batch, generator=generator, sample_count=sample_count, **kwargs).float())
    return metrics.l2_normalize(torch.cat(out))


@torch.inference_mode()
def generate_images(
    pipe: Any, captions: Sequence[str], settings: EvalSettings, seed_offset: int = 0
) -> tuple[list[Image.Image], torch.Tensor]:
    """Text-to-image through prior and decoder: the final images and the image embeddings used."""
    images, embeds = [], []
    for s in _batched(len(captions), settings.batch_size, "text-to-image"):
        batch = list(captions[s : s + settings.batch_size])
        out = pipe(batch, generator=_generators(settings.seed + seed_offset, range(s, s + len(batch))),
                   output_type="pil", **_call_kwargs(settings))
        images += list(out.images)
        embeds.append(out.image_embeds.float())
    return images, torch.cat(embeds)


@torch.inference_mode()
def decode_embeddings(
    pipe: Any, embeds: torch.Tensor, captions: Sequence[str], settings: EvalSettings, seed_offset: int = 0
) -> list[Image.Image]:
    """Decode given image embeddings (e.g. CLIP text embeddings for the ablation) with the captions as context."""
    images = []
    for s in _batched(len(captions), settings.batch_size, "decode"):
        batch = list(captions[s : s + settings.batch_size])
        out = pipe.decode(embeds[s : s + len(batch)], prompt=batch, output_type="pil",
                          generator=_generators(settings.seed + seed_offset, range(s, s + len(batch))),
                          **_decode_kwargs(settings))
        images += list(out)
    return images


# --------------------------------------------------------------------------------------------------------------------
# One section per stage.


@dataclass
class SplitData:
    """The rows of one held-out split that are scored, and the caption pool for the accuracies."""

    name: str
    captions: list[str]  # every row of the split (retrieval uses them all)
    concepts: list[str]
    styles: list[str]
    images: list[Image.Image]
    picked: list[int] = field(default_factory=list)  # rows used for the generation metrics
    num_rows: int = 0  # rows of the split (more than are held here when only the picked rows were loaded)
    slices: list[str] = field(default_factory=list)  # evaluation slice of every row ('all' when the data has none)
    names: list[str] = field(default_factory=list)  # every row's display name ([] when the data has none)
    localized: list[str] = field(default_factory=list)  # every row's `names` JSON ({locale: name}), '' when none

    def subset(self, attr: str) -> list[Any]:
        values = getattr(self, attr)
        return [values[i] for i in self.picked]


def load_split(data_path: str, split: str, settings: EvalSettings) -> SplitData:
    """Load a held-out split and pick (seeded) the rows that the generation metrics use."""
    if split not in HELDOUT_SPLITS:
        raise ValueError(f"Only held-out splits are evaluated ({HELDOUT_SPLITS}); got {split!r}.")
    data = load_image_text_dataset(data_path, split)
    if len(data) < 2:
        raise ValueError(f"Split {split!r} of {data_path!r} has {len(data)} rows; at least 2 are needed.")
    n = len(data)
    k = n if settings.max_examples == 0 else min(n, settings.max_examples)
    picked = sorted(torch.randperm(n, generator=_seeded(settings.seed))[:k].tolist())
    if not settings.clip_retrieval:  # retrieval is what needs every row: load only the scored ones
        data, picked = data.select(picked), list(range(k))
    columns = data.column_names
    captions = list(data["caption"])
    concepts = list(data["concept"]) if "concept" in columns else list(captions)
    styles = list(data["style"]) if "style" in columns else [""] * len(captions)
    images = [im.convert("RGB") for im in data["image"]]
    slices = list(data["slice"]) if "slice" in columns else [UNSLICED] * len(captions)
    names = list(data["name"]) if "name" in columns else []
    localized = list(data["names"]) if "names" in columns else [""] * len(captions)
    return SplitData(split, captions, concepts, styles, images, picked, num_rows=n, slices=slices, names=names,
                     localized=localized)


def caption_pool(data_path: str) -> tuple[list[str], list[str], list[str]]:
    """Unique (caption, concept, style) over every split, text only: candidates for style/concept accuracy."""
    seen: dict[str, tuple[str, str]] = {}
    for split in ("train",) + HELDOUT_SPLITS:
        try:
            data = load_image_text_dataset(data_path, split)
        except ValueError:
            continue
        cols = data.column_names
        if "concept" not in cols or "style" not in cols:
            continue
        for caption, concept, style in zip(data["caption"], data["concept"], data["style"]):
            seen.setdefault(caption, (concept, style))
    captions = list(seen)
    return captions, [seen[c][0] for c in captions], [seen[c][1] for c in captions]


def _same_caption_mask(captions: Sequence[str]) -> torch.Tensor:
    """`(N, N)` bool: rows with identical caption text."""
    lookup: dict[str, int] = {}
    ids = torch.tensor([lookup.setdefault(c, len(lookup)) for c in captions])
    return ids.unsqueeze(0) == ids.unsqueeze(1)


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
    same = _same_caption_mask(data.captions)
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
    same = _same_caption_mask(captions)
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


# --------------------------------------------------------------------------------------------------------------------


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
        images, _ = generate_images(pipe, captions, settings, seed_offset=0)
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
