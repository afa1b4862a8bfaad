"""Smoke tests of the benchmark scripts: they run on the tiny preset with `--quick` and write valid JSON.

No timing is asserted (the machine is shared); only that every row ran and the figures are finite and positive.
"""

from __future__ import annotations

import importlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "emoji_tiny"


@pytest.fixture(scope="module")
def bench():
    """Imports a benchmark script as `python benchmarks/NAME.py` would: its folder first on sys.path (for `_common`),
    the package from the environment."""
    sys.path.insert(0, str(BENCHMARKS))
    yield lambda name: importlib.import_module(name)
    sys.path.remove(str(BENCHMARKS))


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_sampling_benchmark_quick_writes_json(bench, tmp_path):
    out = tmp_path / "sampling.json"
    bench("bench_sampling").main(["--preset", "tiny", "--quick", "--threads", "1", "--output", str(out)])
    data = json.loads(out.read_text())
    rows = {"ours-default", "ours-fast", "stock-25/25/7", "ours-25/25/7"}
    assert set(data["steps"]) == rows
    assert data["steps"]["stock-25/25/7"] == {"prior_num_inference_steps": 25, "decoder_num_inference_steps": 25,
                                              "super_res_num_inference_steps": 7}
    batch1 = data["seconds_per_image"]["batch1"]
    assert all(_positive(batch1[row]["median"]) for row in rows)
    assert set(batch1["speedup_vs_stock"]) == rows - {"stock-25/25/7"}
    assert all(_positive(data["quality_proxy_mad255"][row]) for row in rows - {"stock-25/25/7"})
    assert data["quality"]["ours-default"]["clip_fd"] == "not measured (no trained checkpoint)"
    assert len(data["machine"]["loadavg_start"]) == 3 and len(data["loadavg_end"]) == 3


def test_sampling_benchmark_step_sweep_rows(bench, tmp_path):
    out = tmp_path / "sweep.json"
    bench("bench_sampling").main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", "ours-fast",
                                  "ours-fast-2/3/1", "--fast-steps", "2/3/1", "--output", str(out)])
    data = json.loads(out.read_text())
    assert data["steps"]["ours-fast-2/3/1"] == {"prior_num_inference_steps": 2, "decoder_num_inference_steps": 3,
                                                "super_res_num_inference_steps": 1}
    assert _positive(data["quality_proxy_mad255"]["ours-fast-2/3/1"])
    with pytest.raises(ValueError, match="PRIOR/DECODER/SUPER_RES"):
        bench("bench_sampling").main(["--preset", "tiny", "--quick", "--fast-steps", "10/0/2",
                                      "--output", str(tmp_path / "x.json")])


def test_sampling_benchmark_solver_rows_swap_every_stages_sampler(bench, tmp_path):
    out = tmp_path / "solvers.json"
    rows = ["ours-fast-2/3/1", "ours-fast-2/3/1-UniPC", "ours-fast-2/3/1-DDIM"]
    bench("bench_sampling").main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", *rows, "--fast-steps",
                                  "2/3/1", "--solvers", "UniPC", "DDIM", "--output", str(out)])
    mad = json.loads(out.read_text())["quality_proxy_mad255"]
    assert all(_positive(mad[row]) for row in rows)
    assert len({round(mad[row], 6) for row in rows}) == 3  # three samplers, three different images
    solver_pipe = bench("bench_sampling").with_solver(bench("bench_sampling").load_pipeline(None, "tiny")[0], "UniPC")
    assert type(solver_pipe.decoder_scheduler).__name__ == "UniPCMultistepScheduler"
    with pytest.raises(ValueError, match="Unknown --solvers"):
        bench("bench_sampling").main(["--preset", "tiny", "--quick", "--solvers", "Euler",
                                      "--output", str(tmp_path / "x.json")])


