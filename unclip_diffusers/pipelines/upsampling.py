"""The upsampler cascade of `UnCLIPPipeline`: none, one (`super_res_first`) or two (`super_res_second`) diffusion
upsamplers run in sequence, each through the one sampling loop `denoise`.

DALL·E 2 cascades two upsamplers (64 → 256 → 1024); here the first raises the decoder's base image x4 and the
second, optional one doubles that. diffusers' names are kept for the first stage: `super_res_first`/`super_res_last`
are one upsampling's models for its first steps and its last step (Karlo), not two stages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from diffusers import UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..utils.images import postprocess_images, to_tensor_images, upsample_for_super_res
from .sampling import check_generator, check_latents, denoise, draw_noise, working_copy
from .validation import check_output_type, check_positive_int, check_strength, pair

if TYPE_CHECKING:
    from .pipeline_unclip import UnCLIPPipeline

Callback = Callable[..., dict[str, Any]]
Generator = torch.Generator | list[torch.Generator] | None
# Applied to every stage's output, e.g. inpainting pasting the known region back at that stage's size.
StageHook = Callable[[torch.Tensor], torch.Tensor]

STAGE_NAMES = ("super_res", "super_res_second")  # callback stage names, and the prefix of each stage's arguments


@dataclass(frozen=True)
class UpsamplerStage:
    """One stage of the cascade as the pipeline samples it."""

    name: str  # "super_res" (the first stage) or "super_res_second"
    unet: UNet2DModel
    scheduler: SchedulerMixin
    strength: float  # the saved default of this stage's `strength`
    size: tuple[int, int]  # (H, W) of its output
    last: UNet2DModel | None = None  # Karlo's `super_res_last`: this stage's final model call only


def per_stage(value: Any, count: int, name: str) -> list[Any]:
    """One value per stage: a list/tuple must have `count` entries; anything else applies to every stage."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} has {len(value)} entries, but this call runs {count} upsampler stage(s); pass "
                             "one value for every stage, or one per stage.")
        return list(value)
    return [value] * count


