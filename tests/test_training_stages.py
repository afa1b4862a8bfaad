"""Smoke-train every stage on the tiny preset and check each one learns (fixed-noise loss drops) and exports.

`tiny_runs()` trains CLIP, prior, decoder and upsampler once per session on the emoji fixture; the assemble
tests reuse it.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from test_training_data import dataset_path
from unclip_diffusers.training.batches import load_split
from unclip_diffusers.training.clip import CLIPStage, contrastive_loss, features, retrieval_accuracy
from unclip_diffusers.training.config import get_training_config
from unclip_diffusers.training.decoder import DecoderStage
from unclip_diffusers.training.embeddings import (
    clip_final_dir,
    fingerprint_files,
    load_frozen_clip,
    load_or_compute_embeddings,
    primary_caption_rows,
)
from unclip_diffusers.training.prior import PriorStage
from unclip_diffusers.training.trainer import run_training
from unclip_diffusers.training.upsampler import UpsamplerStage

STAGES = {"clip": CLIPStage, "prior": PriorStage, "decoder": DecoderStage, "upsampler": UpsamplerStage}
OVERFIT = dict(max_steps=30, max_train_examples=8, batch_size=8, lr_warmup_steps=3, num_validation_examples=4,
               checkpoint_every=15, num_threads=1)


def _config(stage: str, root: Path, **overrides):
    values = dict(OVERFIT, data_path=dataset_path(), output_dir=str(root / stage))
    if stage in ("prior", "decoder"):
        values["clip_dir"] = str(root / "clip")
    if stage == "prior":  # exercise gradient accumulation: 2 micro-batches of 4 per step
        values.update(batch_size=4, gradient_accumulation_steps=2)
    if stage == "decoder":
        values["batch_size"] = 4
    if stage == "upsampler":  # exercise bf16 autocast (and the accelerate state reset between runs)
        values["mixed_precision"] = "bf16"
    return get_training_config(stage, "tiny", **(values | overrides))


def _fixed_loss(stage_obj, model) -> float:
    """The stage's loss on its first training examples with fixed noise, timesteps and captions."""
    indices = torch.arange(min(8, stage_obj.num_train_examples))
    with torch.no_grad():
        return stage_obj.loss(model, indices, torch.Generator().manual_seed(123), random.Random(123)).item()


