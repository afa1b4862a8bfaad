"""`unclip-eval --quick` end to end: a tiny random pipeline on the committed tiny emoji fixture, in seconds."""

import json

import pytest
import torch

from unclip_diffusers.data import FIXTURE_PATH
from unclip_diffusers.evaluation.cli import main


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    try:
        from unclip_diffusers import UnCLIPPipeline
    except ImportError:
        pytest.skip("UnCLIPPipeline has not landed yet")
    from unclip_diffusers.configs import build_components

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pipe") / "tiny"
    UnCLIPPipeline(**build_components("tiny")).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data_dir():
    return str(FIXTURE_PATH)  # the committed tiny emoji set: 4 held-out pairs, 4 held-out-concept images


def test_quick_end_to_end_with_a_trained_evaluator(pipeline_dir, data_dir, tmp_path):
    pytest.importorskip("unclip_diffusers.training.clip", reason="the CLIP training loop has not landed yet")
    out = tmp_path / "report"
    args = ["--pipeline", str(pipeline_dir), "--data", data_dir, "--output", str(out), "--quick",
            "--evaluator", str(tmp_path / "evaluator"), "--evaluator-steps", "4"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"heldout_pairs", "heldout_concepts"}
    assert metrics["meta"]["mode"] == "quick" and metrics["meta"]["evaluator"]["trained"] is True
    assert metrics["meta"]["evaluator"]["seed"] != 0 and metrics["meta"]["evaluator"]["preset"] == "evaluator-tiny"
    for split in metrics["splits"].values():
        t2i = split["text_to_image"]["via_prior"]
        assert 0.0 <= t2i["r_precision"]["r_precision"] <= 1.0 and t2i["clip_fd"] >= 0.0
        assert -1.0 <= split["prior"]["cos_prior"] <= 1.0
    report = (out / "report.md").read_text()
    assert "untrained" not in report and (out / "text_to_image_heldout_pairs.png").is_file()
    assert (tmp_path / "evaluator" / "evaluator" / "evaluator.json").is_file()  # cached for the next run


def test_quick_with_untrained_evaluator_is_flagged(pipeline_dir, data_dir, tmp_path):
    out = tmp_path / "report"
    assert main(["--pipeline", str(pipeline_dir), "--data", data_dir, "--output", str(out), "--quick",
                 "--untrained-evaluator", "--splits", "heldout_pairs", "--max-examples", "4"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["splits"]) == ["heldout_pairs"] and metrics["meta"]["evaluator"]["trained"] is False
    assert "untrained (random weights)" in (out / "report.md").read_text()


def test_cli_refuses_bad_paths(tmp_path, data_dir):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["--pipeline", str(tmp_path), "--data", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="not a pipeline folder"):
        main(["--pipeline", str(tmp_path), "--data", data_dir])