class UnCLIPUpsamplingMixin:
    """`UnCLIPPipeline.super_resolve` and the cascade every method's upscaling goes through (`_upscale`)."""

    @property
    def upsampler_stages(self: UnCLIPPipeline) -> list[UpsamplerStage]:
        """The cascade in order: empty without upsamplers, then `super_res_first`, then `super_res_second`."""
        stages = []
        if self.super_res_first is not None:
            stages.append(UpsamplerStage("super_res", self.super_res_first, self.super_res_scheduler,
                                         self.config.super_res_strength, pair(self.super_res_first.config.sample_size),
                                         last=self.super_res_last))
        if self.super_res_first is not None and self.super_res_second is not None:
            stages.append(UpsamplerStage("super_res_second", self.super_res_second, self.super_res_second_scheduler,
                                         self.config.super_res_second_strength,
                                         pair(self.super_res_second.config.sample_size)))
        return stages

    def enable_super_res_slicing(self: UnCLIPPipeline, max_pixels: int = 256 * 256) -> None:
        """Run the upsamplers' UNets on slices of the batch of at most `max_pixels` output pixels (at least one image)
        per forward, like diffusers' `enable_vae_slicing`: the same images (each image's forward is independent) with
        the largest activations held for fewer images, which lowers a server's peak memory; the default slices the
        256-px stage to one image and leaves the 128-px stage's batches of up to 4 whole, where slicing cost time
        (`benchmarks/RESULTS.md`). Noise and scheduler steps stay batched."""
        check_positive_int(max_pixels, "max_pixels")
        self._super_res_slice_pixels = max_pixels

    def disable_super_res_slicing(self: UnCLIPPipeline) -> None:
        """Run the upsamplers' UNets on the whole batch again (the default)."""
        self._super_res_slice_pixels = None

    @property
    def output_size(self: UnCLIPPipeline) -> tuple[int, int]:
        """(H, W) of the pipeline's final images: the last upsampler's output, or the base size without one."""
        stages = self.upsampler_stages
        return stages[-1].size if stages else self.base_size

    @torch.inference_mode()
    def super_resolve(
        self: UnCLIPPipeline,
        images: Any,
        num_inference_steps: int | Sequence[int] = 10,
        generator: Generator = None,
        latents: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
        output_type: str = "pil",
        scheduler: SchedulerMixin | Sequence[SchedulerMixin | None] | None = None,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        strength: float | Sequence[float | None] | None = None,
        stage: int | None = None,
    ) -> Any:
        r"""
        Upsample images with the super-resolution diffusion model(s) (no guidance): every stage in sequence, or one.

        Args:
            images (PIL image(s), `np.ndarray` `(N, h, w, 3)` or `torch.Tensor` `(N, 3, h, w)` in [0, 1]): low
                resolution images, e.g. `decode(..., upscale=False)`'s output (any size: each stage bicubic-resizes
                its input to its output size before denoising).
            num_inference_steps (`int` or `Sequence[int]`, *optional*, defaults to 10): denoising steps of every
                stage run, or one entry per stage.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*, defaults to `None`): one generator,
                or one per image.
            latents (`torch.Tensor` of shape `(N, 3, H, W)` or a sequence of them, *optional*, defaults to `None`):
                starting noise; with more than one stage run, one entry (or `None`) per stage.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"` (the last
                stage's latents, unconverted: `(N, 3, H, W)` in [-1, 1]).
            scheduler (`SchedulerMixin` or a sequence, *optional*, defaults to `None`): replaces the stages'
                schedulers for this call (one for every stage, or one entry or `None` per stage).
            callback_on_step_end (`Callable`, *optional*, defaults to `None`): see `sample_prior`; the stage is
                `"super_res"` (the first upsampler) or `"super_res_second"`.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, *optional*, defaults to `("latents",)`): tensors to
                pass to the callback.
            strength (`float` or a sequence, *optional*, defaults to `None`): replaces the saved
                `super_res_strength` / `super_res_second_strength` for this call (1 = start from pure noise; below
                1, from the noised bicubic upsample, running `round(num_inference_steps * strength)` steps); one
                value for every stage, or one entry (`None` = the saved one) per stage.
            stage (`int`, *optional*, defaults to `None`): run only this stage (0 = `super_res_first`, 1 =
                `super_res_second`); `None` runs the whole cascade.

        Returns:
            The upsampled images `(N, 3, H, W)` in `output_type`.
        """
        low_res, stages, settings = self._super_resolve_settings(images, num_inference_steps, latents, scheduler,
                                                                 strength, stage, output_type)
        upsampled = self._upscale(
            low_res, stages=stages, generator=generator, callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, **settings,
        )
        return postprocess_images(upsampled, output_type)

    @torch.inference_mode()
    def super_resolve_stages(
        self: UnCLIPPipeline,
        images: Any,
        num_inference_steps: int | Sequence[int] = 10,
        generator: Generator = None,
        output_type: str = "pil",
        strength: float | Sequence[float | None] | None = None,
        callback_on_step_end: Callback | None = None,
    ) -> Iterator[Any]:
        r"""
        Upsample like `super_resolve` through the whole cascade, yielding each stage's images as soon as it finishes.

        The last images yielded equal `super_resolve`'s with the same arguments and generator: each stage hands its
        unconverted output to the next. Arguments as in `super_resolve`; a progress display (the app) shows the
        first upsampler's images while the second one runs.

        Yields:
            The images after each stage `(N, 3, H, W)` in `output_type`, in cascade order.
        """
        low_res, stages, settings = self._super_resolve_settings(images, num_inference_steps, None, None, strength,
                                                                 None, output_type)
        for upsampled in self._upscale_stages(low_res, stages=stages, generator=generator,
                                              callback_on_step_end=callback_on_step_end, **settings):
            yield postprocess_images(upsampled, output_type)

    def _super_resolve_settings(
        self: UnCLIPPipeline,
        images: Any,
        num_inference_steps: int | Sequence[int],
        latents: torch.Tensor | Sequence[torch.Tensor | None] | None,
        scheduler: SchedulerMixin | Sequence[SchedulerMixin | None] | None,
        strength: float | Sequence[float | None] | None,
        stage: int | None,
        output_type: str,
    ) -> tuple[torch.Tensor, list[UpsamplerStage], dict[str, Any]]:
        """Check `super_resolve`'s arguments: the images in [-1, 1], the stages to run and `_upscale`'s per-stage
        keyword arguments."""
        stages = self.upsampler_stages
        if not stages:
            raise ValueError("This pipeline has no upsampler (super_res_first is None); its base images are final.")
        if stage is not None:
            if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < len(stages):
                raise ValueError(f"stage must be None (every stage) or an index below {len(stages)} (this pipeline "
                                 f"has {len(stages)} upsampler stage(s)), got {stage!r}.")
            stages = stages[stage : stage + 1]
        check_output_type(output_type)
        low_res = to_tensor_images(images).to(self._execution_device)
        if isinstance(latents, torch.Tensor):
            if len(stages) > 1:
                raise ValueError("latents is one tensor, but this call runs two upsampler stages; pass one entry "
                                 "(or None) per stage, or run one stage with `stage=`.")
            latents = [latents]
        strengths = per_stage(strength, len(stages), "strength")
        for value in strengths:
            if value is not None:
                check_strength(value, "strength")
        return low_res, stages, dict(
            num_inference_steps=per_stage(num_inference_steps, len(stages), "num_inference_steps"),
            latents=per_stage(latents, len(stages), "latents"), schedulers=per_stage(scheduler, len(stages), "scheduler"),
            strengths=strengths,
        )

    def _upscale(self: UnCLIPPipeline, images: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Run the stages in sequence on images in [-1, 1] (keyword arguments of `_upscale_stages`); the last output.

        Every method that upscales goes through here.
        """
        for images in self._upscale_stages(images, **kwargs):
            pass
        return images

    def _upscale_stages(
        self: UnCLIPPipeline,
        images: torch.Tensor,
        *,
        num_inference_steps: Sequence[int],
        generator: Generator = None,
        latents: Sequence[torch.Tensor | None] | None = None,
        schedulers: Sequence[SchedulerMixin | None] | None = None,
        strengths: Sequence[float | None] | None = None,
        stages: Sequence[UpsamplerStage] | None = None,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        after_stage: StageHook | None = None,
    ) -> Iterator[torch.Tensor]:
        """Run `stages` (default: the whole cascade) in sequence on images in [-1, 1], yielding each one's output.

        Per-stage values come in stage order; `after_stage` sees (and may replace) each stage's output.
        """
        stages = self.upsampler_stages if stages is None else stages
        count = len(stages)
        latents = list(latents) if latents is not None else [None] * count
        schedulers = list(schedulers) if schedulers is not None else [None] * count
        strengths = list(strengths) if strengths is not None else [None] * count
        if not len(num_inference_steps) == len(latents) == len(schedulers) == len(strengths) == count:
            raise ValueError(f"Per-stage upsampler settings must have {count} entries each.")
        for index, stage in enumerate(stages):
            images = self._super_resolve(
                images, stage=stage, num_inference_steps=num_inference_steps[index], generator=generator,
                latents=latents[index], scheduler=schedulers[index], strength=strengths[index],
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            )
            if after_stage is not None:
                images = after_stage(images)
            yield images

    def _super_resolve(
        self: UnCLIPPipeline,
        low_res: torch.Tensor,
        *,
        stage: UpsamplerStage,
        num_inference_steps: int,
        generator: Generator = None,
        latents: torch.Tensor | None = None,
        scheduler: SchedulerMixin | None = None,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        strength: float | None = None,
    ) -> torch.Tensor:
        """One upsampler stage's loop on images in [-1, 1]; returns `(N, 3, H, W)` in [-1, 1] at the stage's size."""
        device = self._execution_device
        num_images = low_res.shape[0]
        check_positive_int(num_inference_steps, f"{stage.name}_num_inference_steps")
        check_generator(generator, num_images)
        callback_on_step_end_tensor_inputs = self._check_callback(
            callback_on_step_end, callback_on_step_end_tensor_inputs
        )
        shape = (num_images, stage.unet.config.in_channels // 2, *stage.size)
        check_latents(latents, shape, f"{stage.name}_latents")
        dtype = stage.unet.dtype
        condition = upsample_for_super_res(low_res.to(device=device, dtype=dtype), stage.size)
        if latents is None:
            latents = draw_noise(shape, generator=generator, device=device, dtype=dtype)
        latents = latents.to(device=device, dtype=dtype)

        max_pixels = getattr(self, "_super_res_slice_pixels", None)
        slice_rows = num_images if max_pixels is None else max(1, max_pixels // (stage.size[0] * stage.size[1]))

        def predict_with(unet: UNet2DModel) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
            def predict(model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                inputs = torch.cat([model_input, condition], dim=1)
                return torch.cat([unet(rows, t).sample for rows in inputs.split(slice_rows)])

            return predict

        latents = denoise(
            predict_with(stage.unet),
            working_copy(scheduler or stage.scheduler),
            latents=latents,
            num_inference_steps=num_inference_steps,
            generator=generator,
            strength=stage.strength if strength is None else strength,
            start=condition,
            predict_last=predict_with(stage.last) if stage.last is not None else None,
            callback_on_step_end=self._stage_callback(stage.name, callback_on_step_end),
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            progress_bar=self.progress_bar,
        )
        return latents.clamp(-1, 1)


__all__ = ["STAGE_NAMES", "UnCLIPUpsamplingMixin", "UpsamplerStage", "per_stage"]