def test_sampling_benchmark_times_the_cascade_beside_ours_fast(bench, tmp_path):
    from unclip_diffusers.configs import build_super_res, get_model_config

    torch.manual_seed(0)
    build_super_res(get_model_config("tiny"), second=True).save_pretrained(tmp_path / "run" / "super_res_second")
    out = tmp_path / "cascade.json"
    bench("bench_sampling").main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", "ours-fast",
                                  "cascade-0.5:2", "--upsampler2", str(tmp_path / "run"), "--upsampler2-settings",
                                  "0.5:2", "--output", str(out)])
    data = json.loads(out.read_text())
    assert data["steps"]["cascade-0.5:2"]["super_res_second_num_inference_steps"] == 2
    ratio = data["seconds_per_image"]["batch1"]["ratio_vs_ours_fast"]["cascade-0.5:2"]
    assert _positive(ratio["median"])
    assert data["quality_proxy_mad255"]["cascade-0.5:2"].startswith("n/a")
    with pytest.raises(SystemExit, match="bad upsampler setting"):
        bench("bench_sampling").main(["--preset", "tiny", "--quick", "--upsampler2", str(tmp_path / "run"),
                                      "--upsampler2-settings", "0:3", "--output", str(tmp_path / "x.json")])


def test_sampling_benchmark_rejects_unknown_rows(bench, tmp_path):
    with pytest.raises(ValueError, match="Unknown --rows"):
        bench("bench_sampling").main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", "nope",
                                      "--output", str(tmp_path / "x.json")])


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
def test_peak_rss_is_measured_in_a_subprocess(bench):
    sampling = bench("bench_sampling")
    args = sampling.build_parser().parse_args(["--preset", "tiny", "--threads", "1"])
    rss = sampling.measure_rss("ours-default", args)
    assert _positive(rss) and rss < 8, rss
    with_solver = sampling.measure_rss("ours-fast-2/2/2-UniPC", args)  # a --solvers row
    assert _positive(with_solver) and with_solver < 8, with_solver


@pytest.mark.slow  # end-to-end in a subprocess (CI runs it; -m 'not slow' skips it)
def test_peak_rss_of_a_child_does_not_inherit_the_parents(bench):
    import subprocess

    ballast = bytearray(768 * 2**20)
    ballast[:: 4096] = b"\1" * len(ballast[:: 4096])  # touch every page: the parent's RSS is now over 0.75 GiB
    code = "import _common; print(_common.peak_rss_gib())"  # `python -c` puts the working folder first on sys.path
    child = float(subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True, text=True,
                                 check=True).stdout)
    assert 0 < child < 0.5, child
    del ballast


def test_sampling_benchmark_quality_columns_on_saved_weights(bench, tmp_path):
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_components
    from unclip_diffusers.evaluation.evaluator import EvaluatorCLIP, evaluator_size

    torch.manual_seed(0)
    UnCLIPPipeline(**build_components("tiny")).save_pretrained(tmp_path / "pipe")
    EvaluatorCLIP.from_size(evaluator_size("tiny")).save_pretrained(tmp_path / "evaluator")
    out = tmp_path / "quality.json"
    bench("bench_sampling").main([
        "--model", str(tmp_path / "pipe"), "--quick", "--threads", "1", "--rows", "ours-fast", "stock-25/25/7",
        "--eval-data", str(FIXTURE), "--evaluator", str(tmp_path / "evaluator"), "--quality-examples", "4",
        "--output", str(out),
    ])
    quality = json.loads(out.read_text())["quality"]
    for row in ("ours-fast", "stock-25/25/7"):
        for split in ("heldout_pairs", "heldout_concepts"):
            assert _positive(quality[row][f"clip_fd/{split}"]) and _positive(quality[row][f"clip_fd_floor/{split}"])
            assert 0 <= quality[row][f"r_precision/{split}"] <= 1


def test_stock_sampling_twin_makes_the_stock_pipelines_images(bench):
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_components

    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"), super_res_strength=0.3)
    stock = bench("stock")
    steps = dict(prior_num_inference_steps=3, decoder_num_inference_steps=3, super_res_num_inference_steps=2)
    images = [p(["a cat", "a dog"], generator=torch.Generator().manual_seed(0), output_type="np", **steps).images
              for p in (stock.build_stock_pipeline(pipe), stock.stock_sampling_pipeline(pipe))]
    np.testing.assert_allclose(images[0], images[1], atol=1e-5)
    assert pipe.config.super_res_strength == 0.3  # the twin leaves the original alone


