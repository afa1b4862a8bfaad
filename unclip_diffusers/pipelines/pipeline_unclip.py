"""`UnCLIPPipeline`: text → CLIP image embedding (prior) → base image (decoder) → upsampled image (super-resolution).

Every stage is a public method (`encode_prompt`, `encode_image`, `sample_prior`, `decode`, `super_resolve`) so apps,
evaluators and benchmarks can run, time or cache stages separately; `__call__` chains them. Image variations,
interpolations and text diffs live in `editing.py`, the upsampler cascade in `upsampling.py`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, UNet2DConditionModel, UNet2DModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import logging
from transformers import (
    CLIPImageProcessorPil,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)

from ..models import UnCLIPPriorTransformer, UnCLIPTextProjection
from ..models.prior_transformer import CaptionKVCache
from ..utils.images import postprocess_images, validate_pil_images
from .editing import UnCLIPEditingMixin
from .inpainting import UnCLIPInpaintingMixin
from .loading import UnCLIPLoadingMixin
from .pipeline_output import PromptEncodings, PromptFit, UnCLIPPipelineOutput
from .sampling import (
    DEFAULT_DECODER_STEPS,
    DEFAULT_PRIOR_STEPS,
    KnownRegion,
    StepCallback,
    as_interval,
    check_generator,
    check_guidance_interval,
    check_latents,
    conditional_half,
    denoise,
    draw_noise,
    working_copy,
)
from .upsampling import UnCLIPUpsamplingMixin
from .validation import (
    check_encodings,
    check_guidance,
    check_output_type,
    check_positive_int,
    check_prompt,
    check_strength,
    pair,
    repeat_to,
)

logger = logging.get_logger(__name__)

Callback = Callable[..., dict[str, Any]]
Generator = torch.Generator | list[torch.Generator] | None
ImageOutput = list[PIL.Image.Image] | np.ndarray | torch.Tensor


class UnCLIPPipeline(UnCLIPEditingMixin, UnCLIPInpaintingMixin, UnCLIPUpsamplingMixin, UnCLIPLoadingMixin,
                     DiffusionPipeline):
    r"""
    DALL·E 2 (unCLIP, Ramesh et al. 2022): a diffusion prior turns a caption's CLIP text encoding into a CLIP image
    embedding `z_i`; a diffusion decoder turns `z_i` (and the caption) into a base image; a cascade of none, one or
    two diffusion upsamplers raises its resolution. Resolutions are read from the components' configs.

    Names: diffusers' `super_res_first`/`super_res_last` (kept for Karlo) are the models of ONE upsampling, used for
    its first steps and for its last step; the cascade's second stage is the separate `super_res_second` with its
    own scheduler and strength (the paper's second upsampler).

    All CLIP embeddings passed between stages are L2-normalised when `normalize_embeddings` is set (this project's
    models); Karlo checkpoints use raw embeddings (`normalize_embeddings=False`, set by `from_karlo`).
    The pipeline never mutates its schedulers (each call samples with a private copy), so one instance can serve
    concurrent requests.

    Args:
        tokenizer ([`~transformers.CLIPTokenizer`]): CLIP's BPE tokenizer.
        text_encoder ([`~transformers.CLIPTextModelWithProjection`]): frozen CLIP text encoder.
        image_encoder ([`~transformers.CLIPVisionModelWithProjection`] or `None`): frozen CLIP image encoder, needed
            for image variations and image endpoints (Karlo ships without one).
        feature_extractor ([`~transformers.CLIPImageProcessorPil`] or `None`): CLIP's image preprocessing.
        prior ([`UnCLIPPriorTransformer`]): predicts the clean CLIP image embedding from the caption.
        text_proj ([`UnCLIPTextProjection`]): turns `z_i` and the caption into the decoder's conditioning.
        decoder ([`~diffusers.UNet2DConditionModel`]): the base-resolution image diffusion model.
        prior_scheduler, decoder_scheduler ([`~diffusers.SchedulerMixin`]): samplers of the prior and the decoder.
        super_res_first ([`~diffusers.UNet2DModel`] or `None`): the upsampler (noisy image ⊕ upsampled low-res
            input); `None` means the base image is the output.
        super_res_scheduler ([`~diffusers.SchedulerMixin`] or `None`): the upsampler's sampler.
        super_res_last ([`~diffusers.UNet2DModel`], *optional*): a separate model for the first upsampler's last
            step only (Karlo); `None` means `super_res_first` does every step.
        normalize_embeddings (`bool`, defaults to `True`): L2-normalise CLIP embeddings between stages.
        super_res_strength (`float`, defaults to 1.0): how much of its noise schedule the upsampler runs. 1 starts
            from pure noise (the paper, diffusers' UnCLIPPipeline); below 1 it starts from the bicubic-upsampled base
            image noised to that level and runs only the last `strength` of its steps, as image-to-image pipelines
            do. Saved with the pipeline, since the best value depends on the trained upsampler.
        prior_guidance_scale (`float`, defaults to 4.0): the prior's classifier-free guidance scale wherever a call
            passes none (4.0 is diffusers' and Karlo's default). Saved with the pipeline, since the best value
            depends on the trained prior and decoder (`benchmarks/bench_guidance.py` measures it).
        super_res_second ([`~diffusers.UNet2DModel`], *optional*): the cascade's second upsampler, run on the first
            one's output (e.g. 128 → 256 px); `None` (and every folder saved before it existed) stops at the first.
        super_res_second_scheduler ([`~diffusers.SchedulerMixin`], *optional*): the second upsampler's sampler.
        super_res_second_strength (`float`, defaults to 1.0): `super_res_strength` of the second upsampler.
        prior_guidance_interval (`Sequence[float]`, *optional*): `(low, high)`: the prior is guided only at steps
            whose noise level sigma lies in it (`sampling.denoise`); `None` guides every step. Saved with the
            pipeline and used wherever a call passes no interval.
        decoder_guidance_interval (`Sequence[float]`, *optional*): the same for the decoder.
        decoder_guidance_scale (`float`, defaults to 8.0): the decoder's classifier-free guidance scale wherever a
            call passes none; 1 for a guidance-distilled decoder (`unclip-train decoder --distill_from`), which gives
            the guided prediction in one pass. Saved with the pipeline.
    """

    model_cpu_offload_seq = ("text_encoder->image_encoder->prior->text_proj->decoder->super_res_first->super_res_last"
                             "->super_res_second")
    _optional_components = ["image_encoder", "feature_extractor", "super_res_first", "super_res_last",
                            "super_res_scheduler", "super_res_second", "super_res_second_scheduler"]
    _callback_tensor_inputs = ["latents"]

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModelWithProjection
    image_encoder: CLIPVisionModelWithProjection | None
    feature_extractor: CLIPImageProcessorPil | None
    prior: UnCLIPPriorTransformer
    text_proj: UnCLIPTextProjection
    decoder: UNet2DConditionModel
    prior_scheduler: SchedulerMixin
    decoder_scheduler: SchedulerMixin
    super_res_first: UNet2DModel | None
    super_res_scheduler: SchedulerMixin | None
    super_res_last: UNet2DModel | None
    super_res_second: UNet2DModel | None
    super_res_second_scheduler: SchedulerMixin | None

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModelWithProjection,
        image_encoder: CLIPVisionModelWithProjection | None,
        feature_extractor: CLIPImageProcessorPil | None,
        prior: UnCLIPPriorTransformer,
        text_proj: UnCLIPTextProjection,
        decoder: UNet2DConditionModel,
        prior_scheduler: SchedulerMixin,
        decoder_scheduler: SchedulerMixin,
        super_res_first: UNet2DModel | None,
        super_res_scheduler: SchedulerMixin | None,
        super_res_last: UNet2DModel | None = None,
        normalize_embeddings: bool = True,
        super_res_strength: float = 1.0,
        prior_guidance_scale: float = 4.0,
        super_res_second: UNet2DModel | None = None,
        super_res_second_scheduler: SchedulerMixin | None = None,
        super_res_second_strength: float = 1.0,
        prior_guidance_interval: Sequence[float] | None = None,
        decoder_guidance_interval: Sequence[float] | None = None,
        decoder_guidance_scale: float = 8.0,
    ):
        super().__init__()
        check_guidance(decoder_guidance_scale, "decoder_guidance_scale")
        check_guidance_interval(prior_guidance_interval)
        check_guidance_interval(decoder_guidance_interval)
        check_strength(super_res_strength, "super_res_strength")
        check_strength(super_res_second_strength, "super_res_second_strength")
        check_guidance(prior_guidance_scale, "prior_guidance_scale")
        if (image_encoder is None) != (feature_extractor is None):
            raise ValueError("Pass both image_encoder and feature_extractor, or neither.")
        if super_res_first is not None and super_res_scheduler is None:
            raise ValueError("super_res_first needs a super_res_scheduler.")
        if super_res_last is not None and super_res_first is None:
            raise ValueError("super_res_last is only used together with super_res_first.")
        if super_res_second is not None:
            if super_res_first is None:
                raise ValueError("super_res_second is the cascade's second upsampler and runs on super_res_first's "
                                 "output; pass super_res_first too (or pass the upsampler as super_res_first).")
            if super_res_second_scheduler is None:
                raise ValueError("super_res_second needs a super_res_second_scheduler.")
            first, second = pair(super_res_first.config.sample_size), pair(super_res_second.config.sample_size)
            if second[0] <= first[0] or second[1] <= first[1]:
                raise ValueError(f"super_res_second outputs {second}, not larger than super_res_first's {first}; the "
                                 "second stage must raise the resolution.")
        for encoder in (text_encoder, image_encoder):
            # transformers keeps the dtype weights were saved in (the release's fp16) where diffusers upcasts its
            # models, e.g. through `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`: the CLIP
            # encoders follow the decoder's dtype so one pipeline never mixes precisions.
            if encoder is not None and encoder.dtype != decoder.dtype:
                logger.info(f"Casting {type(encoder).__name__} from {encoder.dtype} to the decoder's {decoder.dtype}.")
                encoder.to(decoder.dtype)
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            prior=prior,
            text_proj=text_proj,
            decoder=decoder,
            prior_scheduler=prior_scheduler,
            decoder_scheduler=decoder_scheduler,
            super_res_first=super_res_first,
            super_res_scheduler=super_res_scheduler,
            super_res_last=super_res_last,
            super_res_second=super_res_second,
            super_res_second_scheduler=super_res_second_scheduler,
        )
        self.register_to_config(normalize_embeddings=bool(normalize_embeddings),
                                super_res_strength=float(super_res_strength),
                                prior_guidance_scale=float(prior_guidance_scale),
                                super_res_second_strength=float(super_res_second_strength),
                                prior_guidance_interval=as_interval(prior_guidance_interval),
                                decoder_guidance_interval=as_interval(decoder_guidance_interval),
                                decoder_guidance_scale=float(decoder_guidance_scale))

    # ------------------------------------------------------------------------------------------------ sizes

    @property
    def embedding_dim(self) -> int:
        """Width of the CLIP embeddings the prior produces and the decoder consumes."""
        return self.prior.config.embedding_dim

    @property
    def base_size(self) -> tuple[int, int]:
        """(H, W) of the decoder's output."""
        return pair(self.decoder.config.sample_size)

    def make_schedulers(
        self, scheduler_class: type[SchedulerMixin], **config_overrides: Any
    ) -> dict[str, SchedulerMixin]:
        """Build `scheduler_class` for every stage from the current schedulers' configs (`from_config`).

        The prior samples standardised embeddings, not images, so x0 clipping to [-1, 1] (DDPM/DDIM's default) is
        turned off for it. Assign the result with `pipe.register_modules(**schedulers)` or pass one as the
        `scheduler` of a stage method (thread-safe: the pipeline is not modified).
        """
        schedulers: dict[str, SchedulerMixin] = {}
        accepts_clip = "clip_sample" in inspect.signature(scheduler_class.__init__).parameters
        for name in ("prior_scheduler", "decoder_scheduler", "super_res_scheduler", "super_res_second_scheduler"):
            current = getattr(self, name)
            if current is None:
                continue
            overrides = dict(config_overrides)
            if name == "prior_scheduler" and accepts_clip:
                overrides.setdefault("clip_sample", False)
            schedulers[name] = scheduler_class.from_config(current.config, **overrides)
        return schedulers

    # ------------------------------------------------------------------------------------------------ encoders

    def _text_length(self) -> int:
        return min(self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings)

    @property
    def max_prompt_tokens(self) -> int:
        """How many tokens of a prompt the text encoder reads (its context length less the start and end tokens)."""
        return self._text_length() - 2

    def fit_prompt(self, prompt: str) -> PromptFit:
        """Split `prompt` into the text the encoder reads and the text truncation cuts off (see `PromptFit`)."""
        tokens = self.tokenizer(prompt, truncation=False, verbose=False).input_ids[1:-1]  # without start and end
        limit = self.max_prompt_tokens
        return PromptFit(kept=self.tokenizer.decode(tokens[:limit]).strip(),
                         dropped=self.tokenizer.decode(tokens[limit:]).strip(), max_tokens=limit)

    def _encode_text(self, prompts: list[str], device: torch.device) -> PromptEncodings:
        length = self._text_length()
        self._warn_truncation(prompts, length)
        tokens = self.tokenizer(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        # CLIP's text transformer is causal and pools at the end token, so padding after it changes nothing before it.
        output = self.text_encoder(tokens.input_ids.to(device))
        text_embeds = output.text_embeds
        if self.config.normalize_embeddings:
            text_embeds = F.normalize(text_embeds, dim=-1)
        return PromptEncodings(text_embeds, output.last_hidden_state, tokens.attention_mask.to(device).bool())

    def _warn_truncation(self, prompts: list[str], length: int) -> None:
        for prompt in prompts:
            dropped = self.fit_prompt(prompt).dropped
            if dropped:
                logger.warning(f"A prompt is longer than {length} tokens and was truncated; dropped: {dropped!r}")

    def _empty_prompt(self, batch_size: int, device: torch.device) -> PromptEncodings:
        """Encodings of the empty caption: the unconditional branch of guidance and the decoder's "no caption".

        Encoded once and cached (prior and decoder each need it on every call), keyed on the device, the tokenizer,
        the text encoder and its weights' storage and version counters, so swapping or training the text encoder
        re-encodes it. (Weights made under `torch.inference_mode` keep no version counter; changing those in place
        is not seen.)
        """
        encoder = self.text_encoder
        key = (str(device), id(self.tokenizer), id(encoder), encoder.dtype,
               tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in encoder.parameters()))
        cached = getattr(self, "_empty_prompt_cache", None)
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # a normal tensor: it may later feed a training step
                cached = (key, PromptEncodings(*(t.clone() for t in self._encode_text([""], device))))
            self._empty_prompt_cache = cached
        return cached[1].repeat_interleave(batch_size)

    @torch.no_grad()  # not inference_mode: cached encodings may later feed modules that train
    def encode_prompt(
        self,
        prompt: str | list[str],
        device: torch.device | None = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = False,
    ) -> PromptEncodings:
        r"""
        Encode captions with the CLIP text encoder.

        The result depends only on the captions and the text encoder, so callers may cache it and pass it back as the
        `prompt` of `sample_prior` or `decode` (those take conditional encodings, one row per caption or per image).

        Args:
            prompt (`str` or `list[str]`): the caption(s); longer than the tokenizer's length they are truncated with
                a warning.
            device (`torch.device`, *optional*, defaults to `None`): where to put the encodings (the pipeline's
                execution device when `None`).
            num_images_per_prompt (`int`, *optional*, defaults to 1): rows per caption (consecutive).
            do_classifier_free_guidance (`bool`, *optional*, defaults to `False`): prepend the empty caption's
                encodings (the unconditional half), as diffusers pipelines do.

        Returns:
            [`PromptEncodings`]: `(text_embeds (B, D), token_encodings (B, T, D), attention_mask (B, T))`, with
            `B = len(prompt) * num_images_per_prompt`, doubled with guidance (unconditional first). `text_embeds` are
            L2-normalised when `normalize_embeddings` is set; token encodings are the raw `last_hidden_state`.
        """
        prompts = check_prompt(prompt)
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        device = device or self._execution_device
        cond = self._encode_text(prompts, device).repeat_interleave(num_images_per_prompt)
        if do_classifier_free_guidance:
            return self._empty_prompt(cond.batch_size, device).concat(cond)
        return cond

    @torch.no_grad()
    def encode_image(self, image: PIL.Image.Image | list[PIL.Image.Image]) -> torch.Tensor:
        r"""
        CLIP image embeddings `z_i` of PIL images, shape `(B, D)`.

        They are the `image_embeds` of `CLIPVisionModelWithProjection` (the prior's training target), L2-normalised
        when the pipeline's `normalize_embeddings` is set (raw otherwise, as Karlo expects). Transparent images are
        composited over white; modes other than RGB/RGBA/L/LA/P/PA/CMYK/YCbCr raise a `ValueError`.
        """
        if self.image_encoder is None or self.feature_extractor is None:
            raise ValueError(
                "This pipeline has no image_encoder/feature_extractor (Karlo checkpoints ship without one), so it "
                "cannot embed images. Pass a CLIPVisionModelWithProjection and its image processor to the pipeline, "
                "or use prompts instead of images."
            )
        images = validate_pil_images(image)
        device = self._execution_device
        pixels = self.feature_extractor(images=images, return_tensors="pt").pixel_values
        pixels = pixels.to(device=device, dtype=self.image_encoder.dtype)
        image_embeds = self.image_encoder(pixels).image_embeds
        if self.config.normalize_embeddings:
            image_embeds = F.normalize(image_embeds, dim=-1)
        return image_embeds

    # ------------------------------------------------------------------------------------------------ prior

    @torch.inference_mode()
    def sample_prior(
        self,
        prompt: str | list[str] | PromptEncodings,
        num_images_per_prompt: int = 1,
        num_inference_steps: int = DEFAULT_PRIOR_STEPS,
        guidance_scale: float | None = None,
        sample_count: int = 1,
        generator: Generator = None,
        latents: torch.Tensor | None = None,
        scheduler: SchedulerMixin | None = None,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        guidance_interval: Sequence[float] | None = None,
    ) -> torch.Tensor:
        r"""
        Sample CLIP image embeddings for captions with the diffusion prior.

        Args:
            prompt (`str`, `list[str]` or [`PromptEncodings`]): captions, or their conditional encodings from
                `encode_prompt(..., do_classifier_free_guidance=False)` (one row per caption).
            num_images_per_prompt (`int`, *optional*, defaults to 1): embeddings per caption.
            num_inference_steps (`int`, *optional*, defaults to 10): prior denoising steps.
            guidance_scale (`float`, *optional*, defaults to `None`): classifier-free guidance scale (1 disables
                it; the unconditional branch sees the empty caption); `None` uses the pipeline's
                `prior_guidance_scale`.
            guidance_interval (`Sequence[float]`, *optional*, defaults to `None`): `(low, high)` noise levels
                where the prior is guided (see `__call__`); `None` uses the pipeline's `prior_guidance_interval`.
            sample_count (`int`, *optional*, defaults to 1): candidates per embedding; with 2 or more the one with
                the highest dot product with the caption's text embedding is kept (the paper's draw-2-keep-best).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*, defaults to `None`): one generator,
                or one per output embedding.
            latents (`torch.Tensor` of shape `(N * sample_count, D)`, *optional*, defaults to `None`): starting noise
                in the prior's standardised space (`N` = captions x `num_images_per_prompt`), candidates of an
                embedding consecutive.
            scheduler (`SchedulerMixin`, *optional*, defaults to `None`): a sampler to use instead of
                `prior_scheduler` for this call.
            callback_on_step_end (`Callable`, *optional*, defaults to `None`): called as
                `callback(pipe, step, timestep, callback_kwargs)` after every step; `callback_kwargs` holds `"stage"`
                (`"prior"`) and the requested tensors; a returned `"latents"` replaces the current latents.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, *optional*, defaults to `("latents",)`): tensors to
                pass to the callback.

        Returns:
            `torch.Tensor` of shape `(N, D)`: CLIP image embeddings (L2-normalised if `normalize_embeddings`).
        """
        device = self._execution_device
        cond = self._as_encodings(prompt, device)
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        check_positive_int(num_inference_steps, "num_inference_steps")
        check_positive_int(sample_count, "sample_count")
        guidance_scale = self._guidance_scale(guidance_scale, "prior")
        check_guidance(guidance_scale, "guidance_scale")
        guidance_interval = self._guidance_interval(guidance_interval, "prior")
        callback_on_step_end_tensor_inputs = self._check_callback(
            callback_on_step_end, callback_on_step_end_tensor_inputs
        )
        num_images = cond.batch_size * num_images_per_prompt
        check_generator(generator, num_images)
        dim = self.embedding_dim
        check_latents(latents, (num_images * sample_count, dim), "prior_latents")

        cond = cond.repeat_interleave(num_images_per_prompt * sample_count)  # (N * k) rows, candidates consecutive
        do_guidance = guidance_scale != 1.0
        text = self._empty_prompt(cond.batch_size, device).concat(cond) if do_guidance else cond
        dtype = self.prior.dtype
        if latents is None:
            # (N, k, D): with a generator list, image i's k candidates all come from generator[i].
            shape = (num_images, sample_count, dim)
            latents = draw_noise(shape, generator=generator, device=device, dtype=dtype).reshape(-1, dim)
        latents = latents.to(device=device, dtype=dtype)
        step_generator = generator
        if isinstance(generator, (list, tuple)) and sample_count > 1:
            step_generator = [g for g in generator for _ in range(sample_count)]

        caption_cache = CaptionKVCache()  # the caption tokens' keys and values, computed at the first step

        def predict(model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            rows = model_input.shape[0]  # the doubled batch, or the conditional half at an unguided step
            return self.prior(
                model_input,
                timestep=t,
                proj_embedding=conditional_half(text.text_embeds, rows).to(dtype),
                encoder_hidden_states=conditional_half(text.token_encodings, rows).to(dtype),
                attention_mask=conditional_half(text.attention_mask, rows),
                caption_cache=caption_cache,
            ).predicted_image_embedding

        latents = denoise(
            predict,
            working_copy(scheduler or self.prior_scheduler),
            latents=latents,
            num_inference_steps=num_inference_steps,
            generator=step_generator,
            guidance_scale=guidance_scale,
            guidance_interval=guidance_interval,
            callback_on_step_end=self._stage_callback("prior", callback_on_step_end),
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            progress_bar=self.progress_bar,
        )
        image_embeds = self.prior.post_process_latents(latents)  # back from the standardised space to CLIP's
        if self.config.normalize_embeddings:
            image_embeds = F.normalize(image_embeds, dim=-1)
        if sample_count > 1:
            candidates = image_embeds.reshape(num_images, sample_count, dim)
            text_embeds = cond.text_embeds.reshape(num_images, sample_count, dim)[:, :1].to(candidates.dtype)
            best = (candidates * text_embeds).sum(-1).argmax(dim=1)  # (N,): highest z_i · z_t
            image_embeds = candidates[torch.arange(num_images, device=device), best]
        return image_embeds

    # ------------------------------------------------------------------------------------------------ decoder

    @torch.inference_mode()
    def decode(
        self,
        image_embeds: torch.Tensor,
        prompt: str | list[str] | PromptEncodings | None = None,
        num_inference_steps: int = DEFAULT_DECODER_STEPS,
        guidance_scale: float | None = None,
        generator: Generator = None,
        latents: torch.Tensor | None = None,
        super_res_num_inference_steps: int = 10,
        super_res_latents: torch.Tensor | None = None,
        upscale: bool = True,
        output_type: str = "pil",
        scheduler: SchedulerMixin | None = None,
        super_res_scheduler: SchedulerMixin | None = None,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        super_res_second_num_inference_steps: int = 10,
        super_res_second_latents: torch.Tensor | None = None,
        super_res_second_scheduler: SchedulerMixin | None = None,
        guidance_interval: Sequence[float] | None = None,
    ) -> ImageOutput:
        r"""
        Generate images from CLIP image embeddings with the decoder, then (with `upscale`) the upsampler(s).

        Args:
            image_embeds (`torch.Tensor` of shape `(N, D)`): CLIP image embeddings `z_i`, one per image.
            prompt (`str`, `list[str]`, [`PromptEncodings`] or `None`, *optional*, defaults to `None`): the caption
                context. `None` uses the empty caption (what the decoder saw for its caption-dropped training
                samples); captions or encodings are repeated to `N` rows when `N` is a multiple of their count.
            num_inference_steps (`int`, *optional*, defaults to 10): decoder denoising steps.
            guidance_scale (`float`, *optional*, defaults to `None`): classifier-free guidance scale; the unconditional
                branch uses `text_proj`'s learned null image embedding and the empty caption. `None` uses the
                pipeline's `decoder_guidance_scale` (8.0 unless saved otherwise).
            guidance_interval (`Sequence[float]`, *optional*, defaults to `None`): `(low, high)` noise levels
                where the decoder is guided (see `__call__`); `None` uses the pipeline's `decoder_guidance_interval`.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*, defaults to `None`): one generator,
                or one per image.
            latents (`torch.Tensor` of shape `(N, 3, h, w)`, *optional*, defaults to `None`): decoder starting noise.
            super_res_num_inference_steps (`int`, *optional*, defaults to 10): first upsampler's denoising steps.
            super_res_latents (`torch.Tensor` of shape `(N, 3, H, W)`, *optional*, defaults to `None`): first
                upsampler's starting noise (`H, W` its output size).
            upscale (`bool`, *optional*, defaults to `True`): run the upsamplers; `False` returns the base images.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"` (the last
                stage's latents, unconverted: `(N, 3, H, W)` in [-1, 1]).
            scheduler (`SchedulerMixin`, *optional*, defaults to `None`): replaces `decoder_scheduler` for this call.
            super_res_scheduler (`SchedulerMixin`, *optional*, defaults to `None`): replaces the pipeline's
                `super_res_scheduler` for this call.
            callback_on_step_end (`Callable`, *optional*, defaults to `None`): see `sample_prior`; the stage is
                `"decoder"`, then `"super_res"` and `"super_res_second"`.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, *optional*, defaults to `("latents",)`): tensors to
                pass to the callback.
            super_res_second_num_inference_steps (`int`, *optional*, defaults to 10): second upsampler's denoising
                steps (used only when the pipeline has `super_res_second`).
            super_res_second_latents (`torch.Tensor` of shape `(N, 3, H2, W2)`, *optional*, defaults to `None`):
                second upsampler's starting noise.
            super_res_second_scheduler (`SchedulerMixin`, *optional*, defaults to `None`): replaces the pipeline's
                `super_res_second_scheduler` for this call.

        Returns:
            The images in `output_type` (base resolution without `upscale` or without an upsampler).
        """
        check_output_type(output_type)
        self._check_second_stage_inputs(super_res_second_num_inference_steps, super_res_second_latents)
        callbacks = dict(callback_on_step_end=callback_on_step_end,
                         callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs)
        base = self._decode(image_embeds, prompt=prompt, num_inference_steps=num_inference_steps,
                            guidance_scale=guidance_scale, generator=generator, latents=latents, scheduler=scheduler,
                            guidance_interval=guidance_interval,
                            **callbacks)
        if upscale and self.upsampler_stages:
            base = self._upscale(base, generator=generator, **self._per_stage_values(
                num_inference_steps=(super_res_num_inference_steps, super_res_second_num_inference_steps),
                latents=(super_res_latents, super_res_second_latents),
                schedulers=(super_res_scheduler, super_res_second_scheduler)), **callbacks)
        return postprocess_images(base, output_type)

    def _decode(
        self,
        image_embeds: torch.Tensor,
        *,
        num_inference_steps: int,
        guidance_scale: float | None,
        prompt: str | list[str] | PromptEncodings | None = None,
        generator: Generator = None,
        latents: torch.Tensor | None = None,
        scheduler: SchedulerMixin | None = None,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        known: KnownRegion | None = None,
        guidance_interval: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """The decoder loop; returns base images `(N, 3, h, w)` in [-1, 1] (inpainting outside `known.mask`)."""
        device = self._execution_device
        image_embeds = self._check_image_embeds(image_embeds).to(device)
        num_images = image_embeds.shape[0]
        check_positive_int(num_inference_steps, "decoder_num_inference_steps")
        guidance_scale = self._guidance_scale(guidance_scale, "decoder")
        check_guidance(guidance_scale, "decoder_guidance_scale")
        guidance_interval = self._guidance_interval(guidance_interval, "decoder")
        check_generator(generator, num_images)
        callback_on_step_end_tensor_inputs = self._check_callback(
            callback_on_step_end, callback_on_step_end_tensor_inputs
        )
        channels = self.decoder.config.in_channels
        shape = (num_images, channels, *self.base_size)
        check_latents(latents, shape, "decoder_latents")

        condition = self._decoder_condition(image_embeds, prompt, guidance_scale)
        dtype = self.decoder.dtype
        if latents is None:
            latents = draw_noise(shape, generator=generator, device=device, dtype=dtype)
        latents = latents.to(device=device, dtype=dtype)
        latents = denoise(
            functools.partial(self._decoder_forward, condition=condition),
            working_copy(scheduler or self.decoder_scheduler),
            latents=latents,
            num_inference_steps=num_inference_steps,
            generator=generator,
            guidance_scale=guidance_scale,
            guidance_interval=guidance_interval,
            callback_on_step_end=self._stage_callback("decoder", callback_on_step_end),
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            progress_bar=self.progress_bar,
            known=known,
        )
        return latents.clamp(-1, 1)

    def _decoder_condition(
        self, image_embeds: torch.Tensor, prompt: str | list[str] | PromptEncodings | None, guidance_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoder's cross-attention context, additive time embedding and context mask (doubled for guidance)."""
        device = self._execution_device
        num_images = image_embeds.shape[0]
        if prompt is None:
            cond = self._empty_prompt(num_images, device)
        else:
            cond = repeat_to(self._as_encodings(prompt, device), num_images)
        do_guidance = guidance_scale != 1.0
        text = self._empty_prompt(num_images, device).concat(cond) if do_guidance else cond
        proj_dtype = self.text_proj.dtype
        context, time_embeddings = self.text_proj(
            image_embeddings=image_embeds.to(device=device, dtype=proj_dtype),
            prompt_embeds=text.text_embeds.to(proj_dtype),
            text_encoder_hidden_states=text.token_encodings.to(proj_dtype),
            do_classifier_free_guidance=do_guidance,  # prepends text_proj's learned null image embedding
        )
        # The extra image tokens come first in the context and are always attended to.
        mask = F.pad(text.attention_mask, (self.text_proj.config.clip_extra_context_tokens, 0), value=True)
        dtype = self.decoder.dtype
        return context.to(dtype), time_embeddings.to(dtype), mask

    def _decoder_forward(
        self, model_input: torch.Tensor, t: torch.Tensor, condition: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """One decoder evaluation (noise, plus variance channels for learned-variance decoders) on `condition`."""
        rows = model_input.shape[0]  # the doubled batch, or the conditional half at an unguided step
        context, time_embeddings, mask = (conditional_half(c, rows) for c in condition)
        return self.decoder(model_input, t, encoder_hidden_states=context, class_labels=time_embeddings,
                            attention_mask=mask).sample

    def _guidance_scale(self, scale: float | None, stage: str) -> float:
        """A call's guidance scale of `stage`, or the pipeline's saved one when the call passes none (the decoder's is
        8.0 in folders saved before it was saved)."""
        return self.config[f"{stage}_guidance_scale"] if scale is None else scale

    def _guidance_interval(self, interval: Sequence[float] | None, stage: str) -> tuple[float, float] | None:
        """A call's checked guidance interval of `stage`, or the pipeline's saved one when the call passes none."""
        if interval is None:
            interval = self.config[f"{stage}_guidance_interval"]
        check_guidance_interval(interval)
        return as_interval(interval)

    # ------------------------------------------------------------------------------------------------ call

    def check_inputs(
        self,
        prompt: str | list[str] | PromptEncodings,
        num_images_per_prompt: int,
        prior_num_inference_steps: int,
        decoder_num_inference_steps: int,
        super_res_num_inference_steps: int,
        prior_guidance_scale: float | None,
        decoder_guidance_scale: float,
        prior_sample_count: int,
        generator: Generator,
        prior_latents: torch.Tensor | None,
        decoder_latents: torch.Tensor | None,
        super_res_latents: torch.Tensor | None,
        output_type: str,
        callback_on_step_end: Callback | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
        super_res_second_num_inference_steps: int = 10,
        super_res_second_latents: torch.Tensor | None = None,
    ) -> None:
        """Validate every argument of `__call__` before any work, with a `ValueError`/`TypeError` naming the culprit."""
        if isinstance(prompt, PromptEncodings):
            check_encodings(prompt, self.embedding_dim)
            num_prompts = prompt.batch_size
        else:
            num_prompts = len(check_prompt(prompt))
        check_positive_int(num_images_per_prompt, "num_images_per_prompt")
        check_positive_int(prior_num_inference_steps, "prior_num_inference_steps")
        check_positive_int(decoder_num_inference_steps, "decoder_num_inference_steps")
        check_positive_int(super_res_num_inference_steps, "super_res_num_inference_steps")
        if prior_guidance_scale is not None:  # None: the pipeline's saved default
            check_guidance(prior_guidance_scale, "prior_guidance_scale")
        check_guidance(decoder_guidance_scale, "decoder_guidance_scale")
        check_positive_int(prior_sample_count, "prior_sample_count")
        num_images = num_prompts * num_images_per_prompt
        check_generator(generator, num_images)
        check_latents(prior_latents, (num_images * prior_sample_count, self.embedding_dim), "prior_latents")
        decoder_shape = (num_images, self.decoder.config.in_channels, *self.base_size)
        check_latents(decoder_latents, decoder_shape, "decoder_latents")
        if super_res_latents is not None and self.super_res_first is None:
            raise ValueError("super_res_latents were given, but this pipeline has no upsampler.")
        self._check_second_stage_inputs(super_res_second_num_inference_steps, super_res_second_latents)
        for stage, latents in zip(self.upsampler_stages, (super_res_latents, super_res_second_latents)):
            shape = (num_images, stage.unet.config.in_channels // 2, *stage.size)
            check_latents(latents, shape, f"{stage.name}_latents")
        check_output_type(output_type)
        self._check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs)

    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str] | PromptEncodings,
        num_images_per_prompt: int = 1,
        prior_num_inference_steps: int = DEFAULT_PRIOR_STEPS,
        decoder_num_inference_steps: int = DEFAULT_DECODER_STEPS,
        super_res_num_inference_steps: int = 10,
        prior_guidance_scale: float | None = None,
        decoder_guidance_scale: float | None = None,
        prior_sample_count: int = 1,
        generator: Generator = None,
        prior_latents: torch.Tensor | None = None,
        decoder_latents: torch.Tensor | None = None,
        super_res_latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        super_res_second_num_inference_steps: int = 10,
        super_res_second_latents: torch.Tensor | None = None,
        prior_guidance_interval: Sequence[float] | None = None,
        decoder_guidance_interval: Sequence[float] | None = None,
    ) -> UnCLIPPipelineOutput | tuple:
        r"""
        Text-to-image: caption → prior → CLIP image embedding → decoder → upsampler(s).

        Args:
            prompt (`str`, `list[str]` or [`PromptEncodings`]): the caption(s), longer than the tokenizer's length
                (77 tokens for CLIP) truncated with a warning; or their precomputed conditional encodings from
                `encode_prompt(..., do_classifier_free_guidance=False)` (one row per caption), as diffusers'
                `UnCLIPPipeline` takes `text_model_output`/`text_attention_mask`.
            num_images_per_prompt (`int`, *optional*, defaults to 1): images per caption.
            prior_num_inference_steps (`int`, *optional*, defaults to 10): prior denoising steps.
            decoder_num_inference_steps (`int`, *optional*, defaults to 10): decoder denoising steps.
            super_res_num_inference_steps (`int`, *optional*, defaults to 10): first upsampler's denoising steps.
            prior_guidance_scale (`float`, *optional*, defaults to `None`): prior classifier-free guidance (1 =
                off); `None` uses the pipeline's `prior_guidance_scale` (saved in `model_index.json`).
            decoder_guidance_scale (`float`, *optional*, defaults to `None`): decoder classifier-free guidance (1 =
                off); `None` uses the pipeline's `decoder_guidance_scale` (8.0 unless saved otherwise).
            prior_sample_count (`int`, *optional*, defaults to 1): prior candidates per image; 2 is the paper's "draw
                two, keep the one closer to the caption" trick.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*, defaults to `None`): one generator,
                or one per image (`len(prompt) * num_images_per_prompt`), used for every noise draw of every stage.
            prior_latents (`torch.Tensor` of shape `(N * prior_sample_count, D)`, *optional*, defaults to `None`):
                prior starting noise in its standardised space.
            decoder_latents (`torch.Tensor` of shape `(N, 3, h, w)`, *optional*, defaults to `None`): decoder noise.
            super_res_latents (`torch.Tensor` of shape `(N, 3, H, W)`, *optional*, defaults to `None`): first
                upsampler's noise (`H, W` its output size).
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"` (`(N, H, W, 3)` in [0, 1]),
                `"pt"` (`(N, 3, H, W)` in [0, 1]) or `"latent"` (the last stage's latents, unconverted: `(N, 3, H, W)`
                in [-1, 1]; `base_images` are the decoder's).
            return_dict (`bool`, *optional*, defaults to `True`): return an [`UnCLIPPipelineOutput`] instead of the
                tuple `(images, image_embeds, base_images)`.
            callback_on_step_end (`Callable`, *optional*, defaults to `None`): called as
                `callback(pipe, step, timestep, callback_kwargs)` after every step of every stage;
                `callback_kwargs["stage"]` is `"prior"`, `"decoder"`, `"super_res"` or `"super_res_second"`; a
                returned `"latents"` replaces the current latents.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, *optional*, defaults to `("latents",)`): tensors to
                pass to the callback.
            super_res_second_num_inference_steps (`int`, *optional*, defaults to 10): second upsampler's denoising
                steps (used only when the pipeline has `super_res_second`; its strength is the saved
                `super_res_second_strength`).
            super_res_second_latents (`torch.Tensor` of shape `(N, 3, H2, W2)`, *optional*, defaults to `None`):
                second upsampler's noise (`H2, W2` = `output_size`).
            prior_guidance_interval (`Sequence[float]`, *optional*, defaults to `None`): `(low, high)`: guide the
                prior only at steps whose noise level sigma lies in it, the other steps run the conditional model
                alone (cheaper); `None` uses the pipeline's saved `prior_guidance_interval` (itself `None`: every
                step); `(0, float("inf"))` guides every step.
            decoder_guidance_interval (`Sequence[float]`, *optional*, defaults to `None`): the same for the decoder.

        Returns:
            [`UnCLIPPipelineOutput`] (or a tuple): final images, the CLIP image embeddings used, and the base images.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        prior_guidance_scale = self._guidance_scale(prior_guidance_scale, "prior")
        decoder_guidance_scale = self._guidance_scale(decoder_guidance_scale, "decoder")
        check_guidance_interval(prior_guidance_interval)  # before any stage runs
        check_guidance_interval(decoder_guidance_interval)
        self.check_inputs(
            prompt=prompt,
            num_images_per_prompt=num_images_per_prompt,
            prior_num_inference_steps=prior_num_inference_steps,
            decoder_num_inference_steps=decoder_num_inference_steps,
            super_res_num_inference_steps=super_res_num_inference_steps,
            prior_guidance_scale=prior_guidance_scale,
            decoder_guidance_scale=decoder_guidance_scale,
            prior_sample_count=prior_sample_count,
            generator=generator,
            prior_latents=prior_latents,
            decoder_latents=decoder_latents,
            super_res_latents=super_res_latents,
            output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            super_res_second_num_inference_steps=super_res_second_num_inference_steps,
            super_res_second_latents=super_res_second_latents,
        )
        callbacks = dict(callback_on_step_end=callback_on_step_end,
                         callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs)
        cond = self._as_encodings(prompt, self._execution_device)
        image_embeds = self.sample_prior(
            cond,
            num_images_per_prompt=num_images_per_prompt,
            num_inference_steps=prior_num_inference_steps,
            guidance_scale=prior_guidance_scale,
            sample_count=prior_sample_count,
            generator=generator,
            latents=prior_latents,
            guidance_interval=prior_guidance_interval,
            **callbacks,
        )
        base = self._decode(
            image_embeds,
            prompt=cond.repeat_interleave(num_images_per_prompt),
            num_inference_steps=decoder_num_inference_steps,
            guidance_scale=decoder_guidance_scale,
            generator=generator,
            latents=decoder_latents,
            guidance_interval=decoder_guidance_interval,
            **callbacks,
        )
        return self._finish(image_embeds, base, super_res_num_inference_steps=super_res_num_inference_steps,
                            generator=generator, super_res_latents=super_res_latents, output_type=output_type,
                            return_dict=return_dict,
                            super_res_second_num_inference_steps=super_res_second_num_inference_steps,
                            super_res_second_latents=super_res_second_latents, **callbacks)

    def _finish(
        self,
        image_embeds: torch.Tensor,
        base: torch.Tensor,
        *,
        super_res_num_inference_steps: int,
        generator: Generator,
        super_res_latents: torch.Tensor | None,
        output_type: str,
        return_dict: bool,
        callback_on_step_end: Callback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        super_res_second_num_inference_steps: int = 10,
        super_res_second_latents: torch.Tensor | None = None,
    ) -> UnCLIPPipelineOutput | tuple:
        """Upsample base images through the cascade (when there is one), convert both and pack the output."""
        self._check_second_stage_inputs(super_res_second_num_inference_steps, super_res_second_latents)
        images = self._upscale(base, generator=generator, callback_on_step_end=callback_on_step_end,
                               callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                               **self._per_stage_values(
                                   num_inference_steps=(super_res_num_inference_steps,
                                                        super_res_second_num_inference_steps),
                                   latents=(super_res_latents, super_res_second_latents)))
        self.maybe_free_model_hooks()
        output = (postprocess_images(images, output_type), image_embeds, postprocess_images(base, output_type))
        return UnCLIPPipelineOutput(*output) if return_dict else output

    # ------------------------------------------------------------------------------------------------ helpers

    def _per_stage_values(self, **first_and_second: tuple[Any, Any]) -> dict[str, list[Any]]:
        """Per-stage call arguments `(first stage's, second stage's)` cut to the stages this pipeline has."""
        count = len(self.upsampler_stages)
        return {name: list(values)[:count] for name, values in first_and_second.items()}

    def _check_second_stage_inputs(self, num_inference_steps: int, latents: torch.Tensor | None) -> None:
        """`super_res_second_*` arguments: positive steps; no latents for a pipeline without the second stage."""
        check_positive_int(num_inference_steps, "super_res_second_num_inference_steps")
        if latents is not None and len(self.upsampler_stages) < 2:
            raise ValueError("super_res_second_latents were given, but this pipeline has no second upsampler "
                             "(super_res_second is None).")

    def _as_encodings(self, prompt: str | list[str] | PromptEncodings, device: torch.device) -> PromptEncodings:
        if isinstance(prompt, PromptEncodings):
            check_encodings(prompt, self.embedding_dim)
            return PromptEncodings(*(t.to(device) for t in prompt))
        return self._encode_text(check_prompt(prompt), device)

    def _check_image_embeds(self, image_embeds: Any) -> torch.Tensor:
        if not isinstance(image_embeds, torch.Tensor):
            raise TypeError(f"image_embeds must be a torch.Tensor, got {type(image_embeds).__name__}.")
        if image_embeds.ndim != 2 or image_embeds.shape[1] != self.embedding_dim or image_embeds.shape[0] == 0:
            raise ValueError(
                f"image_embeds must have shape (N, {self.embedding_dim}), got {tuple(image_embeds.shape)}."
            )
        if not torch.all(torch.isfinite(image_embeds)):
            raise ValueError("image_embeds contain NaN or infinite values.")
        return image_embeds

    def _stage_callback(self, stage: str, callback: Callback | None) -> StepCallback | None:
        """`denoise`'s step callback: calls a pipeline callback as `callback(pipe, step, t, {"stage": ..., ...})`."""
        if callback is None:
            return None
        return lambda step, t, callback_kwargs: callback(self, step, t, {"stage": stage, **callback_kwargs})

    def _check_callback(self, callback: Callback | None, tensor_inputs: Sequence[str]) -> Sequence[str]:
        if isinstance(callback, (PipelineCallback, MultiPipelineCallbacks)):
            tensor_inputs = callback.tensor_inputs
        if callback is not None and not callable(callback):
            raise TypeError(f"callback_on_step_end must be callable, got {type(callback).__name__}.")
        unknown = [name for name in tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs {unknown} are not among {self._callback_tensor_inputs}."
            )
        return tensor_inputs
