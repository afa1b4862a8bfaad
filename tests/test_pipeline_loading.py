"""Saving and loading `UnCLIPPipeline` folders: round trips, `DiffusionPipeline` + remote code, safetensors only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

import unclip_diffusers.defaults as defaults
from unclip_diffusers import UnCLIPPipeline, UnCLIPPriorTransformer, UnCLIPTextProjection
from unclip_diffusers.configs import build_components

FAST = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
            prior_guidance_scale=2.0, decoder_guidance_scale=2.0, output_type="np")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)




@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "unclip-tiny"
    pipe.save_pretrained(folder)
    return folder


def test_saved_folder_is_self_describing_and_safetensors_only(saved):
    index = json.loads((saved / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_unclip", "UnCLIPPipeline"]
    assert index["prior"] == ["unclip_diffusers", "UnCLIPPriorTransformer"]
    assert index["text_proj"] == ["unclip_diffusers", "UnCLIPTextProjection"]
    assert index["decoder"] == ["diffusers", "UNet2DConditionModel"]
    assert index["normalize_embeddings"] is True
    assert "from unclip_diffusers" in (saved / "pipeline_unclip.py").read_text()
    weights = [p.name for p in saved.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(name.endswith(".safetensors") for name in weights)
    assert (saved / "prior" / "diffusion_pytorch_model.safetensors").exists()
    assert (saved / "text_encoder" / "model.safetensors").exists()


def test_round_trip_gives_identical_outputs(pipe, saved):
    loaded = UnCLIPPipeline.from_pretrained(saved)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.prior, UnCLIPPriorTransformer) and isinstance(loaded.text_proj, UnCLIPTextProjection)
    torch.testing.assert_close(loaded.prior.clip_std, pipe.prior.clip_std)
    assert loaded.tokenizer("a cat").input_ids == pipe.tokenizer("a cat").input_ids
    assert loaded.config.normalize_embeddings is True and loaded.super_res_last is None
    a = pipe("a cat", generator=_generator(), **FAST)
    b = loaded("a cat", generator=_generator(), **FAST)
    # Equal up to float noise: weights loaded from safetensors sit at other memory alignments than freshly built
    # ones, and CPU kernels then sum in another order (differences ~1e-6 per layer).
    np.testing.assert_allclose(a.images, b.images, rtol=0, atol=1e-4)
    torch.testing.assert_close(a.image_embeds, b.image_embeds)
    image = pipe.numpy_to_pil(a.base_images)[0]
    torch.testing.assert_close(pipe.encode_image(image), loaded.encode_image(image))


def test_diffusion_pipeline_loads_it_with_trust_remote_code(pipe, saved):
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(saved)
    loaded = DiffusionPipeline.from_pretrained(saved, trust_remote_code=True)
    assert type(loaded) is UnCLIPPipeline
    loaded.set_progress_bar_config(disable=True)
    a = pipe("a cat", generator=_generator(1), **FAST)
    b = loaded("a cat", generator=_generator(1), **FAST)
    np.testing.assert_allclose(a.images, b.images, rtol=0, atol=1e-4)  # float noise only (see above)


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
def test_a_fresh_process_loads_it_without_importing_the_package_first(saved, tmp_path):
    script = (
        "import sys, torch\n"
        "from diffusers import DiffusionPipeline\n"
        "assert 'unclip_diffusers' not in sys.modules\n"
        f"pipe = DiffusionPipeline.from_pretrained({str(saved)!r}, trust_remote_code=True)\n"
        "pipe.set_progress_bar_config(disable=True)\n"
        "out = pipe('a cat', prior_num_inference_steps=2, decoder_num_inference_steps=2,"
        " super_res_num_inference_steps=2, output_type='np', generator=torch.Generator().manual_seed(0))\n"
        "print(type(pipe).__module__, out.images.shape)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "unclip_diffusers.pipelines.pipeline_unclip (1, 64, 64, 3)" in result.stdout


def test_safetensors_only(pipe, saved, tmp_path):
    with pytest.raises(ValueError, match="safetensors"):
        pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    with pytest.raises(ValueError, match="safetensors"):
        UnCLIPPipeline.from_pretrained(saved, use_safetensors=False)


def test_flags_and_missing_upsampler_round_trip(tmp_path):
    torch.manual_seed(0)
    components = build_components("tiny")
    components.update(super_res_first=None, super_res_scheduler=None, image_encoder=None, feature_extractor=None)
    pipe = UnCLIPPipeline(**components, normalize_embeddings=False)
    pipe.save_pretrained(tmp_path / "base-only")
    loaded = UnCLIPPipeline.from_pretrained(tmp_path / "base-only")
    assert loaded.config.normalize_embeddings is False
    assert loaded.super_res_first is None and loaded.image_encoder is None and loaded.feature_extractor is None
    loaded.set_progress_bar_config(disable=True)
    assert loaded("a cat", generator=_generator(), **FAST).images.shape == (1, 16, 16, 3)


def test_from_pretrained_without_a_path_uses_the_default(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "repo_root", lambda: tmp_path)  # no bundled checkpoint here
    monkeypatch.setenv(defaults.ENV_VAR, str(saved))
    loaded = UnCLIPPipeline.from_pretrained()
    assert loaded.name_or_path == str(saved)
    with pytest.raises(ValueError, match="neither a pipeline folder nor a Hub repository id"):
        UnCLIPPipeline.from_pretrained(str(tmp_path / "missing" / "folder"))


def test_constructor_rejects_inconsistent_components():
    torch.manual_seed(0)
    components = build_components("tiny")
    with pytest.raises(ValueError, match="both image_encoder and feature_extractor"):
        UnCLIPPipeline(**{**components, "feature_extractor": None})
    with pytest.raises(ValueError, match="super_res_scheduler"):
        UnCLIPPipeline(**{**components, "super_res_scheduler": None})


def test_default_hub_id_offline_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "repo_root", lambda: tmp_path)
    monkeypatch.delenv(defaults.ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="unclip-diffusers/unclip-emoji.*the default"):
        UnCLIPPipeline.from_pretrained(local_files_only=True, cache_dir=str(tmp_path / "hub-cache"))


def test_encodings_can_feed_training_code(pipe):
    """encode_prompt/encode_image run under no_grad, not inference_mode, so their tensors work in autograd."""
    encodings = pipe.encode_prompt("a cat")
    layer = torch.nn.Linear(32, 1)
    layer(encodings.text_embeds).sum().backward()
    assert layer.weight.grad is not None


def test_a_folder_saved_in_fp16_loads_in_fp32_unless_a_dtype_is_given(tmp_path):
    from conftest import make_tiny_pipeline

    folder = tmp_path / "fp16"
    make_tiny_pipeline().to(torch.float16).save_pretrained(folder)
    names = ("text_encoder", "image_encoder", "prior", "text_proj", "decoder", "super_res_first")
    for loaded in (UnCLIPPipeline.from_pretrained(folder), DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)):
        assert {getattr(loaded, n).dtype for n in names if getattr(loaded, n) is not None} == {torch.float32}
    half = UnCLIPPipeline.from_pretrained(folder, dtype=torch.float16)
    assert {getattr(half, n).dtype for n in names if getattr(half, n) is not None} == {torch.float16}
