"""Temporary stand-in for `unclip_diffusers.data` until the data package lands on main (then this file goes).

Uses the real loader when it is importable; otherwise loads one split of a `save_to_disk` DatasetDict.
"""

from __future__ import annotations

from pathlib import Path

try:  # pragma: no cover - exercised once the data package is merged
    from unclip_diffusers.data import load_image_text_dataset  # type: ignore[attr-defined]
except ImportError:
    import datasets

    def load_image_text_dataset(path: str | Path, split: str = "train") -> datasets.Dataset:
        """One split of a saved DatasetDict with at least `image` and `caption` columns."""
        if not Path(path).exists():
            raise ValueError(f"Dataset folder {str(path)!r} does not exist.")
        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise ValueError(f"Split {split!r} not in {str(path)!r}; it has {list(data)}.")
            data = data[split]
        for column in ("image", "caption"):
            if column not in data.column_names:
                raise ValueError(f"Column {column!r} not in {str(path)!r}; it has {data.column_names}.")
        return data


__all__ = ["load_image_text_dataset"]
