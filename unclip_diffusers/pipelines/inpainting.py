"""Masked edits: repaint part of an image and keep the rest (RePaint, Lugmayr et al. 2022, on unCLIP's stages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch
from diffusers import DDIMScheduler

from ..utils.images import postprocess_images, to_tensor_images, validate_pil_images
from .editing import _scheduler_from
from .pipeline_output import UnCLIPPipelineOutput
from .sampling import DEFAULT_DECODER_STEPS, DEFAULT_PRIOR_STEPS, KnownRegion, draw_noise
from .validation import check_output_type, check_positive_int

if TYPE_CHECKING:
    from .pipeline_unclip import UnCLIPPipeline

MASK_THRESHOLD = 0.5  # after resizing to a stage, mask values above this are repainted


def mask_to_tensor(mask: Any, size: tuple[int, int]) -> torch.Tensor:
    """A mask (PIL, numpy `(H, W)`/`(H, W, C)` or tensor `(H, W)`/`(1, H, W)`/`(1, 1, H, W)`; white/1 = repaint, values
    in [0, 1] or 0-255) fitted to `size` like the image (centre crop, resize) and binarised at MASK_THRESHOLD:
    `(1, 1, h, w)` float with 1 where the image is repainted."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if isinstance(mask, np.ndarray):
        array = np.squeeze(mask)
        if array.ndim == 3:
            array = array[..., 0] if array.shape[-1] in (1, 3, 4) else array[0]
        if array.ndim != 2:
            raise ValueError(f"mask_image must be a 2-D mask (H, W), got an array of shape {mask.shape}.")
        array = array.astype(np.float32)
        if not np.isfinite(array).all() or array.min() < 0:
            raise ValueError("mask_image values must be finite and >= 0 (1 or 255 = repaint, 0 = keep).")
        if array.max() > 1.0:
            array = array / 255.0
        mask = PIL.Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8), mode="L")
    if not isinstance(mask, PIL.Image.Image):
        raise TypeError(f"mask_image must be a PIL image, a numpy array or a tensor, got {type(mask).__name__}.")
    fitted = to_tensor_images(mask.convert("L").convert("RGB"), size)[:, :1]  # (1, 1, h, w) in [-1, 1]
    return ((fitted + 1) / 2 > MASK_THRESHOLD).float()


