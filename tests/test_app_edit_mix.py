"""The Edit and Mix tabs' functions, called directly (no server): masks from the editor or an upload, agreement with
`pipe.inpaint` / `pipe.mix`, left-out inputs and clear refusals."""

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from app_helpers import tiny_service
from unclip_diffusers.app.masks import check_painted, editor_image_and_mask, load_mask
from unclip_diffusers.app.validation import InputError, check_number

STEPS = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2)


@pytest.fixture(scope="module")
def service():
    return tiny_service()


def last(generator):
    return list(generator)[-1]


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def _source() -> Image.Image:
    ramp = np.linspace(0, 255, 64).astype(np.uint8)
    return Image.fromarray(np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                                     np.full((64, 64), 90, np.uint8)], axis=-1))


def _left_half(size: int = 64) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (0, 0, size // 2, size))
    return mask


def _editor_value(size: int = 64) -> dict:
    """What `gr.ImageEditor(type="pil")` sends after a white stroke over the left half: RGBA background and layer."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (0, 0, size // 2, size))
    composite = _source().resize((size, size)).convert("RGBA")
    composite.alpha_composite(layer)
    return {"background": _source().resize((size, size)).convert("RGBA"), "layers": [layer], "composite": composite}


def test_edit_matches_the_pipeline_and_keeps_the_unpainted_half(service, tmp_path):
    _source().save(tmp_path / "image.png")
    _left_half().save(tmp_path / "mask.png")
    images, seed, notes = last(service.edit(str(tmp_path / "image.png"), str(tmp_path / "mask.png"), "", 3, False, 2))
    reference = service.pipe.inpaint(_source(), _left_half(), num_images_per_prompt=2, decoder_guidance_scale=8.0,
                                     generator=torch.Generator().manual_seed(3), **STEPS)
    assert seed == 3 and same(images, reference.images) and [im.size for im in images] == [(64, 64)] * 2
    assert all(np.array_equal(np.asarray(im)[:, 32:], np.asarray(_source())[:, 32:]) for im in images)
    assert "image's own CLIP embedding" in notes and "randomly initialised" in notes


def test_the_editors_painted_layer_is_the_mask(service):
    painted = last(service.edit(_editor_value(), None, "red heart", 5, False, 1, jumps=1))
    uploaded = last(service.edit(_source(), _left_half(), "red heart", 5, False, 1, jumps=1))
    assert same(painted[0], uploaded[0]) and "Repainted from the prompt" in painted[2]
    assert "transparency" not in painted[2]  # the editor's opaque RGBA background is no "flattened" notice
    reference = service.pipe.inpaint(_source(), _left_half(), prompt="red heart", jumps=1, prior_guidance_scale=4.0,
                                     decoder_guidance_scale=8.0, generator=torch.Generator().manual_seed(5), **STEPS)
    assert same(painted[0], reference.images)


def test_masks_from_the_editor_layers_or_the_composite():
    value = _editor_value(32)
    background, mask = editor_image_and_mask(value)
    assert background.mode == "RGB" and mask.size == (32, 32)
    assert np.asarray(mask)[:, :16].min() == 255 and np.asarray(mask)[:, 16:].max() == 0
    without_layers = {**value, "layers": []}  # the mask then is where the composite differs from the background
    assert np.array_equal(np.asarray(editor_image_and_mask(without_layers)[1]), np.asarray(mask))
    blank = {"background": Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "layers": value["layers"], "composite": None}
    for empty in (None, {"background": None, "layers": []}, blank):
        with pytest.raises(InputError, match="No image to edit: upload one in the editor"):
            editor_image_and_mask(empty)


def test_uploaded_masks_are_fitted_and_transparency_means_keep(tmp_path):
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    rgba.paste((255, 255, 255, 255), (0, 0, 10, 10))
    mask = load_mask(rgba, (40, 20))
    assert mask.mode == "L" and mask.size == (40, 20)
    assert np.asarray(mask)[:, :18].min() == 255 and np.asarray(mask)[:, 22:].max() == 0
    text = tmp_path / "mask.txt"
    text.write_text("not an image")
    with pytest.raises(InputError, match="The mask: The file 'mask.txt' is not an image"):
        load_mask(str(text), (8, 8))
    with pytest.raises(InputError, match="No mask was given"):
        load_mask(None, (8, 8))


def test_edit_refuses_empty_full_and_bad_requests(service):
    with pytest.raises(gr.Error, match="Nothing is painted: paint over the part"):
        last(service.edit(_source(), Image.new("L", (64, 64), 0), "", 0, False, 1))
    with pytest.raises(gr.Error, match="whole image is painted, so nothing is kept: use the Text to image"):
        last(service.edit(_source(), Image.new("L", (64, 64), 255), "", 0, False, 1))
    with pytest.raises(gr.Error, match="No image to edit"):
        last(service.edit({"background": None, "layers": [], "composite": None}, None, "", 0, False, 1))
    with pytest.raises(gr.Error, match="No image to edit was given"):
        last(service.edit(None, _left_half(), "", 0, False, 1))
    with pytest.raises(gr.Error, match="Resampling jumps must be between 0 and 10, got 11"):
        last(service.edit(_source(), _left_half(), "", 0, False, 1, jumps=11))
    tiny_stroke = Image.new("L", (64, 64), 0)
    tiny_stroke.putpixel((3, 3), 255)  # painted, but gone at the 16 px base resolution: the pipeline says so
    with pytest.raises(gr.Error, match="nothing to repaint at the base resolution"):
        last(service.edit(_source(), tiny_stroke, "", 0, False, 1))
    check_painted(_left_half())


def _slots(*inputs):
    """Mix arguments for up to four `(kind, prompt, image, weight)` inputs, the rest empty."""
    filled = [*inputs, *[("Prompt", "", None, 0.5)] * (4 - len(inputs))]
    return [value for slot in filled for value in slot]


def test_mix_matches_the_pipeline_and_leaves_out_empty_and_zero_weight_inputs(service):
    red = Image.new("RGB", (32, 32), "red")
    args = _slots(("Prompt", "red apple", None, 1.0), ("Image", "ignored", red, 0.5), ("Image", "", None, 0.9),
                  ("Prompt", "blue heart", None, 0.0))
    images, seed, notes = last(service.mix(*args, 2, 7, False))
    reference = service.pipe.mix(["red apple", red], [2 / 3, 1 / 3], num_images_per_prompt=2, prior_guidance_scale=4.0,
                                 decoder_guidance_scale=8.0, generator=torch.Generator().manual_seed(7), **STEPS)
    assert seed == 7 and same(images, reference.images) and [im.size for im in images] == [(64, 64)] * 2
    assert "input 1 (prompt) 0.67, input 2 (image) 0.33." in notes and "input 3" not in notes
    three, _, notes = last(service.mix(*_slots(("Prompt", "cat", None, 0.2), ("Prompt", "dog", None, 0.2),
                                               ("Image", "", red, 0.6)), 1, 0, False))
    assert len(three) == 1 and "input 3 (image) 0.60" in notes


def test_mix_refusals_say_what_to_do(service):
    with pytest.raises(gr.Error, match="Nothing to mix: give at least one input a prompt or an image"):
        last(service.mix(*_slots(("Prompt", "  ", None, 1.0), ("Image", "cat", None, 1.0)), 1, 0, False))
    with pytest.raises(gr.Error, match="mix weights must sum to a positive number"):
        last(service.mix(*_slots(("Prompt", "cat", None, 0.0), ("Prompt", "dog", None, 0.0)), 1, 0, False))
    with pytest.raises(gr.Error, match="Input 2 weight must be between 0 and 1, got 3"):
        last(service.mix(*_slots(("Prompt", "cat", None, 1.0), ("Prompt", "dog", None, 3)), 1, 0, False))
    with pytest.raises(gr.Error, match="Input 1 must be one of"):
        last(service.mix(*_slots(("Video", "cat", None, 1.0)), 1, 0, False))


def test_check_number_can_name_the_setting():
    assert check_number("weight", 1) == 1.0 and check_number("jumps", 2) == 2
    with pytest.raises(InputError, match="Input 3 weight must be a number"):
        check_number("weight", "heavy", label="Input 3 weight")
