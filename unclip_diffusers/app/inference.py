"""The functions behind each tab: check the inputs, run the shared pipeline for one request, report progress.

Every request gets its own `torch.Generator` (seeded from the request, so a seed reproduces its images) and its own
scheduler objects on a lightweight copy of the pipeline that shares the model weights. Schedulers keep per-run
state (timesteps, solver history), so concurrent requests must never share them; the weights are only read.

The functions are generators: Gradio streams each `yield` to the page, which is how the base-resolution image shows
up before the upsampled one. Bad input raises `gr.Error` with one sentence; notices (a cut prompt, a downscaled
upload) are shown with `gr.Warning` and also returned as text, so API clients see them too.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import torch
from PIL import Image

from .animation import GifStore
from .images import SanitizedImage, sanitize_image
from .schedulers import DEFAULT_SCHEDULER, SCHEDULERS, make_scheduler
from .validation import InputError, check_number, check_prompt, resolve_seed

logger = logging.getLogger(__name__)

SCHEDULER_KEYS = ("prior_scheduler", "decoder_scheduler", "super_res_scheduler")
SOURCES = ("Prompt", "Image")  # what an interpolation endpoint or a text diff starts from


def user_errors(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Turn `InputError`s into `gr.Error`s with the same message and unexpected failures into a short `gr.Error`
    (the traceback goes to the server log, not to the user)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from fn(*args, **kwargs)
        except gr.Error:
            raise
        except InputError as error:
            raise gr.Error(str(error), print_exception=False) from error
        except Exception as error:  # noqa: BLE001 - anything else is our bug; log it and tell the user briefly
            logger.exception("Generation failed")
            raise gr.Error(f"Generation failed: {type(error).__name__}: {error}") from error

    return wrapper


class Notes:
    """Collects what the user should know about a request: each note is shown as a `gr.Warning` and returned."""

    def __init__(self, initial: list[str] | None = None):
        self.items: list[str] = list(initial or [])

    def add(self, note: str | None) -> None:
        if note:
            self.items.append(note)
            gr.Warning(note)

    def text(self) -> str:
        return "\n".join(f"- {item}" for item in self.items)


class _StageProgress:
    """`callback_on_step_end` for one sampling stage that moves the request's `gr.Progress` bar."""

    def __init__(self, progress: gr.Progress | None, desc: str, total: int):
        self.progress, self.desc, self.total = progress, desc, total
        if progress is not None:
            progress((0, total), desc=desc)

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.progress is not None:
            self.progress((min(step + 1, self.total), self.total), desc=self.desc)
        return callback_kwargs


