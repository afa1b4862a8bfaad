"""Building blocks every tab shares: seed controls, the "Advanced" accordion, the result gallery and the buttons that
send a result to another tab."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .components import CheckedDropdown, CheckedNumber, CheckedSlider
from .schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from .validation import LIMITS, MAX_SEED

# Which "Advanced" settings a tab shows, in the order its function takes them.
ALL_STAGES = ("prior_steps", "decoder_steps", "super_res_steps", "prior_guidance", "decoder_guidance")
IMAGE_STAGES = ("decoder_steps", "super_res_steps", "decoder_guidance")  # variations skip the prior


def slider(name: str, elem_id: str | None = None, value: float | None = None, **kwargs: Any) -> CheckedSlider:
    """A slider whose range, step, label and (unless `value` is given) default come from `validation.LIMITS[name]`
    (a `label` in `kwargs` names it instead)."""
    limit = LIMITS[name]
    return CheckedSlider(
        minimum=limit.minimum, maximum=limit.maximum, value=limit.default if value is None else value,
        step=limit.step, label=kwargs.pop("label", limit.label), precision=0 if limit.integer else None,
        elem_id=elem_id, **kwargs,
    )


def seed_controls(prefix: str) -> tuple[CheckedNumber, gr.Checkbox]:
    """A seed box (the seed actually used is written back into it) and a "randomize" box."""
    seed = CheckedNumber(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED, elem_id=f"{prefix}-seed")
    randomize = gr.Checkbox(label="Randomize seed", value=True, elem_id=f"{prefix}-randomize")
    return seed, randomize


def advanced_settings(prefix: str, defaults: dict[str, float], stages: tuple[str, ...] = ALL_STAGES,
                      has_super_res: bool = True, invert: bool = False, jumps: bool = False) -> list[Any]:
    """The "Advanced" accordion: steps and guidance per stage (defaults: the pipeline's), the scheduler and, with
    `invert`, a DDIM-inversion box or, with `jumps`, the RePaint resampling slider. Returns them in that order, the
    order the tab functions take them."""
    with gr.Accordion("Advanced", open=False, elem_id=f"{prefix}-advanced"):
        controls: list[Any] = []
        with gr.Row():
            for name in stages:
                visible = has_super_res or name != "super_res_steps"
                controls.append(slider(name, elem_id=f"{prefix}-{name}", value=defaults.get(name), visible=visible))
        controls.append(CheckedDropdown(
            choices=list(SCHEDULERS), value=DEFAULT_SCHEDULER, label="Scheduler", elem_id=f"{prefix}-scheduler",
            info="The sampler of every stage; DPM-Solver++ and UniPC need the fewest steps.",
        ))
        if jumps:
            controls.append(slider(
                "jumps", elem_id=f"{prefix}-jumps",
                info="RePaint resamplings per decoder step: smoother seams, each one more decoder pass (with DDIM).",
            ))
        if invert:
            controls.append(gr.Checkbox(
                label="Reconstruct image inputs (DDIM inversion)", value=False, elem_id=f"{prefix}-invert",
                info="Inverts uploaded images so amount 0 / the path's ends reproduce them; samples with DDIM.",
            ))
    return controls


def result_gallery(prefix: str, label: str = "Results") -> gr.Gallery:
    """A gallery with download buttons; images are served as PNG so downloads are lossless."""
    return gr.Gallery(
        label=label, columns=4, format="png", object_fit="contain", height="auto", interactive=False,
        buttons=["download", "download_all", "fullscreen"], elem_id=f"{prefix}-gallery",
    )


@dataclass
class SendButtons:
    """The "use as input" buttons under a gallery, and the index of the image the user picked."""

    gallery: gr.Gallery
    selected: gr.State
    to_variations: gr.Button
    to_start: gr.Button
    to_end: gr.Button
    to_edit: gr.Button


def send_buttons(prefix: str, gallery: gr.Gallery) -> SendButtons:
    """Buttons that send the selected (or first) image of `gallery` to Variations, Interpolation or Edit."""
    selected = gr.State(None)
    with gr.Row():
        to_variations = gr.Button("Use in Variations", size="sm", elem_id=f"{prefix}-to-variations")
        to_start = gr.Button("Use as interpolation start", size="sm", elem_id=f"{prefix}-to-start")
        to_end = gr.Button("Use as interpolation end", size="sm", elem_id=f"{prefix}-to-end")
        to_edit = gr.Button("Edit this image", size="sm", elem_id=f"{prefix}-to-edit")
    gallery.select(selected_index, None, selected, api_visibility="private", queue=False)
    gallery.change(lambda: None, None, selected, api_visibility="private", queue=False)
    return SendButtons(gallery, selected, to_variations, to_start, to_end, to_edit)


def selected_index(event: gr.SelectData) -> int:
    """The index of the gallery image the user clicked."""
    return event.index


def pick_image(gallery_value: list[Any] | None, index: int | None) -> str:
    """The file path of the selected gallery image (the first if none is selected)."""
    if not gallery_value:
        raise gr.Error("There is no result to send yet: generate images first.")
    if index is None or not 0 <= index < len(gallery_value):
        index = 0
    item = gallery_value[index]
    return item[0] if isinstance(item, (tuple, list)) else item
