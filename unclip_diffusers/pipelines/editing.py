"""What unCLIP does with CLIP latents beyond text-to-image (Ramesh et al. 2022, §3): image variations, interpolations
between images and/or captions, text diffs, and DDIM inversion so that a real image's edits start from the image."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DDIMInverseScheduler, DDIMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..utils.images import to_tensor_images, validate_pil_images
from ..utils.slerp import slerp
from .mixing import check_mix_weights, mix_embeddings
from .pipeline_output import UnCLIPPipelineOutput
from .sampling import DEFAULT_DECODER_STEPS, DEFAULT_PRIOR_STEPS, denoise
from .validation import check_guidance, check_output_type, check_positive_int, check_prompt

if TYPE_CHECKING:
    from .pipeline_unclip import UnCLIPPipeline

Endpoint = str | PIL.Image.Image


class UnCLIPEditingMixin:
    """Image variations, interpolations and text diffs on top of `UnCLIPPipeline`'s stages."""

    @torch.inference_mode()
    def image_variation(
        self: UnCLIPPipeline,
        image: PIL.Image.Image | list[PIL.Image.Image],
        num_images_per_prompt: int = 1,
        decoder_num_inference_steps: int = DEFAULT_DECODER_STEPS,
        super_res_num_inference_steps: int = 10,
        decoder_guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        decoder_latents: torch.Tensor | None = None,
        super_res_latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        super_res_second_num_inference_steps: int = 10,
    ) -> UnCLIPPipelineOutput | tuple:
        r"""
        Variations of images: decode each image's CLIP embedding `z_i` with new decoder noise (unCLIP §3.1).

        Args:
            image (`PIL.Image.Image` or `list[PIL.Image.Image]`): the source image(s); transparency is composited over
                white.
            num_images_per_prompt (`int`, *optional*, defaults to 1): variations per source image.
            decoder_num_inference_steps (`int`, *optional*, defaults to 10): decoder denoising steps.
            super_res_num_inference_steps (`int`, *optional*, defaults to 10): upsampler denoising steps.
            decoder_guidance_scale (`float`, *optional*, defaults to `None`): decoder classifier-free guidance;
                `None` uses the pipeline's `decoder_guidance_scale`.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*, defaults to `None`): one generator,
                or one per output image.
            decoder_latents (`torch.Tensor` of shape `(N, 3, h, w)`, *optional*, defaults to `None`): decoder noise.
            super_res_latents (`torch.Tensor` of shape `(N, 3, H, W)`, *optional*, defaults to `None`): upsampler
                noise.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"` (the last
                stage's latents, unconverted: `(N, 3, H, W)` in [-1, 1]).
            return_dict (`bool`, *optional*, defaults to `True`): return an [`UnCLIPPipelineOutput`] instead of a tuple.
            super_res_second_num_inference_steps (`int`, *optional*, defaults to 10): second upsampler's denoising
                steps (used only when the pipeline has `super_res_second`).

        Returns:
            [`UnCLIPPipelineOutput`] (or a tuple): `len(image) * num_images_per_prompt` images, their `z_i` and the base
            images.
        """
        images = validate_pil_images(image)
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        check_output_type(output_type)
        image_embeds = self.encode_image(images).repeat_interleave(num_images_per_prompt, dim=0)
        base = self._decode(image_embeds, num_inference_steps=decoder_num_inference_steps,
                            guidance_scale=decoder_guidance_scale, generator=generator, latents=decoder_latents)
        return self._finish(image_embeds, base, super_res_num_inference_steps=super_res_num_inference_steps,
                            generator=generator, super_res_latents=super_res_latents, output_type=output_type,
                            return_dict=return_dict,
                            super_res_second_num_inference_steps=super_res_second_num_inference_steps)

    @torch.inference_mode()
    def interpolate(
        self: UnCLIPPipeline,
        start: Endpoint,
        end: Endpoint,
        steps: int = 5,
        prior_num_inference_steps: int = DEFAULT_PRIOR_STEPS,
        decoder_num_inference_steps: int = DEFAULT_DECODER_STEPS,
        super_res_num_inference_steps: int = 10,
        prior_guidance_scale: float | None = None,
        decoder_guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        invert: bool = False,
        super_res_second_num_inference_steps: int = 10,
    ) -> UnCLIPPipelineOutput | tuple:
        r"""
        Interpolate between two images and/or captions through CLIP image-embedding space (unCLIP §3.2, Figure 4).

        Each endpoint's `z_i` comes from the CLIP image encoder (an image) or the prior (a caption); the frames use
        `slerp(z_start, z_end, w)` for `w` evenly spaced in [0, 1]. The decoder and upsampler noise is the same for
        every frame, so only the embedding changes along the path.

        Args:
            start (`str` or `PIL.Image.Image`): first endpoint, a caption or an image.
            end (`str` or `PIL.Image.Image`): last endpoint, a caption or an image.
            steps (`int`, *optional*, defaults to 5): number of frames, endpoints included (at least 2).
            prior_num_inference_steps (`int`, *optional*, defaults to 10): prior steps for caption endpoints.
            decoder_num_inference_steps (`int`, *optional*, defaults to 10): decoder denoising steps.
            super_res_num_inference_steps (`int`, *optional*, defaults to 10): upsampler denoising steps.
            prior_guidance_scale (`float`, *optional*, defaults to `None`): prior guidance for caption endpoints;
                `None` uses the pipeline's `prior_guidance_scale`.
            decoder_guidance_scale (`float`, *optional*, defaults to `None`): decoder classifier-free guidance;
                `None` uses the pipeline's `decoder_guidance_scale`.
            generator (`torch.Generator`, *optional*, defaults to `None`): one generator for the whole path; `None`
                draws from torch's global RNG, like every method of the pipeline.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"` (the last
                stage's latents, unconverted: `(N, 3, H, W)` in [-1, 1]).
            return_dict (`bool`, *optional*, defaults to `True`): return an [`UnCLIPPipelineOutput`] instead of a tuple.
            invert (`bool`, *optional*, defaults to `False`): DDIM-invert image endpoints so the first/last frames
                reconstruct them; the decoder then samples with DDIM (eta 0) from `slerp(x_T^start, x_T^end, w)`,
                where a caption endpoint contributes the shared noise.
            super_res_second_num_inference_steps (`int`, *optional*, defaults to 10): second upsampler's denoising
                steps (used only when the pipeline has `super_res_second`).

        Returns:
            [`UnCLIPPipelineOutput`] (or a tuple): `steps` frames, their `z_i` and base images.
        """
        check_positive_int(steps, "steps")
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (the two endpoints), got {steps}.")
        check_output_type(output_type)
        generator = _single_generator(generator)
        prior_args = dict(prior_num_inference_steps=prior_num_inference_steps,
                          prior_guidance_scale=prior_guidance_scale, generator=generator)
        z_start = self._endpoint_embedding(start, "start", **prior_args)  # (1, D)
        z_end = self._endpoint_embedding(end, "end", **prior_args)
        weights = torch.linspace(0.0, 1.0, steps, device=z_start.device)
        image_embeds = slerp(z_start[0], z_end[0], weights).to(z_start.dtype)  # (steps, D)

        endpoints = [(start, z_start), (end, z_end)]
        return self._render_path(
            image_embeds,
            endpoints=endpoints,
            weights=weights,
            decoder_num_inference_steps=decoder_num_inference_steps,
            decoder_guidance_scale=decoder_guidance_scale,
            super_res_num_inference_steps=super_res_num_inference_steps,
            super_res_second_num_inference_steps=super_res_second_num_inference_steps,
            generator=generator,
            output_type=output_type,
            return_dict=return_dict,
            invert=invert,
        )

    @torch.inference_mode()
    def text_diff(
        self: UnCLIPPipeline,
        image_or_prompt: Endpoint,
        base_prompt: str,
        target_prompt: str,
        amount: float | Sequence[float] = 0.5,
        prior_num_inference_steps: int = DEFAULT_PRIOR_STEPS,
        decoder_num_inference_steps: int = DEFAULT_DECODER_STEPS,
        super_res_num_inference_steps: int = 10,
        prior_guidance_scale: float | None = None,
        decoder_guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        invert: bool = False,
        super_res_second_num_inference_steps: int = 10,
    ) -> UnCLIPPipelineOutput | tuple:
        r"""
        Edit an image (or a caption's sample) with a text diff (unCLIP §3.3, Figure 5).

        With `z_d = normalize(z_t(target_prompt) - z_t(base_prompt))`, every frame decodes
        `slerp(z_i, |z_i| z_d, amount)` with the same decoder noise: `amount = 0` is the source, larger amounts move
        its CLIP embedding toward the caption change (the paper shows 0 to 0.5).

        Args:
            image_or_prompt (`PIL.Image.Image` or `str`): the source image, or a caption whose prior sample is edited.
            base_prompt (`str`): caption describing the source (e.g. "a photo of a cat").
            target_prompt (`str`): caption describing the edit (e.g. "an anime drawing of a cat").
            amount (`float` or `Sequence[float]`, *optional*, defaults to 0.5): slerp weight(s) in [0, 1]; one frame
                per weight.
            prior_num_inference_steps (`int`, *optional*, defaults to 10): prior steps for a caption source.
            decoder_num_inference_steps (`int`, *optional*, defaults to 10): decoder denoising steps.
            super_res_num_inference_steps (`int`, *optional*, defaults to 10): upsampler denoising steps.
            prior_guidance_scale (`float`, *optional*, defaults to `None`): prior guidance for a caption source;
                `None` uses the pipeline's `prior_guidance_scale`.
            decoder_guidance_scale (`float`, *optional*, defaults to `None`): decoder classifier-free guidance;
                `None` uses the pipeline's `decoder_guidance_scale`.
            generator (`torch.Generator`, *optional*, defaults to `None`): one generator for all frames; `None`
                draws from torch's global RNG, like every method of the pipeline.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"` (the last
                stage's latents, unconverted: `(N, 3, H, W)` in [-1, 1]).
            return_dict (`bool`, *optional*, defaults to `True`): return an [`UnCLIPPipelineOutput`] instead of a tuple.
            invert (`bool`, *optional*, defaults to `False`): DDIM-invert a source image so `amount = 0` reconstructs
                it (the paper's setting); the decoder then samples with DDIM (eta 0).
            super_res_second_num_inference_steps (`int`, *optional*, defaults to 10): second upsampler's denoising
                steps (used only when the pipeline has `super_res_second`).

        Returns:
            [`UnCLIPPipelineOutput`] (or a tuple): one frame per amount, their `z_i` and base images.
        """
        amounts = [amount] if isinstance(amount, (int, float)) else list(amount)
        if not amounts:
            raise ValueError("amount is an empty sequence; pass at least one weight in [0, 1].")
        for value in amounts:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"Every text-diff amount must be a number in [0, 1], got {value!r}.")
        for name, value in (("base_prompt", base_prompt), ("target_prompt", target_prompt)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {type(value).__name__}.")
        check_output_type(output_type)
        generator = _single_generator(generator)
        z_i = self._endpoint_embedding(image_or_prompt, "image_or_prompt",
                                       prior_num_inference_steps=prior_num_inference_steps,
                                       prior_guidance_scale=prior_guidance_scale, generator=generator)  # (1, D)
        texts = self._encode_text(check_prompt([base_prompt, target_prompt]), z_i.device).text_embeds
        difference = (texts[1] - texts[0]).float()
        if difference.norm() < 1e-6:
            raise ValueError(f"base_prompt {base_prompt!r} and target_prompt {target_prompt!r} have the same CLIP "
                             "text embedding, so there is no direction to move in.")
        z_d = F.normalize(difference, dim=-1) * z_i[0].float().norm()  # keep |z_i| (matters for raw Karlo embeddings)
        weights = torch.tensor(amounts, dtype=torch.float32, device=z_i.device)
        image_embeds = slerp(z_i[0], z_d.to(z_i.dtype), weights).to(z_i.dtype)  # (A, D)
        endpoints = [(image_or_prompt, z_i), (None, None)]
        return self._render_path(
            image_embeds,
            endpoints=endpoints,
            weights=torch.zeros_like(weights),
            decoder_num_inference_steps=decoder_num_inference_steps,
            decoder_guidance_scale=decoder_guidance_scale,
            super_res_num_inference_steps=super_res_num_inference_steps,
            super_res_second_num_inference_steps=super_res_second_num_inference_steps,
            generator=generator,
            output_type=output_type,
            return_dict=return_dict,
            invert=invert,
        )

    @torch.inference_mode()
    def ddim_invert(
        self: UnCLIPPipeline,
        image: PIL.Image.Image | list[PIL.Image.Image],
        image_embeds: torch.Tensor | None = None,
        num_inference_steps: int = DEFAULT_DECODER_STEPS,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        r"""
        DDIM inversion (Song et al. 2021) of images through the decoder: the noise `x_T` from which DDIM sampling
        (eta 0, `timestep_spacing="trailing"`, same steps, guidance and `z_i`, empty caption) returns to the image.

        Args:
            image (`PIL.Image.Image` or `list[PIL.Image.Image]`): images, fitted to the decoder's resolution.
            image_embeds (`torch.Tensor` of shape `(N, D)`, *optional*, defaults to `None`): the decoder's
                conditioning; the images' own CLIP embeddings when `None`.
            num_inference_steps (`int`, *optional*, defaults to 10): inversion steps (use the same for decoding).
            guidance_scale (`float`, *optional*, defaults to `None`): decoder guidance during inversion; `None` uses
                the pipeline's `decoder_guidance_scale`.

        Returns:
            `torch.Tensor` of shape `(N, 3, h, w)`: the inverted decoder latents.
        """
        images = validate_pil_images(image)
        check_positive_int(num_inference_steps, "num_inference_steps")
        guidance_scale = self._guidance_scale(guidance_scale, "decoder")
        check_guidance(guidance_scale, "guidance_scale")
        device = self._execution_device
        if image_embeds is None:
            image_embeds = self.encode_image(images)
        image_embeds = self._check_image_embeds(image_embeds).to(device)
        if image_embeds.shape[0] != len(images):
            raise ValueError(f"Got {image_embeds.shape[0]} image embeddings for {len(images)} images.")
        latents = to_tensor_images(images, size=self.base_size).to(device=device, dtype=self.decoder.dtype)
        condition = self._decoder_condition(image_embeds, None, guidance_scale)
        return denoise(
            functools.partial(self._decoder_forward, condition=condition),
            _scheduler_from(DDIMInverseScheduler, self.decoder_scheduler),
            latents=latents,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            progress_bar=self.progress_bar,
        )

    # ------------------------------------------------------------------------------------------------ helpers

    @torch.inference_mode()
    def mix(
        self: UnCLIPPipeline,
        inputs: Sequence[Endpoint],
        weights: Sequence[float] | None = None,
        num_images_per_prompt: int = 1,
        prior_num_inference_steps: int = DEFAULT_PRIOR_STEPS,
        decoder_num_inference_steps: int = DEFAULT_DECODER_STEPS,
        super_res_num_inference_steps: int = 10,
        prior_guidance_scale: float | None = None,
        decoder_guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        decoder_latents: torch.Tensor | None = None,
        super_res_latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        super_res_second_num_inference_steps: int = 10,
    ) -> UnCLIPPipelineOutput | tuple:
        r"""
        Decode a weighted blend of prompts and images (Kandinsky 2.2's `interpolate(images_and_prompts, weights)`).

        Each prompt goes through the prior, each image through the CLIP image encoder; the embeddings are blended
        (`pipelines/mixing.py`: slerp for two inputs, so a two-input mix is a frame of `interpolate`; the normalised
        weighted mean of directions for more) and decoded like a variation.

        Args:
            inputs (`list` of `str` or `PIL.Image.Image`): the prompts and images to blend, at least one.
            weights (`list[float]`, *optional*, defaults to `None`): one weight >= 0 per input, normalised to sum 1;
                `None` weighs the inputs equally.
            num_images_per_prompt (`int`, *optional*, defaults to 1): images decoded from the blend.
            prior_num_inference_steps (`int`, *optional*, defaults to 10): prior steps for prompt inputs.
            decoder_num_inference_steps (`int`, *optional*, defaults to 10): decoder denoising steps.
            super_res_num_inference_steps (`int`, *optional*, defaults to 10): upsampler denoising steps.
            prior_guidance_scale (`float`, *optional*, defaults to `None`): prior guidance for prompt inputs;
                `None` uses the pipeline's `prior_guidance_scale`.
            decoder_guidance_scale (`float`, *optional*, defaults to `None`): decoder classifier-free guidance;
                `None` uses the pipeline's `decoder_guidance_scale`.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*, defaults to `None`): one generator,
                or one per output image; the prior samples of prompt inputs draw from the first.
            decoder_latents (`torch.Tensor` of shape `(N, 3, h, w)`, *optional*, defaults to `None`): decoder noise.
            super_res_latents (`torch.Tensor` of shape `(N, 3, H, W)`, *optional*, defaults to `None`): upsampler
                noise.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"`.
            return_dict (`bool`, *optional*, defaults to `True`): return an [`UnCLIPPipelineOutput`] instead of a tuple.
            super_res_second_num_inference_steps (`int`, *optional*, defaults to 10): second upsampler's denoising
                steps (used only when the pipeline has `super_res_second`).

        Returns:
            [`UnCLIPPipelineOutput`] (or a tuple): `num_images_per_prompt` images, their (shared) `z_i` and the base
            images.
        """
        if isinstance(inputs, (str, PIL.Image.Image)) or not isinstance(inputs, Sequence):
            raise TypeError("inputs must be a list of prompts (str) and/or PIL images, e.g. ['a cat', image].")
        normalised = check_mix_weights(len(inputs), weights)
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        check_output_type(output_type)
        prior_generator = generator[0] if isinstance(generator, (list, tuple)) and generator else generator
        embeds = torch.cat([
            self._endpoint_embedding(value, f"inputs[{i}]", prior_num_inference_steps=prior_num_inference_steps,
                                     prior_guidance_scale=prior_guidance_scale, generator=prior_generator)
            for i, value in enumerate(inputs)
        ])  # fmt: skip
        image_embeds = mix_embeddings(embeds, normalised).repeat(num_images_per_prompt, 1)
        base = self._decode(image_embeds, num_inference_steps=decoder_num_inference_steps,
                            guidance_scale=decoder_guidance_scale, generator=generator, latents=decoder_latents)
        return self._finish(image_embeds, base, super_res_num_inference_steps=super_res_num_inference_steps,
                            generator=generator, super_res_latents=super_res_latents, output_type=output_type,
                            return_dict=return_dict,
                            super_res_second_num_inference_steps=super_res_second_num_inference_steps)

    def _endpoint_embedding(
        self: UnCLIPPipeline,
        value: Any,
        name: str,
        *,
        prior_num_inference_steps: int,
        prior_guidance_scale: float | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """`z_i` of one endpoint, shape (1, D): the CLIP embedding of an image, or a prior sample for a caption."""
        if isinstance(value, str):
            return self.sample_prior(value, num_inference_steps=prior_num_inference_steps,
                                     guidance_scale=prior_guidance_scale, generator=generator)
        if isinstance(value, PIL.Image.Image):
            return self.encode_image(value)
        raise TypeError(f"{name} must be a caption (str) or a PIL.Image.Image, got {type(value).__name__}.")

    def _render_path(
        self: UnCLIPPipeline,
        image_embeds: torch.Tensor,
        *,
        endpoints: list[tuple[Any, torch.Tensor | None]],
        weights: torch.Tensor,
        decoder_num_inference_steps: int,
        decoder_guidance_scale: float | None,
        super_res_num_inference_steps: int,
        generator: torch.Generator | None,
        output_type: str,
        return_dict: bool,
        invert: bool,
        super_res_second_num_inference_steps: int = 10,
    ) -> UnCLIPPipelineOutput | tuple:
        """Decode a path of embeddings with one decoder/upsampler noise shared by every frame.

        Every frame gets its own generator seeded identically, so initial noise and any stochastic sampler noise are
        the same across frames. With `invert`, image endpoints are DDIM-inverted and the frames start from
        `slerp(x_T^start, x_T^end, weights)`.
        """
        num_frames = image_embeds.shape[0]
        device = self._execution_device
        decoder_seed, super_res_seed = _derive_seed(generator), _derive_seed(generator)
        generator_device = generator.device if generator is not None else torch.device("cpu")

        def frame_generators(seed: int) -> list[torch.Generator]:
            return [torch.Generator(device=generator_device).manual_seed(seed) for _ in range(num_frames)]

        scheduler: SchedulerMixin | None = None
        latents = None
        if invert:
            shape = (1, self.decoder.config.in_channels, *self.base_size)
            shared = torch.randn(shape, generator=frame_generators(decoder_seed)[0], device=generator_device)
            shared = shared.to(device=device, dtype=self.decoder.dtype)
            starts = []
            for value, z in endpoints:
                if isinstance(value, PIL.Image.Image):
                    inverted = self.ddim_invert(value, image_embeds=z, num_inference_steps=decoder_num_inference_steps,
                                                guidance_scale=decoder_guidance_scale)
                    starts.append(inverted)
                else:
                    starts.append(shared)
            flat = slerp(starts[0].flatten(), starts[1].flatten(), weights.to(device))  # (frames, C*h*w)
            latents = flat.reshape(num_frames, *shape[1:]).to(self.decoder.dtype)
            scheduler = _scheduler_from(DDIMScheduler, self.decoder_scheduler)
        base = self._decode(image_embeds, num_inference_steps=decoder_num_inference_steps,
                            guidance_scale=decoder_guidance_scale, generator=frame_generators(decoder_seed),
                            latents=latents, scheduler=scheduler)
        return self._finish(image_embeds, base, super_res_num_inference_steps=super_res_num_inference_steps,
                            generator=frame_generators(super_res_seed), super_res_latents=None,
                            output_type=output_type, return_dict=return_dict,
                            super_res_second_num_inference_steps=super_res_second_num_inference_steps)


def _single_generator(generator: Any) -> torch.Generator | None:
    """Interpolations and text diffs draw one shared noise, so they take one generator (or a list of one)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != 1:
            raise ValueError(
                f"This method takes one generator (the noise is shared by all frames), got {len(generator)}."
            )
        generator = generator[0]
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}.")
    return generator


def _derive_seed(generator: torch.Generator | None) -> int:
    """A seed drawn from `generator`, or from torch's global RNG when there is none (as every other method draws)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())


def _scheduler_from(scheduler_class: type, scheduler: SchedulerMixin) -> SchedulerMixin:
    """A deterministic DDIM (or inverse DDIM) sampler on the same noise schedule as `scheduler`.

    Only the keys `scheduler_class` accepts are carried over; trailing spacing starts from the last training step
    (pure noise), x0 is neither clipped nor thresholded (`DDIMInverseScheduler` does neither, so either would break
    invertibility; the decoder's DPM-Solver thresholds) and the last step lands on the clean image.
    """
    accepted = set(inspect.signature(scheduler_class.__init__).parameters)
    config = {k: v for k, v in scheduler.config.items() if k in accepted}
    overrides = dict(timestep_spacing="trailing", clip_sample=False, thresholding=False, set_alpha_to_one=True,
                     steps_offset=0)
    config.update({k: v for k, v in overrides.items() if k in accepted})
    if config.get("prediction_type") not in ("epsilon", "sample", "v_prediction"):
        config["prediction_type"] = "epsilon"
    return scheduler_class(**config)

