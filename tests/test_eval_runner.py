"""The runner on a synthetic held-out set with an oracle pipeline (it returns the real images), where the right
answers are known: generated-vs-real scores equal the real-vs-real ones, the prior is exact, variations are copies."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from unclip_diffusers.configs import build_components
from unclip_diffusers.evaluation.editing import PSNR_CAP_DB, centre_box, centre_mask, show_mask
from unclip_diffusers.evaluation import get_eval_settings, run_evaluation, write_report
from unclip_diffusers.evaluation.evaluator import (
    EVALUATOR_SEED,
    INFO_FILE,
    EvaluatorCLIP,
    dataset_fingerprint,
    evaluator_size,
    load_or_train_evaluator,
)


SHAPES = ["circle", "square", "triangle", "cross", "diamond", "ring"]
STYLES = {"Red": (220, 40, 40), "Green": (40, 170, 60), "Blue": (40, 70, 220)}
HELDOUT_PAIRS = {("circle", "Blue"), ("square", "Green"), ("triangle", "Red"), ("cross", "Green")}
HELDOUT_CONCEPTS = {"diamond", "ring"}
# Every split's everyday rows have a rival caption in their style (square and cross in Green), so slice scores exist.
SLICE_OF = {"circle": "people", "square": "everyday", "triangle": "flags", "cross": "everyday", "diamond": "everyday",
            "ring": "everyday"}  # fmt: skip


def _draw(shape: str, colour: tuple[int, int, int], size: int = 64, inset: int = 12) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (inset, inset, size - inset, size - inset)
    mid = size // 2
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(mid, inset), (size - inset, size - inset), (inset, size - inset)], fill=colour)
    elif shape == "cross":
        draw.rectangle((mid - 6, inset, mid + 6, size - inset), fill=colour)
        draw.rectangle((inset, mid - 6, size - inset, mid + 6), fill=colour)
    elif shape == "diamond":
        draw.polygon([(mid, inset), (size - inset, mid), (mid, size - inset), (inset, mid)], fill=colour)
    else:
        draw.ellipse(box, outline=colour, width=6)
    return image


def make_synthetic_dataset(path) -> str:
    """A tiny DatasetDict with the project's schema: 6 shape concepts x 3 colour styles, two sizes per training pair."""
    rows = {"train": [], "heldout_pairs": [], "heldout_concepts": []}
    for shape in SHAPES:
        for style, colour in STYLES.items():
            split = ("heldout_concepts" if shape in HELDOUT_CONCEPTS else
                     "heldout_pairs" if (shape, style) in HELDOUT_PAIRS else "train")
            caption = f"{shape}, {style} style"
            for inset in ((12, 20) if split == "train" else (12,)):
                rows[split].append({
                    "image": _draw(shape, colour, inset=inset), "image_256": None, "caption": caption,
                    "captions": [caption, f"a {style.lower()} {shape}"], "concept": shape, "name": shape,
                    "style": style, "source": "synthetic", "license": "CC0-1.0", "slice": SLICE_OF[shape],
                })
    features = datasets.Features({
        "image": datasets.Image(), "image_256": datasets.Image(), "caption": datasets.Value("string"),
        "captions": datasets.Sequence(datasets.Value("string")), "concept": datasets.Value("string"),
        "name": datasets.Value("string"), "style": datasets.Value("string"), "source": datasets.Value("string"),
        "license": datasets.Value("string"), "slice": datasets.Value("string"),
    })
    dd = datasets.DatasetDict({k: datasets.Dataset.from_list(v, features=features) for k, v in rows.items()})
    dd.save_to_disk(str(path))
    return str(path)


