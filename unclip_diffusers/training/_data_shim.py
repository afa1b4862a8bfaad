"""Temporary stand-in for `unclip_diffusers.data` until the data package lands on main (then this file goes).

Uses the real package when it is importable; otherwise loads a `save_to_disk` DatasetDict with the same schema.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

try:  # pragma: no cover - exercised once the data package is merged
    from unclip_diffusers.data import load_image_text_dataset, sample_caption  # type: ignore[attr-defined]
except ImportError:
    import datasets

    def load_image_text_dataset(
        path: str | Path, split: str = "train", image_column: str = "image", caption_column: str = "caption"
    ) -> datasets.Dataset:
        """Load one split of a saved DatasetDict, renaming the image and caption columns to `image`/`caption`."""
        if not Path(path).exists():
            raise ValueError(f"Dataset folder {str(path)!r} does not exist.")
        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise ValueError(f"Split {split!r} not in {str(path)!r}; it has {list(data)}.")
            data = data[split]
        for column in (image_column, caption_column):
            if column not in data.column_names:
                raise ValueError(f"Column {column!r} not in {str(path)!r}; it has {data.column_names}.")
        if image_column != "image":
            data = data.rename_column(image_column, "image")
        if caption_column != "caption":
            data = data.rename_column(caption_column, "caption")
        if "captions" not in data.column_names:
            data = data.add_column("captions", [[c] for c in data["caption"]])
        return data

    def sample_caption(example: dict[str, Any], generator: random.Random) -> str:
        """One of the example's captions, picked with `generator`."""
        captions = example.get("captions") or [example["caption"]]
        return captions[generator.randrange(len(captions))]


__all__ = ["load_image_text_dataset", "sample_caption"]
