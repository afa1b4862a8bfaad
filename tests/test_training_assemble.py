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


def test_a_decoder_from_the_same_image_tower_is_accepted_only_when_asked(tmp_path):
    """After locked-image tuning the image tower is byte-identical: the decoder may be kept, explicitly, and the
    provenance says its caption context comes from a text tower it was not trained with; the prior never."""
    from unclip_diffusers.training.assemble import main
    from unclip_diffusers.training.provenance import read_provenance

    runs = {name: run for name, (run, _, _) in tiny_runs().items()}
    lit = tmp_path / "clip-lit" / "final"
    shutil.copytree(runs["clip"] / "final", lit)
    (lit / "text_encoder" / "retrained.txt").write_text("LiT")  # another text tower's files, the same image tower
    prior = tmp_path / "prior"
    shutil.copytree(runs["prior"] / "final", prior / "final")
    reference = json.loads((prior / "final" / "clip_reference.json").read_text())
    reference["clip_fingerprint"] = "0" * 64  # the prior reads the text tower: always refused
    (prior / "final" / "clip_reference.json").write_text(json.dumps(reference))
    with pytest.raises(ValueError, match="different CLIP"):
        assemble_components(runs["clip"], prior, runs["decoder"], allow_new_text_tower=True)

    shutil.copytree(runs["prior"] / "final", tmp_path / "prior-lit" / "final")
    lit_reference = tmp_path / "prior-lit" / "final" / "clip_reference.json"
    from unclip_diffusers.training.embeddings import fingerprint_files

    lit_reference.write_text(json.dumps({"clip_dir": str(lit.parent), "clip_fingerprint": fingerprint_files(lit)}))
    with pytest.raises(ValueError, match="allow-new-text-tower"):  # the prior fits; the decoder needs the flag
        assemble_components(lit.parent, tmp_path / "prior-lit", runs["decoder"])
    out = tmp_path / "pipeline"
    main(["--clip", str(lit.parent), "--prior", str(tmp_path / "prior-lit"), "--decoder", str(runs["decoder"]),
          "--output", str(out), "--allow-new-text-tower"])
    provenance = read_provenance(out)
    assert provenance["decoder"]["new_text_tower"] is True and "new_text_tower" not in provenance["prior"]


def test_assemble_command_line():
    args = build_parser().parse_args(["--clip", "a", "--prior", "b", "--decoder", "c", "--fp16"])
    assert args.output == "checkpoints/unclip-emoji" and args.upsampler is None and args.fp16
    assert (args.prior_guidance_interval, args.decoder_guidance_interval) == ((0.3, 10.0), (0.5, 10.0))
    args = build_parser().parse_args(["--clip", "a", "--prior", "b", "--decoder", "c",
                                      "--decoder-guidance-interval", "all", "--prior-guidance-interval", "0:5"])
    assert (args.prior_guidance_interval, args.decoder_guidance_interval) == ((0.0, 5.0), None)
    for bad in ("5:1", "x", "1"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--clip", "a", "--prior", "b", "--decoder", "c",
                                       "--decoder-guidance-interval", bad])


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
    assert pipeline.config.decoder_guidance_interval == pytest.approx([0.5, 10.0])  # the measured defaults, saved
    assert pipeline.config.decoder_guidance_scale == 8.0
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
