"""Example inputs for every tab: prompts in plain words, in several languages, with or without an art style (the
multilingual text encoder reads them all), and a few simple images drawn on the fly (so the package ships no example
binaries)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

PROMPTS = [
    "a cat",
    "a slice of pizza",
    "a red heart, Fluent 3D style",
    "eine Rakete",  # de: a rocket
    "un perro",  # es: a dog
    "une guitare",  # fr: a guitar
    "寿司",  # ja: sushi
    "smiling face with sunglasses, Twemoji style",
]

TEXT_DIFFS = [  # (source prompt, description of the source, target description, amount)
    ("grinning face, Noto style", "grinning face", "crying face", 0.5),
    ("red apple, Fluent 3D style", "red apple", "green apple", 0.4),
]

EDITS = [("smiley.png", "crying face, Noto style"), ("red_apple.png", "green apple, Noto style")]  # (image, prompt)

MIXES = [  # two prompts to blend
    ("grinning face, Noto style", "red apple, Noto style"),
    ("blue heart, Twemoji style", "pouting cat, Twemoji style"),
]

INTERPOLATIONS = [("grinning face, Noto style", "pouting cat, Noto style"), ("red apple, Twemoji style", "blue heart, Twemoji style")]


def _face(draw: ImageDraw.ImageDraw, fill: str) -> None:
    draw.ellipse((16, 16, 240, 240), fill=fill, outline="#6b4a00", width=6)
    draw.ellipse((78, 80, 108, 122), fill="#3b2a00")
    draw.ellipse((148, 80, 178, 122), fill="#3b2a00")
    draw.arc((70, 100, 186, 200), start=20, end=160, fill="#3b2a00", width=10)


def _apple(draw: ImageDraw.ImageDraw, fill: str) -> None:
    draw.ellipse((40, 60, 216, 236), fill=fill)
    draw.rectangle((122, 24, 134, 70), fill="#5b3a1a")
    draw.ellipse((134, 30, 190, 60), fill="#3aa335")


def _heart(draw: ImageDraw.ImageDraw, fill: str) -> None:
    draw.ellipse((36, 50, 136, 150), fill=fill)
    draw.ellipse((120, 50, 220, 150), fill=fill)
    draw.polygon([(42, 120), (214, 120), (128, 222)], fill=fill)


DRAWINGS = {"smiley.png": (_face, "#ffcc33"), "red_apple.png": (_apple, "#d9262b"), "blue_heart.png": (_heart, "#2f6fde")}


def example_images(directory: str | os.PathLike | None = None) -> dict[str, str]:
    """Draw the example images (256 px, RGB on white) once and return their paths by file name."""
    folder = Path(directory or Path(tempfile.gettempdir()) / "unclip-app-examples")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (draw_fn, fill) in DRAWINGS.items():
        path = folder / name
        if not path.is_file():
            image = Image.new("RGB", (256, 256), "white")
            draw_fn(ImageDraw.Draw(image), fill)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            image.save(tmp, format="PNG")
            os.replace(tmp, path)  # atomic, so two app processes starting together never read a half-written file
        paths[name] = str(path)
    return paths
