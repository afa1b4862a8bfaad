"""Training data plumbing, and the synthetic dataset the other training tests share.

`synthetic_dataset_path()` writes a tiny DatasetDict with the project's dataset schema (coloured shapes in two
styles; 256-px art only for the "flat" style) so the training tests do not depend on the built emoji data.
"""

from __future__ import annotations

import atexit
import functools
import random
import shutil
import tempfile
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image, ImageDraw

from unclip_diffusers.configs import build_image_processor, get_model_config
from unclip_diffusers.training.batches import (
    batch_indices,
    clip_pixel_values,
    images_to_uint8,
    resize_center_crop,
    save_image_grid,
    step_generators,
)

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30),
           "purple": (140, 50, 170)}
SHAPES = ("circle", "square", "triangle")
STYLES = ("flat", "outline")
HELDOUT_PAIRS = {("red", "circle", "outline"), ("blue", "square", "flat"), ("green", "triangle", "outline"),
                 ("yellow", "circle", "flat")}
HELDOUT_CONCEPT = ("purple", "triangle")


def draw_shape(colour: str, shape: str, style: str, size: int) -> Image.Image:
    """A coloured shape on white; "outline" draws only its border."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (size * 0.2, size * 0.2, size * 0.8, size * 0.8)
    fill, outline, width = (COLOURS[colour], None, 0) if style == "flat" else (None, COLOURS[colour], max(1, size // 12))
    if shape == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape == "square":
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    else:
        points = [(size * 0.5, size * 0.15), (size * 0.85, size * 0.8), (size * 0.15, size * 0.8)]
        draw.polygon(points, fill=fill, outline=outline, width=width)
    return image


def _row(colour: str, shape: str, style: str) -> dict:
    big = draw_shape(colour, shape, style, 256)
    return {
        "image": big.resize((64, 64), Image.Resampling.LANCZOS),
        "image_256": big if style == "flat" else None,
        "caption": f"{colour} {shape}, {style} style",
        "captions": [f"{colour} {shape}, {style} style", f"{shape}, {colour}, in the {style} style"],
        "concept": f"{colour}-{shape}",
        "name": f"{colour} {shape}",
        "style": style,
        "source": "synthetic",
        "license": "CC0-1.0",
    }


@functools.lru_cache(maxsize=1)
def synthetic_dataset_path() -> str:
    """Write (once per session) and return the synthetic DatasetDict: 24 train, 4 held-out pairs, 2 held-out concept."""
    splits: dict[str, list[dict]] = {"train": [], "heldout_pairs": [], "heldout_concepts": []}
    for colour in COLOURS:
        for shape in SHAPES:
            for style in STYLES:
                if (colour, shape) == HELDOUT_CONCEPT:
                    split = "heldout_concepts"
                elif (colour, shape, style) in HELDOUT_PAIRS:
                    split = "heldout_pairs"
                else:
                    split = "train"
                splits[split].append(_row(colour, shape, style))
    features = datasets.Features({
        "image": datasets.Image(), "image_256": datasets.Image(), "caption": datasets.Value("string"),
        "captions": datasets.Sequence(datasets.Value("string")), "concept": datasets.Value("string"),
        "name": datasets.Value("string"), "style": datasets.Value("string"), "source": datasets.Value("string"),
        "license": datasets.Value("string"),
    })
    data = datasets.DatasetDict({
        name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items()
    })
    root = tempfile.mkdtemp(prefix="unclip-synthetic-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    path = Path(root) / "shapes"
    data.save_to_disk(str(path))
    return str(path)


def test_synthetic_dataset_has_the_project_schema():
    data = datasets.load_from_disk(synthetic_dataset_path())
    assert set(data) == {"train", "heldout_pairs", "heldout_concepts"}
    assert len(data["train"]) == 24 and len(data["heldout_pairs"]) == 4
    row = data["train"][0]
    assert row["image"].size == (64, 64) and row["caption"] in row["captions"]
    assert sum(r is None for r in data["train"]["image_256"]) == 12  # outline rows have no 256-px art


def test_batch_indices_cover_each_epoch_once_and_split_processes():
    n, bs = 10, 4
    stream = torch.cat([batch_indices(n, bs, m, 0, 1, seed=3) for m in range(5)])  # 20 positions = 2 epochs
    assert sorted(stream[:n].tolist()) == list(range(n)) and sorted(stream[n:].tolist()) == list(range(n))
    assert not torch.equal(stream[:n], stream[n:])  # a fresh permutation per epoch
    two = [batch_indices(n, 2, m, p, 2, seed=3) for m in range(5) for p in range(2)]
    assert torch.equal(torch.cat(two), stream)  # two processes of batch 2 see exactly one process of batch 4
    assert torch.equal(batch_indices(n, bs, 7, 0, 1, seed=3), batch_indices(n, bs, 7, 0, 1, seed=3))
    with pytest.raises(ValueError, match="no usable examples"):
        batch_indices(0, bs, 0, 0, 1, seed=0)


def test_step_generators_are_deterministic_and_distinct():
    a, ra = step_generators(0, 5, 0)
    b, rb = step_generators(0, 5, 0)
    c, _ = step_generators(0, 5, 1)
    x = torch.randn(3, generator=a)
    assert torch.equal(x, torch.randn(3, generator=b)) and ra.random() == rb.random()
    assert not torch.equal(x, torch.randn(3, generator=c))


def test_clip_preprocessing_matches_the_image_processor():
    size = get_model_config("tiny").clip
    processor = build_image_processor(size)
    images = [draw_shape("red", "triangle", "flat", 64), draw_shape("blue", "circle", "outline", 64).resize((80, 64))]
    ours = clip_pixel_values(images_to_uint8(images, size.image_size), processor.image_mean, processor.image_std)
    reference = processor(images=images, return_tensors="pt").pixel_values
    assert ours.shape == reference.shape == (2, 3, size.image_size, size.image_size)
    torch.testing.assert_close(ours, reference, atol=0.05, rtol=0)  # uint8 rounding of the resized image


def test_resize_center_crop_and_grid(tmp_path):
    image = resize_center_crop(Image.new("RGB", (100, 50), "red"), 32)
    assert image.size == (32, 32)
    rows = [torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)]
    save_image_grid(rows, tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (3 * 10 + 2, 2 * 10 + 2)
    with pytest.raises(ValueError, match="expected"):
        save_image_grid([rows[0], torch.zeros(1, 3, 4, 4, dtype=torch.uint8)], tmp_path / "bad.png")


def test_sample_caption_draws_every_alternative():
    from unclip_diffusers.training._data_shim import sample_caption

    example = {"caption": "a", "captions": ["a", "b", "c"]}
    rng = random.Random(0)
    assert {sample_caption(example, rng) for _ in range(50)} == {"a", "b", "c"}
