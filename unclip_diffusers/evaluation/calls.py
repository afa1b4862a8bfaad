"""The pipeline calls of the evaluation, in one place: seeded generators, embeddings, prior samples, images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .settings import EvalSettings


def _seeded(seed: int) -> torch.Generator:
    """A fresh CPU generator (evaluation draws never touch the global RNG)."""
    return torch.Generator().manual_seed(seed)


def _generators(seed: int, offsets: Sequence[int]) -> list[torch.Generator]:
    """One generator per output row, seeded by (seed, row), so results do not depend on batching."""
    return [_seeded(seed * 1_000_003 + int(o)) for o in offsets]


def _call_kwargs(settings: EvalSettings, prior: bool = True) -> dict[str, Any]:
    """Step counts and guidance scales under the names of `__call__`, `image_variation` and `interpolate`
    (settings left at None keep the pipeline's defaults)."""
    names = ["decoder_num_inference_steps", "super_res_num_inference_steps", "super_res_second_num_inference_steps",
             "decoder_guidance_scale"]
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
              "super_res_num_inference_steps": settings.super_res_num_inference_steps,
              "super_res_second_num_inference_steps": settings.super_res_second_num_inference_steps}
    return {k: v for k, v in values.items() if v is not None}


@torch.inference_mode()
def text_embeddings(pipe: Any, captions: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Generation-CLIP text embeddings z_t `(N, D)`, normalised."""
    out = []
    for start in range(0, len(captions), batch_size):
        enc = pipe.encode_prompt(list(captions[start : start + batch_size]), device=pipe.device,
                                 num_images_per_prompt=1, do_classifier_free_guidance=False)
        out.append(enc[0].float())
    return F.normalize(torch.cat(out), dim=-1)


@torch.inference_mode()
def image_embeddings(pipe: Any, images: Sequence[Image.Image], batch_size: int = 128) -> torch.Tensor:
    """Generation-CLIP image embeddings z_i `(N, D)` of real images, normalised."""
    out = [pipe.encode_image(list(images[s : s + batch_size])).float() for s in range(0, len(images), batch_size)]
    return F.normalize(torch.cat(out), dim=-1)


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
    return F.normalize(torch.cat(out), dim=-1)


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
    pipe: Any, embeds: torch.Tensor, captions: Sequence[str] | None, settings: EvalSettings, seed_offset: int = 0
) -> list[Image.Image]:
    """Decode given image embeddings (e.g. CLIP text embeddings for the ablation) with the captions as context, or
    with the empty caption when `captions` is None (the decoder reading the image embedding alone)."""
    images = []
    for s in _batched(len(embeds), settings.batch_size, "decode"):
        count = min(settings.batch_size, len(embeds) - s)
        prompt = list(captions[s : s + count]) if captions is not None else None
        out = pipe.decode(embeds[s : s + count], prompt=prompt, output_type="pil",
                          generator=_generators(settings.seed + seed_offset, range(s, s + count)),
                          **_decode_kwargs(settings))
        images += list(out)
    return images
