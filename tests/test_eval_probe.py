"""Linear probes of embedding spaces (evaluation/probe.py) and the probe_clip CLI (evaluation/probe_clip.py, run by
scripts/probe_clip.py) end to end on the fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unclip_diffusers.data import FIXTURE_PATH
from unclip_diffusers.evaluation import probe_clip
from unclip_diffusers.evaluation.evaluator import EvaluatorCLIP, evaluator_size
from unclip_diffusers.evaluation.probe import (
    confusion_matrix,
    encode_labels,
    fit_linear_probe,
    nearest_neighbour_predict,
    per_class_accuracy,
    probe_predict,
)

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "probe_clip.py"


def _clusters(n_per_class: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes around three orthogonal directions in 8-D."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.eye(8)[:3]
    labels = torch.arange(3).repeat_interleave(n_per_class)
    return centres[labels] + noise * torch.randn(len(labels), 8, generator=generator), labels


def test_probe_separates_separable_classes_and_not_random_labels():
    x, y = _clusters(40, noise=0.2, seed=0)
    probe = fit_linear_probe(x, y, 3)
    test_x, test_y = _clusters(40, noise=0.2, seed=1)
    assert (probe_predict(probe, test_x) == test_y).float().mean() > 0.95
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(2))]
    chance_probe = fit_linear_probe(x, shuffled, 3)  # labels unrelated to the features
    assert (probe_predict(chance_probe, test_x) == test_y).float().mean() < 0.6  # it learnt no real class
    torch.testing.assert_close(fit_linear_probe(x, y, 3).weight, probe.weight)  # deterministic


def test_confusion_matrix_and_per_class_accuracy():
    confusion = confusion_matrix(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 0]), 3)
    assert confusion.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert per_class_accuracy(confusion) == [0.5, pytest.approx(2 / 3), None]


def test_probe_input_errors():
    with pytest.raises(ValueError, match="not among"):
        encode_labels(["Noto", "Comic"], ["Noto", "Twemoji"])
    with pytest.raises(ValueError, match="labels must have shape"):
        fit_linear_probe(torch.randn(4, 3), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match="must lie in"):
        fit_linear_probe(torch.randn(2, 3), torch.tensor([0, 5]), 2)
    with pytest.raises(ValueError, match="NaN"):
        fit_linear_probe(torch.full((2, 3), float("nan")), torch.tensor([0, 1]), 2)


def test_caption_choice_is_the_best_caption_of_the_same_concept():
    pool = torch.eye(4)  # captions: heart/Noto, heart/Twemoji, star/Noto, moon/Noto
    concepts, styles = ["heart", "heart", "star", "moon"], ["Noto", "Twemoji", "Noto", "Noto"]
    query = torch.tensor([[0.1, 0.9, 0.0, 0.0], [0.2, 0.0, 0.9, 0.9], [0.9, 0.1, 0.0, 0.0]])
    # image 2 is closest to the star and moon captions, but only the heart's captions compete for a heart image;
    # the star image has a single caption in its group and decides nothing
    assert probe_clip.caption_choices(query, pool, ["heart", "star", "heart"], concepts, styles) == [
        "Twemoji", None, "Noto"]


def test_probe_clip_on_the_fixture(tmp_path):
    EvaluatorCLIP.from_size(evaluator_size("tiny")).save_pretrained(tmp_path / "clip")
    result = probe_clip.main(["--clip", str(tmp_path / "clip"), "--data", str(FIXTURE_PATH), "--threads", "1",
                          "--output", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert saved["train"]["images"] == 30 and 0.0 <= saved["train"]["probe_accuracy"] <= 1.0
    assert saved["classes"] == sorted(saved["classes"]) and len(saved["classes"]) > 1
    pairs = saved["splits"]["heldout_pairs"]
    assert pairs["images"] == 4 and sum(map(sum, pairs["probe_confusion"])) == 4
    assert 0.0 <= pairs["caption_accuracy"]["accuracy"] <= 1.0 and sum(map(sum, pairs["caption_confusion"])) <= 4
    neighbour = pairs["neighbour_accuracy"]
    assert 0.0 <= neighbour["all"] <= 1.0 and "all" in neighbour and set(neighbour) <= {"all", "everyday", "people", "flags"}
    distances = saved["train"]["style_pixel_distances"]
    assert distances and all(0 <= d["median_mad"] <= 255 and d["concepts"] >= 1 for d in distances.values())
    assert (tmp_path / "out" / "confusion.png").stat().st_size > 0 and result["splits"].keys() == saved["splits"].keys()
    with pytest.raises(SystemExit, match="does not exist"):
        probe_clip.main(["--clip", str(tmp_path / "missing"), "--data", str(FIXTURE_PATH)])


def test_probe_clip_concepts_by_nearest_neighbour_alone(tmp_path):
    EvaluatorCLIP.from_size(evaluator_size("tiny")).save_pretrained(tmp_path / "clip")
    result = probe_clip.main(["--clip", str(tmp_path / "clip"), "--data", str(FIXTURE_PATH), "--threads", "1",
                              "--label", "concept", "--no-linear-probe", "--output", str(tmp_path / "out")])
    pairs = result["splits"]["heldout_pairs"]
    assert result["train"]["probe_accuracy"] is None and "probe_accuracy" not in pairs
    assert pairs["images"] > 0 and 0.0 <= pairs["neighbour_accuracy"]["all"] <= 1.0


def test_nearest_neighbour_predict_takes_the_most_similar_reference_label():
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([7, 8, 9])
    query = torch.tensor([[0.9, 0.1], [0.1, 3.0], [-2.0, -0.5], [5.0, 0.0]])  # scale does not matter: cosine
    assert nearest_neighbour_predict(reference, labels, query, chunk=3).tolist() == [7, 8, 9, 7]
    with pytest.raises(ValueError, match="reference_labels"):
        nearest_neighbour_predict(reference, labels[:2], query)


def test_probe_clip_script_is_a_wrapper_of_the_package_module():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--clip" in done.stdout and "--max-train" in done.stdout