class UnCLIPService:
    """One shared pipeline served to many concurrent requests.

    Args:
        pipe: an `UnCLIPPipeline` (already on its device).
        placeholder (`bool`, defaults to `False`): the weights are random; every result carries a note saying so.
        gif_store (`GifStore`, *optional*): where interpolation GIFs are written.
    """

    def __init__(self, pipe: Any, placeholder: bool = False, gif_store: GifStore | None = None):
        self.pipe = pipe
        self.placeholder = placeholder
        self.gifs = gif_store or GifStore()

    # ----------------------------------------------------------------------------------------------- helpers
    @property
    def has_super_res(self) -> bool:
        """Whether the pipeline has an upsampler (otherwise the base image is the final image)."""
        return getattr(self.pipe, "super_res_first", None) is not None

    def request_pipeline(self, scheduler: str) -> Any:
        """A copy of the shared pipeline for one request: same modules (no weights copied), fresh schedulers."""
        if scheduler not in SCHEDULERS:
            raise InputError(f"Unknown scheduler {scheduler!r}; choose one of: {', '.join(SCHEDULERS)}.")
        components = dict(self.pipe.components)
        for key in SCHEDULER_KEYS:
            if components.get(key) is not None:
                components[key] = make_scheduler(scheduler, components[key].config)
        pipe = type(self.pipe)(**components)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @staticmethod
    def generator(seed: int) -> torch.Generator:
        """A fresh CPU generator for one request (CPU noise is the same on every device, so seeds are portable)."""
        return torch.Generator(device="cpu").manual_seed(seed)

    def _notes(self) -> Notes:
        notes = Notes()
        if self.placeholder:
            notes.items.append("These images come from a randomly initialised model (no trained weights loaded).")
        return notes

    @staticmethod
    def _load_image(image: Any, what: str, notes: Notes) -> Image.Image:
        try:
            sanitized: SanitizedImage = sanitize_image(image)
        except ValueError as error:
            raise InputError(f"The {what}: {error}" if image is not None else f"No {what} was given: upload one.") from error
        for notice in sanitized.notices:
            notes.add(f"The {what}: {notice}")
        return sanitized.image

    def _source(self, kind: str, prompt: Any, image: Any, what: str, notes: Notes) -> str | Image.Image:
        """An interpolation endpoint or text-diff source: a checked prompt or a sanitised image."""
        if kind not in SOURCES:
            raise InputError(f"The {what} must be one of {SOURCES}, got {kind!r}.")
        if kind == "Image":
            return self._load_image(image, what + " image", notes)
        prompt, notice = check_prompt(prompt, what + " prompt")
        notes.add(notice)
        return prompt

    # ------------------------------------------------------------------------------------------------- tabs
    @user_errors
    def text_to_image(
        self,
        prompt: str,
        seed: int = 0,
        randomize_seed: bool = False,
        num_images: int = 2,
        prior_steps: int = 20,
        decoder_steps: int = 20,
        super_res_steps: int = 7,
        prior_guidance: float = 4.0,
        decoder_guidance: float = 8.0,
        scheduler: str = DEFAULT_SCHEDULER,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[list[Image.Image], int, str]]:
        """Prompt → images. Yields the base-resolution decoder output first, then the upsampled images.

        Yields `(images, seed_used, notes)`.
        """
        notes = self._notes()
        prompt, notice = check_prompt(prompt)
        notes.add(notice)
        num_images = check_number("num_images", num_images)
        prior_steps, decoder_steps = check_number("prior_steps", prior_steps), check_number("decoder_steps", decoder_steps)
        super_res_steps = check_number("super_res_steps", super_res_steps)
        prior_guidance = check_number("prior_guidance", prior_guidance)
        decoder_guidance = check_number("decoder_guidance", decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler), self.generator(seed)

        image_embeds = pipe.sample_prior(
            prompt,
            num_images_per_prompt=num_images,
            num_inference_steps=prior_steps,
            guidance_scale=prior_guidance,
            generator=generator,
            callback_on_step_end=_StageProgress(progress, "Prior: text → CLIP image embedding", prior_steps),
        )
        base = pipe.decode(
            image_embeds,
            prompt=prompt,
            num_inference_steps=decoder_steps,
            guidance_scale=decoder_guidance,
            generator=generator,
            upscale=False,
            output_type="pt",
            callback_on_step_end=_StageProgress(progress, "Decoder: embedding → base image", decoder_steps),
        )
        yield from self._base_then_upsampled(pipe, base, super_res_steps, generator, seed, notes, progress)

    @user_errors
    def variations(
        self,
        image: Any,
        seed: int = 0,
        randomize_seed: bool = False,
        num_images: int = 2,
        decoder_steps: int = 20,
        super_res_steps: int = 7,
        decoder_guidance: float = 8.0,
        scheduler: str = DEFAULT_SCHEDULER,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[list[Image.Image], int, str]]:
        """Image → new images decoded from its CLIP image embedding. Yields base images first, then upsampled ones.

        Yields `(images, seed_used, notes)`.
        """
        notes = self._notes()
        image = self._load_image(image, "input image", notes)
        num_images = check_number("num_images", num_images)
        decoder_steps = check_number("decoder_steps", decoder_steps)
        super_res_steps = check_number("super_res_steps", super_res_steps)
        decoder_guidance = check_number("decoder_guidance", decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler), self.generator(seed)

        progress(0, desc="CLIP: encoding the image")
        image_embeds = pipe.encode_image(image).repeat_interleave(num_images, dim=0)
        base = pipe.decode(
            image_embeds,
            prompt=None,
            num_inference_steps=decoder_steps,
            guidance_scale=decoder_guidance,
            generator=generator,
            upscale=False,
            output_type="pt",
            callback_on_step_end=_StageProgress(progress, "Decoder: embedding → base image", decoder_steps),
        )
        yield from self._base_then_upsampled(pipe, base, super_res_steps, generator, seed, notes, progress)

    def _base_then_upsampled(
        self, pipe: Any, base: torch.Tensor, super_res_steps: int, generator: torch.Generator, seed: int,
        notes: Notes, progress: gr.Progress,
    ) -> Iterator[tuple[list[Image.Image], int, str]]:
        """Yield the base images, then (if the pipeline has an upsampler) the upsampled ones."""
        base_images = _to_pil(base)
        if not self.has_super_res:
            yield base_images, seed, notes.text()
            return
        size = base_images[0].size
        yield base_images, seed, notes.text() + f"\n- Base {size[0]}×{size[1]} images; upsampling…"
        final = pipe.super_resolve(
            base,
            num_inference_steps=super_res_steps,
            generator=generator,
            output_type="pil",
            callback_on_step_end=_StageProgress(progress, "Upsampler: base → full resolution", super_res_steps),
        )
        yield list(final), seed, notes.text()

    @user_errors
    def interpolate(
        self,
        start_kind: str,
        start_prompt: str,
        start_image: Any,
        end_kind: str,
        end_prompt: str,
        end_image: Any,
        num_frames: int = 7,
        seed: int = 0,
        randomize_seed: bool = False,
        prior_steps: int = 20,
        decoder_steps: int = 20,
        super_res_steps: int = 7,
        prior_guidance: float = 4.0,
        decoder_guidance: float = 8.0,
        scheduler: str = DEFAULT_SCHEDULER,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[list[tuple[Image.Image, str]], str, int, str]]:
        """A path between two prompts, two images, or a prompt and an image, with one decoder noise for all frames.

        Yields `(frames with captions, gif_path, seed_used, notes)`.
        """
        notes = self._notes()
        start = self._source(start_kind, start_prompt, start_image, "start", notes)
        end = self._source(end_kind, end_prompt, end_image, "end", notes)
        num_frames = check_number("num_frames", num_frames)
        steps = {name: check_number(name, value) for name, value in [
            ("prior_steps", prior_steps), ("decoder_steps", decoder_steps), ("super_res_steps", super_res_steps),
            ("prior_guidance", prior_guidance), ("decoder_guidance", decoder_guidance)]}
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler), self.generator(seed)

        progress(0, desc=f"Interpolating {num_frames} frames")
        frames = pipe.interpolate(
            start,
            end,
            num_frames,
            prior_num_inference_steps=steps["prior_steps"],
            decoder_num_inference_steps=steps["decoder_steps"],
            super_res_num_inference_steps=steps["super_res_steps"],
            prior_guidance_scale=steps["prior_guidance"],
            decoder_guidance_scale=steps["decoder_guidance"],
            generator=generator,
            output_type="pil",
        ).images
        gif = self.gifs.save(frames)
        captions = [f"{i / (num_frames - 1):.2f}" for i in range(num_frames)]
        yield list(zip(frames, captions)), gif, seed, notes.text()

    @user_errors
    def text_diff(
        self,
        source_kind: str,
        source_prompt: str,
        source_image: Any,
        base_prompt: str,
        target_prompt: str,
        amount: float = 0.5,
        seed: int = 0,
        randomize_seed: bool = False,
        num_images: int = 2,
        prior_steps: int = 20,
        decoder_steps: int = 20,
        super_res_steps: int = 7,
        prior_guidance: float = 4.0,
        decoder_guidance: float = 8.0,
        scheduler: str = DEFAULT_SCHEDULER,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[list[Image.Image], int, str]]:
        """Move an image (or a prompt's image) toward a target description by `amount` along the CLIP text diff.

        `base_prompt` describes the source; for a prompt source it may be left empty to reuse that prompt.
        Yields `(images, seed_used, notes)`.
        """
        notes = self._notes()
        source = self._source(source_kind, source_prompt, source_image, "source", notes)
        if isinstance(source, str) and not (base_prompt or "").strip():
            base_prompt = source
        base_prompt, notice = check_prompt(base_prompt, "description of the source")
        notes.add(notice)
        target_prompt, notice = check_prompt(target_prompt, "target description")
        notes.add(notice)
        amount = check_number("amount", amount)
        num_images = check_number("num_images", num_images)
        steps = {name: check_number(name, value) for name, value in [
            ("prior_steps", prior_steps), ("decoder_steps", decoder_steps), ("super_res_steps", super_res_steps),
            ("prior_guidance", prior_guidance), ("decoder_guidance", decoder_guidance)]}
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler), self.generator(seed)

        progress(0, desc="Text diff")
        images = pipe.text_diff(
            source,
            base_prompt,
            target_prompt,
            amount,
            num_images_per_prompt=num_images,
            prior_num_inference_steps=steps["prior_steps"],
            decoder_num_inference_steps=steps["decoder_steps"],
            super_res_num_inference_steps=steps["super_res_steps"],
            prior_guidance_scale=steps["prior_guidance"],
            decoder_guidance_scale=steps["decoder_guidance"],
            generator=generator,
            output_type="pil",
        ).images
        yield list(images), seed, notes.text()


def _to_pil(images: torch.Tensor) -> list[Image.Image]:
    """`(B, 3, H, W)` images in [-1, 1] → PIL images."""
    array = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in array]


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether `fn` takes a keyword argument `name` (so optional pipeline features degrade gracefully)."""
    parameters = inspect.signature(fn).parameters
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
