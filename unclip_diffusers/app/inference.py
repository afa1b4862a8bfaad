"""The functions behind each tab: check the inputs, run the shared pipeline for one request, report progress.

Every request gets its own `torch.Generator` (seeded from the request, so a seed reproduces its images) and a
shallow copy of the pipeline that shares the model weights but has its own schedulers. Schedulers keep per-run state
(timesteps, solver history), so concurrent requests must never share them; the weights are only read.

The functions are generators: Gradio streams each `yield` to the page, which is how the base-resolution image shows
up before the upsampled one. Bad input raises `gr.Error` with one sentence; notices (a prompt longer than the model
reads, a downscaled upload) are shown with `gr.Warning` and also returned as text, so API clients see them too.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import torch
from PIL import Image

from .animation import GifStore
from .images import sanitize_image
from .masks import check_painted, editor_image_and_mask, load_mask
from .schedulers import DEFAULT_SCHEDULER, SCHEDULERS, make_scheduler
from .torch_thread import TorchThread
from unclip_diffusers.pipelines.mixing import check_mix_weights
from unclip_diffusers.pipelines.sampling import steps_for_strength

from .validation import LIMITS, InputError, check_number, check_prompt, cut_prompt_note, resolve_seed

logger = logging.getLogger(__name__)

SCHEDULER_KEYS = ("prior_scheduler", "decoder_scheduler", "super_res_scheduler", "super_res_second_scheduler")
SOURCES = ("Prompt", "Image")  # what an interpolation endpoint, a text-diff source or a mix input is
MIX_SLOTS = 4  # inputs of the Mix tab
STAGE_SETTINGS = {  # app setting -> the pipeline's `__call__` argument it maps to
    "prior_steps": "prior_num_inference_steps",
    "decoder_steps": "decoder_num_inference_steps",
    "super_res_steps": "super_res_num_inference_steps",
    "prior_guidance": "prior_guidance_scale",
    "decoder_guidance": "decoder_guidance_scale",
}
STAGE_NAMES = {"prior": "Prior: text → CLIP image embedding", "decoder": "Decoder: embedding → base image",
               "super_res": "Upsampler: base → full resolution",
               "super_res_second": "Second upsampler: → final resolution"}

Images = list[Image.Image]
Captioned = list[tuple[Image.Image, str]]


def user_errors(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Turn `InputError`s and the pipeline's `ValueError`s (written to be read by users) into `gr.Error`s with the same
    message, and unexpected failures into a short `gr.Error` (the traceback goes to the server log, not the user)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            steps = fn(*args, **kwargs)
            torch_thread = getattr(args[0], "torch_thread", None) if args else None
            yield from steps if torch_thread is None else torch_thread.iterate(steps)  # each step on that thread
        except gr.Error:
            raise
        except InputError as error:
            raise gr.Error(str(error), print_exception=False) from error
        except ValueError as error:  # the pipeline's own checks (e.g. a checkpoint without an image encoder)
            logger.warning("Request refused by the pipeline: %s", error)
            raise gr.Error(str(error), print_exception=False) from error
        except Exception as error:  # noqa: BLE001 - anything else is a bug: log it, tell the user briefly
            logger.exception("Generation failed")
            raise gr.Error(f"Generation failed: {type(error).__name__}: {error}") from error

    return wrapper


def pipeline_defaults(pipe: Any) -> dict[str, float]:
    """Step counts and guidance scales from the pipeline's own `__call__` defaults (so the app follows the tuned
    defaults), where a default of `None` means the value saved in the pipeline's config (e.g. the checkpoint's
    `prior_guidance_scale`), falling back to `validation.LIMITS` for anything neither names."""
    parameters = inspect.signature(type(pipe).__call__).parameters
    config = getattr(pipe, "config", None) or {}
    defaults = {}
    for setting, argument in STAGE_SETTINGS.items():
        value = parameters[argument].default if argument in parameters else inspect.Parameter.empty
        if value is None:
            value = config.get(argument, inspect.Parameter.empty)
        limit = LIMITS[setting]
        ok = isinstance(value, (int, float)) and limit.minimum <= value <= limit.maximum
        defaults[setting] = value if ok else limit.default
    return defaults


class Notes:
    """What the user should know about a request: each note is shown as a `gr.Warning` and returned as text."""

    def __init__(self, initial: list[str] | None = None):
        self.items: list[str] = list(initial or [])

    def add(self, note: str | None) -> None:
        if note:
            self.items.append(note)
            gr.Warning(note)

    def text(self, *extra: str) -> str:
        return "\n".join(f"- {item}" for item in [*self.items, *extra])


class StageProgress:
    """A `callback_on_step_end` that moves the request's `gr.Progress` bar, one bar per sampling stage."""

    def __init__(self, progress: gr.Progress | None, totals: dict[str, int]):
        self.progress, self.totals = progress, totals

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        stage = callback_kwargs.get("stage", "")
        total = self.totals.get(stage, step + 1)
        if self.progress is not None:
            self.progress((min(step + 1, total), total), desc=STAGE_NAMES.get(stage, stage), unit="steps")
        return {}


