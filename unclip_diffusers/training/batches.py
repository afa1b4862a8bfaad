"""In-memory training data: images decoded once into uint8 tensors, and a seeded, stateless batch stream.

Every random draw of a training step comes from generators seeded by (seed, micro-step, process), so a resumed run
draws exactly what an uninterrupted one would, with no sampler state to checkpoint.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..configs import get_model_config
from ..data import load_image_text_dataset
from .config import TrainingConfig

logger = logging.getLogger(__name__)

TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "heldout_pairs"


def load_split(config: TrainingConfig, split: str, limit: int = 0):
    """One split of the configured dataset (a `datasets.Dataset`), optionally only its first `limit` rows."""
    data = load_image_text_dataset(config.data_path, split, config.image_column, config.caption_column)
    if limit and len(data) > limit:
        data = data.select(range(limit))
    if len(data) == 0:
        raise ValueError(f"Split {split!r} of {config.data_path!r} is empty.")
    return data


def caption_examples(data) -> list[dict]:
    """`{"caption", "captions"}` of every row (what `sample_caption` needs), as plain Python lists."""
    return [{"caption": c, "captions": list(cs)} for c, cs in zip(list(data["caption"]), list(data["captions"]))]


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """CLIP's preprocessing geometry: bicubic resize of the shorter side to `size`, then a centre crop."""
    image = image.convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    left, top = (new_size[0] - size) // 2, (new_size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def images_to_uint8(images: Sequence[Image.Image], size: int, desc: str = "decoding images") -> torch.Tensor:
    """Decode, resize and stack PIL images into one uint8 tensor of shape (N, 3, size, size).

    `images` may be a lazily decoding `datasets` column: each image is resized as it arrives, never all held at once.
    """
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    for i, image in enumerate(tqdm(images, desc=desc, leave=False, mininterval=2.0, disable=len(images) <= 256)):
        array = np.asarray(resize_center_crop(image, size), dtype=np.uint8)  # (size, size, 3)
        out[i] = torch.from_numpy(array.copy()).permute(2, 0, 1)
    return out


def column_images(data, column: str, size: int, desc: str) -> tuple[torch.Tensor, list[int]]:
    """Decode the non-None images of `column` at `size` px; also return the indices of the rows that had one.

    Decodes 256 rows at a time, so only one chunk of full-size images is in memory at once.
    """
    rows, chunks = [], []
    data = data.select_columns([column])
    for start in tqdm(range(0, len(data), 256), desc=desc, leave=False, mininterval=2.0):
        batch = data[start : start + 256][column]
        present = [(start + offset, image) for offset, image in enumerate(batch) if image is not None]
        if present:
            rows.extend(row for row, _ in present)
            chunks.append(images_to_uint8([image for _, image in present], size, desc=desc))
    if not chunks:
        return torch.empty(0, 3, size, size, dtype=torch.uint8), rows
    return torch.cat(chunks), rows


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the diffusion models' image range."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def clip_pixel_values(images: torch.Tensor, image_mean: Sequence[float], image_std: Sequence[float]) -> torch.Tensor:
    """uint8 images -> CLIP pixel values, normalised like the image processor does."""
    mean = torch.tensor(image_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(image_std, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's parameters are on (batches are drawn on the CPU, then moved there)."""
    return next(model.parameters()).device


def step_generators(seed: int, micro_step: int, process_index: int) -> tuple[torch.Generator, random.Random]:
    """The torch and Python generators of one micro-step on one process."""
    key = (seed * 1_000_003 + micro_step) * 1_009 + process_index
    return torch.Generator().manual_seed(key % (2**63)), random.Random(key)


def batch_indices(
    num_examples: int, batch_size: int, micro_step: int, process_index: int, num_processes: int, seed: int
) -> torch.Tensor:
    """Example indices of one process's micro-batch.

    The examples form an endless stream of epochs, each a fresh permutation seeded by (seed, epoch); micro-step `m`
    takes the next `batch_size * num_processes` positions and each process its own contiguous share.
    """
    if num_examples < 1:
        raise ValueError("The training split has no usable examples.")
    global_batch = batch_size * num_processes
    start = micro_step * global_batch + process_index * batch_size
    positions = torch.arange(start, start + batch_size)
    epochs = positions // num_examples
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in epochs.unique().tolist():
        perm = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed * 7_919 + epoch))
        mask = epochs == epoch
        out[mask] = perm[positions[mask] % num_examples]
    return out


