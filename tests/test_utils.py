import math

import numpy as np
import PIL.Image
import pytest
import torch

from unclip_diffusers.defaults import ENV_VAR, HUB_REPO_ID, default_pretrained_path
from unclip_diffusers.utils import postprocess_images, psnr, slerp, to_rgb, to_tensor_images, validate_pil_images


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.acos(float(torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1)))


def test_slerp_endpoints_are_the_inputs():
    g = torch.Generator().manual_seed(0)
    v0, v1 = torch.randn(16, generator=g) * 3, torch.randn(16, generator=g) * 0.5
    torch.testing.assert_close(slerp(v0, v1, 0.0), v0)
    torch.testing.assert_close(slerp(v0, v1, 1.0), v1)


def test_slerp_midpoint_has_interpolated_norm_and_equal_angles():
    g = torch.Generator().manual_seed(1)
    v0, v1 = torch.randn(32, generator=g) * 2, torch.randn(32, generator=g)
    for t in (0.25, 0.5, 0.8):
        mid = slerp(v0, v1, t)
        expected_norm = (1 - t) * v0.norm() + t * v1.norm()
        torch.testing.assert_close(mid.norm(), expected_norm)
        total = _angle(v0, v1)
        assert _angle(v0, mid) == pytest.approx(t * total, abs=1e-4)
        assert _angle(mid, v1) == pytest.approx((1 - t) * total, abs=1e-4)


def test_slerp_broadcasts_weights_into_frames():
    v0, v1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    frames = slerp(v0, v1, torch.linspace(0, 1, 5))
    assert frames.shape == (5, 2)
    # Midpoint: direction (1, 1) / sqrt(2), norm (1 + 2) / 2.
    torch.testing.assert_close(frames[2], torch.full((2,), 1.5 / math.sqrt(2)))
    # The quarter-circle path keeps every frame on the arc: angle grows linearly with t.
    angles = torch.atan2(frames[:, 1], frames[:, 0])
    torch.testing.assert_close(angles, torch.linspace(0, math.pi / 2, 5))


def test_slerp_of_parallel_vectors_and_errors():
    v = torch.tensor([3.0, 4.0])
    torch.testing.assert_close(slerp(v, 2 * v, 0.5), 1.5 * v)
    with pytest.raises(ValueError, match="opposite"):
        slerp(v, -v, 0.5)
    with pytest.raises(ValueError, match="same width"):
        slerp(torch.ones(3), torch.ones(4), 0.5)
    with pytest.raises(ValueError, match="finite"):
        slerp(v, v, float("nan"))


def test_psnr_known_values_range_and_identical_images():
    ones, halves = torch.ones(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert psnr(ones, ones - 0.1) == pytest.approx(20.0)  # MSE 0.01 in [0, 1]
    assert psnr(ones, -ones, data_range=2.0) == pytest.approx(0.0)  # MSE 4 on [-1, 1]: the worst case
    per_image = torch.stack([ones[0] - 0.1, ones[1] - 0.01])  # 20 dB and 40 dB: the mean of the dBs is 30
    assert psnr(per_image, ones) == pytest.approx(30.0)
    assert psnr(halves.numpy(), halves.numpy()) == math.inf  # arrays as well as tensors
    with pytest.raises(ValueError, match="one shape"):
        psnr(ones, ones[:1])


def test_to_rgb_composites_transparency_over_white_and_rejects_odd_modes():
    rgba = PIL.Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgb = to_rgb(rgba)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 0, 0) and rgb.getpixel((1, 1)) == (255, 255, 255)
    assert to_rgb(PIL.Image.new("L", (2, 2), 7)).getpixel((0, 0)) == (7, 7, 7)
    with pytest.raises(ValueError, match="mode 'F'"):
        to_rgb(PIL.Image.new("F", (2, 2)))
    with pytest.raises(ValueError, match="mode 'I;16'"):
        to_rgb(PIL.Image.new("I;16", (2, 2)))
    with pytest.raises(TypeError, match="PIL.Image.Image"):
        to_rgb(np.zeros((2, 2, 3)))


def test_validate_pil_images_rejects_wrong_types():
    image = PIL.Image.new("RGB", (2, 2))
    assert len(validate_pil_images(image)) == 1 and len(validate_pil_images([image, image])) == 2
    with pytest.raises(TypeError, match="non-empty list"):
        validate_pil_images([])
    with pytest.raises(TypeError, match=r"image\[1\]"):
        validate_pil_images([image, "cat.png"])
    with pytest.raises(TypeError, match="got str"):
        validate_pil_images("cat.png")


def test_image_conversions_round_trip():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    as_pt = postprocess_images(images, "pt")
    as_np = postprocess_images(images, "np")
    as_pil = postprocess_images(images, "pil")
    assert as_pt.shape == (2, 3, 8, 8) and as_np.shape == (2, 8, 8, 3) and as_np.dtype == np.float32
    assert len(as_pil) == 2 and as_pil[0].size == (8, 8) and as_pil[0].mode == "RGB"
    torch.testing.assert_close(to_tensor_images(as_pt), images)
    torch.testing.assert_close(to_tensor_images(as_np), images)
    torch.testing.assert_close(to_tensor_images(as_pil), images, atol=1 / 255, rtol=0)
    assert to_tensor_images(as_pt, size=(16, 16)).shape == (2, 3, 16, 16)
    assert to_tensor_images(PIL.Image.new("RGB", (20, 10)), size=(8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_tensor_images(images)  # model-space [-1, 1] tensors are not an accepted input range
    assert postprocess_images(images, "latent") is images  # diffusers' "latent": the model-space tensor itself
    with pytest.raises(ValueError, match="output_type"):
        postprocess_images(images, "latents")


def test_default_pretrained_path_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_pretrained_path(root=tmp_path) == HUB_REPO_ID
    monkeypatch.setenv(ENV_VAR, "/models/my-unclip")
    assert default_pretrained_path(root=tmp_path) == "/models/my-unclip"
    release = tmp_path / "checkpoints" / "unclip-emoji"
    release.mkdir(parents=True)
    assert default_pretrained_path(root=tmp_path) == "/models/my-unclip"  # an empty folder is not a checkpoint
    (release / "model_index.json").write_text("{}")
    assert default_pretrained_path(root=tmp_path) == str(release)
