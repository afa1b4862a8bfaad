"""The "Text diff" tab: an image or a prompt moved toward a target description by a slider."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..components import UploadImage
from ..examples import TEXT_DIFFS
from ..inference import SOURCES, UnCLIPService
from ..widgets import SendButtons, advanced_settings, result_gallery, seed_controls, send_buttons, slider
from . import EventOptions


@dataclass
class TextDiffTab:
    generate: gr.Button
    send: SendButtons


def build(service: UnCLIPService, options: EventOptions) -> TextDiffTab:
    """Source (prompt or image) and the two descriptions on the left; results on the right."""
    with gr.Row():
        with gr.Column(scale=2):
            kind = gr.Radio(list(SOURCES), value="Prompt", label="Start from", elem_id="diff-kind")
            prompt = gr.Textbox(label="Source prompt", value=TEXT_DIFFS[0][0], elem_id="diff-prompt")
            image = UploadImage(label="Source image", type="filepath", image_mode=None, height=160,
                                sources=["upload", "clipboard"], elem_id="diff-image")
            base = gr.Textbox(label="Description of the source", elem_id="diff-base", value=TEXT_DIFFS[0][1],
                              info="What the source shows now; empty = the source prompt.")
            target = gr.Textbox(label="Target description", elem_id="diff-target", value=TEXT_DIFFS[0][2])
            amount = slider("amount", elem_id="diff-amount",
                            info="How far to move toward the target: 0 = the source, 1 = all the way.")
            with gr.Row():
                num_images = slider("num_images", elem_id="diff-num-images",
                                    info="Images evenly spaced from the source up to the amount.")
                seed, randomize = seed_controls("diff")
            advanced = advanced_settings("diff", service.defaults, has_super_res=service.has_super_res, invert=True)
            generate = gr.Button("Apply text diff", variant="primary", elem_id="diff-generate")
        with gr.Column(scale=3):
            gallery = result_gallery("diff", "Results (caption: amount)")
            notes = gr.Markdown(label="Notes", elem_id="diff-notes")
            send = send_buttons("diff", gallery)
    inputs = [kind, prompt, image, base, target, amount, num_images, seed, randomize, *advanced]
    options.register(
        [generate.click], service.text_diff, inputs, [gallery, seed, notes], randomize=randomize, api_name="text_diff",
        api_description="Move an image or a prompt's image toward a target description (the image only needed in "
                        "Image mode); returns images, seed, notes.",
    )
    gr.Examples([["Prompt", s, None, b, t, a] for s, b, t, a in TEXT_DIFFS], [kind, prompt, image, base, target, amount],
                label="Examples")
    return TextDiffTab(generate, send)