class OraclePipeline:
    """Stands in for `UnCLIPPipeline` with a real tiny CLIP, but "generates" the real image of each caption."""

    def __init__(self, lookup: dict[str, Image.Image]):
        torch.manual_seed(0)
        c = build_components("tiny")
        self.tokenizer, self.text_encoder = c["tokenizer"], c["text_encoder"].eval()
        self.feature_extractor, self.image_encoder = c["feature_extractor"], c["image_encoder"].eval()
        self.lookup = lookup
        self.device = torch.device("cpu")
        self.calls: list[tuple[str, dict]] = []

    # The signatures below are `UnCLIPPipeline`'s, so a wrong keyword from the runner fails here too.
    def encode_prompt(self, prompt, device=None, num_images_per_prompt=1, do_classifier_free_guidance=False):
        ids = self.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        out = self.text_encoder(input_ids=ids.input_ids, attention_mask=ids.attention_mask)
        return out.text_embeds, out.last_hidden_state, ids.attention_mask.bool()

    def _draw(self, prompt):
        """The real image of a caption; for another wording, of the caption whose shape (and style) it names."""
        if prompt in self.lookup:
            return self.lookup[prompt]
        named = [c for c in self.lookup if c.split(",")[0] in prompt.lower()]
        styled = [c for c in named if c.split(", ")[1].split(" ")[0].lower() in prompt.lower()]
        return self.lookup[(styled or named)[0]]

    def encode_image(self, image):
        pixels = self.feature_extractor(images=image, return_tensors="pt")["pixel_values"]
        return self.image_encoder(pixel_values=pixels).image_embeds

    def _record(self, name, generator, n, **kwargs):
        assert isinstance(generator, list) and len(generator) == n  # one per row: batching-independent
        self.calls.append((name, kwargs))

    def sample_prior(self, prompt, num_images_per_prompt=1, num_inference_steps=25, guidance_scale=4.0,
                     sample_count=1, generator=None):
        self._record("sample_prior", generator, len(prompt), num_inference_steps=num_inference_steps,
                     guidance_scale=guidance_scale, sample_count=sample_count)
        return self.encode_image([self.lookup[p] for p in prompt])

    def __call__(self, prompt, num_images_per_prompt=1, prior_num_inference_steps=25, decoder_num_inference_steps=25,
                 super_res_num_inference_steps=10, prior_guidance_scale=4.0, decoder_guidance_scale=8.0,
                 prior_sample_count=1, generator=None, output_type="pil"):
        self._record("__call__", generator, len(prompt), decoder_num_inference_steps=decoder_num_inference_steps)
        images = [self._draw(p) for p in prompt]
        return SimpleNamespace(images=images, image_embeds=self.encode_image(images), base_images=images)

    def decode(self, image_embeds, prompt=None, num_inference_steps=25, guidance_scale=8.0, generator=None,
               super_res_num_inference_steps=10, upscale=True, output_type="pil"):
        self._record("decode", generator, len(image_embeds), num_inference_steps=num_inference_steps)
        if prompt is not None:
            assert image_embeds.shape[0] == len(prompt)
            return [self.lookup[p] for p in prompt]
        # the empty caption: the real image whose embedding this is
        images = list(self.lookup.values())
        nearest = torch.cdist(image_embeds.float(), self.encode_image(images).float()).argmin(dim=1)
        return [images[i] for i in nearest.tolist()]

    def image_variation(self, image, num_images_per_prompt=1, decoder_num_inference_steps=25,
                        super_res_num_inference_steps=10, decoder_guidance_scale=8.0, generator=None,
                        output_type="pil"):
        images = image if isinstance(image, list) else [image]
        self._record("image_variation", generator, len(images) * num_images_per_prompt)
        return SimpleNamespace(images=[im.copy() for im in images for _ in range(num_images_per_prompt)])

    def inpaint(self, image, mask_image, prompt=None, prior_num_inference_steps=25, decoder_num_inference_steps=25,
                super_res_num_inference_steps=10, prior_guidance_scale=None, decoder_guidance_scale=8.0, generator=None,
                output_type="pil"):
        """The prompt's real image where the mask is white, the source elsewhere (exact, like the pipeline's paste)."""
        assert isinstance(generator, torch.Generator) and output_type == "np"
        source = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
        painted = np.asarray(self._draw(prompt).convert("RGB").resize(image.size), dtype=np.float64) / 255
        mask = (np.asarray(mask_image.convert("L"), dtype=np.float64) / 255)[..., None]
        return SimpleNamespace(images=np.stack([mask * painted + (1 - mask) * source]))

    def mix(self, inputs, weights=None, prior_num_inference_steps=25, decoder_num_inference_steps=25,
            super_res_num_inference_steps=10, prior_guidance_scale=None, decoder_guidance_scale=8.0, generator=None,
            output_type="pil"):
        """A pixel blend of two images by their weights."""
        a, b = (np.asarray(im.convert("RGB"), dtype=np.float64) for im in inputs)
        blend = (weights[0] * a + weights[1] * b) / sum(weights)
        return SimpleNamespace(images=[Image.fromarray(blend.round().astype(np.uint8))])

    def interpolate(self, start, end, steps=5, prior_num_inference_steps=25, decoder_num_inference_steps=25,
                    super_res_num_inference_steps=10, prior_guidance_scale=4.0, decoder_guidance_scale=8.0,
                    generator=None, output_type="pil"):
        assert isinstance(generator, torch.Generator)
        half = steps // 2
        return SimpleNamespace(images=[start] * half + [end] * (steps - half))


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("data") / "shapes")