def weighted_batch_indices(
    weights: torch.Tensor, batch_size: int, micro_step: int, process_index: int, seed: int
) -> torch.Tensor:
    """Example indices of one process's micro-batch drawn with replacement in proportion to `weights` (N,).

    Seeded by (seed, micro-step, process) like every other draw, so a resumed run draws the same batches.
    """
    if weights.ndim != 1 or len(weights) == 0 or not bool((weights >= 0).all()) or not float(weights.sum()) > 0:
        raise ValueError("Sampling weights must be a non-empty 1-D tensor of non-negative numbers with a positive sum.")
    generator, _ = step_generators(seed + 9_973, micro_step, process_index)  # apart from the loss's own draws
    return torch.multinomial(weights.double(), batch_size, replacement=True, generator=generator)


def grouped_batch_indices(
    groups: Sequence[torch.Tensor],
    batch_size: int,
    per_group: int,
    micro_step: int,
    process_index: int,
    seed: int,
    group_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Example indices of one process's micro-batch made of whole groups (e.g. the styles of one concept).

    Groups are drawn without replacement with probability proportional to `group_weights` (default: their size, so
    examples are about as likely as in the plain stream; the summed family-balance weights of their rows make the
    groups family-balanced) and each gives up to `per_group` of its examples, drawn at random, until the batch is
    full. Seeded by (seed, micro-step, process) like every other draw: a resumed run draws the same batches.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}.")
    sizes = torch.tensor([len(group) for group in groups], dtype=torch.float64)
    weights = sizes if group_weights is None else group_weights.to(torch.float64)
    if weights.shape != sizes.shape or (weights < 0).any():
        raise ValueError(f"group_weights must be {len(groups)} non-negative weights, one per group, got shape "
                         f"{tuple(weights.shape)}.")
    drawable = int(sizes[weights > 0].sum())
    if len(groups) == 0 or drawable < batch_size:
        raise ValueError(f"The groups hold {drawable} drawable examples, fewer than a batch of {batch_size}.")
    generator, _ = step_generators(seed + 7_717, micro_step, process_index)  # apart from the loss's own draws
    count = min(int((weights > 0).sum()), batch_size)
    order = torch.multinomial(weights, count, replacement=False, generator=generator)
    shuffled = [groups[g][torch.randperm(len(groups[g]), generator=generator)] for g in order.tolist()]
    picked, filled, offset = [], 0, 0
    while filled < batch_size:  # a second round only when fewer groups than the batch needs exist
        for rows in shuffled:
            take = rows[offset : offset + min(per_group, batch_size - filled)]
            picked.append(take)
            filled += len(take)
            if filled == batch_size:
                break
        offset += per_group
    return torch.cat(picked)


def model_image_size(config: TrainingConfig, which: str) -> int:
    """The resolution a stage trains at: "clip", "decoder", "super_res" or "super_res_second" (an upsampler's output)."""
    model = get_model_config(config.model_preset)
    if which == "clip":
        return model.clip.image_size
    if which == "decoder":
        return model.decoder.sample_size
    if which == "super_res":
        if model.super_res is None:
            raise ValueError(f"Model preset {config.model_preset!r} has no super-resolution stage.")
        return model.super_res.sample_size
    if which == "super_res_second":
        if model.super_res_second is None:
            raise ValueError(f"Model preset {config.model_preset!r} has no second super-resolution stage.")
        return model.super_res_second.sample_size
    raise ValueError(f"Unknown image size {which!r}.")


def save_image_grid(rows: Sequence[torch.Tensor], path, pad: int = 2) -> None:
    """Save rows of uint8 images (each (N, 3, H, W), all the same size) as one PNG grid on white.

    Not `diffusers.utils.make_image_grid`, which takes PIL images, a full rows x cols block and no spacing: the rows
    here are tensors, may differ in length, and cells are `pad` white pixels apart so neighbouring samples stay
    distinguishable.
    """
    if not rows:
        raise ValueError("save_image_grid needs at least one row.")
    height, width = rows[0].shape[-2:]
    columns = max(row.shape[0] for row in rows)
    grid = torch.full((3, len(rows) * (height + pad) + pad, columns * (width + pad) + pad), 255, dtype=torch.uint8)
    for r, row in enumerate(rows):
        if row.shape[-2:] != (height, width):
            raise ValueError(f"Grid row {r} has images of {tuple(row.shape[-2:])}, expected {(height, width)}.")
        for c, image in enumerate(row):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            grid[:, top : top + height, left : left + width] = image
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