def test_stock_pipeline_shares_our_weights_and_runs(bench):
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_components

    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    stock = bench("stock").build_stock_pipeline(pipe)
    assert stock.decoder.unet is pipe.decoder and stock.super_res_first is pipe.super_res_first
    out = stock("a cat", prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
                generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, *pipe.output_size, 3) and np.isfinite(out).all() and out.std() > 0.01


def test_roofline_quick_writes_json(bench, tmp_path):
    out = tmp_path / "roofline.json"
    bench("bench_roofline").main(["--preset", "tiny", "--quick", "--threads", "1", "--output", str(out)])
    data = json.loads(out.read_text())
    assert data["flops"]["decoder"] > 0 and data["flops"]["matmul"] == 2 * 256**3
    assert all(_positive(row["gflops_median"]) for row in data["rows"].values())


def test_training_quick_writes_json(bench, tmp_path):
    training = bench("bench_training")
    out = tmp_path / "training.json"
    training.main(["--preset", "tiny", "--quick", "--threads", "1", "--output", str(out)])
    data = json.loads(out.read_text())
    assert all(_positive(row["images_per_s_median"]) for row in data["rows"].values())
    unet_cls, status = training.import_dalle2_unet()
    assert data["dalle2_pytorch"] == status
    skipped = training.main(["--preset", "tiny", "--quick", "--threads", "1", "--no-dalle2", "--output", str(out)])
    assert skipped["dalle2_pytorch"] == "not run: --no-dalle2" and len(skipped["rows"]) == 2
    if unet_cls is None:  # CI and the global environment: no dalle2-pytorch, the ImportError is reported
        assert status.startswith("not run: ModuleNotFoundError") and "dalle2" in status
        assert set(data["rows"]) == {"decoder step fp32", "decoder step bf16 autocast"}
        assert "torchvision" not in sys.modules or sys.modules["torchvision"].__spec__ is not None
    else:  # inside .venv-dalle2 (benchmarks/dalle2_env.sh)
        assert len(data["rows"]) == 4 and set(data["ratios_ours_over_dalle2_images_per_s"]) == {"fp32", "bf16 autocast"}
        assert abs(data["dalle2_unet"]["parameter_ratio_to_ours"] - 1) <= training.PARAMETER_TOLERANCE


def test_training_parameter_matching_prefers_similar_widths_within_tolerance(bench):
    training = bench("bench_training")
    candidates = [{"dim": d, "dim_mults": m} for d, m in [(32, (1, 2)), (64, (1, 2)), (16, (1, 4))]]
    count = {32: 1040, 64: 4000, 16: 1000}
    channels = (64, 128)

    def pick(target, **kwargs):
        return training.match_parameter_count(target, candidates, lambda c: count[c["dim"]], **kwargs)

    assert pick(1000) == (candidates[2], 1000)  # closest count without a preference
    prefer = dict(preference=lambda c: training.width_mismatch(c, channels))
    assert pick(1000, **prefer) == (candidates[0], 1040)  # (32, 64) is nearer to (64, 128) than (16, 64)
    assert pick(4100, **prefer) == (candidates[1], 4000)
    with pytest.raises(ValueError, match="closest has 4,000"):
        pick(5000, **prefer)  # 20% away
    with pytest.raises(ValueError, match="No candidate settings"):
        training.match_parameter_count(10, [], lambda c: 1)
    with pytest.raises(ValueError, match="2 levels"):
        training.width_mismatch({"dim": 8, "dim_mults": (1, 2)}, (8, 16, 32))
    assert training.width_mismatch({"dim": 64, "dim_mults": (1, 2, 2)}, (64, 128, 128)) == 0


