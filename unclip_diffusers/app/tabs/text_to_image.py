"""The "Text to image" tab."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..examples import PROMPTS
from ..inference import UnCLIPService
from ..widgets import SendButtons, advanced_settings, result_gallery, seed_controls, send_buttons, slider
from . import EventOptions


@dataclass
class TextToImageTab:
    prompt: gr.Textbox
    generate: gr.Button
    send: SendButtons


def build(service: UnCLIPService, options: EventOptions) -> TextToImageTab:
    """Prompt, seed, number of images and "Advanced" on the left; the gallery (base image first) on the right."""
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(
                label="Prompt", placeholder="e.g. grinning face, Noto style", lines=2, elem_id="t2i-prompt",
                info=f"The model reads the first {service.max_prompt_tokens} tokens (words, parts of words and "
                     "punctuation); a longer prompt is cut and the notes say where.",
            )
            with gr.Row():
                num_images = slider("num_images", elem_id="t2i-num-images")
                seed, randomize = seed_controls("t2i")
            advanced = advanced_settings("t2i", service.defaults, has_super_res=service.has_super_res)
            generate = gr.Button("Generate", variant="primary", elem_id="t2i-generate")
        with gr.Column(scale=3):
            gallery = result_gallery("t2i")
            notes = gr.Markdown(label="Notes", elem_id="t2i-notes")
            send = send_buttons("t2i", gallery)
    inputs = [prompt, seed, randomize, num_images, *advanced]
    outputs = [gallery, seed, notes]
    options.register(
        [generate.click, prompt.submit], service.text_to_image, inputs, outputs, randomize=randomize,
        api_name="text_to_image",
        api_description="Prompt → images (base resolution first, then upsampled); returns images, seed used, notes.",
    )

    def example(prompt_text: str):
        """Example outputs use a fixed seed and the default settings."""
        yield from service.text_to_image(prompt_text, 0, False)

    gr.Examples(
        [[p] for p in PROMPTS], [prompt], outputs, fn=example if options.cache_examples else None,
        cache_examples=options.cache_examples, cache_mode="lazy" if options.cache_examples else None,
        label="Example prompts",
    )
    return TextToImageTab(prompt, generate, send)
