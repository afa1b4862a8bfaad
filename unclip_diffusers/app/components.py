"""Gradio components that check their API input themselves, so a bad value sent by a client gets a sentence naming
the setting instead of a traceback. Each renders with the stock front-end component (`is_template`)."""

from __future__ import annotations

import base64
import math
from typing import Any

import gradio as gr

from .validation import format_number


class UploadImage(gr.Image):
    """An image input that hands the raw upload (a file path or bytes) to the app's own sanitiser.

    The stock `gr.Image` opens uploads with PIL before the app sees them, so a non-image fails with an internal
    error; here `unclip_diffusers.app.images.sanitize_image` does the decoding and explains any failure.
    """

    is_template = True

    def preprocess(self, payload: Any) -> str | bytes | None:
        if payload is None:
            return None
        url = getattr(payload, "url", None)
        path = getattr(payload, "path", None)
        if path is None and isinstance(url, str) and url.startswith("data:"):
            try:
                return base64.b64decode(url.split(",", 1)[1])
            except (IndexError, ValueError) as error:
                raise gr.Error(f"{self.label}: the uploaded data URL is not valid base64.") from error
        if path is None:
            raise gr.Error(f"{self.label}: the upload has no file.")
        return str(path)


def _checked_number(component: gr.components.Component, payload: Any, minimum: float | None, maximum: float | None):
    """Reject a non-numeric, out-of-range or (for a whole-number component) fractional API value with a message that
    names the component; Gradio would otherwise round `2.5` to `2` without a word."""
    if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
        raise gr.Error(f"{component.label} must be a number, got {payload!r}.", print_exception=False)
    if (minimum is not None and payload < minimum) or (maximum is not None and payload > maximum):
        raise gr.Error(f"{component.label} must be between {format_number(minimum)} and {format_number(maximum)}, "
                       f"got {format_number(payload)}.", print_exception=False)
    if getattr(component, "precision", None) == 0 and payload != int(payload):
        raise gr.Error(f"{component.label} must be a whole number, got {format_number(payload)}.",
                       print_exception=False)


class CheckedSlider(gr.Slider):
    """A slider whose out-of-range or non-numeric API values are refused with the slider's name and range."""

    is_template = True

    def preprocess(self, payload: Any) -> float:
        _checked_number(self, payload, self.minimum, self.maximum)
        return super().preprocess(payload)


class CheckedNumber(gr.Number):
    """A number box whose out-of-range or non-numeric API values are refused with the box's name and range."""

    is_template = True

    def preprocess(self, payload: Any) -> float | int | None:
        if payload is None:
            return None
        _checked_number(self, payload, self.minimum, self.maximum)
        return super().preprocess(payload)


class CheckedDropdown(gr.Dropdown):
    """A dropdown whose unknown API values are refused with the dropdown's name and choices (the stock one's refusal
    leaves a traceback in the server log)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        choices = [value for _, value in self.choices]
        if not self.allow_custom_value and not self.multiselect and payload not in choices:
            raise gr.Error(f"{self.label} must be one of: {', '.join(map(str, choices))}; got {payload!r}.",
                           print_exception=False)
        return super().preprocess(payload)