class UnCLIPInpaintingMixin:
    """`UnCLIPPipeline.inpaint`: repaint the masked part of an image."""

    @torch.inference_mode()
    def inpaint(
        self: UnCLIPPipeline,
        image: PIL.Image.Image,
        mask_image: Any,
        prompt: str | None = None,
        num_images_per_prompt: int = 1,
        prior_num_inference_steps: int = DEFAULT_PRIOR_STEPS,
        decoder_num_inference_steps: int = DEFAULT_DECODER_STEPS,
        super_res_num_inference_steps: int = 10,
        prior_guidance_scale: float | None = None,
        decoder_guidance_scale: float | None = None,
        jumps: int = 0,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        super_res_second_num_inference_steps: int = 10,
    ) -> UnCLIPPipelineOutput | tuple:
        r"""
        Repaint the white part of `mask_image` and keep the rest of `image` (RePaint on the decoder, the known region
        pasted back after each upsampler).

        At the base resolution the region outside the mask is replaced after every step by the source noised to
        that step's level, so the repainted part grows to match it; with `jumps > 0` every step but the last is
        redone that many times from its output diffused one step back (RePaint's resampling, which harmonises the
        seam; it runs the decoder `1 + jumps` times per step, with a DDIM sampler). Each upsampler then enlarges the
        result and the known region is pasted back from the source at that stage's size, so the next stage starts
        from the source there.

        Args:
            image (`PIL.Image.Image`): the image to edit (fitted to the pipeline's sizes: centre crop, resize).
            mask_image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`): white / 1 = repaint, black / 0 = keep, at
                any size (fitted like the image); grey values are binarised at 0.5 after resizing to each stage.
            prompt (`str`, *optional*, defaults to `None`): what to paint: its prior sample conditions the decoder;
                `None` uses the source image's own CLIP embedding.
            num_images_per_prompt (`int`, *optional*, defaults to 1): edits to draw.
            prior_num_inference_steps (`int`, *optional*, defaults to 10): prior steps (with a prompt).
            decoder_num_inference_steps (`int`, *optional*, defaults to 10): decoder denoising steps.
            super_res_num_inference_steps (`int`, *optional*, defaults to 10): upsampler denoising steps.
            prior_guidance_scale (`float`, *optional*, defaults to `None`): `None` uses the pipeline's.
            decoder_guidance_scale (`float`, *optional*, defaults to `None`): decoder classifier-free guidance;
                `None` uses the pipeline's `decoder_guidance_scale`.
            jumps (`int`, *optional*, defaults to 0): RePaint resamplings per decoder step.
            generator (`torch.Generator`, *optional*, defaults to `None`): every noise draw (torch's global RNG when
                `None`).
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, *optional*, defaults to `True`): return an [`UnCLIPPipelineOutput`] instead of a tuple.
            super_res_second_num_inference_steps (`int`, *optional*, defaults to 10): second upsampler's denoising
                steps (used only when the pipeline has `super_res_second`).

        Returns:
            [`UnCLIPPipelineOutput`] (or a tuple): the edited images, their `z_i` and the base images.
        """
        if not isinstance(image, PIL.Image.Image):
            raise TypeError(f"inpaint edits one image: pass a PIL.Image.Image, got {type(image).__name__}.")
        source = validate_pil_images(image)[0]
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        if isinstance(jumps, bool) or not isinstance(jumps, int) or jumps < 0:
            raise ValueError(f"jumps must be an integer >= 0, got {jumps!r}.")
        check_output_type(output_type)
        if output_type == "latent":
            raise ValueError("inpaint returns images; output_type='latent' is not supported here.")
        device, n = self._execution_device, num_images_per_prompt
        base_mask = mask_to_tensor(mask_image, self.base_size).to(device)
        if base_mask.sum() == 0:
            raise ValueError("mask_image has nothing to repaint at the base resolution (no white pixels); there is "
                             "nothing to edit.")  # fmt: skip
        if base_mask.min() == 1:
            raise ValueError("mask_image repaints the whole image, so nothing is kept: use the pipeline's "
                             "text-to-image or image_variation instead.")  # fmt: skip
        if prompt is not None:
            z = self.sample_prior(prompt, num_inference_steps=prior_num_inference_steps,
                                  guidance_scale=prior_guidance_scale, generator=generator)  # fmt: skip
        else:
            z = self.encode_image(source)
        image_embeds = z.repeat(n, 1)
        dtype = self.decoder.dtype
        known_base = to_tensor_images(source, self.base_size).to(device=device, dtype=dtype).repeat(n, 1, 1, 1)
        known = KnownRegion(image=known_base, mask=base_mask.to(dtype),
                            noise=draw_noise(tuple(known_base.shape), generator=generator, device=device, dtype=dtype),
                            jumps=jumps, generator=generator)  # fmt: skip
        scheduler = _scheduler_from(DDIMScheduler, self.decoder_scheduler) if jumps else None
        base = self._decode(image_embeds, num_inference_steps=decoder_num_inference_steps,
                            guidance_scale=decoder_guidance_scale, generator=generator, scheduler=scheduler,
                            prompt=prompt, known=known)  # fmt: skip
        self._check_second_stage_inputs(super_res_second_num_inference_steps, None)

        def keep_known(images: torch.Tensor) -> torch.Tensor:
            """The source pasted back outside the mask, at the size of `images` (one upsampler's output)."""
            size = tuple(images.shape[-2:])
            mask = mask_to_tensor(mask_image, size).to(device=device, dtype=images.dtype)
            known_full = to_tensor_images(source, size).to(device=device, dtype=images.dtype)
            return mask * images + (1 - mask) * known_full

        images = self._upscale(base, generator=generator, after_stage=keep_known, **self._per_stage_values(
            num_inference_steps=(super_res_num_inference_steps, super_res_second_num_inference_steps)))
        self.maybe_free_model_hooks()
        output = (postprocess_images(images, output_type), image_embeds, postprocess_images(base, output_type))
        return UnCLIPPipelineOutput(*output) if return_dict else output


__all__ = ["MASK_THRESHOLD", "UnCLIPInpaintingMixin", "mask_to_tensor"]
