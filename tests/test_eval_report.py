"""The report writer: strict JSON, labelled grids, plots and a Markdown report that names the split everywhere."""

import json
import math

import pytest
from PIL import Image

from unclip_diffusers.evaluation.report import make_grid, to_jsonable, write_report


def _results():
    return {
        "meta": {"pipeline": "p", "data": "d", "evaluator": {"preset": "evaluator-tiny", "trained": True},
                 "inception_fid": {"status": "not computed: torch-fidelity is not installed", "values": {}}},
        "splits": {
            "heldout_pairs": {
                "num_examples": 10,
                "prior": {"cos_prior": 0.8, "cos_text_embedding": 0.3, "cos_concept_mean": float("nan"),
                          "by_guidance_scale": [{"guidance_scale": g, "cos_prior": 0.7 + g / 100} for g in (1, 4)]},
                "text_to_image": {"via_prior": {"r_precision": {"r_precision": 0.5, "chance": 0.01}, "clip_fd": 2.0,
                                                "clip_fd_floor": 1.0, "count": 10}},
                "interpolation": {"mean_step": 0.1, "mean_steps_along_path": [0.1, 0.2, 0.1]},
            }
        },
    }


def test_to_jsonable_turns_nan_into_null():
    expected = {"a": None, "b": [None, 1.5], "3": [1, 2]}
    assert to_jsonable({"a": float("nan"), "b": [math.inf, 1.5], 3: (1, 2)}) == expected


def test_make_grid_layout():
    rows = [[Image.new("RGB", (64, 64), "red")] * 3, [Image.new("RGB", (32, 32), "blue")] * 2]
    grid = make_grid(rows, row_labels=["a long caption " * 4, "b"], column_labels=["x", "y", "z"], cell_size=40,
                     label_width=100)
    assert grid.size == (100 + 3 * 40, 16 + 2 * 40)
    assert grid.getpixel((100 + 5, 16 + 5)) == (255, 0, 0)
    assert grid.getpixel((100 + 2 * 40 + 5, 16 + 45)) == (255, 255, 255)  # the short second row
    titled = make_grid(rows, column_labels=["x", "y", "z"], cell_size=40, title="t2i on heldout_pairs")
    assert titled.size == (3 * 40, 18 + 16 + 2 * 40) and titled.getpixel((5, 18 + 16 + 5)) == (255, 0, 0)
    with pytest.raises(ValueError, match="row labels"):
        make_grid(rows, row_labels=["only one"])
    with pytest.raises(ValueError, match="at least one image"):
        make_grid([])


def test_write_report_produces_every_file(tmp_path):
    grid = make_grid([[Image.new("RGB", (8, 8), "green")]])
    paths = write_report(_results(), tmp_path / "out", {"text_to_image_heldout_pairs": grid})
    assert {"metrics", "report", "text_to_image_heldout_pairs", "prior_guidance", "clip_fd",
            "interpolation_steps"} <= set(paths)
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["splits"]["heldout_pairs"]["prior"]["cos_concept_mean"] is None
    report = paths["report"].read_text()
    assert "| heldout_pairs | via prior | 0.500 | 0.010 |" in report
    assert "not computed: torch-fidelity is not installed" in report and "untrained" not in report
    assert "![prior_guidance](prior_guidance.png)" in report


def test_grid_names_must_be_plain(tmp_path):
    with pytest.raises(ValueError, match="plain file stem"):
        write_report(_results(), tmp_path, {"../escape": Image.new("RGB", (4, 4))})
