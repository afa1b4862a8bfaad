"""`unclip-push` end to end, offline: `--local-hub` mirrors, a fresh process without the package loading them with
`trust_remote_code=True`, the no-remote-code path, stage and Karlo uploads, and the calls an online push makes."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from huggingface_hub import ModelCard
from PIL import Image

from unclip_diffusers import UnCLIPPipeline, UnCLIPPriorTransformer, UnCLIPTextProjection
from unclip_diffusers.hub.cards import validate_card
from unclip_diffusers.hub.push import DELETE_PATTERNS, UploadOptions, build_upload, local_hub_path, main
from unclip_diffusers.pipelines.karlo import KARLO_MODEL_INDEX
from unclip_diffusers.pipelines.karlo_random import write_random_karlo_layout

from test_hub_cards import write_dataset, write_metrics

REPO = "someone/unclip-tiny"
FAST = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
            prior_guidance_scale=2.0, decoder_guidance_scale=2.0, output_type="np")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (HF_HUB_OFFLINE=1 is also set)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)




@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    return {"metrics": write_metrics(root / "eval"), "data": write_dataset(root / "data")}


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "unclip-tiny"
    pipe.save_pretrained(folder)
    return folder


def _card_args(inputs) -> list[str]:
    return ["--metrics", str(inputs["metrics"]), "--data", str(inputs["data"]), "--dataset-id", "someone/emoji",
            "--no-grid"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local-hub")


@pytest.fixture(scope="module")
def pushed(saved, inputs, hub) -> Path:
    assert main([str(saved), REPO, "--local-hub", str(hub)] + _card_args(inputs)) == 0
    return hub / REPO


def make_run(root: Path, stage: str, pipe: UnCLIPPipeline, data_dir: Path) -> Path:
    """A finished training run folder as `unclip-train` leaves it: config.json, metrics.jsonl, samples/, final/."""
    run = root / f"{stage}-tiny"
    final = run / "final"
    parts = {"clip": ["text_encoder", "image_encoder", "tokenizer", "feature_extractor"], "prior": ["prior"],
             "decoder": ["decoder", "text_proj"], "upsampler": ["super_res_first"]}[stage]
    for part in parts:
        getattr(pipe, part).save_pretrained(final / part)
    config = {"stage": stage, "model": {"decoder": {"sample_size": 16}},
              "training": {"model_preset": "tiny", "max_steps": 20, "batch_size": 8, "learning_rate": 0.001, "seed": 0,
                           "data_path": str(data_dir)}}
    for folder in (run, final):
        (folder / "config.json").write_text(json.dumps(config))
    if stage in ("prior", "decoder"):
        (final / "clip_reference.json").write_text(json.dumps({"clip_dir": "runs/clip-tiny", "clip_fingerprint": "0f"}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 20, "loss": 0.9}) + "\n"
                                       + json.dumps({"step": 20, "validation": {"heldout_loss": 0.8125}}) + "\n")
    (run / "samples").mkdir()
    Image.new("RGB", (32, 16), "blue").save(run / "samples" / f"{stage}-step-0000020.png")
    return run


@pytest.fixture(scope="module")
def stage_repos(pipe, inputs, hub, tmp_path_factory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("runs")
    repos = {}
    for stage in ("clip", "prior", "decoder", "upsampler"):
        run = make_run(runs, stage, pipe, inputs["data"])
        folder = run if stage != "upsampler" else run / "final"  # a run folder or its final/ both work
        assert main([str(folder), f"someone/tiny-{stage}", "--local-hub", str(hub)]) == 0
        repos[stage] = hub / "someone" / f"tiny-{stage}"
    return repos


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_local_hub_mirror_holds_weights_code_and_a_valid_card(pushed):
    files = _files(pushed)
    assert [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))] == []
    assert "prior/diffusion_pytorch_model.safetensors" in files and "text_encoder/model.safetensors" in files
    assert {"pipeline_unclip.py", "prior/unclip_models_prior_transformer.py",
            "text_proj/unclip_models_text_projection.py", "unclip_pipelines_pipeline_unclip.py"} <= set(files)
    assert {"README.md", "TRAINING_DATA_LICENSES.md", "images/eval/text_to_image_heldout_pairs.png"} <= set(files)
    index = json.loads((pushed / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_unclip", "UnCLIPPipeline"]
    assert index["prior"] == ["unclip_models_prior_transformer", "UnCLIPPriorTransformer"]
    assert index["text_proj"] == ["unclip_models_text_projection", "UnCLIPTextProjection"]
    card = ModelCard.load(pushed / "README.md")
    assert validate_card(card, "pipeline") == []
    assert card.data.pipeline_tag == "text-to-image" and card.data.datasets == ["someone/emoji"]
    assert ("r_precision", "heldout_pairs", 0.45) in {(r.metric_type, r.dataset_split, r.metric_value)
                                                      for r in card.data.eval_results}
    assert "0.45 (chance: 0.05)" in card.text and "![images/eval/text_to_image_heldout_pairs.png]" in card.text
    assert "| `prior` | `UnCLIPPriorTransformer` | 34,496 |" in card.text  # counted from the safetensors header
    for path in ("pipeline_unclip.py", "prior/unclip_models_prior_transformer.py"):
        assert f"| `{path}` |" in card.text  # every file of remote code is listed with its digest
    assert "unclip-train decoder --config tiny" in card.text  # the preset is recognised from the configs


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
def test_a_fresh_process_without_the_package_loads_the_mirrors(pipe, pushed, stage_repos, tmp_path):
    """`DiffusionPipeline`/`AutoModel` with `trust_remote_code=True` where `import unclip_diffusers` fails."""
    script = f"""
