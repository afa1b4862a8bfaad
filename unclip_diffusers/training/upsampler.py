"""Stage 4: the x4 upsampler, p(x_high | x_low), a UNet without attention trained on random crops.

The conditioning image is the target downscaled x4, corrupted with the paper's Gaussian blur (kernel 3, sigma 0.6)
and bicubic-upsampled back to the target size; the UNet sees `cat([x_t, conditioning])` (6 channels) and predicts
the noise (fixed variance). With no attention it runs at the full output size at inference although it only ever
saw crops. Targets come from the dataset's high-resolution column; rows without one are skipped (counted, and the
styles left out named). `UpsamplerStage` is also the base of the cascade's second upsampler (`upsampler2.py`), which
changes only its size, its component name and its conditioning.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from torch.nn import functional as F

from ..configs import build_sampling_scheduler, build_super_res, build_train_scheduler
from ..pipelines.sampling import denoise
from ..utils.images import upsample_for_super_res
from ..utils.psnr import psnr
from .batches import (
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
    column_images,
    load_split,
    model_device,
    model_image_size,
    save_image_grid,
    to_uint8,
    to_unit_range,
)
from .config import UpsamplerTrainingConfig
from .losses import epsilon_loss
from .pack import check_pack_size, head, is_pack, load_pack
from .trainer import Stage, run_training
from .warm_start import load_component

logger = logging.getLogger(__name__)

UPSCALE = 4


def gaussian_kernel(kernel_size: int, sigma: float) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel of shape (kernel_size, kernel_size)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}.")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}.")
    x = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = torch.outer(g, g)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, kernel_size: int = 3, sigma: float = 0.6) -> torch.Tensor:
    """Blur each channel of (B, C, H, W) images with a Gaussian (reflect padding), via a depthwise conv2d."""
    channels = images.shape[1]
    kernel = gaussian_kernel(kernel_size, sigma).to(images.dtype)
    weight = kernel.expand(channels, 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad else images
    return F.conv2d(padded, weight, groups=channels)


def downscale(images: torch.Tensor, factor: int = UPSCALE) -> torch.Tensor:
    """Antialiased bicubic downscaling of (B, C, H, W) images by `factor`."""
    height, width = images.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"Image size {(height, width)} is not divisible by {factor}.")
    return F.interpolate(images, size=(height // factor, width // factor), mode="bicubic", antialias=True,
                         align_corners=False)


def conditioning_image(
    targets: torch.Tensor, blur_kernel_size: int = 3, blur_sigma: float = 0.6, blur: bool = True
) -> torch.Tensor:
    """The training conditioning of targets in [-1, 1]: downscale x4, blur, bicubic back up to the target size.

    The last resize is `upsample_for_super_res`, exactly what the pipeline applies to the base image.
    """
    low = downscale(targets)
    if blur:
        low = gaussian_blur(low, blur_kernel_size, blur_sigma)
    return upsample_for_super_res(low, tuple(targets.shape[-2:]))  # the pipeline's own resize


def random_crops(tensors: list[torch.Tensor], crop_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The same random `crop_size` crop of each image in every tensor of `tensors` (all (B, C, H, W))."""
    batch, _, height, width = tensors[0].shape
    tops = torch.randint(0, height - crop_size + 1, (batch,), generator=generator).tolist()
    lefts = torch.randint(0, width - crop_size + 1, (batch,), generator=generator).tolist()
    return [
        torch.stack([t[i, :, y : y + crop_size, x : x + crop_size] for i, (y, x) in enumerate(zip(tops, lefts))])
        for t in tensors
    ]


