"""The "Edit" tab: paint over part of an image and repaint it, from a prompt or from the image itself."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..components import UploadImage
from ..examples import EDITS, example_images
from ..inference import UnCLIPService
from ..masks import PAINT_COLOUR
from ..widgets import SendButtons, advanced_settings, result_gallery, seed_controls, send_buttons, slider
from . import EventOptions


@dataclass
class EditTab:
    editor: gr.ImageEditor
    generate: gr.Button
    send: SendButtons


def build(service: UnCLIPService, options: EventOptions) -> EditTab:
    """The image editor (upload, then paint the part to repaint), prompt, seed and "Advanced" on the left; results on
    the right. The API endpoint takes the image and a mask image instead of the editor."""
    with gr.Row():
        with gr.Column(scale=2):
            editor = gr.ImageEditor(
                label="Image: paint over the part to repaint", type="pil", sources=["upload", "clipboard"],
                brush=gr.Brush(colors=[PAINT_COLOUR], color_mode="fixed", default_size=24), layers=False,
                transforms=(), canvas_size=(512, 512), height=420, elem_id="edit-editor",
            )
            prompt = gr.Textbox(label="Prompt (optional)", placeholder="e.g. red apple, Noto style",
                                elem_id="edit-prompt",
                                info="What to paint there; empty repaints from the image's own CLIP embedding.")
            with gr.Row():
                num_images = slider("num_images", elem_id="edit-num-images")
                seed, randomize = seed_controls("edit")
            advanced = advanced_settings("edit", service.defaults, has_super_res=service.has_super_res, jumps=True)
            generate = gr.Button("Repaint", variant="primary", elem_id="edit-generate")
        with gr.Column(scale=3):
            gallery = result_gallery("edit", "Edited images")
            notes = gr.Markdown(label="Notes", elem_id="edit-notes")
            send = send_buttons("edit", gallery)
    no_mask = gr.State(None)  # on the page the editor's painted strokes are the mask
    api_image = UploadImage(label="Image", type="filepath", image_mode=None, visible=False)
    api_mask = UploadImage(label="Mask (white = repaint)", type="filepath", image_mode=None, visible=False)
    inputs = [editor, no_mask, prompt, seed, randomize, num_images, *advanced]
    options.register(
        [generate.click, prompt.submit], service.edit, inputs, [gallery, seed, notes], randomize=randomize,
        api_name="edit", api_inputs={editor: api_image, no_mask: api_mask},
        api_description="Repaint the white part of a mask and keep the rest of the image (prompt optional: empty "
                        "repaints from the image itself); returns images, seed used, notes.",
    )
    images = example_images()
    gr.Examples([[images[name], text] for name, text in EDITS], [editor, prompt],
                label="Example images (paint over them, then repaint)")
    return EditTab(editor, generate, send)