import socket, sys
class Hide:  # the package may be installed (editable) too: hide it
    def find_spec(self, name, path=None, target=None):
        if name == "unclip_diffusers" or name.startswith("unclip_diffusers."):
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Hide())
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
try:
    import unclip_diffusers
    raise SystemExit("unclip_diffusers is importable")
except ModuleNotFoundError:
    print("package hidden")
import numpy as np, torch
torch.set_num_threads(1)
from diffusers import AutoModel, DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained({str(pushed)!r}, trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
out = pipe("a cat", generator=torch.Generator().manual_seed(0), **{FAST!r})
np.save("images.npy", out.images)
print("pipeline", type(pipe).__module__, type(pipe.prior).__module__, out.images.shape)
prior = AutoModel.from_pretrained({str(stage_repos["prior"])!r}, subfolder="prior", trust_remote_code=True)
text_proj = AutoModel.from_pretrained({str(stage_repos["decoder"])!r}, subfolder="text_proj", trust_remote_code=True)
torch.save({{"clip_std": prior.clip_std, "null": text_proj.learned_classifier_free_guidance_embeddings}}, "stages.pt")
print("stages", type(prior).__name__, type(text_proj).__name__)
print("modules", sorted(m for m in sys.modules if "unclip_diffusers" in m and "finder" not in m))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert "package hidden" in lines
    assert ("pipeline diffusers_modules.local.unclip_pipelines_pipeline_unclip "
            "diffusers_modules.local.unclip_models_prior_transformer (1, 64, 64, 3)") in lines
    assert "stages UnCLIPPriorTransformer UnCLIPTextProjection" in lines and "modules []" in lines
    assert "Expected types" not in result.stderr  # the pipeline's type check accepts the shipped components
    expected = pipe("a cat", generator=torch.Generator().manual_seed(0), **FAST).images
    # the same code and weights, the same image (up to float noise: weights loaded from safetensors sit at other
    # memory alignments than freshly built ones, and CPU kernels sum in another order for them)
    np.testing.assert_allclose(np.load(tmp_path / "images.npy"), expected, rtol=0, atol=1e-4)
    stages = torch.load(tmp_path / "stages.pt")
    torch.testing.assert_close(stages["clip_std"], pipe.prior.clip_std)
    torch.testing.assert_close(stages["null"], pipe.text_proj.learned_classifier_free_guidance_embeddings)


def test_with_the_package_no_code_from_the_folder_runs(pipe, pushed):
    loaded = UnCLIPPipeline.from_pretrained(pushed)  # no trust_remote_code: the installed classes
    assert type(loaded.prior) is UnCLIPPriorTransformer and type(loaded.text_proj) is UnCLIPTextProjection
    loaded.set_progress_bar_config(disable=True)
    a = pipe("a dog", generator=torch.Generator().manual_seed(3), **FAST).images
    np.testing.assert_allclose(loaded("a dog", generator=torch.Generator().manual_seed(3), **FAST).images, a, rtol=0,
                               atol=1e-4)  # float noise only (see above)
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(pushed)


def test_a_downloaded_upload_can_be_pushed_again_unchanged(pushed, inputs, tmp_path):
    assert main([str(pushed), REPO, "--local-hub", str(tmp_path)] + _card_args(inputs)) == 0
    again = tmp_path / REPO
    assert _files(again) == _files(pushed)
    for name in _files(pushed):
        assert (again / name).read_bytes() == (pushed / name).read_bytes(), name


def test_dry_run_lists_exactly_what_the_local_hub_holds(saved, inputs, pushed, capsys):
    assert main([str(saved), REPO, "--dry-run"] + _card_args(inputs)) == 0
    listed = [line.split()[-1] for line in capsys.readouterr().out.splitlines()[:-1]]
    assert sorted(listed) == _files(pushed)


def test_pipeline_card_gets_a_sample_grid_of_the_uploaded_weights(saved, tmp_path):
    options = UploadOptions(grid_prompts=("a cat", "a heart"), grid_seeds=(0,), grid_steps=1)
    upload = build_upload(saved, REPO, tmp_path / "upload", options)
    grid = Image.open(tmp_path / "upload" / "images" / "samples.png")
    assert grid.size == (128, 256)  # 64-px outputs enlarged to 128-px cells: 1 seed x 2 prompts
    card = ModelCard.load(tmp_path / "upload" / "README.md")
    assert "![Samples from this pipeline](images/samples.png)" in card.text
    assert "Rows: 'a cat', 'a heart'; columns: seeds 0" in card.text and "1 steps per stage" in card.text
    assert "images/samples.png" in upload.files and "Evaluation" in card.text and "not measured" in card.text


def test_each_stage_is_pushed_with_its_own_card(pipe, stage_repos):
    code = {stage: [f for f in _files(repo) if f.endswith(".py")] for stage, repo in stage_repos.items()}
    assert code == {"clip": [], "prior": ["prior/unclip_models_prior_transformer.py"],
                    "decoder": ["text_proj/unclip_models_text_projection.py"], "upsampler": []}
    for stage, repo in stage_repos.items():
        files = _files(repo)
        assert "training_config.json" in files and "config.json" not in files, stage
        assert "TRAINING_DATA_LICENSES.md" in files, stage  # found through the run's recorded data_path
        card = ModelCard.load(repo / "README.md")
        assert validate_card(card, stage) == [], stage
        assert "| `max_steps` | 20 |" in card.text and "0.8125" in card.text, stage  # run settings, last validation
        assert ("images/training_samples.png" in files) == (stage in ("decoder", "upsampler")), stage
    assert json.loads((stage_repos["prior"] / "prior" / "config.json").read_text())["auto_map"] == {
        "AutoModel": "unclip_models_prior_transformer.UnCLIPPriorTransformer"}
    assert "clip_reference.json" in _files(stage_repos["decoder"])
    assert ModelCard.load(stage_repos["clip"] / "README.md").data.library_name == "transformers"
    prior = UnCLIPPriorTransformer.from_pretrained(stage_repos["prior"], subfolder="prior")
    torch.testing.assert_close(prior.clip_std, pipe.prior.clip_std)
    # the cards' usage snippets: stock classes for the CLIP, the decoder UNet and the upsampler
    from diffusers import UNet2DConditionModel, UNet2DModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    text_encoder = CLIPTextModelWithProjection.from_pretrained(stage_repos["clip"], subfolder="text_encoder")
    torch.testing.assert_close(text_encoder.text_projection.weight, pipe.text_encoder.text_projection.weight)
    assert CLIPTokenizer.from_pretrained(stage_repos["clip"], subfolder="tokenizer")("a cat").input_ids == \
        pipe.tokenizer("a cat").input_ids
    assert UNet2DConditionModel.from_pretrained(stage_repos["decoder"], subfolder="decoder").config.sample_size == 16
    assert UNet2DModel.from_pretrained(stage_repos["upsampler"], subfolder="super_res_first").config.in_channels == 6


def test_karlo_layout_folder_round_trips_through_the_local_hub(tmp_path):
    original = write_random_karlo_layout(tmp_path / "karlo", preset="tiny", seed=0)
    assert main([original, "someone/karlo-tiny", "--local-hub", str(tmp_path / "hub"), "--no-grid"]) == 0
    mirror = tmp_path / "hub" / "someone" / "karlo-tiny"
    assert json.loads((mirror / "model_index.json").read_text()) == KARLO_MODEL_INDEX  # layout kept as it is
    assert not [f for f in _files(mirror) if f.endswith(".py")]
    assert validate_card(ModelCard.load(mirror / "README.md"), "karlo") == []
    steps = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
                 output_type="np")
    images = []
    for folder in (original, mirror):
        karlo = UnCLIPPipeline.from_pretrained(folder)
        karlo.set_progress_bar_config(disable=True)
        assert karlo.config.normalize_embeddings is False and karlo.super_res_last is not None
        images.append(karlo("a cat", generator=torch.Generator().manual_seed(0), **steps).images)
    np.testing.assert_array_equal(images[0], images[1])