def test_training_builds_the_width_matched_dalle2_unet_with_our_attention_levels(bench):
    training = bench("bench_training")
    from unclip_diffusers.configs import build_components

    class FakeUnet(torch.nn.Module):  # stands in for dalle2-pytorch's Unet: parameters grow with the widths
        def __init__(self, dim, dim_mults, **kwargs):
            super().__init__()
            self.kwargs = kwargs
            self.weight = torch.nn.Parameter(torch.zeros(dim * dim_mults[-1] * 13_750 - dim))

    torch.manual_seed(0)
    components = build_components("tiny")  # decoder 32/64 channels, attention at the 8-px level; 879,939 parameters
    decoder, text_proj = components["decoder"], components["text_proj"]
    assert training.decoder_attention_levels(decoder) == (False, True)
    unet, settings, count = training.build_dalle2_unet(FakeUnet, decoder, text_proj)
    # dim 64 x (1, 1) is closer in count (879,936) but dim 32 x (1, 2) (879,968) has our widths
    assert (settings["dim"], settings["dim_mults"], count) == (32, (1, 2), 879_968)
    assert settings["self_attn"] == (False, True) and unet.kwargs["cond_dim"] != 32 and unet.training
    _, settings, _ = training.build_dalle2_unet(FakeUnet, decoder, text_proj, attention="default")
    assert settings["self_attn"] is False
    with pytest.raises(ValueError, match="'ours' or 'default'"):
        training.build_dalle2_unet(FakeUnet, decoder, text_proj, attention="all")


def test_training_dalle2_candidates_dodge_the_cond_dim_crash(bench):
    training = bench("bench_training")
    candidates = list(training.dalle2_unet_candidates(3, 64, 32, self_attn=(False, True, True)))
    assert candidates and all(c["cond_dim"] != c["image_embed_dim"] == 64 for c in candidates)
    assert all(len(c["dim_mults"]) == 3 and c["dim_mults"][0] == 1 for c in candidates)
    with pytest.raises(ValueError, match="one flag per resolution"):
        list(training.dalle2_unet_candidates(3, 64, 32, self_attn=(True,)))


def test_torchvision_stub_is_import_only_and_removed_afterwards(bench):
    training = bench("bench_training")
    before = {name: sys.modules.get(name) for name in training.TORCHVISION_STUB_MODULES}
    with training.torchvision_stub():
        import torchvision.transforms as T  # resolved from the stub

        assert T is sys.modules["torchvision.transforms"]
        assert not hasattr(T, "ToPILImage")  # nothing callable: any real use fails loudly
    assert {name: sys.modules.get(name) for name in training.TORCHVISION_STUB_MODULES} == before


def test_bf16_autocast_keeps_float32_outputs_close_to_fp32():
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_components
    from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny", second_upsampler=True))  # every denoising model
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
                  super_res_second_num_inference_steps=2, output_type="pt")
    reference = pipe("a cat", generator=torch.Generator().manual_seed(0), **kwargs)
    enable_cpu_bf16_autocast(pipe)
    enable_cpu_bf16_autocast(pipe)  # idempotent: no double wrapping
    fast = pipe("a cat", generator=torch.Generator().manual_seed(0), **kwargs)
    assert fast.images.dtype == torch.float32 and fast.image_embeds.dtype == torch.float32
    assert pipe.decoder.conv_in.weight.dtype == torch.float32  # weights are not converted
    assert all(getattr(getattr(pipe, name), "_bf16_autocast", False)
               for name in ("prior", "decoder", "super_res_first", "super_res_second"))
    assert not torch.equal(fast.images, reference.images)  # bf16 actually ran
    assert (fast.image_embeds - reference.image_embeds).abs().max() < 0.05
    assert (fast.images - reference.images).abs().mean() < 0.05


