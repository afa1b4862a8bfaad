"""The sample grid of a pipeline card: the pushed weights, a few prompts, fixed seeds (so anyone can regenerate it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import PIL.Image
import torch
from diffusers.utils import make_image_grid
from tqdm.auto import tqdm

DEFAULT_PROMPTS = ("a cat", "a slice of pizza", "a rocket", "a red heart", "a dog", "a guitar")  # plain words
DEFAULT_SEEDS = (0, 1, 2)
MIN_CELL = 128  # small images are enlarged (nearest neighbour) so the grid is legible on the Hub


@dataclass
class SampleGrid:
    """A grid image and what it shows."""

    image: PIL.Image.Image
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int | None  # denoising steps of every stage; None = the pipeline's defaults

    @property
    def caption(self) -> str:
        """One line describing the grid: rows, columns, steps."""
        steps = "the pipeline's default steps" if self.steps is None else f"{self.steps} steps per stage"
        return (f"Rows: {', '.join(repr(p) for p in self.prompts)}; columns: seeds {', '.join(map(str, self.seeds))} "
                f"(`torch.Generator().manual_seed(seed)`), {steps}. Not cherry-picked.")


def sample_grid(
    folder: str | os.PathLike,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    steps: int | None = None,
) -> SampleGrid:
    """Generate one image per (prompt, seed) with the installed `UnCLIPPipeline` (no remote code) and tile them."""
    from ..pipelines import UnCLIPPipeline

    if not prompts or not seeds:
        raise ValueError("sample_grid needs at least one prompt and one seed.")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    pipe = UnCLIPPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    kwargs = {} if steps is None else dict(prior_num_inference_steps=steps, decoder_num_inference_steps=steps,
                                           super_res_num_inference_steps=steps)
    rows = []
    with tqdm(total=len(prompts) * len(seeds), desc="sample grid") as progress:
        for prompt in prompts:
            row = []
            for seed in seeds:
                image = pipe(prompt, generator=torch.Generator().manual_seed(seed), **kwargs).images[0]
                row.append(image)
                progress.update(1)
            rows.append(row)
    size = max(MIN_CELL, rows[0][0].width)  # pixels enlarged as squares (nearest), not blurred
    cells = [image.convert("RGB").resize((size, size), PIL.Image.Resampling.NEAREST) for row in rows for image in row]
    grid = make_image_grid(cells, rows=len(prompts), cols=len(seeds))
    return SampleGrid(grid, tuple(prompts), tuple(seeds), steps)