@functools.lru_cache(maxsize=1)
def tiny_runs() -> dict[str, tuple[Path, float, float]]:
    """Train each stage once: {stage: (run folder, fixed loss at initialisation, fixed loss after training)}."""
    root = Path(tempfile.mkdtemp(prefix="unclip-runs-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    threads = torch.get_num_threads()
    results = {}
    try:
        for name, cls in STAGES.items():
            stage = cls(_config(name, root))
            with torch.random.fork_rng(devices=[]):  # the initial weights run_training will start from
                torch.manual_seed(stage.config.seed)
                initial = _fixed_loss(stage, stage.setup(None))
            run_dir = run_training(stage)
            trained = _fixed_loss(stage, stage.module)  # the raw (not EMA) weights the loop trained
            results[name] = (run_dir, initial, trained)
    finally:
        torch.set_num_threads(threads)
    return results


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_overfits_and_logs(name):
    run_dir, initial, trained = tiny_runs()[name]
    assert torch.isfinite(torch.tensor([initial, trained])).all()
    assert trained < 0.8 * initial, f"{name}: fixed-noise loss {initial:.4f} -> {trained:.4f}"
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_lines = [line for line in lines if "loss" in line]
    assert [line["step"] for line in train_lines] == list(range(1, 31))
    assert all(line["images_per_s"] > 0 and line["loss"] == line["loss"] for line in train_lines)
    validation = [line["validation"] for line in lines if "validation" in line]
    assert len(validation) == 1 and validation[0]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["stage"] == name and config["training"]["max_steps"] == 30 and config["model"]["clip"]["embed_dim"] == 32
    assert [p.name for p in sorted(run_dir.glob("checkpoint-*"))] == ["checkpoint-15", "checkpoint-30"]
    assert (run_dir / "final" / "config.json").exists()
    assert not list((run_dir / "final").rglob("*.bin")) and list((run_dir / "final").rglob("*.safetensors"))
    if name in ("decoder", "upsampler"):
        grid = run_dir / "samples" / f"{name}-step-0000030.png"
        assert grid.exists()
    if name == "upsampler":  # from pure noise and from the noised input (the release's super_res_strength)
        assert {"heldout_psnr", "heldout_psnr_strength0.3", "heldout_bicubic_psnr"} <= set(validation[0])


def test_contrastive_loss_is_clips_and_counts_identical_captions_as_matches():
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    diagonal = torch.arange(4)
    expected = 0.5 * (torch.nn.functional.cross_entropy(logits, diagonal)
                      + torch.nn.functional.cross_entropy(logits.T, diagonal))
    torch.testing.assert_close(contrastive_loss(logits, ["a", "b", "c", "d"]), expected)
    # images 0 and 1 drew the same caption text: matching both captions is right, matching only "its own" is not
    block = torch.full((4, 4), -10.0)
    block[:2, :2] = 10.0
    block[2, 2] = block[3, 3] = 10.0
    only_own = torch.full((4, 4), -10.0).fill_diagonal_(10.0)
    captions = ["x emoji", "x emoji", "y, Noto style", "z, Noto style"]
    assert contrastive_loss(block, captions) < contrastive_loss(only_own, captions)
    assert contrastive_loss(block, list("abcd")) > contrastive_loss(only_own, list("abcd"))


def test_clip_batches_group_a_concepts_styles(tmp_path):
    stage = CLIPStage(_config("clip", tmp_path, max_train_examples=0, styles_per_concept=4))
    stage.setup(None)
    concepts = load_split(stage.config, "train")["concept"]
    batch = stage.batch_indices(micro_step=0, process_index=0, num_processes=1).tolist()
    assert len(batch) == 8 and len(set(batch)) == 8
    assert len({concepts[i] for i in batch}) < 8  # some concept appears in several styles
    assert math.isfinite(_fixed_loss(stage, stage.model))
    with pytest.raises(ValueError, match="styles_per_concept must be >= 1"):
        _config("clip", tmp_path, styles_per_concept=0)
    folder = tmp_path / "no-concepts"  # an imagefolder has captions but no concept column to group by
    folder.mkdir()
    with open(folder / "metadata.jsonl", "w") as f:
        for i, color in enumerate(["red", "blue"]):
            Image.new("RGB", (8, 8), color).save(folder / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "caption": f"a {color} square"}) + "\n")
    for option in ({"styles_per_concept": 2}, {"concept_positives": True}):
        with pytest.raises(ValueError, match=f"{next(iter(option))}.*needs the dataset's 'concept' column"):
            CLIPStage(_config("clip", tmp_path, data_path=str(folder), num_validation_examples=0,
                              **option)).setup(None)


def test_clip_family_balanced_concept_groups_weigh_what_their_rows_weigh(tmp_path):
    stage = CLIPStage(_config("clip", tmp_path, max_train_examples=0, styles_per_concept=2, family_balance=1.0))
    stage.setup(None)
    assert stage.group_weights is not None and len(stage.group_weights) == len(stage.concept_groups)
    for group, weight in zip(stage.concept_groups, stage.group_weights):
        torch.testing.assert_close(weight, stage.sampling_weights[group].sum())
    batch = stage.batch_indices(micro_step=0, process_index=0, num_processes=1).tolist()
    assert len(batch) == 8 and len(set(batch)) == 8


def test_clip_concept_positives_match_a_concepts_styles_across_captions(tmp_path):
    stage = CLIPStage(_config("clip", tmp_path, max_train_examples=0, styles_per_concept=4, concept_positives=True))
    stage.setup(None)
    assert stage.concepts == list(load_split(stage.config, "train")["concept"])
    # two images of one concept with different captions: with concept keys both captions are right for both images
    block = torch.full((4, 4), -10.0)
    block[:2, :2] = 10.0
    block[2, 2] = block[3, 3] = 10.0
    only_own = torch.full((4, 4), -10.0).fill_diagonal_(10.0)
    assert contrastive_loss(block, ["cat", "cat", "dog", "fox"]) < contrastive_loss(only_own, ["cat", "cat", "dog", "fox"])
    assert math.isfinite(_fixed_loss(stage, stage.model))