def test_upsampler_detail_scores_tell_blur_from_grain(bench):
    import torch.nn.functional as F

    scores = bench("bench_upsampler").detail_scores
    square = torch.zeros(1, 3, 64, 64)
    square[..., 16:48, 16:48] = 1.0  # flat areas and sharp edges, like emoji art
    blurred = F.avg_pool2d(F.pad(square, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    noisy = (square + 0.05 * torch.randn(square.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert scores(square, square) == {"sharpness": 1.0, "grain": 0.0, "tv_ratio": 1.0}
    blur = scores(blurred, square)
    assert blur["sharpness"] < 0.6 and abs(blur["tv_ratio"] - 1) < 0.05  # total variation cannot see the blur
    assert scores(noisy, square)["grain"] > 5 and blur["grain"] < 1  # noise on flat pixels is grain; blur is not


def test_upsampler_benchmark_measures_each_setting_against_bicubic(bench, pipe, tmp_path):
    folder = tmp_path / "pipe"
    pipe.save_pretrained(folder)
    out = tmp_path / "upsampler.json"
    data = bench("bench_upsampler").main([
        "--pipeline", str(folder), "--data", str(FIXTURE), "--num-images", "2", "--batch", "2",
        "--settings", "1.0:2,0.5:2", "--output", str(out)])
    assert set(data["rows"]) == {"bicubic", "strength 1, 2 steps", "strength 0.5, 2 steps"}
    assert json.loads(out.read_text())["rows"] == data["rows"]
    for row in data["rows"].values():
        assert math.isfinite(row["psnr"]) and row["sharpness"] > 0
    assert data["rows"]["bicubic"]["sharpness"] < 1  # bicubic upsampling is blurrier than the original
    assert out.with_suffix(".png").is_file()
    with pytest.raises(SystemExit, match="bad upsampler setting"):
        bench("bench_upsampler").main(["--pipeline", str(folder), "--settings", "2:3"])


def test_upsampler_benchmark_measures_each_cascade_stage(bench, pipe, tmp_path):
    from unclip_diffusers.configs import build_super_res, get_model_config

    one = tmp_path / "one"
    pipe.save_pretrained(one)
    torch.manual_seed(0)
    build_super_res(get_model_config("tiny"), second=True).save_pretrained(tmp_path / "run" / "final" / "super_res_second")
    common = ["--pipeline", str(one), "--data", str(FIXTURE), "--num-images", "2", "--batch", "2",
              "--settings", "0.5:2"]
    second = bench("bench_upsampler").main(common + ["--upsampler2", str(tmp_path / "run" / "final"), "--stage", "1",
                                                     "--output", str(tmp_path / "stage1.json")])
    assert (second["input_resolution"], second["resolution"], second["stage"]) == (64, 128, "1")
    assert set(second["rows"]) == {"bicubic", "strength 0.5, 2 steps"}
    assert all(math.isfinite(row["psnr"]) and row["sharpness"] > 0 for row in second["rows"].values())
    cascade = bench("bench_upsampler").main(common + ["--upsampler2", str(tmp_path / "run"), "--stage", "cascade",
                                                      "--output", str(tmp_path / "cascade.json")])
    assert (cascade["input_resolution"], cascade["resolution"]) == (16, 128)
    with pytest.raises(SystemExit, match="needs a second upsampler"):
        bench("bench_upsampler").main(common + ["--stage", "1", "--output", str(tmp_path / "x.json")])


def test_guidance_sweep_scores_each_scale_on_the_same_prompts(bench, tmp_path):
    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_components
    from unclip_diffusers.evaluation.evaluator import EvaluatorCLIP, evaluator_size

    torch.manual_seed(0)
    UnCLIPPipeline(**build_components("tiny")).save_pretrained(tmp_path / "pipe")
    EvaluatorCLIP.from_size(evaluator_size("tiny")).save_pretrained(tmp_path / "evaluator")
    out = tmp_path / "guidance.json"
    common = ["--pipeline", str(tmp_path / "pipe"), "--data", str(FIXTURE), "--evaluator", str(tmp_path / "evaluator"),
              "--threads", "1", "--steps", "2/2/2", "--output", str(out)]
    data = bench("bench_guidance").main(common + ["--prior-scales", "1", "4", "--examples", "4"])
    assert list(data["rows"]) == ["prior 1", "prior 4"] and json.loads(out.read_text())["rows"] == data["rows"]
    for row in data["rows"].values():
        for split in ("heldout_pairs", "heldout_concepts"):
            scores = row["splits"][split]
            assert 0 <= scores["r_precision"] <= 1 and scores["count"] == 4 and _positive(scores["clip_fd"])
            assert -1 <= scores["cos_prior"] <= 1
    one, four = (data["rows"][k]["splits"]["heldout_pairs"]["cos_prior"] for k in ("prior 1", "prior 4"))
    assert one != four  # the guidance reached the prior
    assert out.with_suffix(".png").is_file()
    for bad, message in ((["--examples", "1"], "must be >= 2"), (["--prior-scales", "-1"], ">= 0"),
                         (["--steps", "2/2"], "PRIOR/DECODER/SUPER_RES")):
        with pytest.raises(SystemExit, match=message):
            bench("bench_guidance").main(common + bad)


def test_sampling_benchmark_sections_update_an_earlier_run(bench, tmp_path):
    out = tmp_path / "sampling.json"
    sampling = bench("bench_sampling")
    sampling.main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", "ours-default", "--sections", "timing",
                   "quality", "--output", str(out)])  # a new file: these sections start it
    first = json.loads(out.read_text())
    assert "peak_rss_gib" not in first and "section_updates" not in first
    sampling.main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", "ours-fast", "--sections", "quality",
                   "--output", str(out)])
    updated = json.loads(out.read_text())
    assert updated["seconds_per_image"] == first["seconds_per_image"]  # timings kept
    assert updated["command"] == first["command"] and updated["section_updates"][0]["sections"] == ["quality"]
    assert set(updated["quality_proxy_mad255"]) - {"reference"} == {"ours-default", "ours-fast"}  # new row added, old kept
    assert updated["quality_proxy_mad255"]["ours-default"] == first["quality_proxy_mad255"]["ours-default"]


