"""The bundled release `checkpoints/unclip-emoji` (skipped while none is committed): small, fp16 safetensors, loaded by
default, generating at >= 128 px, with a card that carries measured figures, its training state and licenses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.defaults import default_pretrained_path

RELEASE = Path(__file__).resolve().parents[1] / "checkpoints" / "unclip-emoji"
EVALUATOR = RELEASE.parent / "evaluator-clip-small" / "evaluator"
pytestmark = pytest.mark.skipif(not (RELEASE / "model_index.json").is_file(), reason="no release checkpoint bundled")


def test_release_is_small_fp16_safetensors_with_provenance_and_licenses():
    files = [p for p in RELEASE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 200 * 2**20
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    for path in weights:
        assert {v.dtype for v in load_file(path).values() if v.is_floating_point()} == {torch.float16}, path
    provenance = json.loads((RELEASE / "training_provenance.json").read_text(encoding="utf-8"))
    assert set(provenance) == {"clip", "prior", "decoder", "upsampler"}
    assert all(entry["recorded"] and "config" in entry for entry in provenance.values())  # restorable
    assert (RELEASE / "TRAINING_DATA_LICENSES.md").is_file()


def test_release_is_the_default_and_generates_at_128_px_or_more():
    assert Path(default_pretrained_path()) == RELEASE
    pipe = UnCLIPPipeline.from_pretrained()
    pipe.set_progress_bar_config(disable=True)
    assert pipe.decoder.dtype == torch.float32  # shipped in fp16, computed in fp32 on CPU
    out = pipe("red heart, Twemoji style", prior_num_inference_steps=2, decoder_num_inference_steps=2,
               super_res_num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images.shape[1] >= 128 and out.images.shape[1:] == (*pipe.output_size, 3)
    assert torch.isfinite(torch.from_numpy(out.images)).all()


def test_card_shows_measured_figures_and_the_training_state():
    card = (RELEASE / "README.md").read_text(encoding="utf-8")
    evaluation = card.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    for figure in ("R-precision", "CLIP-FD"):
        line = next(line for line in evaluation.splitlines() if figure in line and line.startswith("|"))
        assert any(ch.isdigit() for ch in line.split("|", 2)[2]), line  # a number, not "not measured"
    assert "## Training of these weights" in card
    assert (RELEASE / "samples").is_dir() or "![" in card  # the grid of held-out prompts


def test_shipped_evaluator_loads_in_fp32():
    from unclip_diffusers.evaluation.evaluator import EvaluatorCLIP

    evaluator = EvaluatorCLIP.from_pretrained(EVALUATOR)
    assert evaluator.model.dtype == torch.float32 and evaluator.info.get("train_fingerprint")