def test_clip_primary_caption_prob_mixes_primary_and_drawn_captions(tmp_path):
    stage = CLIPStage(_config("clip", tmp_path, max_train_examples=0, primary_caption_prob=0.5))
    stage.examples = [{"caption": "primary", "captions": ["primary"] + [f"other {k}" for k in range(50)]}]
    rng = random.Random(0)
    picks = [stage.training_caption(0, rng) for _ in range(400)]
    share = picks.count("primary") / len(picks)
    assert 0.42 < share < 0.6  # 0.5 of the steps plus 1/51 of the drawn ones
    assert len(set(picks)) > 20  # the rest are drawn from all captions
    stage.config.primary_caption_prob = 0.0
    rng_a, rng_b = random.Random(5), random.Random(5)
    drawn = [stage.training_caption(0, rng_a) for _ in range(30)]
    assert drawn == [stage.examples[0]["captions"][rng_b.randrange(51)] for _ in range(30)]  # 0: the old draws
    with pytest.raises(ValueError, match="primary_caption_prob must be a probability"):
        _config("clip", tmp_path, primary_caption_prob=1.5)


def test_final_weights_are_the_ema_weights():
    run_dir = tiny_runs()["prior"][0]
    from unclip_diffusers.models import UnCLIPPriorTransformer

    final = UnCLIPPriorTransformer.from_pretrained(run_dir / "final" / "prior")
    raw = load_file(run_dir / "checkpoint-30" / "model.safetensors")
    ema = torch.load(run_dir / "checkpoint-30" / "custom_checkpoint_1.pkl", weights_only=False)["shadow_params"]
    final_params = list(final.parameters())
    assert len(final_params) == len(ema)
    for p, e in zip(final_params, ema):
        torch.testing.assert_close(p.data, e)
    name, tensor = next((k, v) for k, v in raw.items() if k.endswith("proj_in.weight"))
    assert not torch.equal(dict(final.named_parameters())[name], tensor)  # EMA lags the raw weights
    # The prior carries the training split's embedding statistics.
    assert torch.all(final.clip_std > 0) and not torch.all(final.clip_mean == 0)


def test_clip_halves_load_from_the_run_and_match():
    run_dir = tiny_runs()["clip"][0]
    final = clip_final_dir(run_dir)
    clip = load_frozen_clip(run_dir)
    from transformers import CLIPModel

    whole = CLIPModel.from_pretrained(final / "clip")
    tokens = clip.tokenizer(["red circle, flat style"], padding="max_length", max_length=clip.tokenizer.model_max_length,
                            return_tensors="pt")
    with torch.no_grad():
        ours = clip.text_encoder(**tokens).text_embeds
        theirs = whole.get_text_features(**tokens)
    torch.testing.assert_close(ours, getattr(theirs, "pooler_output", theirs))
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        theirs = whole.get_image_features(pixel_values=pixels)
        torch.testing.assert_close(clip.image_encoder(pixel_values=pixels).image_embeds,
                                   getattr(theirs, "pooler_output", theirs))


