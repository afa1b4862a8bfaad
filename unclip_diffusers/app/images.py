"""Upload sanitising: turn whatever a user sends (a path, bytes, an array or a PIL image) into a bounded RGB image, or
explain in one sentence why it cannot be used."""

from __future__ import annotations

import base64
import io
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 1024  # uploads are downscaled to this longest side; the model reads 64 px at most, so nothing is lost
MAX_PIXELS = 50_000_000  # refuse to decode anything larger (a decompression bomb or a panorama we cannot use)
MAX_BYTES = 20 * 1024 * 1024  # refuse files larger than this before decoding them

ImageInput = str | os.PathLike | bytes | np.ndarray | Image.Image


@dataclass
class SanitizedImage:
    """An RGB image ready for the pipeline and the notices a user should see about what was changed."""

    image: Image.Image
    notices: list[str] = field(default_factory=list)


def _open(source: str | os.PathLike | bytes) -> Image.Image:
    """Open a file or a byte string as a PIL image, with clear errors for what is not one."""
    if isinstance(source, (bytes, bytearray)):
        if source.startswith(b"data:"):  # a data URL, as browsers and API clients sometimes send
            try:
                source = base64.b64decode(source.split(b",", 1)[1], validate=False)
            except (IndexError, ValueError) as error:
                raise ValueError("The uploaded data URL is not valid base64.") from error
        size, label, stream = len(source), "The upload", io.BytesIO(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"No image file at {path!r}.")
        size, label, stream = os.path.getsize(path), f"The file {os.path.basename(path)!r}", path
    if size == 0:
        raise ValueError(f"{label} is empty.")
    if size > MAX_BYTES:
        raise ValueError(f"{label} is {size / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(
                    f"{label} is {image.width}x{image.height} pixels; images above {MAX_PIXELS // 1_000_000} "
                    "megapixels are refused."
                )
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        if isinstance(error, UnidentifiedImageError):
            raise ValueError(f"{label} is not an image (or is in a format Pillow cannot read).") from error
        raise ValueError(f"{label} is too large to decode safely.") from error
    except (OSError, SyntaxError) as error:  # truncated or corrupt files
        raise ValueError(f"{label} could not be decoded: it is damaged or truncated ({error}).") from error
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    """A PIL image from an `(H, W)`, `(H, W, 1|3|4)` array of uint8 or of floats in [0, 1]."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {tuple(array.shape)}.")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"An image array must be uint8 or float in [0, 1]; got {array.dtype}.")
        array = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> tuple[Image.Image, str | None]:
    """Convert any PIL mode to RGB: transparency is flattened onto `background`, CMYK and 16-bit images are
    converted. Returns the image and a notice naming the conversion (or `None` if it was already RGB)."""
    mode = image.mode
    if mode == "RGB":
        return image, None
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: rescale to 8 bit before converting
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size and array.max() > 0 else 1.0
        image = Image.fromarray((array / high * 255).round().astype(np.uint8), mode="L")
    elif mode == "F":
        image = _from_array(np.asarray(image, dtype=np.float32))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        colour = {(255, 255, 255): "white", (0, 0, 0): "black"}.get(tuple(background), f"RGB{tuple(background)}")
        return flat, f"The {mode} image's transparency was flattened onto a {colour} background."
    names = {"L": "greyscale", "1": "black-and-white", "P": "palette", "CMYK": "CMYK"}
    return image.convert("RGB"), f"The {names.get(mode, mode)} image was converted to RGB."


def sanitize_image(source: ImageInput, max_side: int = MAX_SIDE, min_side: int | None = None,
                   background: tuple[int, int, int] = (255, 255, 255)) -> SanitizedImage:
    """Load an upload as an RGB image no larger than `max_side` on its longest side; with `min_side` (the image
    encoder's input size), a notice says when the image is smaller and so gets enlarged. Transparency is flattened
    onto `background` (white; a mask flattens onto black, so transparent means "keep").

    Raises `ValueError` with a user-facing message for anything that is not a usable image: missing or empty files,
    non-images, damaged files, decompression bombs and animations are handled; EXIF rotation is applied.
    """
    if source is None:
        raise ValueError("No image was given: upload one first.")
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}.")
    if isinstance(source, np.ndarray):
        image = _from_array(source)
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (str, os.PathLike, bytes, bytearray)):
        image = _open(source)
    else:
        raise ValueError(f"Cannot read an image from a {type(source).__name__}.")
    notices: list[str] = []
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
        notices.append("The upload is animated; its first frame is used.")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"The image is {image.width}x{image.height} pixels, which is empty.")
    image = ImageOps.exif_transpose(image)
    image, notice = to_rgb(image, background)
    if notice:
        notices.append(notice)
    if max(image.size) > max_side:
        original = image.size
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        notices.append(f"The {original[0]}x{original[1]} image was downscaled to {image.width}x{image.height}.")
    if min_side is not None and min(image.size) < min_side:
        notices.append(f"The image is {image.width}x{image.height} pixels, below the {min_side}x{min_side} the image "
                       "encoder reads: it is enlarged, so results follow little more than its colours.")
    return SanitizedImage(image=image, notices=notices)
