"""Scores of the edit and mix methods on real held-out images (evaluator CLIP).

- Inpainting: the left half of a real image is repainted with another row's prompt. Reported: PSNR outside the mask
  at the final resolution (the known region is pasted back, so anything short of exact is a bug), and the
  evaluator's cosine between the edited image and the prompt next to a plain text-to-image of the same prompt.
- Mix: two real images blended at weights 0, 0.25, ..., 1; the evaluator's cosine of each blend to each input should
  grow with that input's weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..utils.psnr import psnr

MIX_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def left_half_mask(size: tuple[int, int]) -> Image.Image:
    """A mask (white = repaint) of the left half of an image of `size` (width, height)."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    return mask


def is_increasing(values: Sequence[float]) -> bool:
    """Whether every value is larger than the one before."""
    return all(b > a for a, b in zip(values, values[1:]))


@torch.inference_mode()
def inpaint_section(pipe: Any, data: Any, evaluator: Any, rows: Sequence[int], call_kwargs: dict[str, Any],
                    seed: int) -> dict[str, Any]:
    """Inpaint the left half of each row's real image with the next row's caption; PSNR outside, prompt cosine."""
    if len(rows) < 2:
        return {}
    psnrs, cos_edit, cos_plain = [], [], []
    for j, row in enumerate(rows):
        prompt = data.captions[rows[(j + 1) % len(rows)]]
        source = data.images[row]
        edited = pipe.inpaint(source, left_half_mask(source.size), prompt=prompt, output_type="np",
                              generator=torch.Generator().manual_seed(seed + j), **call_kwargs).images[0]
        plain = pipe([prompt], output_type="pil", generator=[torch.Generator().manual_seed(seed + j)],
                     **call_kwargs).images[0]  # fmt: skip
        height, width = edited.shape[:2]
        known = np.asarray(source.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)) / 255.0
        psnrs.append(psnr(edited[None, :, width // 2 :], known[None, :, width // 2 :]))  # inf when identical
        text = evaluator.embed_texts([prompt])
        images = evaluator.embed_images([Image.fromarray((edited * 255).round().astype(np.uint8)), plain])
        cos_edit.append(float(images[0] @ text[0]))
        cos_plain.append(float(images[1] @ text[0]))
    finite = [p for p in psnrs if math.isfinite(p)]
    return {"count": len(rows), "psnr_outside_min_db": min(psnrs), "psnr_outside_mean_db": float(np.mean(finite))
            if finite else math.inf, "cos_prompt_edited": float(np.mean(cos_edit)),
            "cos_prompt_text_to_image": float(np.mean(cos_plain))}  # fmt: skip


@torch.inference_mode()
def mix_section(pipe: Any, data: Any, evaluator: Any, rows: Sequence[int], call_kwargs: dict[str, Any],
                seed: int) -> dict[str, Any]:
    """Blend pairs of real images over MIX_WEIGHTS; the evaluator cosine of each blend to either input."""
    pairs = [(rows[2 * i], rows[2 * i + 1]) for i in range(len(rows) // 2)]
    if not pairs:
        return {}
    to_a, to_b = [], []
    for j, (a, b) in enumerate(pairs):
        inputs = evaluator.embed_images([data.images[a], data.images[b]])
        blends = [pipe.mix([data.images[a], data.images[b]], weights=[1 - w, w], output_type="pil",
                           generator=torch.Generator().manual_seed(seed + j), **call_kwargs).images[0]
                  for w in MIX_WEIGHTS]  # fmt: skip
        embeds = evaluator.embed_images(blends)
        to_a.append((embeds @ inputs[0]).tolist())
        to_b.append((embeds @ inputs[1]).tolist())
    mean_a, mean_b = np.mean(to_a, axis=0).tolist(), np.mean(to_b, axis=0).tolist()
    return {"pairs": len(pairs), "weights_of_b": list(MIX_WEIGHTS), "cos_to_a": mean_a, "cos_to_b": mean_b,
            "monotonic": is_increasing(mean_b) and is_increasing(mean_a[::-1])}  # fmt: skip


__all__ = ["MIX_WEIGHTS", "inpaint_section", "is_increasing", "left_half_mask", "mix_section"]