def test_embedding_cache_is_normalised_reused_and_invalidated(tmp_path):
    from unclip_diffusers.training.batches import caption_examples, load_split

    clip_run = tmp_path / "clip"
    shutil.copytree(tiny_runs()["clip"][0] / "final", clip_run / "final")
    config = get_training_config("prior", "tiny", data_path=dataset_path(), clip_dir=str(clip_run))
    data = load_split(config, "heldout_pairs")
    cache = load_or_compute_embeddings(clip_run, data, "heldout_pairs")
    files = list((clip_run / "embeddings").glob("heldout_pairs-*.safetensors"))
    assert len(files) == 1
    torch.testing.assert_close(cache.image_embeds.norm(dim=-1), torch.ones(len(data)))
    torch.testing.assert_close(cache.text_embeds.norm(dim=-1), torch.ones(cache.text_embeds.shape[0]))
    flat = [c for captions in data["captions"] for c in captions]
    assert len(cache.caption_text_rows) == len(flat) == int(cache.caption_offsets[-1])
    assert cache.text_embeds.shape[0] == len(set(flat))  # each distinct text once
    row_of_text: dict[str, int] = {}
    for example, captions in enumerate(data["captions"]):  # one text, one row, wherever it appears
        for index, caption in enumerate(captions):
            assert row_of_text.setdefault(caption, cache.caption_row(example, index)) == cache.caption_row(example, index)
    assert sorted(row_of_text.values()) == list(range(cache.text_embeds.shape[0]))
    assert cache.text_tokens.dtype == torch.float16 and int(cache.context_length) == 77
    empty_embeds, empty_hidden, empty_mask = cache.empty_conditioning()
    assert empty_hidden.shape == (77, 32) and int(empty_mask.sum()) == 2  # start and end tokens only
    rows = primary_caption_rows(cache, caption_examples(data), torch.arange(len(data)))
    clip = load_frozen_clip(clip_run)
    tokens = clip.tokenizer(list(data["caption"]), padding="max_length", max_length=77, return_tensors="pt")
    direct = clip.text_encoder(**tokens)
    torch.testing.assert_close(cache.text_embeds[rows], torch.nn.functional.normalize(direct.text_embeds, dim=-1))
    embeds, hidden, mask = cache.conditioning(rows)
    assert torch.equal(mask, tokens.attention_mask.bool())
    real = tokens.attention_mask.bool()
    torch.testing.assert_close(hidden[real], direct.last_hidden_state[real], atol=2e-3, rtol=1e-2)  # float16 storage
    assert torch.all(hidden[~real] == 0)
    drop = torch.tensor([True] + [False] * (len(rows) - 1))
    dropped = cache.conditioning(rows, drop)
    assert torch.equal(dropped[0][0], empty_embeds) and torch.equal(dropped[1][0], empty_hidden)
    assert torch.equal(dropped[2][0], empty_mask) and torch.equal(dropped[1][1:], hidden[1:])

    stamp = files[0].stat().st_mtime_ns
    again = load_or_compute_embeddings(clip_run, data, "heldout_pairs")
    assert files[0].stat().st_mtime_ns == stamp and torch.equal(again.image_embeds, cache.image_embeds)

    # A retrained CLIP (different weights) must not reuse the old embeddings.
    weights = clip_run / "final" / "image_encoder" / "model.safetensors"
    state = load_file(weights)
    key = next(k for k in state if k.endswith("visual_projection.weight"))
    state[key] = state[key] * 2 + 0.1
    from safetensors.torch import save_file

    save_file(state, weights, metadata={"format": "pt"})
    old = fingerprint_files(clip_run / "final")
    recomputed = load_or_compute_embeddings(clip_run, data, "heldout_pairs")
    assert files[0].stat().st_mtime_ns != stamp and not torch.allclose(recomputed.image_embeds, cache.image_embeds)
    assert fingerprint_files(clip_run / "final") == old


def test_embed_command_caches_every_split(tmp_path):
    from unclip_diffusers.training.cli import main

    shutil.copytree(tiny_runs()["clip"][0] / "final", tmp_path / "clip" / "final")
    main(["embed", "--clip_dir", str(tmp_path / "clip"), "--data_path", dataset_path(),
          "--splits", "train", "heldout_concepts"])
    names = sorted(p.name.split("-")[0] for p in (tmp_path / "clip" / "embeddings").glob("*.safetensors"))
    assert names == ["heldout_concepts", "train"]


def test_retrieval_accuracy():
    embeds = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    assert retrieval_accuracy(embeds, embeds) == (1.0, 1.0)
    assert retrieval_accuracy(embeds, embeds.roll(1, 0), top_k=1) == (0.0, 0.0)
    assert retrieval_accuracy(embeds, embeds.roll(1, 0), top_k=5) == (1.0, 1.0)


def test_stages_refuse_bad_setups(tmp_path):
    with pytest.raises(ValueError, match="No trained CLIP"):
        PriorStage(_config("prior", tmp_path)).setup(None)
    with pytest.raises(ValueError, match="no_such_column"):
        UpsamplerStage(_config("upsampler", tmp_path, high_res_column="no_such_column")).setup(None)
    with pytest.raises(ValueError, match="does not exist"):
        CLIPStage(_config("clip", tmp_path, data_path=str(tmp_path / "missing"))).setup(None)