def test_bad_input_gets_a_clear_error(saved, pushed, tmp_path, capsys):
    assert main([str(saved), "no-owner", "--dry-run", "--no-grid"]) == 2
    assert "REPO_ID must be 'owner/name'" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), REPO, "--dry-run"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), REPO, "--dry-run"]) == 2
    assert "neither a pipeline folder" in capsys.readouterr().err
    pickled = tmp_path / "pickled"
    shutil.copytree(saved, pickled)
    torch.save({"w": torch.zeros(1)}, pickled / "prior" / "diffusion_pytorch_model.bin")
    assert main([str(pickled), REPO, "--dry-run", "--no-grid"]) == 2
    assert "safetensors weights only" in capsys.readouterr().err
    bad_card = tmp_path / "card.md"
    bad_card.write_text("---\nlicense: mit\n---\n# A model\n")
    assert main([str(saved), REPO, "--dry-run", "--no-grid", "--card", str(bad_card)]) == 2
    assert "model card for someone/unclip-tiny is incomplete" in capsys.readouterr().err
    assert main([str(saved), REPO, "--dry-run", "--card", str(tmp_path / "nope.md")]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main([str(saved), REPO, "--dry-run", "--no-grid", "--notes", str(tmp_path / "notes.md")]) == 2
    assert "release notes" in capsys.readouterr().err
    assert main([str(saved), REPO, "--dry-run", "--no-grid", "--license", "wtfpl"]) == 2
    assert "not one of the Hub license ids" in capsys.readouterr().err
    assert main([str(saved), REPO, "--dry-run", "--grid-steps", "0"]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(saved), REPO, "--dry-run", "--local-hub", str(tmp_path)])
    assert exit_info.value.code == 2


