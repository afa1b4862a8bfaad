"""Which weights the app serves, and `python app.py`'s wiring (launch is intercepted, no server starts)."""

import shutil
import sys
from pathlib import Path

import gradio as gr
import pytest
import torch

import unclip_diffusers.defaults
from app_helpers import tiny_service
from unclip_diffusers.app import load_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    tiny_service().pipe.save_pretrained(folder)
    return folder


def test_model_folder_is_served_without_the_banner(saved_pipeline):
    loaded = load_pipeline(saved_pipeline, device="cpu")
    assert not loaded.placeholder and loaded.source == str(saved_pipeline)
    assert loaded.pipe.decoder.config.sample_size == 16
    assert loaded.pipe._super_res_slice_pixels == 256 * 256  # a server slices its upsamplers' batches (peak memory)


def test_missing_release_weights_fall_back_to_a_labelled_random_model(monkeypatch, tmp_path):
    monkeypatch.setattr(unclip_diffusers.defaults, "default_pretrained_path", lambda: str(tmp_path / "nothing"))
    state = torch.get_rng_state()
    loaded = load_pipeline(device="cpu")
    assert loaded.placeholder and loaded.source == "random tiny model"
    assert torch.equal(torch.get_rng_state(), state)  # building it left the global RNG alone
    monkeypatch.setattr(unclip_diffusers.defaults, "default_pretrained_path", lambda: "unclip-diffusers/unclip-emoji")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_pipeline(device="cpu").placeholder  # the Hub id is not tried offline


def test_bundled_release_folder_is_used(monkeypatch, saved_pipeline):
    monkeypatch.setattr(unclip_diffusers.defaults, "default_pretrained_path", lambda: str(saved_pipeline))
    loaded = load_pipeline(device="cpu")
    assert not loaded.placeholder and loaded.source == str(saved_pipeline)


def test_a_folder_that_is_not_a_pipeline_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a saved pipeline folder"):
        load_pipeline(tmp_path)


def test_app_py_assembles_and_launches(monkeypatch, saved_pipeline):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, demo=self))
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("app", None)
    import app

    app.main(["--model", str(saved_pipeline), "--port", "7999", "--concurrency", "2", "--no-cache-examples"])
    assert launched["server_port"] == 7999 and launched["ssr_mode"] is False and launched["theme"] is not None
    fns = launched["demo"].fns.values()
    assert {fn.concurrency_limit for fn in fns if fn.api_visibility == "public"} == {2}


def test_bf16_autocast_is_automatic_on_native_bf16_cpus_for_trained_weights(monkeypatch, saved_pipeline):
    from unclip_diffusers.utils import cpu_bf16 as sampling  # where app/loading.py imports the detection from

    monkeypatch.setattr(sampling, "cpu_has_native_bf16", lambda: True)
    loaded = load_pipeline(saved_pipeline, device="cpu")
    assert loaded.bf16 and loaded.pipe.decoder._bf16_autocast and loaded.pipe.prior._bf16_autocast
    assert not load_pipeline(saved_pipeline, device="cpu", bf16=False).bf16  # --precision fp32
    monkeypatch.setattr(unclip_diffusers.defaults, "default_pretrained_path", lambda: str(saved_pipeline / "none"))
    assert not load_pipeline(device="cpu").bf16  # the random placeholder stays in fp32
    monkeypatch.setattr(sampling, "cpu_has_native_bf16", lambda: False)
    plain = load_pipeline(saved_pipeline, device="cpu")
    assert not plain.bf16 and not getattr(plain.pipe.decoder, "_bf16_autocast", False)
    assert load_pipeline(saved_pipeline, device="cpu", bf16=True).bf16  # --precision bf16 forces it


def test_native_bf16_detection_reads_the_cpu_flags(monkeypatch, tmp_path):
    import builtins

    from unclip_diffusers.utils import cpu_bf16 as sampling

    real_open = builtins.open
    cpuinfo = tmp_path / "cpuinfo"

    def fake_open(path, *args, **kwargs):
        return real_open(cpuinfo if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    assert {"avx2", "avx512_bf16"} <= sampling.cpu_flags() and sampling.cpu_has_native_bf16()
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")  # AVX-512 without BF16: emulated
    assert not sampling.cpu_has_native_bf16()
    cpuinfo.unlink()  # not Linux: no flags, no bf16
    assert sampling.cpu_flags() == frozenset() and not sampling.cpu_has_native_bf16()


def _header(demo) -> str:
    return next(c["props"]["value"] for c in demo.get_config_file()["components"]
                if c["type"] == "markdown" and "miniature DALL·E 2" in c["props"]["value"])


def test_header_names_the_model_and_its_folder_never_an_absolute_path(monkeypatch, saved_pipeline, tmp_path):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(demo=self))
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("app", None)
    import app

    app.main(["--model", str(saved_pipeline), "--no-cache-examples"])
    header = _header(launched["demo"])
    assert str(saved_pipeline) not in header and str(saved_pipeline.parent) not in header
    assert f"folder `{saved_pipeline.name}`" in header
    card = tmp_path / "named"
    shutil.copytree(saved_pipeline, card)
    (card / "README.md").write_text("---\nmodel-index:\n- name: unclip-emoji\n---\n# A card\n")
    assert load_pipeline(card, device="cpu").label == "unclip-emoji (folder `named`)"


def test_hub_and_random_weights_are_labelled_by_name(monkeypatch):
    from unclip_diffusers.app.loading import weights_label

    assert weights_label("unclip-diffusers/unclip-emoji") == "unclip-emoji (Hub `unclip-diffusers/unclip-emoji`)"
    assert weights_label("random tiny model", placeholder=True) == "random tiny model"