def test_decoder_fit_compares_weights_on_the_same_noise(bench, tmp_path):
    from test_training_stages import tiny_runs
    from unclip_diffusers.training.export import export_checkpoint

    run = tmp_path / "decoder"
    shutil.copytree(tiny_runs()["decoder"][0], run)
    raw = export_checkpoint(run, raw=True)
    out = tmp_path / "fit.json"
    data = bench("bench_decoder_fit").main([
        "--run", str(run), "--weights", f"ema={run / 'final'}", f"again={run / 'final'}", f"raw={raw}",
        "--splits", "heldout_pairs", "--draws", "2", "--output", str(out)])
    assert json.loads(out.read_text())["splits"] == data["splits"]
    scored = data["splits"]["heldout_pairs"]
    for row in scored.values():
        assert row["images"] > 0 and all(_positive(v) for v in row["loss"].values())
        assert row["loss"]["ema"] == row["loss"]["again"]  # same weights, same noise: the comparison is paired
        assert row["loss"]["ema"] != row["loss"]["raw"]
    with pytest.raises(SystemExit, match="has no .*folder, which --weights needs"):
        bench("bench_decoder_fit").main(["--run", str(run), "--weights", f"x={tmp_path}"])


def test_prior_fit_compares_weights_on_the_same_captions_and_noise(bench, tmp_path):
    from test_training_stages import tiny_runs
    from unclip_diffusers.training.export import export_checkpoint

    run = tmp_path / "prior"
    shutil.copytree(tiny_runs()["prior"][0], run)
    raw = export_checkpoint(run, raw=True)
    out = tmp_path / "prior_fit.json"
    data = bench("bench_prior_fit").main([
        "--run", str(run), "--weights", f"ema={run / 'final'}", f"again={run / 'final'}", f"raw={raw}",
        "--splits", "heldout_pairs", "--steps", "2", "--output", str(out)])
    assert json.loads(out.read_text())["splits"] == data["splits"]
    scored = data["splits"]["heldout_pairs"]
    assert scored["all"]["images"] == sum(v["images"] for k, v in scored.items() if k != "all") > 0
    for row in scored.values():
        assert row["ema"] == row["again"]  # same weights, captions and noise: the comparison is paired
        assert row["ema"]["loss"] != row["raw"]["loss"] and _positive(row["ema"]["loss"])
        assert all(-1 <= row["ema"][f"cos_{kind}"] <= 1 for kind in ("primary", "other"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="has no prior/ folder"):
        bench("bench_prior_fit").main(["--run", str(run), "--weights", f"x={tmp_path / 'empty'}"])
    with pytest.raises(SystemExit, match="--steps must be >= 1"):
        bench("bench_prior_fit").main(["--run", str(run), "--weights", f"x={run / 'final'}", "--steps", "0"])


def test_evaluator_benchmark_scores_real_images_per_slice(bench, tmp_path):
    from unclip_diffusers.evaluation.evaluator import EvaluatorCLIP, evaluator_size

    folder = tmp_path / "evaluator"
    EvaluatorCLIP.from_size(evaluator_size("tiny")).save_pretrained(folder)
    out = tmp_path / "evaluator.json"
    data = bench("bench_evaluator").main([
        "--evaluators", f"random={folder}", "--data", str(FIXTURE), "--train-sample", "8", "--output", str(out)])
    splits = json.loads(out.read_text())["evaluators"]["random"]["splits"]
    assert json.dumps(splits) == json.dumps(data["evaluators"]["random"]["splits"])  # NaN: a slice without rivals
    assert set(splits) == {"heldout_pairs", "heldout_concepts", "train (sample)"}
    for scores in splits.values():
        assert 0.0 <= scores["r_precision"]["r_precision"] <= 1.0 and scores["r_precision"]["count"] > 0
        decided = [s for name, s in scores.items() if name != "r_precision" and s["count"]]
        assert all(0.0 <= s["accuracy"] <= 1.0 for s in decided)
    assert any(s["count"] for s in splits["train (sample)"].values())
    with pytest.raises(SystemExit, match="NAME=FOLDER"):
        bench("bench_evaluator").main(["--evaluators", str(folder), "--data", str(FIXTURE)])


def test_sampling_benchmark_guidance_interval_rows(bench, tmp_path):
    out = tmp_path / "intervals.json"
    row = "ours-fast-gi-prior=0.3:10,decoder=1:10"
    bench("bench_sampling").main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", "ours-fast", row,
                                  "--guidance-intervals", "prior=0.3:10,decoder=1:10", "--output", str(out)])
    data = json.loads(out.read_text())
    assert _positive(data["quality_proxy_mad255"][row])
    assert bench("_common").parse_guidance_intervals("decoder=1:10") == {"decoder_guidance_interval": (1, 10)}
    with pytest.raises(ValueError, match="STAGE=LO:HI"):
        bench("_common").parse_guidance_intervals("upsampler=1:10")


