"""Load image-caption data for training: our built emoji set, any `save_to_disk` dataset, or an imagefolder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used, so training from a pack needs no `datasets`
    import datasets

logger = logging.getLogger(__name__)

# The committed tiny fixture (same format as the full build), for tests and CI.
FIXTURE_PATH = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "emoji_tiny"


def _load_any(path: Path) -> datasets.DatasetDict | datasets.Dataset:
    import datasets

    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return datasets.load_from_disk(str(path))
    if any(path.glob("metadata.jsonl")) or any(path.glob("*/metadata.jsonl")):
        return datasets.load_dataset("imagefolder", data_dir=str(path))
    raise ValueError(
        f"{path} is neither a `save_to_disk` dataset (dataset_dict.json or state.json) nor an imagefolder with a "
        "metadata.jsonl; build the emoji set with `unclip-data build` or point to such a folder"
    )


def load_image_text_dataset(
    path: str | Path,
    split: str = "train",
    image_column: str = "image",
    caption_column: str = "caption",
) -> datasets.Dataset:
    """Load one split of an image-caption dataset as a `datasets.Dataset` with `image`, `caption` and `captions`.

    Args:
        path: a folder written by `DatasetDict.save_to_disk` / `Dataset.save_to_disk` (e.g. `unclip-data build`'s
            output), or an imagefolder with `metadata.jsonl` (`file_name` plus a caption field).
        split: which split to return; a single saved `Dataset` counts as split 'train'.
        image_column: column holding the images; it is renamed to `image` (an existing `image` column is dropped),
            and rows without an image are left out (e.g. `image_256` where a source has no 256-px art).
        caption_column: column holding the caption; renamed to `caption` (and `captions` becomes `[caption]`). If it
            holds lists of captions, they become `captions` and the first one `caption`.

    Returns:
        The split, with `captions` (a list, one element when the source has a single caption) and all other
        columns of the source (`concept`, `style`, ... for the emoji set).
    """
    import datasets

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"dataset folder {str(path)!r} does not exist; build it with `unclip-data build`")
    loaded = _load_any(path)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"split {split!r} not in {path}; available splits: {sorted(loaded)}")
        dataset = loaded[split]
    else:
        if split != "train":
            raise ValueError(f"{path} holds a single dataset (split 'train' only), got split={split!r}")
        dataset = loaded

    columns = dataset.column_names
    for label, column in (("image_column", image_column), ("caption_column", caption_column)):
        if column not in columns:
            raise ValueError(f"{label}={column!r} is not a column of {path} [{split}]; columns: {columns}")

    nulls = dataset.data.column(image_column).null_count
    if nulls:
        keep = [i for i, valid in enumerate(dataset.data.column(image_column).is_valid().to_pylist()) if valid]
        logger.info("%s [%s]: leaving out %d rows without %r", path, split, nulls, image_column)
        dataset = dataset.select(keep)
    if image_column != "image":
        if "image" in columns:
            dataset = dataset.remove_columns("image")
        dataset = dataset.rename_column(image_column, "image")
    if not isinstance(dataset.features["image"], datasets.Image):
        dataset = dataset.cast_column("image", datasets.Image())

    caption_feature = dataset.features[caption_column]
    if isinstance(caption_feature, (datasets.List, datasets.Sequence, list)):
        # A column of caption lists: it becomes `captions`, its first entry `caption`.
        if caption_column != "captions":
            if "captions" in dataset.column_names:
                dataset = dataset.remove_columns("captions")
            dataset = dataset.rename_column(caption_column, "captions")
        if "caption" in dataset.column_names:
            dataset = dataset.remove_columns("caption")
        dataset = dataset.add_column("caption", [c[0] if c else "" for c in dataset["captions"]])
    else:
        if caption_column != "caption":
            # another caption column replaces both `caption` and the alternatives that went with it
            stale = [c for c in ("caption", "captions") if c in dataset.column_names]
            dataset = dataset.remove_columns(stale).rename_column(caption_column, "caption")
        if "captions" not in dataset.column_names:
            # add_column keeps the image table memory-mapped (no cache files written next to the data)
            dataset = dataset.add_column("captions", [[c] for c in dataset["caption"]])
    return dataset
