"""The "Mix" tab: a weighted blend of up to four prompts and images."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..components import UploadImage
from ..examples import MIXES, example_images
from ..inference import MIX_SLOTS, SOURCES, UnCLIPService
from ..widgets import SendButtons, advanced_settings, result_gallery, seed_controls, send_buttons, slider
from . import EventOptions


@dataclass
class MixInput:
    """One input of the mix: a prompt or an image, picked by `kind`, and its weight."""

    kind: gr.Radio
    prompt: gr.Textbox
    image: UploadImage
    weight: gr.Slider


@dataclass
class MixTab:
    inputs: list[MixInput]
    generate: gr.Button
    send: SendButtons


def _input(number: int, default_prompt: str) -> MixInput:
    with gr.Group():
        kind = gr.Radio(list(SOURCES), value="Prompt", label=f"Input {number}", elem_id=f"mix-kind-{number}")
        prompt = gr.Textbox(label=f"Prompt {number}", value=default_prompt, elem_id=f"mix-prompt-{number}",
                            placeholder="empty = not used")
        image = UploadImage(label=f"Image {number}", type="filepath", image_mode=None, height=140,
                            sources=["upload", "clipboard"], elem_id=f"mix-image-{number}")
        weight = slider("weight", elem_id=f"mix-weight-{number}", label=f"Weight {number}")
    return MixInput(kind, prompt, image, weight)


def build(service: UnCLIPService, options: EventOptions) -> MixTab:
    """Four inputs side by side; number of images, seed and "Advanced" below them; results and notes at the bottom."""
    defaults = [*MIXES[0], *[""] * MIX_SLOTS][:MIX_SLOTS]
    with gr.Row():
        inputs = [_input(i + 1, defaults[i]) for i in range(MIX_SLOTS)]
    gr.Markdown("Inputs with no prompt (or, for an image input, no image) or weight 0 are left out; the weights are "
                "normalised to sum 1.")
    with gr.Row():
        num_images = slider("num_images", elem_id="mix-num-images")
        seed, randomize = seed_controls("mix")
    advanced = advanced_settings("mix", service.defaults, has_super_res=service.has_super_res)
    generate = gr.Button("Mix", variant="primary", elem_id="mix-generate")
    gallery = result_gallery("mix", "Mixed images")
    notes = gr.Markdown(label="Notes", elem_id="mix-notes")
    send = send_buttons("mix", gallery)
    slots = [component for item in inputs for component in (item.kind, item.prompt, item.image, item.weight)]
    options.register(
        [generate.click], service.mix, [*slots, num_images, seed, randomize, *advanced], [gallery, seed, notes],
        randomize=randomize, api_name="mix",
        api_description="A weighted blend of up to 4 prompts/images (input i is a prompt or an image by kind_i; empty "
                        "inputs are left out); returns images, seed used, notes.",
    )
    images = example_images()
    gr.Examples(
        [["Prompt", a, None, "Prompt", b, None] for a, b in MIXES]
        + [["Image", "", images["smiley.png"], "Prompt", MIXES[0][1], None]],
        [component for item in inputs[:2] for component in (item.kind, item.prompt, item.image)],
        label="Examples (prompt+prompt, image+prompt)",
    )
    return MixTab(inputs, generate, send)
