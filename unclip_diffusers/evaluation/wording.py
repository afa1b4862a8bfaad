"""Text-to-image scored per wording family: the training wording, held-out wordings, the bare name, each language.

People do not type "rocket, Fluent 3D style". For the first scored everyday rows of a split, every prompt of every
wording family (`data.captions.evaluation_prompts`: held-out templates never trained on, the bare name, the name in
each language of the row's `names` column) is drawn, and the evaluator must recognise the concept among the split's
captions of the same style and slice (`slices.concept_top1`, whose ceiling is the real images' score).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from ..data.captions import evaluation_prompts
from .slices import concept_top1, ratio

EVERYDAY = "everyday"


def wording_prompts(
    names: Sequence[str], styles: Sequence[str], localized: Sequence[str], rows: Sequence[int]
) -> dict[str, list[tuple[int, str]]]:
    """Per wording family, the (row, prompt) pairs to draw for `rows` of a split (`localized`: each row's `names`
    JSON, `{locale: name}`, or '' when the data has none)."""
    families: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        local = json.loads(localized[row]) if localized[row] else {}
        for family, prompts in evaluation_prompts(names[row], styles[row], (), local).items():
            families[family] += [(row, prompt) for prompt in prompts]
    return dict(families)


def wording_section(
    data: Any,
    e_real: torch.Tensor,
    e_text: torch.Tensor,
    num_rows: int,
    generate: Callable[[list[str], int], list[Image.Image]],
    embed_images: Callable[[list[Image.Image]], torch.Tensor],
) -> dict[str, Any]:
    """Concept top-1 per wording family on the first `num_rows` scored everyday rows of `data` (a `SplitData`).

    `generate(prompts, seed_offset)` draws one image per prompt; `embed_images` is the evaluator's image encoder.
    Returns `{family: {"count", "prompts", "concept_top1", "ceiling", "ratio_to_ceiling"}}`, where the ceiling is
    the real images' concept top-1 on the same rows.
    """
    rows = [r for r in data.picked if data.slices[r] == EVERYDAY][:num_rows]
    if not rows or not data.names:
        return {}
    ceiling = concept_top1(e_real[rows], rows, data.captions, data.styles, data.slices, e_text)["accuracy"]
    result: dict[str, Any] = {}
    for k, (family, pairs) in enumerate(sorted(wording_prompts(data.names, data.styles, data.localized,
                                                              rows).items())):  # fmt: skip
        prompts = [prompt for _, prompt in pairs]
        embeds = embed_images(generate(prompts, 600 + 1000 * k))
        score = concept_top1(embeds, [row for row, _ in pairs], data.captions, data.styles, data.slices, e_text)
        result[family] = {"count": len({row for row, _ in pairs}), "prompts": len(prompts),
                          "concept_top1": score["accuracy"], "ceiling": ceiling,
                          "ratio_to_ceiling": ratio(score["accuracy"], ceiling)}  # fmt: skip
    return result


__all__ = ["wording_prompts", "wording_section"]
