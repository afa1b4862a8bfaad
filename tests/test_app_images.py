"""Upload sanitising: every odd upload becomes a bounded RGB image or a clear error."""

import io

import numpy as np
import pytest
from PIL import Image

from unclip_diffusers.app.images import MAX_BYTES, MAX_SIDE, sanitize_image, to_rgb


def _png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_rgb_image_passes_through_unchanged(tmp_path):
    image = Image.new("RGB", (40, 30), (10, 20, 30))
    path = tmp_path / "ok.png"
    image.save(path)
    result = sanitize_image(str(path))
    assert result.image.mode == "RGB" and result.image.size == (40, 30) and result.notices == []
    assert result.image.getpixel((0, 0)) == (10, 20, 30)


def test_rgba_is_flattened_onto_white():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((0, 0), (0, 0, 255, 255))
    result = sanitize_image(_png_bytes(image))
    assert result.image.mode == "RGB"
    assert result.image.getpixel((1, 1)) == (255, 255, 255)  # transparent → white, not red or black
    assert result.image.getpixel((0, 0)) == (0, 0, 255)
    assert "transparency" in result.notices[0]


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("1", "PNG"), ("CMYK", "JPEG"), ("P", "PNG"), ("I;16", "PNG")])
def test_other_modes_become_rgb(mode, fmt):
    image = Image.new("RGB", (16, 16), (200, 100, 50)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray((np.arange(256, dtype=np.uint16).reshape(16, 16) * 256))
    result = sanitize_image(_png_bytes(image, fmt))
    assert result.image.mode == "RGB" and result.image.size == (16, 16)
    assert result.notices and "RGB" in result.notices[0]


def test_palette_with_transparency_is_flattened():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.info["transparency"] = 0
    result = sanitize_image(_png_bytes(image))
    assert result.image.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_greyscale_keeps_its_range():
    array = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    rgb, notice = to_rgb(Image.fromarray(array))
    values = np.asarray(rgb)[..., 0]
    assert values.min() == 0 and values.max() == 255 and notice


def test_huge_image_is_downscaled_keeping_aspect():
    result = sanitize_image(Image.new("RGB", (3000, 1500), "white"))
    assert result.image.size == (MAX_SIDE, MAX_SIDE // 2)
    assert "downscaled" in result.notices[0]


def test_arrays_are_accepted():
    assert sanitize_image(np.zeros((5, 6, 3), dtype=np.uint8)).image.size == (6, 5)
    assert sanitize_image(np.ones((5, 6), dtype=np.float32)).image.getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ValueError, match="shape"):
        sanitize_image(np.zeros((5, 6, 2), dtype=np.uint8))


@pytest.mark.parametrize("payload, message", [
    (b"this is not an image at all", "not an image"),
    (b"", "empty"),
    (_png_bytes(Image.new("RGB", (64, 64)))[:60], "damaged or truncated"),
])
def test_bad_bytes_give_clear_errors(payload, message):
    with pytest.raises(ValueError, match=message):
        sanitize_image(payload)


def test_bad_files_give_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="'notes.txt' is not an image"):
        sanitize_image(str(text))
    with pytest.raises(ValueError, match="No image file"):
        sanitize_image(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="No image was given"):
        sanitize_image(None)
    with pytest.raises(ValueError, match="Cannot read an image from a int"):
        sanitize_image(3)


def test_oversized_files_and_decompression_bombs_are_refused(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (MAX_BYTES + 1))
    with pytest.raises(ValueError, match="the limit is"):
        sanitize_image(str(big))
    # A tiny file that claims 12,000 x 12,000 pixels: refused from its header, before decoding.
    bomb = _png_bytes(Image.new("1", (12_000, 12_000)))
    assert len(bomb) < 100_000
    with pytest.raises(ValueError, match="too large|megapixels"):
        sanitize_image(bomb)


def test_animation_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    result = sanitize_image(buffer.getvalue())
    assert result.image.getpixel((0, 0)) == (255, 0, 0)
    assert any("animated" in n for n in result.notices)


def test_data_url_bytes():
    import base64

    url = b"data:image/png;base64," + base64.b64encode(_png_bytes(Image.new("RGB", (3, 3))))
    assert sanitize_image(url).image.size == (3, 3)


def test_images_smaller_than_the_encoder_reads_get_a_notice_naming_the_size():
    result = sanitize_image(Image.new("RGB", (1, 1), "red"), min_side=64)
    assert result.image.size == (1, 1)
    assert result.notices == ["The image is 1x1 pixels, below the 64x64 the image encoder reads: it is "
                              "enlarged, so results follow little more than its colours."]
    assert sanitize_image(Image.new("RGB", (64, 80)), min_side=64).notices == []
    assert sanitize_image(Image.new("RGB", (1, 1))).notices == []  # no minimum given, nothing to say