def test_locked_image_tuning_trains_only_the_text_tower(tmp_path):
    clip_final = tiny_runs()["clip"][0] / "final"
    config = _config("clip", tmp_path, locked_image_tower=str(clip_final), max_steps=12, checkpoint_every=12,
                     learning_rate=3e-3)
    stage = CLIPStage(config)
    run_dir = run_training(stage)
    trained = load_file(run_dir / "final" / "clip" / "model.safetensors")
    source = load_file(clip_final / "clip" / "model.safetensors")
    image_keys = [k for k in trained if k.startswith(("vision_model.", "visual_projection."))]
    text_keys = [k for k in trained if k.startswith(("text_model.", "text_projection."))]
    assert image_keys and text_keys
    assert all(torch.equal(trained[k], source[k]) for k in image_keys)  # frozen: bit-identical to the source
    assert any(not torch.equal(trained[k], source[k]) for k in text_keys)  # the text tower starts fresh and learns
    # the cached image embeddings are the tower's own: the loss equals CLIP's full forward on the same captions
    indices = torch.arange(4)
    captions = [stage.examples[i]["caption"] for i in indices.tolist()]
    tokens = stage.tokenize(captions)
    with torch.no_grad():
        full = stage.module(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
                            pixel_values=stage.pixel_values(stage.images[indices]))
        cached = stage.module.logit_scale.exp() * stage.frozen_image_embeds(stage.module)[indices] @ torch.nn.functional.normalize(
            features(stage.module.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)),
            dim=-1).T
    torch.testing.assert_close(cached, full.logits_per_image, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="locked_image_tower"):
        _config("clip", tmp_path, locked_image_tower=str(tmp_path / "missing"))


def test_family_balance_weights_every_stage_s_batches_by_family(tmp_path, caplog):
    """family_balance=1 gives the 3 thumbs-up tones of the fixture one family's weight; 0 leaves draws uniform."""
    stage = UpsamplerStage(_config("upsampler", tmp_path, family_balance=1.0, max_train_examples=0))
    train = load_split(stage.config, "train")
    with caplog.at_level("INFO", logger="unclip_diffusers.training.trainer"):
        stage.balance_families(train)
    per_family: dict[str, float] = {}
    for weight, family in zip(stage.sampling_weights.tolist(), train["family"]):
        per_family[family] = per_family.get(family, 0.0) + weight
    assert len(per_family) > 3 and max(per_family.values()) == pytest.approx(min(per_family.values()))
    assert "everyday share of a batch" in caplog.text
    stage.setup(None)  # the stage's own setup weighs its (high-resolution) training rows
    assert stage.sampling_weights is not None and len(stage.sampling_weights) == stage.num_train_examples
    drawn = stage.batch_indices(micro_step=5, process_index=0, num_processes=1)
    assert torch.equal(drawn, stage.batch_indices(micro_step=5, process_index=0, num_processes=1))
    uniform = UpsamplerStage(_config("upsampler", tmp_path / "u", max_train_examples=0))
    uniform.setup(None)
    assert uniform.sampling_weights is None


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_throughput_benchmark_trains_every_stage_on_synthetic_data(stage):
    from unclip_diffusers.training.benchmark import benchmark_stage

    result = benchmark_stage(stage, "tiny", seconds=0.0, warmup_steps=1, num_threads=1)
    assert result["stage"] == stage and result["timed_steps"] >= 1 and result["samples_per_s"] > 0


def test_guidance_distillation_learns_the_teachers_guided_prediction(tmp_path):
    teacher = tiny_runs()["decoder"][0] / "final"
    root = teacher.parent.parent  # the tiny runs' folder, with their CLIP
    common = dict(init_from=str(teacher), distill_from=str(teacher), max_steps=30, checkpoint_every=30,
                  learning_rate=1e-4, num_validation_examples=0)
    unguided = DecoderStage(_config("decoder", root, distill_guidance_scale=1.0, output_dir=str(tmp_path / "w1"),
                                    **common))
    student = unguided.setup(None)
    unguided.load_weights(student, teacher)
    assert _fixed_loss(unguided, student) < 1e-8  # the teacher's own conditional prediction is its target at w = 1

    stage = DecoderStage(_config("decoder", root, distill_guidance_scale=4.0, output_dir=str(tmp_path / "w4"),
                                 **common))
    start = stage.setup(None)
    stage.load_weights(start, teacher)
    initial = _fixed_loss(stage, start)
    run_dir = run_training(stage)
    trained = _fixed_loss(stage, stage.module)
    assert initial > 1e-4 and trained < 0.8 * initial, f"distillation loss {initial:.5f} -> {trained:.5f}"
    assert (run_dir / "final" / "decoder").is_dir()
    with pytest.raises(ValueError, match="distill_guidance_scale"):
        _config("decoder", root, distill_from=str(teacher), distill_guidance_scale=0.5)
