"""`unclip-train pack` and the lent-GPU round trip: pack, train from the pack, stop on a time budget, come back.

A tiny CLIP is trained once (a few steps: the embeddings only have to exist) on a copy of the emoji fixture that
has the `family` and `slice` columns of a current build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_training_data import dataset_path
from test_training_stages import _config
from unclip_diffusers.training.batches import column_images, images_to_uint8, load_split
from unclip_diffusers.training.clip import CLIPStage
from unclip_diffusers.training.decoder import DecoderStage
from unclip_diffusers.training.embeddings import load_or_compute_embeddings
from unclip_diffusers.training.export import export_checkpoint
from unclip_diffusers.training.pack import load_pack, pack_stage
from unclip_diffusers.training.trainer import run_training
from unclip_diffusers.training.upsampler import UpsamplerStage


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, Path]:
    """{"data": fixture copy with families, "clip": a tiny CLIP run, "tokens"/"encodings"/"upsampler": packs}."""
    root = tmp_path_factory.mktemp("pack")
    shutil.copytree(dataset_path(), root / "data")  # the fixture has a current build's family and slice columns
    clip = CLIPStage(_config("clip", root, data_path=str(root / "data"), max_steps=2, checkpoint_every=2,
                             num_validation_examples=0))
    run_training(clip)
    paths = {"data": root / "data", "clip": root / "clip"}
    for text in ("tokens", "encodings"):
        paths[text] = pack_stage("decoder", root / "data", root / f"decoder-{text}.safetensors", root / "clip",
                                 model_preset="tiny", text=text, num_validation_examples=3)
    paths["upsampler"] = pack_stage("upsampler", root / "data", root / "upsampler.safetensors", model_preset="tiny",
                                    num_validation_examples=2)
    return paths


def _dataset_split(packed, split="train"):
    config = _config("decoder", packed["data"].parent, data_path=str(packed["data"]), clip_dir=str(packed["clip"]))
    data = load_split(config, split)
    return data, load_or_compute_embeddings(packed["clip"], data, split)


@pytest.mark.parametrize("text", ["encodings", "tokens"])
def test_decoder_pack_round_trips_images_embeddings_and_captions(packed, text):
    data, cache = _dataset_split(packed)
    pack = load_pack(packed[text], "decoder")
    train = pack.splits["train"]
    assert torch.equal(train.images, images_to_uint8(data["image"], 16))  # uint8 exactly, at the decoder's 16 px
    assert train.table["family"] == list(data["family"]) and train.table["slice"] == list(data["slice"])
    assert train.table["captions"] == [list(c) for c in data["captions"]]
    assert train.table["caption"] == list(data["caption"])
    torch.testing.assert_close(train.cache.image_embeds, cache.image_embeds, atol=1e-3, rtol=0)  # fp16 storage
    rows = torch.arange(len(cache.caption_text_rows))
    ours = [train.cache.caption_row(e, i) for e in range(len(data)) for i in range(len(data["captions"][e]))]
    theirs = [cache.caption_row(e, i) for e in range(len(data)) for i in range(len(data["captions"][e]))]
    assert len(ours) == len(rows)
    # encodings: fp16 copies of the cache; tokens: recomputed from ids by the packed fp16 text tower
    atol = 1e-3 if text == "encodings" else 1e-2
    for a, b in zip(train.cache.conditioning(torch.tensor(ours)), cache.conditioning(torch.tensor(theirs))):
        torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=0)
    for a, b in zip(train.cache.empty_conditioning(), cache.empty_conditioning()):
        torch.testing.assert_close(a.float(), b.float(), atol=1e-3, rtol=0)
    assert len(pack.splits["heldout_pairs"].images) == 3 and pack.clip_fingerprint and pack.clip_dir


def test_upsampler_pack_holds_the_high_res_targets(packed):
    data = load_split(_config("upsampler", packed["data"].parent, data_path=str(packed["data"])), "train")
    targets, rows = column_images(data, "image_256", 64, desc="targets")
    pack = load_pack(packed["upsampler"], "upsampler")
    assert torch.equal(pack.splits["train"].images, targets)
    assert pack.splits["train"].table["family"] == [data["family"][r] for r in rows]
    with pytest.raises(ValueError, match="not the decoder's"):
        load_pack(packed["upsampler"], "decoder")


def test_pack_refuses_to_exceed_the_limit_and_subsets_to_fit(packed, tmp_path):
    output = tmp_path / "big.safetensors"
    with pytest.raises(ValueError, match=r"MiB over the 0.01 MiB limit .*--text tokens.* or --max_images \d+"):
        pack_stage("decoder", packed["data"], output, packed["clip"], model_preset="tiny", text="encodings",
                   max_mib=0.01)
    assert not output.exists() and not list(tmp_path.iterdir())
    small = pack_stage("decoder", packed["data"], output, packed["clip"], model_preset="tiny", max_images=8,
                       num_validation_examples=0)
    pack = load_pack(small, "decoder")
    assert len(pack.splits["train"].images) == 8 and list(pack.splits) == ["train"]
    assert len(pack.splits["train"].table["captions"]) == len(pack.splits["train"].cache) == 8
    with pytest.raises(ValueError, match="must end in"):
        pack_stage("decoder", packed["data"], tmp_path / "x.bin", packed["clip"], model_preset="tiny")
    with pytest.raises(ValueError, match="Cannot pack stage 'prior'"):
        pack_stage("prior", packed["data"], output, packed["clip"], model_preset="tiny")


def test_pack_command(packed, tmp_path):
    from unclip_diffusers.training.cli import main

    output = tmp_path / "cli.safetensors"
    main(["pack", "--stage", "upsampler", "--config", "tiny", "--data_path", str(packed["data"]), "--output",
          str(output), "--max_images", "4"])
    assert len(load_pack(output, "upsampler").splits["train"].images) == 4


def _pack_config(stage, packed, root, **overrides):
    values = dict(data_path=str(packed["upsampler"]), family_balance=1.0, max_steps=6, checkpoint_every=3)
    if stage == "decoder":
        values.update(data_path=str(packed["tokens"]), clip_dir="")  # the pack replaces both
    return _config(stage, root, **(values | overrides))


@pytest.mark.parametrize("stage_cls", [DecoderStage, UpsamplerStage], ids=["decoder", "upsampler"])
def test_training_from_a_pack_needs_neither_dataset_nor_clip(packed, tmp_path, stage_cls):
    name = "decoder" if stage_cls is DecoderStage else "upsampler"
    stage = stage_cls(_pack_config(name, packed, tmp_path))
    run_dir = run_training(stage)
    assert stage.sampling_weights is not None  # families balanced from the packed family column
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == list(range(1, 7))
    assert all(torch.isfinite(torch.tensor(line["loss"])) for line in lines if "loss" in line)
    assert any("heldout_loss" in line.get("validation", {}) for line in lines)
    assert (run_dir / "final").is_dir()
    if name == "decoder":  # assemble checks the decoder's CLIP against the one the pack was made with
        reference = json.loads((run_dir / "final" / "clip_reference.json").read_text())
        assert reference["clip_fingerprint"] == load_pack(packed["tokens"], "decoder").clip_fingerprint


def test_max_minutes_stops_with_a_checkpoint_and_snapshot_and_the_way_back_continues(packed, tmp_path):
    ticks = iter(range(0, 10_000, 60))  # an injected clock: one minute passes per reading
    stage = DecoderStage(_pack_config("decoder", packed, tmp_path / "gpu", max_minutes=2.5, max_steps=10,
                                      checkpoint_every=10))
    run_dir = run_training(stage, clock=lambda: float(next(ticks)))
    # readings: 0 at the start, then 60, 120, 180 after steps 1, 2, 3: the budget of 150 s is spent after step 3
    assert (run_dir / "checkpoint-3").is_dir() and (run_dir / "snapshot-3").is_dir()
    assert not (run_dir / "final").exists()

    out = tmp_path / "OUT"
    half = export_checkpoint(run_dir, fp16=True, output=out)  # what scripts/gpu_train.sh brings back
    assert half == out / "snapshot-3"
    files = list(half.rglob("*.safetensors"))
    assert files and all(v.dtype == torch.float16 for f in files for v in load_file(f).values())
    assert all(f.stat().st_size <= 16 * 2**20 for f in half.rglob("*"))

    # the way back: continue on CPU from the fp16 weights, from the dataset this time, counting on from step 3
    back = DecoderStage(_config("decoder", tmp_path / "cpu", data_path=str(packed["data"]),
                                clip_dir=str(packed["clip"]), init_from=str(half), max_steps=6, checkpoint_every=3))
    continued = run_training(back)
    steps = [json.loads(line)["step"] for line in (continued / "metrics.jsonl").read_text().splitlines()]
    assert steps[0] == 4 and steps[-1] == 6 and (continued / "final" / "decoder").is_dir()


def test_max_minutes_must_not_be_negative(tmp_path):
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        _config("decoder", tmp_path, max_minutes=-1)


def test_warm_start_loads_half_precision_weights_exactly(packed, tmp_path):
    stage = UpsamplerStage(_pack_config("upsampler", packed, tmp_path, max_steps=3))
    run_dir = run_training(stage)
    half = export_checkpoint(run_dir, fp16=True, output=tmp_path / "OUT")
    back = UpsamplerStage(_pack_config("upsampler", packed, tmp_path / "b", init_from=str(half)))
    model = back.setup(None)
    back.load_weights(model, half)
    saved = load_file(half / "super_res_first" / "diffusion_pytorch_model.safetensors")
    for key, value in model.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, saved[key].float())
    shutil.rmtree(run_dir)


@pytest.mark.slow
@pytest.mark.timeout(900)  # above the script's own 600-s subprocess timeout (test_suite_timeouts)
def test_gpu_train_script_runs_on_cpu_and_brings_back_fp16_weights(packed, tmp_path):
    """scripts/gpu_train.sh end to end (accelerate launch, budget stop, fp16 export, tar), on the CPU."""
    import os
    import subprocess
    import tarfile

    start = DecoderStage(_pack_config("decoder", packed, tmp_path / "start", max_steps=2, checkpoint_every=2))
    snapshot = export_checkpoint(run_training(start))  # snapshot-2: the run continues from step 2
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OUT=str(tmp_path / "OUT"), GPU_TRAIN_ALLOW_CPU="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        ["bash", str(root / "scripts" / "gpu_train.sh"), "decoder", "0.0001", str(snapshot), str(packed["tokens"]),
         "--config", "tiny", "--batch_size", "4", "--num_validation_examples", "0", "--max_steps", "20",
         "--num_threads", "1"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "OUT"
    assert (out / "step.txt").read_text().strip() == "3"  # one step past the snapshot, then out of time
    with tarfile.open(out / "snapshot-3.tar") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    weights = load_file(tmp_path / "back" / "snapshot-3" / "decoder" / "diffusion_pytorch_model.safetensors")
    assert all(v.dtype == torch.float16 for v in weights.values())
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "snapshot-3.tar", "step.txt", "train.log"]