@torch.no_grad()
def sample_super_res(
    model: nn.Module, conditioning: torch.Tensor, num_inference_steps: int = 10, generator: torch.Generator | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Upsample with the pipeline's loop: denoise at the conditioning's size with DPMSolver; images in [-1, 1].

    `strength < 1` starts from the conditioning noised to where the last `strength` of the steps begin, as the
    pipeline's `super_res_strength` does.
    """
    device = model_device(model)

    def predict(model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([model_input, conditioning], dim=1).to(device)
        return model(inputs, t.to(device), return_dict=False)[0].float().cpu()  # the sampler runs on the CPU

    noise = torch.randn(conditioning.shape, generator=generator)
    latents = denoise(predict, build_sampling_scheduler("epsilon"), latents=noise,
                      num_inference_steps=num_inference_steps, generator=generator,
                      strength=strength, start=conditioning)
    return latents.clamp(-1.0, 1.0)


def left_out_styles(data, rows: list[int]) -> list[str]:
    """Styles of `data` (its `style` column, when it has one) none of whose rows are among `rows`."""
    if "style" not in data.column_names:
        return []
    styles = list(data["style"])
    kept = {styles[r] for r in rows}
    return sorted(set(styles) - kept)


class UpsamplerStage(Stage):
    """Epsilon-prediction training of the x4 upsampler on random crops of high-resolution images."""

    config: UpsamplerTrainingConfig
    component = "super_res_first"  # the pipeline component it trains (its folder in final/ and snapshots)
    size_key = "super_res"  # `model_image_size` key of its output resolution

    def build_model(self) -> nn.Module:
        """The randomly initialised UNet this stage trains."""
        return build_super_res(self.model_config)

    def train_conditioning(self, x_start: torch.Tensor, generator: torch.Generator, blur: bool = True) -> torch.Tensor:
        """The conditioning of full-size targets in [-1, 1] during training (the paper's blur augmentation)."""
        return conditioning_image(x_start, self.config.blur_kernel_size, self.config.blur_sigma, blur=blur)

    def clean_conditioning(self, x_start: torch.Tensor) -> torch.Tensor:
        """The validation conditioning: the target downscaled and bicubic-upsampled, without augmentation."""
        return conditioning_image(x_start, blur=False)

    def setup(self, accelerator: Accelerator) -> nn.Module:
        size = model_image_size(self.config, self.size_key)
        crop = self.config.crop_size or size
        if crop > size:
            raise ValueError(f"crop_size {crop} is larger than the {self.config.stage} stage's output size {size}; "
                             f"pick crop_size <= {size} (0 = whole images).")
        self.noise_scheduler = build_train_scheduler("epsilon")
        self.left_out_styles: list[str] = []
        if is_pack(self.config.data_path):
            pack = load_pack(self.config.data_path, "upsampler")
            check_pack_size(pack, self.config, size)
            train = head(pack.splits[TRAIN_SPLIT], self.config.max_train_examples)
            self.targets, self.skipped = train.images, 0
            self.balance_families(train.table)
            heldout = pack.splits.get(VALIDATION_SPLIT)
            self.validation = None
            if self.config.num_validation_examples and heldout is not None:
                self.validation = heldout.images[: self.config.num_validation_examples]
            return self.build_model()
        column = self.config.high_res_column
        train = load_split(self.config, TRAIN_SPLIT, self.config.max_train_examples)
        if column not in train.column_names:
            raise ValueError(f"Column {column!r} not in {self.config.data_path!r}; it has {train.column_names}.")
        self.targets, rows = column_images(train, column, size, desc="decoding high-res train images")
        skipped = len(train) - len(rows)
        self.left_out_styles = left_out_styles(train, rows)
        logger.info("%s: %d training images with %s, %d rows without it skipped%s.", self.config.stage, len(rows),
                    column, skipped, f"; styles left out of this stage: {', '.join(self.left_out_styles)}"
                    if self.left_out_styles else "")
        if not rows:
            raise ValueError(f"No training row of {self.config.data_path!r} has a {column!r} image.")
        self.skipped = skipped
        self.balance_families(train, rows)
        self.validation = None
        if self.config.num_validation_examples:
            heldout = load_split(self.config, VALIDATION_SPLIT)
            targets, rows = column_images(heldout, column, size, desc="decoding high-res held-out images")
            if rows:
                self.validation = targets[: self.config.num_validation_examples]
        return self.build_model()

    @property
    def num_train_examples(self) -> int:
        return len(self.targets)

    def diffusion_loss(
        self, model: nn.Module, targets: torch.Tensor, generator: torch.Generator, blur: bool = True
    ) -> torch.Tensor:
        """(Min-SNR-weighted) MSE between the true and the predicted noise on random crops of uint8 `targets`."""
        x_start = to_unit_range(targets)
        cond = self.train_conditioning(x_start, generator, blur=blur)
        crop = self.config.crop_size
        if crop and crop < x_start.shape[-1]:
            x_start, cond = random_crops([x_start, cond], crop, generator)
        noise = torch.randn(x_start.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(x_start),), generator=generator)
        x_t = self.noise_scheduler.add_noise(x_start, noise, timesteps)
        device = model_device(model)  # drawn on the CPU (the same draws on any device), then moved
        pred = model(torch.cat([x_t, cond], dim=1).to(device), timesteps.to(device), return_dict=False)[0]
        return epsilon_loss(pred, noise.to(device), timesteps, self.noise_scheduler, self.config.snr_gamma)

    def loss(self, model: nn.Module, indices: torch.Tensor, generator: torch.Generator, rng: random.Random) -> torch.Tensor:
        return self.diffusion_loss(model, self.targets[indices], generator)

    def validate(self, model: nn.Module, step: int, output_dir: Path) -> dict[str, float]:
        """Loss (fixed noise) and full-size upsampling of held-out images: PSNR vs bicubic, and a grid.

        Grid rows: the bicubic-upsampled low-res input (unblurred, as at inference), the upsampler's output from pure
        noise, its output from the noised input at `validation_strength` (when < 1), the target.
        """
        count = self.config.num_validation_examples or 64
        metrics = {"train_loss": self.diffusion_loss(
            model, self.targets[:count], torch.Generator().manual_seed(self.config.seed)).item()}
        targets = self.validation if self.validation is not None else self.targets[:count]
        name = "heldout" if self.validation is not None else "train"
        generator = torch.Generator().manual_seed(self.config.seed)
        if self.validation is not None:
            metrics["heldout_loss"] = self.diffusion_loss(model, targets, generator).item()
        shown = to_unit_range(targets[: self.config.num_validation_images])
        cond = self.clean_conditioning(shown)
        samples = sample_super_res(model, cond, num_inference_steps=self.config.validation_inference_steps,
                                   generator=generator)
        metrics[f"{name}_psnr"] = psnr(samples, shown, data_range=2.0)
        rows = [to_uint8(cond), to_uint8(samples)]
        strength = self.config.validation_strength
        if strength < 1.0:
            truncated = sample_super_res(model, cond, num_inference_steps=self.config.validation_inference_steps,
                                         generator=torch.Generator().manual_seed(self.config.seed), strength=strength)
            metrics[f"{name}_psnr_strength{strength:g}"] = psnr(truncated, shown, data_range=2.0)
            rows.append(to_uint8(truncated))
        metrics[f"{name}_bicubic_psnr"] = psnr(cond.clamp(-1, 1), shown, data_range=2.0)
        grid_dir = output_dir / "samples"
        grid_dir.mkdir(exist_ok=True)
        save_image_grid([*rows, to_uint8(shown)], grid_dir / f"{self.config.stage}-step-{step:07d}.png")
        return metrics

    def load_weights(self, model: nn.Module, folder: Path) -> None:
        """`<component>/` (`super_res_first/` here)."""
        load_component(model, folder / self.component)

    def save_final(self, model: nn.Module, directory: Path) -> None:
        """`<component>/` (`super_res_first/` here)."""
        model.save_pretrained(directory / self.component, safe_serialization=True)


def train_upsampler(config: UpsamplerTrainingConfig, resume: bool = False) -> Path:
    """Train the x4 upsampler; returns the run folder (weights in `final/super_res_first`)."""
    return run_training(UpsamplerStage(config), resume=resume)