def test_a_hand_written_card_is_validated_and_used_as_is(saved, pushed, tmp_path):
    card = pushed / "README.md"
    assert main([str(saved), REPO, "--local-hub", str(tmp_path), "--no-grid", "--card", str(card)]) == 0
    assert (tmp_path / REPO / "README.md").read_text() == card.read_text()


def test_online_push_creates_the_repo_and_uploads_the_same_files(saved, inputs, pushed, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 in the test command sets it
    assert main([str(saved), REPO] + _card_args(inputs)) == 2
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    calls = {}

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)

        def create_branch(self, repo_id, **kwargs):
            calls["create_branch"] = (repo_id, kwargs)

        def upload_folder(self, **kwargs):
            calls["upload_folder"] = kwargs
            calls["files"] = _files(Path(kwargs["folder_path"]))
            return type("Commit", (), {"commit_url": f"https://huggingface.co/{REPO}/commit/abc", "oid": "abc"})()

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setattr(ModelCard, "validate", lambda self, **kwargs: calls.setdefault("validated", True))
    assert main([str(saved), REPO, "--private", "--revision", "v1"] + _card_args(inputs)) == 0
    assert calls["create_repo"] == (REPO, {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["create_branch"] == (REPO, {"branch": "v1", "exist_ok": True})
    upload = calls["upload_folder"]
    assert upload["repo_id"] == REPO and upload["revision"] == "v1"
    assert upload["delete_patterns"] == DELETE_PATTERNS and calls["validated"]
    assert calls["files"] == _files(pushed)  # --local-hub mirrors exactly what is uploaded
    assert "revision='abc'" in capsys.readouterr().out


def test_local_hub_revision_gets_its_own_folder(saved, tmp_path):
    assert main([str(saved), REPO, "--local-hub", str(tmp_path), "--revision", "v1", "--no-grid"]) == 0
    assert (tmp_path / "someone" / "unclip-tiny@v1" / "model_index.json").is_file()


def test_release_notes_go_on_the_pushed_card(saved, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("Base resolution 16 px: chosen from measured throughput.\n")
    assert main([str(saved), REPO, "--local-hub", str(tmp_path / "hub"), "--no-grid", "--notes", str(notes)]) == 0
    card = (local_hub_path(tmp_path / "hub", REPO) / "README.md").read_text(encoding="utf-8")
    assert "## About this release\n\nBase resolution 16 px: chosen from measured throughput." in card
