"""The held-out rows an evaluation scores, and the text-only caption pool the accuracies choose among."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..data import load_image_text_dataset
from .calls import _seeded
from .settings import HELDOUT_SPLITS, EvalSettings
from .slices import UNSLICED


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