def test_stage_benchmark_times_every_stage_of_every_variant(bench, pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    results = bench("bench_stages").main(["--model", str(tmp_path / "pipe"), "--threads", "1", "--repeats", "1",
                                          "--precisions", "fp32", "--guidance-intervals", "decoder=1:10",
                                          "--no-caption-cache", "--slicing", "--output", str(tmp_path / "s.json")])
    variants = results["variants"]
    assert set(variants) == {"fp32", "fp32 guidance decoder=1:10", "fp32 without the prior's caption cache",
                             "fp32 super-res slicing"}
    for stats in variants.values():
        assert set(stats) == {"encode", "prior", "decoder", "super_res", "total"}
        assert all(_positive(s["median"]) for s in stats.values())


def test_app_load_server_environment_adds_overrides_and_removes_empty_keys(bench, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    env = bench("bench_app_load").server_environment(["MALLOC_ARENA_MAX=2", "OMP_WAIT_POLICY=PASSIVE",
                                                       "MALLOC_TRIM_THRESHOLD_="])
    assert env["MALLOC_ARENA_MAX"] == "2" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["MALLOC_MMAP_MAX_"] == "0" and "MALLOC_TRIM_THRESHOLD_" not in env
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench("bench_app_load").server_environment(["NOEQUALS"])


def test_sampling_benchmark_decoder_rows_swap_the_decoder_and_its_guidance(bench, pipe, tmp_path):
    pipe.decoder.save_pretrained(tmp_path / "run" / "decoder")
    pipe.text_proj.save_pretrained(tmp_path / "run" / "text_proj")
    out = tmp_path / "decoders.json"
    bench("bench_sampling").main(["--preset", "tiny", "--quick", "--threads", "1", "--rows", "ours-fast",
                                  "ours-fast-decoder-student", "--decoders", f"student={tmp_path / 'run'}:1",
                                  "--output", str(out)])
    data = json.loads(out.read_text())
    assert data["steps"]["ours-fast-decoder-student"]["decoder_guidance_scale"] == 1.0
    assert _positive(data["quality_proxy_mad255"]["ours-fast-decoder-student"])
    parse = bench("bench_sampling").parse_decoder_row
    assert parse("a=runs/x/final") == ("a", "runs/x/final", None) and parse("b=f:8") == ("b", "f", 8.0)
    with pytest.raises(ValueError, match="NAME=FOLDER"):
        parse("no-equals")
