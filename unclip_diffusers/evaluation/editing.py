"""Scores of the edit and mix methods on real held-out images (evaluator CLIP).

- Inpainting: the centre of a real image (the middle 3/4 of each side, where an emoji draws its subject) is
  repainted with another row's prompt, the border ring kept: "replace the thing in the middle". Reported: PSNR outside
  the mask at the final resolution (the known region is pasted back, so anything short of exact is a bug), the
  evaluator's cosine between the edited image and the prompt, and how often the evaluator recognises the prompt's
  concept (top-1 among the split's captions of its style and slice) in the repainted region alone (cropped to the
  mask's box), each next to a plain text-to-image of the same prompt and seed cropped the same way. (A left-half mask
  was tried first: the evaluator recognised half an emoji in neither the edits nor plain text-to-image, 0 of 4.)
- Mix: two real images blended at weights 0, 0.25, ..., 1; the evaluator's cosine of each blend to each input should
  grow with that input's weight.

Both return the images they made, for the report's grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..utils.psnr import psnr
from .slices import concept_top1

MIX_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# PSNR is infinite for identical pixels, which strict JSON cannot store (metrics.json writes it as null, "not
# measured"); the section reports at most this, meaning "unchanged up to float rounding".
PSNR_CAP_DB = 100.0


MASK_BORDER = 1 / 8  # the kept ring around the repainted centre, as a share of each side


def centre_box(size: tuple[int, int], border: float = MASK_BORDER) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of an image of `size` less a ring of `border` x each side."""
    width, height = size
    return (round(width * border), round(height * border), round(width * (1 - border)),
            round(height * (1 - border)))


def centre_mask(size: tuple[int, int], border: float = MASK_BORDER) -> Image.Image:
    """A mask (white = repaint) of the centre of an image of `size` (width, height), the border ring kept."""
    mask = Image.new("L", size, 0)
    mask.paste(255, centre_box(size, border))
    return mask


def show_mask(image: Image.Image, mask: Image.Image) -> Image.Image:
    """`image` with the region `mask` repaints greyed out, for the grids."""
    image = image.convert("RGB")
    grey = Image.new("RGB", image.size, (128, 128, 128))
    return Image.composite(grey, image, mask.convert("L").resize(image.size, Image.Resampling.NEAREST))


def is_increasing(values: Sequence[float]) -> bool:
    """Whether every value is larger than the one before."""
    return all(b > a for a, b in zip(values, values[1:]))


@torch.inference_mode()
def inpaint_section(
    pipe: Any, data: Any, evaluator: Any, rows: Sequence[int], call_kwargs: dict[str, Any], seed: int,
    text_embeds: torch.Tensor | None = None,
) -> tuple[dict[str, Any], list[list[Image.Image]]]:
    """Inpaint the centre of each row's real image with the next row's caption: PSNR outside, prompt cosine and
    (with `text_embeds`, the evaluator's embedding of every caption row of the split) concept recognition of the
    repainted region, each beside plain text-to-image; and the grid rows [source, mask, edit, text-to-image]."""
    if len(rows) < 2:
        return {}, []
    prompt_rows = [rows[(j + 1) % len(rows)] for j in range(len(rows))]  # each row repainted with the next's caption
    psnrs, cos_edit, cos_plain, regions, grid = [], [], [], [], []
    for j, (row, prompt_row) in enumerate(zip(rows, prompt_rows)):
        prompt = data.captions[prompt_row]
        source = data.images[row]
        source_mask = centre_mask(source.size)
        edited = pipe.inpaint(source, source_mask, prompt=prompt, output_type="np",
                              generator=torch.Generator().manual_seed(seed + j), **call_kwargs).images[0]
        plain = pipe([prompt], output_type="pil", generator=[torch.Generator().manual_seed(seed + j)],
                     **call_kwargs).images[0]  # fmt: skip
        height, width = edited.shape[:2]
        known = np.asarray(source.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)) / 255.0
        outside = np.asarray(centre_mask((width, height))) == 0
        psnrs.append(min(PSNR_CAP_DB, psnr(edited[outside][None], known[outside][None])))
        edited_image = Image.fromarray((edited * 255).round().astype(np.uint8))
        text = evaluator.embed_texts([prompt])
        images = evaluator.embed_images([edited_image, plain])
        cos_edit.append(float(images[0] @ text[0]))
        cos_plain.append(float(images[1] @ text[0]))
        box = centre_box(edited_image.size)
        regions += [edited_image.crop(box), plain.convert("RGB").resize(edited_image.size).crop(box)]
        grid.append([source, show_mask(source, source_mask), edited_image, plain])
    result = {"count": len(rows), "psnr_outside_min_db": min(psnrs), "psnr_outside_mean_db": float(np.mean(psnrs)),
              "cos_prompt_edited": float(np.mean(cos_edit)),
              "cos_prompt_text_to_image": float(np.mean(cos_plain))}  # fmt: skip
    if text_embeds is not None:
        embeds = evaluator.embed_images(regions)
        recognised = [concept_top1(embeds[k::2], prompt_rows, data.captions, data.styles, data.slices, text_embeds)
                      for k in (0, 1)]  # fmt: skip
        result.update(region_concept_top1_edited=recognised[0]["accuracy"],
                      region_concept_top1_text_to_image=recognised[1]["accuracy"],
                      region_concept_top1_chance=recognised[0]["chance"], region_count=recognised[0]["count"])
    return result, grid


@torch.inference_mode()
def mix_section(pipe: Any, data: Any, evaluator: Any, rows: Sequence[int], call_kwargs: dict[str, Any],
                seed: int) -> tuple[dict[str, Any], list[list[Image.Image]]]:
    """Blend pairs of real images over MIX_WEIGHTS; the evaluator cosine of each blend to either input, and the grid
    rows [first input, blends by weight, second input]."""
    pairs = [(rows[2 * i], rows[2 * i + 1]) for i in range(len(rows) // 2)]
    if not pairs:
        return {}, []
    to_a, to_b, grid = [], [], []
    for j, (a, b) in enumerate(pairs):
        inputs = evaluator.embed_images([data.images[a], data.images[b]])
        blends = [pipe.mix([data.images[a], data.images[b]], weights=[1 - w, w], output_type="pil",
                           generator=torch.Generator().manual_seed(seed + j), **call_kwargs).images[0]
                  for w in MIX_WEIGHTS]  # fmt: skip
        grid.append([data.images[a], *blends, data.images[b]])
        embeds = evaluator.embed_images(blends)
        to_a.append((embeds @ inputs[0]).tolist())
        to_b.append((embeds @ inputs[1]).tolist())
    mean_a, mean_b = np.mean(to_a, axis=0).tolist(), np.mean(to_b, axis=0).tolist()
    return {"pairs": len(pairs), "weights_of_b": list(MIX_WEIGHTS), "cos_to_a": mean_a, "cos_to_b": mean_b,
            "monotonic": is_increasing(mean_b) and is_increasing(mean_a[::-1])}, grid  # fmt: skip


__all__ = ["MASK_BORDER", "MIX_WEIGHTS", "PSNR_CAP_DB", "centre_box", "centre_mask", "inpaint_section",
           "is_increasing", "mix_section", "show_mask"]