class UnCLIPService:
    """One shared pipeline served to many concurrent requests.

    Args:
        pipe: an `UnCLIPPipeline` (already on its device).
        placeholder (`bool`, defaults to `False`): the weights are random; every result carries a note saying so.
        gif_store (`GifStore`, *optional*): where interpolation GIFs are written.
        torch_thread (`TorchThread`, *optional*): run every step of every request on this one thread (the server's
            setting, `torch_thread.py`); `None` runs them in the calling thread.
    """

    def __init__(self, pipe: Any, placeholder: bool = False, gif_store: GifStore | None = None,
                 torch_thread: TorchThread | None = None):
        self.pipe = pipe
        self.placeholder = placeholder
        self.torch_thread = torch_thread
        self.gifs = gif_store or GifStore()
        self.defaults = pipeline_defaults(pipe)

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def has_super_res(self) -> bool:
        """Whether the pipeline has an upsampler (otherwise the base image is the final image)."""
        return getattr(self.pipe, "super_res_first", None) is not None

    def request_pipeline(self, scheduler: str, progress_bars: bool = False) -> Any:
        """A shallow copy of the shared pipeline for one request: the same modules (no weights copied), its own
        schedulers of kind `scheduler` and its own progress-bar setting. The shared pipeline is never modified."""
        if scheduler not in SCHEDULERS:
            raise InputError(f"Unknown scheduler {scheduler!r}; choose one of: {', '.join(SCHEDULERS)}.")
        pipe = copy.copy(self.pipe)
        for key in SCHEDULER_KEYS:
            shared = getattr(self.pipe, key, None)
            if shared is not None:
                setattr(pipe, key, make_scheduler(scheduler, shared.config))
        pipe.set_progress_bar_config(disable=not progress_bars, desc="Sampling")
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

    @property
    def max_prompt_tokens(self) -> int:
        """How many tokens of a prompt the model reads (what the prompt box tells the user)."""
        return self.pipe.max_prompt_tokens

    def _prompt(self, prompt: Any, what: str, notes: Notes) -> str:
        """A checked prompt; a note says where it was cut if it is longer than the model reads."""
        prompt = check_prompt(prompt, what)
        notes.add(cut_prompt_note(self.pipe.fit_prompt(prompt), what))
        return prompt

    def _settings(self, **values: Any) -> dict[str, int | float]:
        """Check stage settings by name; `None` means the pipeline's default."""
        return {name: check_number(name, self.defaults[name] if value is None else value)
                for name, value in values.items()}

    @property
    def image_input_side(self) -> int | None:
        """The side of the square the image encoder reads (its feature extractor's resize), if the pipeline says."""
        size = getattr(getattr(self.pipe, "feature_extractor", None), "size", None) or {}
        side = size.get("shortest_edge") or size.get("height")
        return int(side) if side else None

    def _load_image(self, image: Any, what: str, notes: Notes) -> Image.Image:
        if image is None:
            raise InputError(f"No {what} was given: upload one.")
        try:
            sanitized = sanitize_image(image, min_side=self.image_input_side)
        except ValueError as error:
            raise InputError(f"The {what}: {error}") from error
        for notice in sanitized.notices:
            notes.add(f"The {what}: {notice}")
        return sanitized.image

    def _source(self, kind: str, prompt: Any, image: Any, what: str, notes: Notes) -> str | Image.Image:
        """An interpolation endpoint or text-diff source: a checked prompt or a sanitised image."""
        if kind not in SOURCES:
            raise InputError(f"The {what} must be one of {list(SOURCES)}, got {kind!r}.")
        if kind == "Image":
            return self._load_image(image, f"{what} image", notes)
        return self._prompt(prompt, f"{what} prompt", notes)

    def _base_then_upsampled(self, pipe: Any, base: torch.Tensor, super_res_steps: int, generator: torch.Generator,
                             seed: int, notes: Notes, progress: gr.Progress) -> Iterator[tuple[Images, int, str]]:
        """Yield the base images (`(N, 3, h, w)` in [0, 1]) at once, then the images after each upsampler stage."""
        base_images = pipe.numpy_to_pil(base.permute(0, 2, 3, 1).float().cpu().numpy())
        if not self.has_super_res:
            yield base_images, seed, notes.text()
            return
        width, height = base_images[0].size
        yield base_images, seed, notes.text(f"Base {width}×{height} decoder output; upsampling…")
        stages = pipe.upsampler_stages
        steps_run = {stage.name: steps_for_strength(super_res_steps, stage.strength) for stage in stages}
        upsampled = pipe.super_resolve_stages(
            base, num_inference_steps=super_res_steps, generator=generator, output_type="pil",
            callback_on_step_end=StageProgress(progress, steps_run),  # of the scheduled steps, the run ones
        )
        for index, images in enumerate(upsampled):
            if index + 1 < len(stages):
                width, height = images[0].size
                next_stage = STAGE_NAMES[stages[index + 1].name].split(":")[0].lower()  # "second upsampler"
                yield list(images), seed, notes.text(f"Upsampled to {width}×{height}; {next_stage} running…")
            else:
                yield list(images), seed, notes.text()

    # ------------------------------------------------------------------------------------------------ tabs
    @user_errors
    def text_to_image(
        self,
        prompt: str,
        seed: int = 0,
        randomize_seed: bool = False,
        num_images: int = 2,
        prior_steps: int | None = None,
        decoder_steps: int | None = None,
        super_res_steps: int | None = None,
        prior_guidance: float | None = None,
        decoder_guidance: float | None = None,
        scheduler: str = DEFAULT_SCHEDULER,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[Images, int, str]]:
        """Prompt → images, stage by stage: yields the base-resolution decoder output, then the upsampled images.

        With the default scheduler the final images equal `pipe(prompt, ..., generator=Generator().manual_seed(seed))`
        (after two upsamplers, up to one level in a few pixels: the base image is handed over in [0, 1]).
        Settings left as `None` use the pipeline's defaults. Yields `(images, seed_used, notes)`.
        """
        notes = self._notes()
        prompt = self._prompt(prompt, "prompt", notes)
        num_images = check_number("num_images", num_images)
        s = self._settings(prior_steps=prior_steps, decoder_steps=decoder_steps, super_res_steps=super_res_steps,
                           prior_guidance=prior_guidance, decoder_guidance=decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler), self.generator(seed)
        callback = StageProgress(progress, {"prior": s["prior_steps"], "decoder": s["decoder_steps"]})

        progress(0, desc="CLIP: encoding the prompt")
        encodings = pipe.encode_prompt(prompt)  # encoded once, reused by prior and decoder
        image_embeds = pipe.sample_prior(
            encodings, num_images_per_prompt=num_images, num_inference_steps=s["prior_steps"],
            guidance_scale=s["prior_guidance"], generator=generator, callback_on_step_end=callback,
        )
        base = pipe.decode(
            image_embeds, prompt=encodings, num_inference_steps=s["decoder_steps"],
            guidance_scale=s["decoder_guidance"], generator=generator, upscale=False, output_type="pt",
            callback_on_step_end=callback,
        )
        yield from self._base_then_upsampled(pipe, base, s["super_res_steps"], generator, seed, notes, progress)

    @user_errors
    def variations(
        self,
        image: Any,
        seed: int = 0,
        randomize_seed: bool = False,
        num_images: int = 2,
        decoder_steps: int | None = None,
        super_res_steps: int | None = None,
        decoder_guidance: float | None = None,
        scheduler: str = DEFAULT_SCHEDULER,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[Images, int, str]]:
        """Image → new images decoded from its CLIP image embedding (no caption). Yields base images first, then
        upsampled ones, like `text_to_image`; with the default scheduler the final images equal
        `pipe.image_variation(image, ...)`. Yields `(images, seed_used, notes)`."""
        notes = self._notes()
        image = self._load_image(image, "input image", notes)
        num_images = check_number("num_images", num_images)
        s = self._settings(decoder_steps=decoder_steps, super_res_steps=super_res_steps,
                           decoder_guidance=decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler), self.generator(seed)

        progress(0, desc="CLIP: encoding the image")
        image_embeds = pipe.encode_image(image).repeat_interleave(num_images, dim=0)
        base = pipe.decode(
            image_embeds, prompt=None, num_inference_steps=s["decoder_steps"], guidance_scale=s["decoder_guidance"],
            generator=generator, upscale=False, output_type="pt",
            callback_on_step_end=StageProgress(progress, {"decoder": s["decoder_steps"]}),
        )
        yield from self._base_then_upsampled(pipe, base, s["super_res_steps"], generator, seed, notes, progress)

    @user_errors
    def interpolate(
        self,
        start_kind: str = "Prompt",
        start_prompt: str | None = None,
        start_image: Any = None,
        end_kind: str = "Prompt",
        end_prompt: str | None = None,
        end_image: Any = None,
        num_frames: int = 7,
        seed: int = 0,
        randomize_seed: bool = False,
        prior_steps: int | None = None,
        decoder_steps: int | None = None,
        super_res_steps: int | None = None,
        prior_guidance: float | None = None,
        decoder_guidance: float | None = None,
        scheduler: str = DEFAULT_SCHEDULER,
        invert: bool = False,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> Iterator[tuple[Captioned, str, int, str]]:
        """A path between two prompts, two images, or a prompt and an image (`pipe.interpolate`): slerp of the CLIP
        image embeddings with one decoder noise for every frame. `invert` DDIM-inverts image endpoints so the end
        frames reconstruct them (the decoder then samples with DDIM). An endpoint's image is read only when its kind is
        "Image", its prompt only when it is "Prompt".

        Yields `(frames captioned with their position, gif_path, seed_used, notes)`.
        """
        notes = self._notes()
        start = self._source(start_kind, start_prompt, start_image, "start", notes)
        end = self._source(end_kind, end_prompt, end_image, "end", notes)
        num_frames = check_number("num_frames", num_frames)
        s = self._settings(prior_steps=prior_steps, decoder_steps=decoder_steps, super_res_steps=super_res_steps,
                           prior_guidance=prior_guidance, decoder_guidance=decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler, progress_bars=True), self.generator(seed)

        progress(0, desc=f"Interpolating {num_frames} frames")
        frames = pipe.interpolate(
            start, end, num_frames, generator=generator, output_type="pil", invert=bool(invert),
            **{STAGE_SETTINGS[name]: value for name, value in s.items()},
        ).images
        gif = self.gifs.save(list(frames))
        captions = [f"{i / (num_frames - 1):.2f}" for i in range(num_frames)]
        yield list(zip(frames, captions)), gif, seed, notes.text()

    @user_errors
    def text_diff(
        self,
        source_kind: str = "Prompt",
        source_prompt: str | None = None,
        source_image: Any = None,
        base_prompt: str | None = None,
        target_prompt: str | None = None,
        amount: float = 0.5,
        num_images: int = 2,
        seed: int = 0,
        randomize_seed: bool = False,
        prior_steps: int | None = None,
        decoder_steps: int | None = None,
        super_res_steps: int | None = None,
        prior_guidance: float | None = None,
        decoder_guidance: float | None = None,
        scheduler: str = DEFAULT_SCHEDULER,
        invert: bool = False,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> Iterator[tuple[Captioned, int, str]]:
        """Move an image (or a prompt's sample) toward a target description along the CLIP text diff
        (`pipe.text_diff`). Returns `num_images` frames evenly spaced up to `amount` (0 = the source, 1 = all the
        way), each captioned with its amount. `base_prompt` describes the source; empty reuses a prompt source. The
        source image is read only when `source_kind` is "Image", the source prompt only when it is "Prompt".

        Yields `(frames captioned with their amount, seed_used, notes)`.
        """
        notes = self._notes()
        source = self._source(source_kind, source_prompt, source_image, "source", notes)
        if isinstance(source, str) and not (base_prompt or "").strip():
            base_prompt = source  # already checked, and any cut noted, as the source prompt
        else:
            base_prompt = self._prompt(base_prompt, "description of the source", notes)
        target_prompt = self._prompt(target_prompt, "target description", notes)
        amount = check_number("amount", amount)
        num_images = check_number("num_images", num_images)
        s = self._settings(prior_steps=prior_steps, decoder_steps=decoder_steps, super_res_steps=super_res_steps,
                           prior_guidance=prior_guidance, decoder_guidance=decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler, progress_bars=True), self.generator(seed)

        amounts = [amount * (i + 1) / num_images for i in range(num_images)]
        progress(0, desc="Text diff")
        images = pipe.text_diff(
            source, base_prompt, target_prompt, amounts, generator=generator, output_type="pil", invert=bool(invert),
            **{STAGE_SETTINGS[name]: value for name, value in s.items()},
        ).images
        yield [(image, f"amount {a:.2f}") for image, a in zip(images, amounts)], seed, notes.text()

    @user_errors
    def edit(
        self,
        image: Any,
        mask: Any,
        prompt: str | None = None,
        seed: int = 0,
        randomize_seed: bool = False,
        num_images: int = 2,
        prior_steps: int | None = None,
        decoder_steps: int | None = None,
        super_res_steps: int | None = None,
        prior_guidance: float | None = None,
        decoder_guidance: float | None = None,
        scheduler: str = DEFAULT_SCHEDULER,
        jumps: int = 0,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> Iterator[tuple[Images, int, str]]:
        """Repaint the white part of `mask` and keep the rest of `image` (`pipe.inpaint`). `image` is an image, or on
        the page the editor's value, whose painted layers are the mask when `mask` is `None`. An empty `prompt`
        repaints from the image's own CLIP embedding; `jumps` RePaint resamplings per decoder step (then with DDIM).

        Yields `(images, seed_used, notes)`.
        """
        notes = self._notes()
        if isinstance(image, dict) and mask is None:
            image, mask = editor_image_and_mask(image)
        image = self._load_image(image, "image to edit", notes)
        mask = load_mask(mask, image.size)
        check_painted(mask)
        prompt = self._prompt(prompt, "prompt", notes) if (prompt or "").strip() else None
        num_images = check_number("num_images", num_images)
        jumps = check_number("jumps", jumps)
        s = self._settings(prior_steps=prior_steps, decoder_steps=decoder_steps, super_res_steps=super_res_steps,
                           prior_guidance=prior_guidance, decoder_guidance=decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler, progress_bars=True), self.generator(seed)

        progress(0, desc="Repainting the masked region")
        images = pipe.inpaint(
            image, mask, prompt=prompt, num_images_per_prompt=num_images, jumps=jumps, generator=generator,
            output_type="pil", **{STAGE_SETTINGS[name]: value for name, value in s.items()},
        ).images
        source = "the prompt" if prompt else "the image's own CLIP embedding"
        yield list(images), seed, notes.text(f"Repainted from {source}; the unpainted part is kept.")

    @user_errors
    def mix(
        self,
        kind_1: str = "Prompt", prompt_1: str | None = None, image_1: Any = None, weight_1: float = 0.5,
        kind_2: str = "Prompt", prompt_2: str | None = None, image_2: Any = None, weight_2: float = 0.5,
        kind_3: str = "Prompt", prompt_3: str | None = None, image_3: Any = None, weight_3: float = 0.5,
        kind_4: str = "Prompt", prompt_4: str | None = None, image_4: Any = None, weight_4: float = 0.5,
        num_images: int = 2,
        seed: int = 0,
        randomize_seed: bool = False,
        prior_steps: int | None = None,
        decoder_steps: int | None = None,
        super_res_steps: int | None = None,
        prior_guidance: float | None = None,
        decoder_guidance: float | None = None,
        scheduler: str = DEFAULT_SCHEDULER,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> Iterator[tuple[Images, int, str]]:
        """A weighted blend of up to four prompts and images (`pipe.mix`: slerp for two, a normalised weighted mean of
        directions for more). Input `i` is a prompt or an image by `kind_i`; an input with no prompt/image, or with
        weight 0, is left out. Yields `(images, seed_used, notes)`."""
        notes = self._notes()
        slots = [(kind_1, prompt_1, image_1, weight_1), (kind_2, prompt_2, image_2, weight_2),
                 (kind_3, prompt_3, image_3, weight_3), (kind_4, prompt_4, image_4, weight_4)]
        inputs, weights, names = [], [], []
        for i, (kind, prompt, image, weight) in enumerate(slots, start=1):
            weight = check_number("weight", weight, label=f"Input {i} weight")
            if kind not in SOURCES:
                raise InputError(f"Input {i} must be one of {list(SOURCES)}, got {kind!r}.")
            if (kind == "Image" and image is None) or (kind == "Prompt" and not (prompt or "").strip()):
                continue  # an empty input is left out
            inputs.append(self._source(kind, prompt, image, f"input {i}", notes))
            weights.append(weight)
            names.append(f"input {i} ({kind.lower()})")
        if not inputs:
            raise InputError("Nothing to mix: give at least one input a prompt or an image.")
        normalised = check_mix_weights(len(inputs), weights)  # the pipeline's own refusals (all weights 0, ...)
        kept = [i for i, w in enumerate(normalised) if w > 0]
        num_images = check_number("num_images", num_images)
        s = self._settings(prior_steps=prior_steps, decoder_steps=decoder_steps, super_res_steps=super_res_steps,
                           prior_guidance=prior_guidance, decoder_guidance=decoder_guidance)
        seed = resolve_seed(seed, randomize_seed)
        pipe, generator = self.request_pipeline(scheduler, progress_bars=True), self.generator(seed)

        progress(0, desc=f"Mixing {len(kept)} inputs")
        images = pipe.mix(
            [inputs[i] for i in kept], [normalised[i] for i in kept], num_images_per_prompt=num_images,
            generator=generator, output_type="pil", **{STAGE_SETTINGS[name]: value for name, value in s.items()},
        ).images
        blend = ", ".join(f"{names[i]} {normalised[i]:.2f}" for i in kept)
        yield list(images), seed, notes.text(f"Mixed (weights normalised to sum 1): {blend}.")
