"""Model cards: metrics from `metrics.json` (and "not measured" where it has none), training data and licenses,
metadata, and the offline validation."""

import json

import pytest
from huggingface_hub import ModelCard

from unclip_diffusers.hub import card_inputs
from unclip_diffusers.hub.card_inputs import (
    NOT_MEASURED,
    format_value,
    last_validation,
    read_metrics,
    read_training_data,
    training_data_path,
)
from unclip_diffusers.hub.cards import CARD_KINDS, CardInputs, card_data, render_card, validate_card

SPLITS = {
    "heldout_concepts": {
        "num_examples": 12,
        "clip": {"generation_clip": {"image_to_text": {"top1": 0.4167, "top5": 0.8}, "text_to_image": {"top1": 0.5}},
                 "evaluator_clip": {"image_to_text": {"top1": 0.3}}},
        "prior": {"cos_prior": 0.61234, "cos_text_embedding": 0.2871, "count": 12},
        "slices": {"everyday": {"concept_top1": 0.4, "concept_top1_real": 0.8, "count": 10}},
        "wording": {"de": {"concept_top1": 0.25, "ceiling": 0.75, "ratio_to_ceiling": 0.3333, "count": 8,
                           "prompts": "Katze"}},
        "text_to_image": {"via_prior": {"r_precision": {"r_precision": 0.3333, "chance": 0.0833}, "clip_fd": 41.25,
                                        "clip_fd_floor": 12.5, "kid": {"kid": 0.0123}, "kid_floor": {"kid": 0.001}}},
        "variations": {"cos_input_variation": 0.7789, "cos_input_random": 0.12},
        "inpaint": {"psnr_outside_min_db": 100.0, "region_concept_top1_edited": 0.25,
                    "region_concept_top1_text_to_image": 0.5},
        "inception_fid": {"status": "unavailable", "value": None},
    },
    "heldout_pairs": {
        "num_examples": 20,
        "prior": {"cos_prior": 0.7011, "cos_text_embedding": 0.3},
        "text_to_image": {"via_prior": {"r_precision": {"r_precision": 0.45, "chance": 0.05}}},
    },
}


