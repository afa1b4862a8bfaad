"""The "Interpolation" tab: prompt↔prompt, image↔image or prompt↔image, as a strip of frames and a GIF."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..components import UploadImage
from ..examples import INTERPOLATIONS, example_images
from ..inference import SOURCES, UnCLIPService
from ..widgets import SendButtons, advanced_settings, result_gallery, seed_controls, send_buttons, slider
from . import EventOptions


@dataclass
class Endpoint:
    """One end of the path: a prompt or an image, picked by `kind`."""

    kind: gr.Radio
    prompt: gr.Textbox
    image: UploadImage


@dataclass
class InterpolationTab:
    start: Endpoint
    end: Endpoint
    generate: gr.Button
    send: SendButtons


def _endpoint(name: str, default_prompt: str) -> Endpoint:
    with gr.Group():
        kind = gr.Radio(list(SOURCES), value="Prompt", label=f"{name.title()} from", elem_id=f"interp-{name}-kind")
        prompt = gr.Textbox(label=f"{name.title()} prompt", value=default_prompt, elem_id=f"interp-{name}-prompt")
        image = UploadImage(label=f"{name.title()} image", type="filepath", image_mode=None, height=160,
                            sources=["upload", "clipboard"], elem_id=f"interp-{name}-image")
    return Endpoint(kind, prompt, image)


def build(service: UnCLIPService, options: EventOptions) -> InterpolationTab:
    """Two endpoints side by side; frames, GIF and notes below."""
    with gr.Row():
        start = _endpoint("start", INTERPOLATIONS[0][0])
        end = _endpoint("end", INTERPOLATIONS[0][1])
    with gr.Row():
        num_frames = slider("num_frames", elem_id="interp-num-frames")
        seed, randomize = seed_controls("interp")
    advanced = advanced_settings("interp", service.defaults, has_super_res=service.has_super_res, invert=True)
    generate = gr.Button("Interpolate", variant="primary", elem_id="interp-generate")
    gallery = result_gallery("interp", "Frames (caption: position along the path)")
    with gr.Row():
        animation = gr.Image(label="Animation", type="filepath", interactive=False, height=192, elem_id="interp-gif")
        gif_file = gr.File(label="Download the GIF", interactive=False, elem_id="interp-gif-file")
        notes = gr.Markdown(label="Notes", elem_id="interp-notes")
    send = send_buttons("interp", gallery)
    inputs = [start.kind, start.prompt, start.image, end.kind, end.prompt, end.image, num_frames, seed, randomize,
              *advanced]
    event = options.register(
        [generate.click], service.interpolate, inputs, [gallery, gif_file, seed, notes], randomize=randomize,
        api_name="interpolate",
        api_description="A path between two prompts/images (images only needed in Image mode); returns frames, a GIF "
                        "file, seed used, notes.",
    )
    event.success(lambda path: path, gif_file, animation, api_visibility="private", queue=False)

    images = example_images()
    gr.Examples(
        [["Prompt", a, None, "Prompt", b, None] for a, b in INTERPOLATIONS]
        + [["Image", "", images["smiley.png"], "Image", "", images["red_apple.png"]],
           ["Prompt", INTERPOLATIONS[0][0], None, "Image", "", images["blue_heart.png"]]],
        [start.kind, start.prompt, start.image, end.kind, end.prompt, end.image],
        label="Examples (prompt↔prompt, image↔image, prompt↔image)",
    )
    return InterpolationTab(start, end, generate, send)
