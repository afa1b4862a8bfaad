"""Turn one piece of emoji artwork (SVG, bitmap or font glyph) into square RGB images on white at 64 and 256 px."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LOW_RES = 64  # the decoder's resolution
HIGH_RES = 256  # the upsampler's target resolution
NOTO_FONT_SIZE = 109  # the only size at which Noto Color Emoji's CBDT bitmaps (136 x 128) render


class SkipArtwork(Exception):
    """The artwork exists but is unusable (blank, or the font fell back to several glyphs)."""


@dataclass(frozen=True)
class RenderJob:
    """One artwork to render: `kind` is 'svg', 'raster' or 'noto'; `source` a file path (or the emoji text for
    'noto'); the result goes to `out_stem` + '.png' (64 px) and '.256.png' (256 px, only when `high_res`)."""

    kind: str
    source: str
    out_stem: str
    high_res: bool
    font_path: str | None = None


def to_square_on_white(image: Image.Image) -> Image.Image:
    """Composite onto white and pad to a centred square, keeping the artwork's own framing (sizes stay meaningful)."""
    rgba = image.convert("RGBA")
    side = max(rgba.size)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(rgba, ((side - rgba.width) // 2, (side - rgba.height) // 2))
    return canvas.convert("RGB")


def is_blank(image: Image.Image) -> bool:
    """True when an RGBA image has no visible pixel."""
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    return int(alpha.max()) == 0


def resize(image: Image.Image, size: int) -> Image.Image:
    """Resize a square image; area averaging when shrinking (no ringing), bicubic when enlarging."""
    if image.size == (size, size):
        return image
    method = Image.Resampling.BOX if image.width > size else Image.Resampling.BICUBIC
    return image.resize((size, size), method)


def render_svg(path: str | Path, size: int) -> Image.Image:
    """Rasterise an SVG file to RGBA with resvg (no system fonts needed: emoji SVGs are pure paths)."""
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_path=str(path), width=size, skip_system_fonts=True)
    return Image.open(io.BytesIO(bytes(png))).convert("RGBA")


@lru_cache(maxsize=2)
def _noto_font(font_path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path, NOTO_FONT_SIZE, layout_engine=ImageFont.Layout.RAQM)


def render_noto(text: str, font_path: str | Path) -> Image.Image:
    """Draw one emoji with Noto Color Emoji; raise `SkipArtwork` if the font does not draw it as a single glyph."""
    font = _noto_font(str(font_path))
    single = font.getlength("\U0001f600")
    width = font.getlength(text)
    if width > 1.5 * single:
        raise SkipArtwork(f"font draws {text!r} as {round(width / single)} glyphs")
    left, top, right, bottom = font.getbbox(text)
    if right <= left or bottom <= top:
        raise SkipArtwork(f"font has no glyph for {text!r}")
    canvas = Image.new("RGBA", (round(single), bottom), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), text, font=font, embedded_color=True)
    return canvas


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of an image (what the dataset stores)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


RENDER_KINDS = ("svg", "raster", "noto")


def load_artwork(job: RenderJob) -> Image.Image:
    """Load or rasterise the artwork of `job` as RGBA at its native (or high-res render) size."""
    if job.kind == "svg":
        return render_svg(job.source, HIGH_RES if job.high_res else 2 * LOW_RES)
    if job.kind == "raster":
        with Image.open(job.source) as opened:
            return opened.convert("RGBA")
    if job.font_path is None:
        raise TypeError("a 'noto' RenderJob needs font_path")
    return render_noto(job.source, job.font_path)


def render_job(job: RenderJob) -> str | None:
    """Render `job` into its cache files; return None on success or the reason it was skipped (also cached)."""
    if job.kind not in RENDER_KINDS:
        raise ValueError(f"unknown RenderJob kind {job.kind!r}; expected one of {RENDER_KINDS}")
    out = Path(job.out_stem)
    try:
        rgba = load_artwork(job)
        if is_blank(rgba):
            raise SkipArtwork("blank image")
    except (SkipArtwork, OSError, ValueError) as err:  # resvg raises ValueError on a broken SVG
        reason = f"{type(err).__name__}: {err}"
        out.with_suffix(".skip").write_text(reason + "\n")
        return reason
    square = to_square_on_white(rgba)
    if job.high_res:
        high = resize(square, HIGH_RES)
        # The 64-px image is the 256-px one shrunk, so upsampler pairs are exactly consistent.
        low = resize(high, LOW_RES)
        _atomic_write(out.with_suffix(".256.png"), encode_png(high))
    else:
        low = resize(square, LOW_RES)
    _atomic_write(out.with_suffix(".png"), encode_png(low))  # written last: its presence marks the job done
    return None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