@pytest.fixture(scope="module")
def evaluation(dataset_path):
    lookup = {}
    for split in ("heldout_pairs", "heldout_concepts", "train"):
        for row in datasets.load_from_disk(dataset_path)[split]:
            lookup.setdefault(row["caption"], row["image"].convert("RGB"))
    pipe = OraclePipeline(lookup)
    evaluator = EvaluatorCLIP.from_size(evaluator_size("tiny"))
    settings = get_eval_settings("quick", max_examples=0, prior_guidance_sweep=(1.0, 3.0), kid_subsets=3,
                                num_wording_inputs=2)
    results, grids = run_evaluation(pipe, dataset_path, evaluator, settings, progress=lambda line: None)
    return results, grids, pipe


def test_oracle_pipeline_scores_equal_real_reference(evaluation):
    results, _, _ = evaluation
    for split in ("heldout_pairs", "heldout_concepts"):
        s = results["splits"][split]
        assert s["num_examples"] == (4 if split == "heldout_pairs" else 6)
        for mode in ("via_prior", "text_embedding_direct", "image_embedding_alone"):
            t = s["text_to_image"][mode]
            assert t["clip_fd"] == pytest.approx(t["clip_fd_floor"], abs=1e-9)
            assert t["kid"]["kid"] == pytest.approx(t["kid_floor"]["kid"], abs=1e-9)
            assert t["r_precision"]["r_precision"] == t["r_precision_real"]
            assert t["r_precision"]["num_distractors"] == s["num_examples"] - 1  # capped by the split's size
        # The prior returns the true z_i exactly, at every guidance scale and sample count.
        p = s["prior"]
        assert p["cos_prior"] == pytest.approx(1.0, abs=1e-5)
        assert [g["guidance_scale"] for g in p["by_guidance_scale"]] == [1.0, 3.0]
        assert all(g["cos_prior"] == pytest.approx(1.0, abs=1e-5) for g in p["by_guidance_scale"])
        assert [d["sample_count"] for d in p["by_sample_count"]] == [1, 2]
        v = s["variations"]
        assert v["cos_input_variation"] == pytest.approx(1.0, abs=1e-5)
        assert v["embedding_diversity"] == pytest.approx(0.0, abs=1e-5) and v["pixel_diversity"] == 0.0
        i = s["interpolation"]
        assert i["endpoint_cos_start"] == pytest.approx(1.0, abs=1e-5)
        assert i["endpoint_cos_end"] == pytest.approx(1.0, abs=1e-5)
        assert i["max_over_mean"] == pytest.approx(2.0) and i["straightness"] == pytest.approx(1.0)  # one jump


def test_slices_score_generated_and_real_images_alike_for_an_oracle(evaluation):
    results, _, _ = evaluation
    concepts = results["splits"]["heldout_concepts"]
    assert set(concepts["slices"]) == {"everyday"}  # ring and diamond
    assert set(results["splits"]["heldout_pairs"]["slices"]) == {"everyday", "people", "flags"}
    for split in ("heldout_pairs", "heldout_concepts"):
        s = results["splits"][split]
        for name, t in s["slices"].items():
            assert t["count"] == sum(SLICE_OF[c.split(",")[0]] == name for c in
                                     [r for r in _captions(split)])  # fmt: skip
            # the oracle "generates" the real image (nan: a slice whose captions have no rival in their style)
            assert t["concept_top1"] == pytest.approx(t["concept_top1_real"], nan_ok=True)
            assert s["slices_image_embedding_alone"][name]["concept_top1"] == pytest.approx(t["concept_top1"],
                                                                                            nan_ok=True)
            f = s["variation_fidelity"][name]
            assert f["variation_concept_top1"] == pytest.approx(f["real_concept_top1"], nan_ok=True)
    everyday = results["splits"]["heldout_concepts"]["slices"]["everyday"]
    assert everyday["concept_top1_chance"] == 0.5 and everyday["concept_top1_count"] == 6  # ring vs diamond


