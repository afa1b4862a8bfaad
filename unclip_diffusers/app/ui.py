"""Assembling the page: header, the six tabs, the buttons that move results between tabs, and how to serve it."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .inference import UnCLIPService
from .loading import PLACEHOLDER_WARNING
from .tabs import EventOptions, edit, interpolation, mix, text_diff, text_to_image, variations
from .widgets import SendButtons, pick_image

TAB_IDS = {"text_to_image": "Text to image", "variations": "Variations", "interpolation": "Interpolation",
           "text_diff": "Text diff", "edit": "Edit", "mix": "Mix"}

QUEUE_SIZE = 16  # requests waiting beyond this are turned away with "queue full" instead of waiting for minutes
# Simultaneous generations across all tabs. Measured on a busy 2-core machine with the `small` preset (random weights,
# 8/8/4 steps, requests in worker threads as Gradio runs them, 6 interleaved A/B rounds): two requests at once
# finished in a median 0.44x the time of two in a row (min 0.37, max 1.03) - the small models' ops keep one core
# busy each better than two intra-op threads share one request. More than 2 would only queue inside torch.
CONCURRENCY = 2
MAX_UPLOAD = "10mb"

CSS = """
#placeholder-banner { background: #fff4d6; border: 2px solid #e0a100; border-radius: 8px; padding: 8px 14px; }
#placeholder-banner p { color: #5a4000; margin: 0; }
"""

HEADER = """# unCLIP — a miniature DALL·E 2
CLIP text encoder → diffusion **prior** (text embedding → CLIP image embedding) → **decoder** (embedding → base image)
→ **upsampler**. [Paper](https://arxiv.org/abs/2204.06125) · weights: {source}"""


def theme() -> gr.themes.Base:
    """Gradio's default look with system fonts only, so the page renders with no network access at all."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def launch_kwargs() -> dict[str, Any]:
    """Arguments for `Blocks.launch` that every way of serving the app shares (Gradio 6 takes theme and CSS here)."""
    return {
        "theme": theme(),
        "css": CSS,
        "ssr_mode": False,  # no Node server: plain static front end, nothing fetched at run time
        "max_file_size": MAX_UPLOAD,
        "footer_links": ["api", "gradio"],
    }


def _wire_send(send: SendButtons, var: variations.VariationsTab, interp: interpolation.InterpolationTab,
               editing: edit.EditTab, tabs: gr.Tabs) -> None:
    """Connect one gallery's "use as input" buttons to the Variations, Interpolation and Edit inputs."""
    inputs = [send.gallery, send.selected]
    send.to_variations.click(
        lambda value, index: (pick_image(value, index), gr.Tabs(selected="variations")),
        inputs, [var.image, tabs], api_visibility="private", queue=False,
    )
    for button, endpoint in [(send.to_start, interp.start), (send.to_end, interp.end)]:
        button.click(
            lambda value, index: (pick_image(value, index), "Image", gr.Tabs(selected="interpolation")),
            inputs, [endpoint.image, endpoint.kind, tabs], api_visibility="private", queue=False,
        )
    send.to_edit.click(  # the image becomes the editor's background, with nothing painted yet
        lambda value, index: (pick_image(value, index), gr.Tabs(selected="edit")),
        inputs, [editing.editor, tabs], api_visibility="private", queue=False,
    )


def build_demo(
    service: UnCLIPService,
    source: str = "random tiny model",
    *,
    concurrency_limit: int = CONCURRENCY,
    queue_size: int = QUEUE_SIZE,
    cache_examples: bool = False,
) -> gr.Blocks:
    """Build the app (not launched): six tabs on one shared `service`, queued with a bounded size.

    Args:
        service (`UnCLIPService`): the shared pipeline and the functions behind the tabs.
        source (`str`): how the header names the weights (`LoadedPipeline.label`: a name, never a path).
        concurrency_limit (`int`, defaults to `CONCURRENCY`): simultaneous generations across all tabs.
        queue_size (`int`, defaults to `QUEUE_SIZE`): requests allowed to wait.
        cache_examples (`bool`, defaults to `False`): cache example outputs (lazily, on first click).
    """
    if concurrency_limit < 1:
        raise ValueError(f"concurrency_limit must be at least 1, got {concurrency_limit}.")
    if queue_size < 1:
        raise ValueError(f"queue_size must be at least 1, got {queue_size}.")
    options = EventOptions(concurrency_limit=concurrency_limit, cache_examples=cache_examples)
    with gr.Blocks(title="unCLIP — a miniature DALL·E 2", analytics_enabled=False) as demo:
        gr.Markdown(HEADER.format(source=source))
        if service.placeholder:
            gr.Markdown("⚠️ " + PLACEHOLDER_WARNING, elem_id="placeholder-banner")
        with gr.Tabs() as tabs:
            with gr.Tab(TAB_IDS["text_to_image"], id="text_to_image"):
                t2i = text_to_image.build(service, options)
            with gr.Tab(TAB_IDS["variations"], id="variations"):
                var = variations.build(service, options)
            with gr.Tab(TAB_IDS["interpolation"], id="interpolation"):
                interp = interpolation.build(service, options)
            with gr.Tab(TAB_IDS["text_diff"], id="text_diff"):
                diff = text_diff.build(service, options)
            with gr.Tab(TAB_IDS["edit"], id="edit"):
                editing = edit.build(service, options)
            with gr.Tab(TAB_IDS["mix"], id="mix"):
                mixing = mix.build(service, options)
        for send in (t2i.send, var.send, interp.send, diff.send, editing.send, mixing.send):
            _wire_send(send, var, interp, editing, tabs)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency_limit)
    return demo
