"""Training data plumbing: batch streams, per-step generators, CLIP preprocessing, image grids, the fixture."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from unclip_diffusers.configs import build_image_processor, get_model_config
from unclip_diffusers.data import FIXTURE_PATH
from unclip_diffusers.training.batches import (
    batch_indices,
    caption_examples,
    clip_pixel_values,
    column_images,
    grouped_batch_indices,
    images_to_uint8,
    load_split,
    resize_center_crop,
    save_image_grid,
    step_generators,
)
from unclip_diffusers.training.config import get_training_config


def dataset_path() -> str:
    """The dataset every training test trains on: the project's committed tiny emoji fixture."""
    return str(FIXTURE_PATH)


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


def test_grouped_batches_hold_whole_groups_and_are_seeded():
    groups = [torch.arange(10 * g, 10 * g + n) for g, n in enumerate([8, 1, 5, 3, 8, 2, 6, 7, 4, 8])]
    batch = grouped_batch_indices(groups, 12, 4, micro_step=3, process_index=0, seed=1)
    assert len(batch) == 12 and len(set(batch.tolist())) == 12
    counts = torch.bincount(batch // 10, minlength=10)
    assert counts.max() <= 4  # at most per_group examples of one group
    assert (counts == torch.tensor([min(4, len(g)) for g in groups])).sum() >= 2  # groups arrive whole (up to 4)
    assert torch.equal(batch, grouped_batch_indices(groups, 12, 4, micro_step=3, process_index=0, seed=1))
    assert not torch.equal(batch, grouped_batch_indices(groups, 12, 4, micro_step=4, process_index=0, seed=1))
    assert not torch.equal(batch, grouped_batch_indices(groups, 12, 4, micro_step=3, process_index=1, seed=1))
    # fewer groups than the batch needs at `per_group` each: a second round takes more of each group, no repeats
    few = grouped_batch_indices(groups[:3], 12, 2, micro_step=0, process_index=0, seed=0)
    assert sorted(few.tolist()) == sorted(set(few.tolist())) and len(few) == 12
    with pytest.raises(ValueError, match="drawable examples, fewer than a batch"):
        grouped_batch_indices(groups[:2], 12, 4, micro_step=0, process_index=0, seed=0)
    with pytest.raises(ValueError, match="per_group"):
        grouped_batch_indices(groups, 12, 0, micro_step=0, process_index=0, seed=0)
    # weighted groups: a group of weight 0 is never drawn, the rest fill the batch
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    for step in range(20):
        drawn = grouped_batch_indices(groups, 12, 4, micro_step=step, process_index=0, seed=0, group_weights=weights)
        assert len(drawn) == 12 and not ((drawn >= 30) & (drawn < 40)).any()
    with pytest.raises(ValueError, match="group_weights"):
        grouped_batch_indices(groups, 12, 4, micro_step=0, process_index=0, seed=0, group_weights=torch.ones(3))


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
    images = list(load_split(get_training_config("clip", "tiny", data_path=dataset_path()), "train")["image"])[:2]
    wide = Image.new("RGB", (80, 64), "white")
    ImageDraw.Draw(wide).ellipse((10, 10, 70, 54), fill=(200, 30, 30))
    images.append(wide)
    ours = clip_pixel_values(images_to_uint8(images, size.image_size), processor.image_mean, processor.image_std)
    reference = processor(images=images, return_tensors="pt").pixel_values
    assert ours.shape == reference.shape == (3, 3, size.image_size, size.image_size)
    torch.testing.assert_close(ours, reference, atol=0.05, rtol=0)  # uint8 rounding of the resized image


def test_resize_center_crop_and_grid(tmp_path):
    image = resize_center_crop(Image.new("RGB", (100, 50), "red"), 32)
    assert image.size == (32, 32)
    rows = [torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)]
    save_image_grid(rows, tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (3 * 10 + 2, 2 * 10 + 2)
    with pytest.raises(ValueError, match="expected"):
        save_image_grid([rows[0], torch.zeros(1, 3, 4, 4, dtype=torch.uint8)], tmp_path / "bad.png")


def test_training_reads_the_committed_fixture():
    """The fixture loads through the training data path (images decoded, captions listed, 256-px rows found)."""
    config = get_training_config("upsampler", "tiny", data_path=dataset_path())
    train = load_split(config, "train")
    examples = caption_examples(train)
    assert len(examples) == len(train) > 0 and all(e["caption"] in e["captions"] for e in examples)
    images, rows = column_images(train, "image_256", 64, "fixture")
    assert images.shape == (len(rows), 3, 64, 64) and 0 < len(rows) < len(train)
    assert [train[i]["image_256"] is not None for i in range(len(train))].count(True) == len(rows)
    assert len(load_split(config, "train", limit=5)) == 5
