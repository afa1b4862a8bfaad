"""Stage 5 (optional): the cascade's second upsampler, p(x_256 | x_128), trained on random crops of the 256-px art.

DALL·E 2's second upsampler (256 → 1024) is trained on inputs corrupted with the BSR degradation rather than the
first one's single Gaussian blur, so it learns to clean up whatever the previous stage left. Here the target is the
256-px image (`image_256`; styles without 256-px art, Noto and Twemoji in the emoji data, are left out of this stage
and the log names them), its conditioning the whole image degraded by `training/degradation.py` to 128 px and
bicubic-upsampled back (`upsample_for_super_res`, the pipeline's own resize), then the same random crop of both.
The UNet has no attention, so crops train it and whole images run it (`UnCLIPPipeline.super_res_second`).
Everything else (loss, validation, checkpoints, EMA, exports) is the first upsampler's (`upsampler.py`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from ..configs import build_super_res
from ..utils.images import upsample_for_super_res
from .config import Upsampler2TrainingConfig, second_stage_scale
from .degradation import degrade
from .pack import is_pack
from .trainer import run_training
from .upsampler import UpsamplerStage, downscale


class Upsampler2Stage(UpsamplerStage):
    """Epsilon-prediction training of the second upsampler on random crops, with BSR-like degraded inputs."""

    config: Upsampler2TrainingConfig
    component = "super_res_second"
    size_key = "super_res_second"

    @property
    def scale(self) -> int:
        """The upsampling factor: the second upsampler's output size over the first one's."""
        return second_stage_scale(self.model_config)

    def build_model(self) -> nn.Module:
        """The randomly initialised second-stage UNet (`super_res_second` of the model preset)."""
        return build_super_res(self.model_config, second=True)

    def train_conditioning(self, x_start: torch.Tensor, generator: torch.Generator, blur: bool = True) -> torch.Tensor:
        """Degrade the full targets (`blur=False`: a clean bicubic downscale), then bicubic back to their size."""
        if not blur:
            return self.clean_conditioning(x_start)
        low = degrade(x_start, generator, self.config.degradation(self.scale))
        return upsample_for_super_res(low, tuple(x_start.shape[-2:]))

    def clean_conditioning(self, x_start: torch.Tensor) -> torch.Tensor:
        """The validation conditioning: the target bicubic-downscaled by the stage's factor and upsampled back."""
        return upsample_for_super_res(downscale(x_start, self.scale), tuple(x_start.shape[-2:]))

    def setup(self, accelerator: Accelerator) -> nn.Module:
        if is_pack(self.config.data_path):
            raise ValueError(f"{self.config.data_path!r} is a pack; `unclip-train pack` does not pack the second "
                             "upsampler's 256-px images yet, so train it from the dataset folder.")
        return super().setup(accelerator)


def train_upsampler2(config: Upsampler2TrainingConfig, resume: bool = False) -> Path:
    """Train the cascade's second upsampler; returns the run folder (weights in `final/super_res_second`)."""
    return run_training(Upsampler2Stage(config), resume=resume)