def write_metrics(folder, trained=True):
    """A metrics.json in unclip-eval's format (and one of its grids) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {"meta": {"evaluator": {"trained": trained, "preset": "tiny"}, "mode": "quick"}, "splits": SPLITS}
    (folder / "metrics.json").write_text(json.dumps(data))
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(folder / "text_to_image_heldout_pairs.png")
    return folder


def write_dataset(folder):
    """A dataset folder with the build_info.json and LICENSES.md that unclip-data writes."""
    folder.mkdir(parents=True, exist_ok=True)
    info = {"concepts": 40, "split_sizes": {"train": 150, "heldout_pairs": 8, "heldout_concepts": 4},
            "sources": [
                {"id": "twemoji", "package": "emoji-datasource-twitter", "version": "15.1.2", "style": "Twemoji",
                 "license": "CC-BY-4.0", "images": 40},
                {"id": "openmoji-color", "package": "openmoji", "version": "15.0.0", "style": "OpenMoji",
                 "license": "CC-BY-SA-4.0", "images": 38},
                {"id": "fluent-flat", "package": "@lobehub/fluent-emoji-flat", "version": "1.0.0",
                 "style": "Fluent flat", "license": "MIT", "images": 40},
                {"id": "noto-font", "package": "fonts-noto-color-emoji", "version": "2.042-1", "style": "Noto",
                 "license": "OFL-1.1", "images": 36}],
            "language_sources": [
                {"package": "cldr-annotations-full", "version": "48.2.0", "license": "Unicode-3.0",
                 "locales": ["en", "de", "ja"]},
                {"package": "emojibase-data", "version": "17.0.0", "license": "MIT", "locales": ["en", "de"]}]}
    (folder / "build_info.json").write_text(json.dumps(info))
    (folder / "LICENSES.md").write_text("# Licenses and attribution\n\nTwemoji graphics, Copyright Twitter, Inc\n")
    return folder


def test_read_metrics_takes_values_from_the_file_and_marks_the_rest_not_measured(tmp_path):
    metrics = read_metrics(write_metrics(tmp_path / "eval"))  # the report folder works as well as the file
    assert metrics.splits == ["heldout_concepts", "heldout_pairs"] and metrics.evaluator_trained is True
    rows = {row.spec.key: row for row in metrics.rows}
    assert rows["r_precision"].values == {"heldout_concepts": 0.3333, "heldout_pairs": 0.45}
    assert rows["r_precision"].references["heldout_pairs"] == 0.05
    assert rows["clip_fd"].values["heldout_pairs"] is None  # not in the file
    assert rows["fid"].values["heldout_concepts"] is None  # null in the file
    assert [p.name for p in metrics.grids] == ["text_to_image_heldout_pairs.png"]
    assert format_value(None) == NOT_MEASURED and format_value(0.61234) == "0.6123"
    again = {row.spec.key: row for row in read_metrics(tmp_path / "eval" / "metrics.json").rows}
    assert again["r_precision"].values == rows["r_precision"].values
    assert metrics.rows[0].spec.key == "everyday_concept_top1"  # the card's headline: the everyday slice
    assert rows["everyday_concept_top1"].values == {"heldout_concepts": 0.4, "heldout_pairs": None}  # pairs: no slices
    assert rows["everyday_concept_top1"].references["heldout_concepts"] == 0.8  # the real images' ceiling


def test_read_metrics_rejects_files_that_are_not_metrics(tmp_path):
    with pytest.raises(ValueError, match="No metrics.json"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"loss": 1.0}))
    with pytest.raises(ValueError, match="no 'splits'"):
        read_metrics(tmp_path)


def test_pipeline_card_reports_the_measured_metrics_and_validates(tmp_path):
    inputs = CardInputs(kind="pipeline", repo_id="someone/unclip-emoji", metrics=read_metrics(write_metrics(tmp_path)),
                        training_data=read_training_data(write_dataset(tmp_path / "data")),
                        dataset_id="someone/emoji-captions", parameters={"prior": 1234, "decoder": 10_000},
                        resolutions={"base": 32, "upsampled": 128}, preset="small",
                        components={"prior": "UnCLIPPriorTransformer", "decoder": "UNet2DConditionModel"},
                        code_files={"pipeline_unclip.py": "ab" * 32}, licenses_file="TRAINING_DATA_LICENSES.md")
    card = render_card(inputs)
    assert validate_card(card, "pipeline") == []
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "diffusers" and data.pipeline_tag == "text-to-image"
    assert {"unclip", "dalle-2"} <= set(data.tags) and data.datasets == ["someone/emoji-captions"]
    measured = {(r.metric_type, r.dataset_split): r.metric_value for r in data.eval_results}
    assert measured[("r_precision", "heldout_pairs")] == 0.45
    assert measured[("prior_cosine", "heldout_concepts")] == 0.61234
    assert ("clip_fd", "heldout_pairs") not in measured and ("fid", "heldout_concepts") not in measured
    assert measured[("edit_region_concept_top1", "heldout_concepts")] == 0.25
    assert measured[("edit_psnr_outside", "heldout_concepts")] == 100.0
    assert set(data.metrics) == {key for key, _ in measured}
    text = card.text
    psnr_row = "| Edit: PSNR outside the mask, worst image (dB; 100 = unchanged), higher is better | 100 |"
    assert psnr_row in card.text
    for value in ("0.25 (plain text-to-image: 0.5)", "0.3333 (chance: 0.0833)", "41.25 (real-vs-real floor: 12.5)", "0.6123", "0.45 (chance: 0.05)"):
        assert value in text
    assert NOT_MEASURED in text  # e.g. CLIP-FD on heldout_pairs, Inception FID
    # the evaluation report's per-slice table, the everyday slice next to its real-image ceiling
    assert "### By slice: what users ask for (evaluator CLIP)" in text
    assert "| heldout_concepts | everyday | 0.400 | n/a | 0.800 |" in text
    assert "| heldout_concepts | de | 0.250 | 0.750 | 0.333 | 8 | Katze |" in text  # and each wording family
    assert "![images/eval/x.png]" not in text
    for license_id in ("CC-BY-4.0", "CC-BY-SA-4.0", "MIT", "OFL-1.1"):
        assert license_id in text
    assert "emoji-datasource-twitter" in text and "[`TRAINING_DATA_LICENSES.md`]" in text
    assert "Caption names and keywords in 3 languages come from `cldr-annotations-full` 48.2.0 (Unicode-3.0)" in text
    assert "emojibase-data` 17.0.0 (MIT)" in text and "Unicode License v3" in text
    assert 'UnCLIPPipeline.from_pretrained("someone/unclip-emoji", revision=REVISION)' in text
    assert 'trust_remote_code=True, revision=REVISION' in text and "pip install unclip-diffusers" in text
    assert "ab" * 32 in text and "pin `revision=` to a commit sha" in text
    assert "unclip-train prior --config small" in text and "unclip-eval --pipeline" in text
    assert "| `prior` | `UnCLIPPriorTransformer` | 1,234 |" in text and "| total | | 11,234 |" in text
    # the card survives a save/load round trip unchanged
    path = tmp_path / "README.md"
    card.save(path)
    assert ModelCard.load(path).data.to_dict() == data.to_dict()


def test_quality_bars_are_checked_per_split_with_their_references():
    from unclip_diffusers.hub.quality_bars import QualityBar, check_bars

    splits = {"a": {"fd": 3.0, "floor": 2.0, "cos": 0.8, "base": 0.8, "top1": 0.75},
              "b": {"fd": 2.9, "floor": 2.0, "cos": 0.81, "base": 0.8, "top1": float("nan")}}
    bars = (QualityBar("fd", ("fd",), 1.5, reference=("floor",), higher_is_better=False, evaluator=True),
            QualityBar("above", ("cos",), 1.0, reference=("base",), strict=True),
            QualityBar("top1", ("top1",), 0.75),
            QualityBar("missing", ("nowhere",), 0.5))
    fd, above, top1, missing = check_bars(splits, evaluator_trained=True, bars=bars)
    assert fd.limits == {"a": 3.0, "b": 3.0} and fd.met == {"a": True, "b": True}  # <= 1.5 x floor
    assert above.met == {"a": False, "b": True}  # a tie with the baseline is not above it
    assert top1.met == {"a": True, "b": None}  # NaN is not measured, neither met nor unmet
    assert missing.met == {"a": None, "b": None} and missing.values == {"a": None, "b": None}
    assert not check_bars(splits, evaluator_trained=False, bars=bars)[0].meaningful


def test_pipeline_card_states_each_quality_bar_as_met_or_not(tmp_path):
    card = render_card(CardInputs(kind="pipeline", repo_id="a/b", metrics=read_metrics(write_metrics(tmp_path))))
    assert validate_card(card, "pipeline") == []
    text = card.text
    section = text[text.index("### Quality bars"):]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| ")}
    clip_top1 = rows["CLIP image→caption top-1 among all the split's captions ≥ 0.75"]
    assert "**not met**: 0.4167 (needs ≥ 0.75)" in clip_top1
    prior = rows["prior mean cos(ẑ_i, z_i) above the text-embedding baseline"]
    assert "met: 0.6123 (needs > 0.2871)" in prior and "met: 0.7011 (needs > 0.3)" in prior
    fd = rows["CLIP-FD ≤ 1.5 × the real-vs-real floor"]
    assert "**not met**: 41.25 (needs ≤ 18.75)" in fd and NOT_MEASURED in fd  # heldout_pairs has no CLIP-FD
    stage = render_card(CardInputs(kind="prior", repo_id="a/b", metrics=read_metrics(write_metrics(tmp_path))))
    assert "### Quality bars" not in stage.text  # the bars are the whole pipeline's


def test_untrained_evaluator_metrics_stay_out_of_the_metadata(tmp_path):
    inputs = CardInputs(kind="pipeline", repo_id="a/b", metrics=read_metrics(write_metrics(tmp_path, trained=False)))
    card = render_card(inputs)
    assert validate_card(card, "pipeline") == []
    types = {r.metric_type for r in card.data.eval_results}
    assert "r_precision" not in types and "prior_cosine" in types  # the prior is scored in the generation CLIP
    assert "untrained" in card.text and "†" in card.text


def test_without_metrics_or_data_the_card_says_so_and_still_validates(monkeypatch):
    monkeypatch.setattr(card_inputs, "data_code_sources", lambda: None)
    card = render_card(CardInputs(kind="pipeline", repo_id="a/b", training_data=read_training_data(None)))
    assert validate_card(card, "pipeline") == []
    assert card.data.eval_results is None and card.data.metrics is None
    assert "R-precision of generated images: not measured" in card.text
    assert "Training data\n\nNot recorded" in card.text


def test_without_a_dataset_folder_the_data_codes_sources_are_listed_as_such(monkeypatch):
    sources = [card_inputs.DataSource("Twemoji", "emoji-datasource-twitter", "CC-BY-4.0"),
               card_inputs.DataSource("EmojiOne", "ruby-gemojione", "CC-BY-SA-4.0")]
    monkeypatch.setattr(card_inputs, "data_code_sources", lambda: sources)
    data = read_training_data(None)
    assert not data.recorded and data.licenses == ["CC-BY-4.0", "CC-BY-SA-4.0"]
    text = render_card(CardInputs(kind="pipeline", repo_id="a/b", training_data=data)).text
    assert "was not given when this was pushed" in text and "ruby-gemojione" in text and "not recorded" in text


def test_training_data_errors_and_run_records(tmp_path):
    with pytest.raises(ValueError, match="no build_info.json"):
        read_training_data(tmp_path)
    data_dir = write_dataset(tmp_path / "data")
    assert training_data_path({"training": {"data_path": str(data_dir)}}) == str(data_dir)
    assert training_data_path({"training": {"data_path": str(tmp_path / "gone")}}) is None
    assert training_data_path(None) is None
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 10, "loss": 0.5}\n{"step": 10, "validation": {"heldout_loss": 0.4}}\nnot json\n'
        '{"step": 20, "validation": {"heldout_loss": 0.3, "heldout_psnr": 21.5, "bad": NaN}}\n')
    assert last_validation(tmp_path) == (20, {"heldout_loss": 0.3, "heldout_psnr": 21.5})
    assert last_validation(tmp_path / "none") is None and last_validation(None) is None


@pytest.mark.parametrize("kind", CARD_KINDS)
def test_every_kind_of_card_renders_and_validates(kind, tmp_path):
    training = {"stage": kind, "training": {"model_preset": "tiny", "max_steps": 20, "seed": 0, "data_path": "x"}}
    inputs = CardInputs(kind=kind, repo_id="someone/part", metrics=read_metrics(write_metrics(tmp_path)),
                        parameters={"p": 10}, training=training if kind not in ("pipeline", "karlo") else None,
                        validation=(20, {"heldout_loss": 0.25}))
    card = render_card(inputs)
    assert validate_card(card, kind) == [], card.content
    assert card.data.library_name == ("transformers" if kind == "clip" else "diffusers")
    if kind in ("prior", "decoder", "clip", "upsampler"):
        assert "| `max_steps` | 20 |" in card.text and "heldout_loss" in card.text and "0.25" in card.text
    if kind in ("decoder", "upsampler"):  # pipeline-level numbers stay out of a stage's metadata
        assert card.data.eval_results is None
    if kind in ("prior", "clip"):
        assert card.data.eval_results and "running the pipeline this" in card.text
    if kind == "upsampler":
        assert "does not score this stage on its own" in card.text
    if kind == "karlo":
        assert "not trained with unclip-diffusers" in card.text
        assert 'DiffusionPipeline.from_pretrained("someone/part"' not in card.text and "ships no code" in card.text


def test_validate_card_names_what_is_wrong(tmp_path):
    good = render_card(CardInputs(kind="pipeline", repo_id="a/b", metrics=read_metrics(write_metrics(tmp_path))))
    text = good.content
    assert validate_card(text.replace("## Limitations", "## Caveats"), "pipeline") == [
        "section '## Limitations' is missing"]
    assert "license 'wtfpl' is not a Hub license id" in validate_card(text.replace("license: apache-2.0",
                                                                                   "license: wtfpl"), "pipeline")
    assert "pipeline_tag is None, not 'text-to-image'" in validate_card(
        text.replace("pipeline_tag: text-to-image\n", ""), "pipeline")
    assert "unrendered template syntax is left in the text" in validate_card(text + "\n{{ oops }}\n", "pipeline")
    assert any("tags lack ['dalle-2']" in p for p in validate_card(text.replace("- dalle-2\n", ""), "pipeline"))
    tampered = text.replace("0.45 (chance: 0.05)", "0.5 (chance: 0.05)").replace("0.45 (needs", "0.5 (needs")
    assert "the metadata's r_precision = 0.45 is not in the text" in validate_card(tampered, "pipeline")
    assert validate_card("no metadata at all", "pipeline")[0] == "the card does not start with YAML metadata"
    assert validate_card(text, "clip") == ["library_name is 'diffusers'"]


def test_card_data_rejects_unknown_kinds_and_licenses():
    with pytest.raises(ValueError, match="Unknown card kind 'vae'"):
        card_data(CardInputs(kind="vae", repo_id="a/b"))
    with pytest.raises(ValueError, match="License 'GPL' is not one of the Hub license ids"):
        card_data(CardInputs(kind="prior", repo_id="a/b", license="GPL"))


def test_pipeline_card_shows_training_progress_and_flags_interim_snapshots():
    provenance = {
        "clip": {"recorded": True, "finished": True, "step": 2000, "max_steps": 2000, "samples": 256000,
                 "batch_size": 128, "mixed_precision": "bf16"},
        "decoder": {"recorded": True, "finished": False, "step": 5000, "max_steps": 40000, "samples": 160000,
                    "batch_size": 32, "mixed_precision": "bf16"},
    }
    text = render_card(CardInputs(kind="pipeline", repo_id="a/b", provenance=provenance)).text
    assert "## Training of these weights" in text
    assert "**Interim release:** the decoder is a snapshot" in text
    provenance["prior"] = dict(provenance["decoder"])
    both = render_card(CardInputs(kind="pipeline", repo_id="a/b", provenance=provenance)).text
    assert "**Interim release:** the decoder and the prior are snapshots" in both
    del provenance["prior"]
    assert "| decoder | 5,000 | 40,000 | 160,000 | 32 | bf16 | snapshot (12%) |" in text
    assert "| clip | 2,000 | 2,000 | 256,000 | 128 | bf16 | finished |" in text

    provenance["decoder"].update(finished=True, step=40000)
    finished = render_card(CardInputs(kind="pipeline", repo_id="a/b", provenance=provenance)).text
    assert "Interim release" not in finished and "## Training of these weights" in finished
    assert "## Training of these weights" not in render_card(CardInputs(kind="pipeline", repo_id="a/b")).text


def test_release_notes_become_a_section_of_the_pipeline_card():
    text = render_card(CardInputs(kind="pipeline", repo_id="a/b", notes="Base 32 px, because **CPU**.")).text
    assert "## About this release\n\nBase 32 px, because **CPU**." in text
    assert "About this release" not in render_card(CardInputs(kind="pipeline", repo_id="a/b")).text
