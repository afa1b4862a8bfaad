"""Assembling trained tiny runs into pipeline components."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from test_training_stages import tiny_runs
from unclip_diffusers.configs import build_components
from unclip_diffusers.training.assemble import assemble_components, build_parser


def test_assemble_gives_the_build_components_keys_with_the_trained_weights():
    runs = {name: run for name, (run, _, _) in tiny_runs().items()}
    components = assemble_components(runs["clip"], runs["prior"], runs["decoder"], runs["upsampler"])
    assert set(components) == set(build_components("tiny"))
    for name, folder in [("prior", runs["prior"] / "final" / "prior"), ("decoder", runs["decoder"] / "final" / "decoder"),
                         ("text_proj", runs["decoder"] / "final" / "text_proj"),
                         ("super_res_first", runs["upsampler"] / "final" / "super_res_first"),
                         ("text_encoder", runs["clip"] / "final" / "text_encoder")]:
        saved = load_file(next(folder.glob("*.safetensors")))
        state = components[name].state_dict()
        assert all(torch.equal(state[k], v) for k, v in saved.items()), name
    assert components["prior_scheduler"].config.prediction_type == "sample"
    assert components["decoder_scheduler"].config.prediction_type == "epsilon"
    assert components["super_res_scheduler"] is not None

    without = assemble_components(runs["clip"], runs["prior"], runs["decoder"])
    assert without["super_res_first"] is None and without["super_res_scheduler"] is None


def test_assemble_refuses_stages_trained_on_another_clip(tmp_path):
    runs = {name: run for name, (run, _, _) in tiny_runs().items()}
    prior = tmp_path / "prior"
    shutil.copytree(runs["prior"] / "final", prior / "final")
    reference = prior / "final" / "clip_reference.json"
    reference.write_text(json.dumps({"clip_dir": "elsewhere", "clip_fingerprint": "0" * 64}))
    with pytest.raises(ValueError, match="different CLIP"):
        assemble_components(runs["clip"], prior, runs["decoder"])
    with pytest.raises(ValueError, match="No trained 'decoder'"):
        assemble_components(runs["clip"], runs["prior"], tmp_path)


def test_assemble_command_line():
    args = build_parser().parse_args(["--clip", "a", "--prior", "b", "--decoder", "c", "--fp16"])
    assert args.output == "checkpoints/unclip-emoji" and args.upsampler is None and args.fp16


def test_assembled_folder_loads_as_a_pipeline_and_draws(tmp_path):
    """unclip-assemble -> UnCLIPPipeline.from_pretrained -> an image at the upsampler's resolution."""
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.training.assemble import main

    runs = {name: run for name, (run, _, _) in tiny_runs().items()}
    output = tmp_path / "unclip-tiny"
    main(["--clip", str(runs["clip"]), "--prior", str(runs["prior"]), "--decoder", str(runs["decoder"]),
          "--upsampler", str(runs["upsampler"]), "--output", str(output)])
    assert (output / "model_index.json").exists() and not list(output.rglob("*.bin"))
    pipeline = UnCLIPPipeline.from_pretrained(output)
    pipeline.set_progress_bar_config(disable=True)
    result = pipeline("grinning face, Noto style", prior_num_inference_steps=2, decoder_num_inference_steps=2,
                      super_res_num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert result.images.shape == (1, 64, 64, 3) and result.base_images.shape == (1, 16, 16, 3)
    assert torch.isfinite(torch.from_numpy(result.images)).all()
    # The loaded weights are the trained ones.
    trained = load_file(runs["decoder"] / "final" / "decoder" / "diffusion_pytorch_model.safetensors")
    state = pipeline.decoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trained.items())

    fp16 = tmp_path / "unclip-tiny-fp16"
    main(["--clip", str(runs["clip"]), "--prior", str(runs["prior"]), "--decoder", str(runs["decoder"]),
          "--output", str(fp16), "--fp16"])
    stored = load_file(fp16 / "decoder" / "diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in stored.values()} == {torch.float16}
    assert UnCLIPPipeline.from_pretrained(fp16, torch_dtype=torch.float16).decoder.dtype == torch.float16
