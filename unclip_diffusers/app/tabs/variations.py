"""The "Variations" tab."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..components import UploadImage
from ..examples import example_images
from ..inference import UnCLIPService
from ..widgets import IMAGE_STAGES, SendButtons, advanced_settings, result_gallery, seed_controls, send_buttons, slider
from . import EventOptions


@dataclass
class VariationsTab:
    image: UploadImage
    generate: gr.Button
    send: SendButtons


def build(service: UnCLIPService, options: EventOptions) -> VariationsTab:
    """An image in; new images decoded from its CLIP image embedding out."""
    with gr.Row():
        with gr.Column(scale=2):
            image = UploadImage(label="Input image", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                elem_id="var-image", height=256)
            with gr.Row():
                num_images = slider("num_images", elem_id="var-num-images")
                seed, randomize = seed_controls("var")
            advanced = advanced_settings("var", service.defaults, IMAGE_STAGES, has_super_res=service.has_super_res)
            generate = gr.Button("Make variations", variant="primary", elem_id="var-generate")
        with gr.Column(scale=3):
            gallery = result_gallery("var", "Variations")
            notes = gr.Markdown(label="Notes", elem_id="var-notes")
            send = send_buttons("var", gallery)
    inputs = [image, seed, randomize, num_images, *advanced]
    outputs = [gallery, seed, notes]
    options.register(
        [generate.click], service.variations, inputs, outputs, randomize=randomize, api_name="variations",
        api_description="Image → variations from its CLIP image embedding; returns images, seed used, notes.",
    )

    def example(path: str):
        """Example outputs use a fixed seed and the default settings."""
        yield from service.variations(path, 0, False)

    gr.Examples(
        [[path] for path in example_images().values()], [image], outputs,
        fn=example if options.cache_examples else None, cache_examples=options.cache_examples,
        cache_mode="lazy" if options.cache_examples else None, label="Example images",
    )
    return VariationsTab(image, generate, send)