def test_wording_families_are_scored_on_everyday_rows(evaluation):
    results, _, pipe = evaluation
    wording = results["splits"]["heldout_concepts"]["wording"]
    assert set(wording) == {"training", "heldout", "bare_name"}  # the synthetic data has no `names` column
    assert wording["training"]["count"] == 2 and wording["training"]["prompts"] == 6  # 2 rows x 3 prompts
    # the oracle draws the real image for any wording that names the shape and style: scores equal the ceiling
    for family in ("training", "heldout"):
        assert wording[family]["concept_top1"] == pytest.approx(wording[family]["ceiling"])


def test_inpainting_and_mix_sections(evaluation):
    results, grids, _ = evaluation
    s = results["splits"]["heldout_concepts"]
    assert s["inpaint"]["count"] == 2 and s["inpaint"]["psnr_outside_min_db"] == PSNR_CAP_DB  # the oracle pastes
    assert -1 <= s["inpaint"]["cos_prompt_edited"] <= 1 and -1 <= s["inpaint"]["cos_prompt_text_to_image"] <= 1
    # the oracle paints the prompt's own real image into the masked half, exactly as its text-to-image draws it
    assert s["inpaint"]["region_concept_top1_edited"] == s["inpaint"]["region_concept_top1_text_to_image"]
    assert 0 < s["inpaint"]["region_concept_top1_chance"] <= 1
    assert {"edit_heldout_pairs", "mix_heldout_pairs"} <= set(grids)
    mix = s["mix"]
    assert mix["pairs"] == 1 and mix["weights_of_b"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert mix["cos_to_a"][0] == pytest.approx(1.0, abs=1e-4) and mix["cos_to_b"][-1] == pytest.approx(1.0, abs=1e-4)
    assert isinstance(mix["monotonic"], bool)


def _captions(split):
    return [f"{shape}, {style} style" for shape in SHAPES for style in STYLES
            if (shape in HELDOUT_CONCEPTS) == (split == "heldout_concepts")
            and ((shape, style) in HELDOUT_PAIRS) == (split == "heldout_pairs")]


def test_prior_baselines_use_train_concepts_only_where_they_exist(evaluation):
    results, _, _ = evaluation
    pairs, concepts = results["splits"]["heldout_pairs"]["prior"], results["splits"]["heldout_concepts"]["prior"]
    assert pairs["concept_mean_coverage"] == 1.0 and -1.0 <= pairs["cos_concept_mean"] <= 1.0
    assert concepts["concept_mean_coverage"] == 0.0 and concepts["cos_concept_mean"] is None
    assert -1.0 <= pairs["cos_text_embedding"] <= 1.0


def test_clip_section_and_accuracies_have_their_candidates(evaluation):
    results, _, _ = evaluation
    clip = results["splits"]["heldout_pairs"]["clip"]["evaluator_clip"]
    assert clip["num_captions"] == 4 and set(clip["image_to_text"]) == {"top1", "top5"}
    assert clip["image_to_text"]["top5"] == 1.0  # only 4 captions
    # Candidates come from the caption pool of every split: 3 styles per concept, 6 concepts per style.
    assert clip["style_accuracy"]["chance"] == pytest.approx(1 / 3)
    assert clip["concept_accuracy"]["chance"] == pytest.approx(1 / 6)


def test_settings_reach_the_pipeline(evaluation):
    _, _, pipe = evaluation
    prior_calls = [kw for name, kw in pipe.calls if name == "sample_prior"]
    assert {kw["guidance_scale"] for kw in prior_calls} == {4.0, 1.0, 3.0}  # 4.0: the pipeline default
    assert {kw["sample_count"] for kw in prior_calls} == {1, 2}
    assert all(kw["num_inference_steps"] == 2 for kw in prior_calls)
    assert all(kw["num_inference_steps"] == 2 for name, kw in pipe.calls if name == "decode")
    assert all(kw["decoder_num_inference_steps"] == 2 for name, kw in pipe.calls if name == "__call__")


def test_runner_output_writes_a_report(evaluation, tmp_path):
    results, grids, _ = evaluation
    assert set(grids) == {f"{kind}_{split}" for kind in ("text_to_image", "variations", "interpolation", "edit", "mix")
                          for split in ("heldout_pairs", "heldout_concepts")}
    paths = write_report(results, tmp_path, grids)
    data = json.loads(paths["metrics"].read_text())
    assert data["splits"]["heldout_concepts"]["prior"]["cos_concept_mean"] is None
    assert "not computed" in data["meta"]["inception_fid"]["status"]
    report = paths["report"].read_text()
    assert "heldout_pairs" in report and "heldout_concepts" in report and "untrained" in report
    for name in ("prior_guidance", "clip_fd", "interpolation_steps", "text_to_image_heldout_pairs"):
        assert paths[name].is_file() and f"({name}.png)" in report


def test_prompt_seed_grid_shows_images_at_their_own_resolution(dataset_path):
    from unclip_diffusers.evaluation.runner import _prompt_seed_grid, load_split

    settings = get_eval_settings("quick", max_examples=0, grid_prompts=2, grid_seeds=3)
    data = load_split(dataset_path, "heldout_pairs", settings)
    lookup = {c: data.images[i].resize((128, 128)) for i, c in zip(data.picked, data.subset("captions"))}
    first_seed = [lookup[c] for c in data.subset("captions")]
    grid = _prompt_seed_grid(OraclePipeline(lookup), data, first_seed, settings)
    assert grid.width == 220 + 4 * 128  # label column, the real image and 3 seeds, each 128 px wide
    small = _prompt_seed_grid(OraclePipeline(lookup), data, [im.resize((32, 32)) for im in first_seed], settings)
    assert small.width == 220 + 4 * 96  # never below 96 px, so tiny outputs stay visible


def test_metrics_json_meets_the_model_card_schema(evaluation, tmp_path):
    card_inputs = pytest.importorskip("unclip_diffusers.hub.card_inputs")
    results, grids, _ = evaluation
    write_report(results, tmp_path, grids)
    metrics = card_inputs.read_metrics(tmp_path)
    assert metrics.splits == ["heldout_concepts", "heldout_pairs"] and metrics.evaluator_trained is False
    for row in metrics.rows:  # every number a card shows is there, except Inception FID (not available offline)
        for split, value in row.values.items():
            assert (value is None) == (row.spec.key == "fid"), (row.spec.key, split)


def test_generation_only_runs_score_the_same_without_the_whole_splits():
    from unclip_diffusers import UnCLIPPipeline

    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    pipe.set_progress_bar_config(disable=True)
    evaluator = EvaluatorCLIP.from_size(evaluator_size("tiny"))
    fixture = str(Path(__file__).parent / "fixtures" / "emoji_tiny")  # 4 rows per held-out split: 3 are scored
    settings = dict(max_examples=3, grid_prompts=0, num_variation_inputs=1, num_interpolation_pairs=1)
    full, _ = run_evaluation(pipe, fixture, evaluator, get_eval_settings("quick", **settings), progress=lambda _: 0)
    only, _ = run_evaluation(pipe, fixture, evaluator, get_eval_settings("quick", clip_retrieval=False, **settings),
                             progress=lambda _: 0)
    for split, section in only["splits"].items():
        reference = full["splits"][split]
        assert "clip" in reference and "clip" not in section
        assert section["num_examples"] == reference["num_examples"] == 4 and section["num_scored"] == 3
        for name in ("text_to_image", "prior", "variations", "interpolation"):
            got, want = _flatten(section[name]), _flatten(reference[name])
            if name == "variations":  # its "random image" reference averages over the rows loaded
                assert got.pop("cos_input_random") != want.pop("cos_input_random")
            assert got.keys() == want.keys(), name
            missing = {k for k, v in want.items() if v is None}  # metrics a tiny split cannot give (e.g. one concept)
            assert missing == {k for k, v in got.items() if v is None}, name
            numbers = {k: v for k, v in got.items() if k not in missing}
            assert numbers == pytest.approx({k: want[k] for k in numbers}, rel=1e-5, abs=1e-7), name


def _flatten(value, prefix=""):
    """Nested dicts and lists of numbers as {"a/b/0": number} (pytest.approx compares flat mappings)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}/").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}/").items()}
    return {prefix.rstrip("/"): value}


def test_grid_prompts_are_spread_over_the_scored_examples():
    from unclip_diffusers.evaluation.runner import spread_positions

    assert spread_positions(100, 8) == [0, 12, 25, 37, 50, 62, 75, 87]  # not the first 8 (one category)
    assert spread_positions(3, 8) == [0, 1, 2] and spread_positions(0, 8) == [] and spread_positions(5, 0) == []


def test_only_heldout_splits_are_evaluated():
    with pytest.raises(ValueError, match="Only held-out splits"):
        get_eval_settings("quick", splits=("train",))
    with pytest.raises(ValueError, match="Unknown evaluation setting"):
        get_eval_settings("quick", guidance=3)
    with pytest.raises(ValueError, match="variations_per_input"):
        get_eval_settings("full", variations_per_input=1)


def test_cached_evaluator_is_reused_only_for_the_same_training_data(dataset_path, tmp_path):
    evaluator = EvaluatorCLIP.from_size(evaluator_size("tiny"))
    evaluator.info.update(train_fingerprint=dataset_fingerprint(dataset_path), trained=True)
    evaluator.save_pretrained(tmp_path / "evaluator")
    assert (tmp_path / "evaluator" / INFO_FILE).is_file()
    loaded = load_or_train_evaluator(dataset_path, tmp_path, preset="tiny")
    for a, b in zip(evaluator.model.state_dict().values(), loaded.model.state_dict().values()):
        torch.testing.assert_close(a, b)

    info = json.loads((tmp_path / "evaluator" / INFO_FILE).read_text())
    (tmp_path / "evaluator" / INFO_FILE).write_text(json.dumps(dict(info, train_fingerprint="other data")))
    with pytest.raises(ValueError, match="trained on other data"):
        load_or_train_evaluator(dataset_path, tmp_path, preset="tiny")


def test_dataset_fingerprint_is_a_content_hash(dataset_path, tmp_path):
    import datasets as hf_datasets

    fingerprint = dataset_fingerprint(dataset_path)
    copy = tmp_path / "copy"  # the same data saved elsewhere (another machine's build): the same fingerprint
    hf_datasets.load_from_disk(str(dataset_path)).save_to_disk(str(copy))
    assert dataset_fingerprint(copy) == fingerprint
    changed = tmp_path / "changed"
    data = hf_datasets.load_from_disk(str(dataset_path))
    data["train"] = data["train"].select(range(1, len(data["train"])))
    data.save_to_disk(str(changed))
    assert dataset_fingerprint(changed) != fingerprint


def test_exported_evaluator_is_fp16_on_disk_and_loads_in_fp32(dataset_path, tmp_path):
    from safetensors.torch import load_file

    from unclip_diffusers.evaluation.evaluator import export_evaluator

    evaluator = EvaluatorCLIP.from_size(evaluator_size("tiny"))
    evaluator.info.update(train_fingerprint=dataset_fingerprint(dataset_path), trained=True,
                          dataset="/some/machine/data/emoji")  # older evaluators recorded the full path
    evaluator.save_pretrained(tmp_path / "run" / "evaluator")
    source, shipped = tmp_path / "run" / "evaluator", tmp_path / "shipped" / "evaluator"
    target = export_evaluator(source, shipped, max_shard_size="200KB")
    shards = sorted(target.glob("*.safetensors"))
    assert len(shards) > 1 and all(shard.stat().st_size <= 400_000 for shard in shards)  # split to fit git's limit
    assert (target / "model.safetensors.index.json").is_file()
    weights = {k: v for shard in shards for k, v in load_file(shard).items()}
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float16}
    loaded = load_or_train_evaluator(dataset_path, tmp_path / "shipped", preset="tiny")
    assert loaded.model.dtype == torch.float32
    assert loaded.info["dataset"] == "emoji"  # the shipped metadata names the data, not the machine's path
    for a, b in zip(evaluator.model.state_dict().values(), loaded.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3)


def test_shipped_evaluator_is_the_default_when_trained_on_the_data(dataset_path, tmp_path, monkeypatch):
    from unclip_diffusers import defaults
    from unclip_diffusers.evaluation.evaluator import export_evaluator, shipped_evaluator_dir

    monkeypatch.setattr(defaults, "repo_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)  # runs/ (the fallback) is empty here
    assert shipped_evaluator_dir("tiny") is None
    evaluator = EvaluatorCLIP.from_size(evaluator_size("tiny"))
    evaluator.info.update(train_fingerprint=dataset_fingerprint(dataset_path), trained=True)
    evaluator.save_pretrained(tmp_path / "run" / "evaluator")
    export_evaluator(tmp_path / "run" / "evaluator", tmp_path / "checkpoints" / "evaluator-clip-tiny" / "evaluator")
    assert shipped_evaluator_dir("tiny") == tmp_path / "checkpoints" / "evaluator-clip-tiny"
    loaded = load_or_train_evaluator(dataset_path, preset="tiny")
    assert loaded.info["path"] == str(tmp_path / "checkpoints" / "evaluator-clip-tiny" / "evaluator")
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_the_edit_mask_repaints_the_centre_and_keeps_the_border_ring():
    assert centre_box((64, 32)) == (8, 4, 56, 28)
    mask = np.asarray(centre_mask((64, 32))) > 0
    assert mask[4:28, 8:56].all() and mask.sum() == 48 * 24  # only the centre is repainted
    shown = np.asarray(show_mask(Image.new("RGB", (16, 8), (10, 20, 30)), centre_mask((64, 32))))  # resized mask
    assert (shown[1:7, 2:14] == 128).all() and (shown[0] == (10, 20, 30)).all()


def test_unclip_train_evaluator_trains_and_records_its_warm_start(dataset_path, tmp_path):
    from unclip_diffusers.training.cli import main as train_main

    settings = ["--data_path", str(dataset_path), "--max_steps", "2", "--batch_size", "4", "--lr_warmup_steps", "0",
                "--num_validation_examples", "4", "--validate_every", "0", "--checkpoint_every", "2"]
    train_main(["evaluator", "--config", "tiny", *settings, "--output_dir", str(tmp_path / "first")])
    first = EvaluatorCLIP.from_pretrained(tmp_path / "first" / "evaluator")
    assert first.info["seed"] == EVALUATOR_SEED and first.info["preset"] == "evaluator-tiny"
    assert "initialised_from" not in first.info
    train_main(["evaluator", "--config", "tiny", *settings, "--output_dir", str(tmp_path / "second"),
                "--init_from", str(tmp_path / "first" / "final"), "--primary_caption_prob", "0.5"])
    second = EvaluatorCLIP.from_pretrained(tmp_path / "second" / "evaluator")
    assert second.info["initialised_from"] == "final" and second.info["training_steps"] == 2
    config = json.loads((tmp_path / "second" / "config.json").read_text())["training"]
    assert config["primary_caption_prob"] == 0.5 and config["seed"] == EVALUATOR_SEED
    # a saved evaluator folder itself (as shipped in checkpoints/) continues too, and its record is kept
    train_main(["evaluator", "--config", "tiny", *settings, "--output_dir", str(tmp_path / "third"),
                "--init_from", str(tmp_path / "second" / "evaluator"), "--learning_rate", "1e-9"])
    third = EvaluatorCLIP.from_pretrained(tmp_path / "third" / "evaluator")
    assert third.info["initialised_from"] == "evaluator"
    assert third.info["initialised_from_info"]["initialised_from"] == "final"
    weights = {k: v for k, v in second.model.state_dict().items()}
    # a learning rate of 1e-9 moves no weight measurably: the third run started from the second's weights
    assert all(torch.allclose(v, weights[k], atol=1e-6) for k, v in third.model.state_dict().items())
    # a time budget that stops the run early still leaves an evaluator: its EMA snapshot, with the step reached
    train_main(["evaluator", "--config", "tiny", *settings, "--output_dir", str(tmp_path / "budget"),
                "--max_minutes", "1e-6"])
    budget = EvaluatorCLIP.from_pretrained(tmp_path / "budget" / "evaluator")
    assert budget.info["training_steps"] == 1 and budget.info["planned_steps"] == 2
    assert not (tmp_path / "budget" / "final").exists() and (tmp_path / "budget" / "snapshot-1").is_dir()
