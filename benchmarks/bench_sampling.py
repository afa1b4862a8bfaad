"""Sampling benchmark: seconds per final-resolution image and peak RSS, this pipeline vs diffusers' stock one.

Rows (timed interleaved in one process, same weights):
  ours-default      this pipeline's defaults (DPM-Solver++ 2M, the default step counts)
  ours-fast         the same plus `enable_cpu_bf16_autocast` (bf16 autocast per model, channels-last UNets)
  stock-25/25/7     diffusers' stock `UnCLIPPipeline` at its defaults (UnCLIPScheduler, 25/25/7 steps)
  ours-25/25/7      this pipeline at the stock step counts
  ours-fast-P/D/SR  ours-fast at other step counts (`--fast-steps 10/15/10 ...`: the step sweep)
  ours-fast-gi-STAGE=LO:HI  ours-fast guiding a stage only at noise levels sigma in [LO, HI]
                    (`--guidance-intervals decoder=0.5:10 prior=0.3:10,decoder=1:10 ...`; `denoise`'s interval)
  ours-fast-decoder-NAME  ours-fast with the decoder and text projection of another run (`--decoders NAME=FOLDER` or
                    `NAME=FOLDER:GUIDANCE`, e.g. a guidance-distilled decoder sampled at guidance 1)
  ours-fast-P/D/SR-SOLVER  the same with another sampler for every stage (`--solvers UniPC DEIS ...`, the app's
                    names in `unclip_diffusers.app.schedulers.SCHEDULERS`; at the default steps without --fast-steps)
  cascade-S:N       ours-fast with a second upsampler (`--upsampler2 RUN`) at strength S and N scheduled steps
                    (`--upsampler2-settings 0.1:10,...`): the chain to twice the resolution, timed beside ours-fast
                    (ratio in `ratio_vs_ours_fast`); no MAD column (its reference is at the first stage's size)
Peak RSS of each row is measured in a fresh subprocess (one process per row), so rows do not share a high-water mark.
The quality proxy is the mean absolute difference (0-255 scale) of the final images to a many-step reference from the
same noise (deterministic solvers only); CLIP-FD and R-precision come from `unclip-eval --quick` when a trained
checkpoint, `--eval-data` and `--evaluator` are given.

    python benchmarks/bench_sampling.py                 # release-size random weights, 2 threads
    python benchmarks/bench_sampling.py --preset tiny --quick --output /tmp/s.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import _common

PROMPTS = ["a smiling cat face, Noto style", "red heart, Twemoji style", "thumbs up: medium skin tone, Fluent flat style",
           "rocket, OpenMoji style"]
NOT_MEASURED = "not measured (no trained checkpoint)"
SECTIONS = ("timing", "quality", "rss")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="saved pipeline folder (default: checkpoints/unclip-emoji if "
                        "present, else seeded random components of --preset)")
    parser.add_argument("--preset", default=None, help="benchmark seeded random components of this size preset instead "
                        "of the bundled release (default when no release is bundled: small)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed interleaved rounds per batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rows", nargs="+", default=None, help="subset of rows to run")
    parser.add_argument("--reference-steps", type=int, default=100, help="steps per stage of the quality reference")
    parser.add_argument("--fast-steps", nargs="*", default=[], metavar="P/D/SR",
                        help="extra rows: ours-fast at these prior/decoder/super-res step counts (a step sweep)")
    parser.add_argument("--solvers", nargs="*", default=[], metavar="NAME",
                        help="extra rows: ours-fast with this sampler in every stage, at each --fast-steps count")
    parser.add_argument("--guidance-intervals", nargs="*", default=[], metavar="STAGE=LO:HI[,STAGE=LO:HI]",
                        help="extra rows: ours-fast with these guidance intervals (stage: prior or decoder)")
    parser.add_argument("--decoders", nargs="*", default=[], metavar="NAME=FOLDER[:GUIDANCE]",
                        help="extra rows: ours-fast with the decoder/ and text_proj/ of FOLDER (a run's final/ or "
                             "snapshot), at decoder guidance GUIDANCE (default: the pipeline's)")
    parser.add_argument("--upsampler2", default=None, metavar="RUN",
                        help="a second upsampler (run folder, final/ or snapshot): adds the cascade-S:N rows")
    parser.add_argument("--upsampler2-settings", default="0.1:10", metavar="S:N,...",
                        help="strength:steps of the second upsampler, one cascade row each")
    parser.add_argument("--eval-data", default=None, help="dataset folder for unclip-eval --quick")
    parser.add_argument("--evaluator", default=None, help="evaluator CLIP folder for unclip-eval --quick")
    parser.add_argument("--quality-examples", type=int, default=8,
                        help="held-out prompts per split behind each row's CLIP-FD and R-precision (quick: 8)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, no warm-up, batch 1, 4-step "
                        "reference, no RSS")
    parser.add_argument("--no-rss", action="store_true", help="skip the per-row subprocesses that measure peak RSS")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to measure (default all); a subset writes only those sections into --output, "
                        "keeping the others already there")
    parser.add_argument("--output", default="benchmarks/results/sampling.json")
    parser.add_argument("--rss-row", default=None, help=argparse.SUPPRESS)  # internal: measure one row's peak RSS
    return parser


def load_pipeline(model: str | None, preset: str) -> tuple[Any, str, bool]:
    """The pipeline to benchmark, a description of its weights, and whether they are trained."""
    import torch

    from unclip_diffusers import UnCLIPPipeline
    from unclip_diffusers.configs import build_components

    default = Path("checkpoints/unclip-emoji")
    if model is None and preset is None and default.is_dir():
        model = str(default)
    preset = preset or "small"
    if model is not None:
        pipe = UnCLIPPipeline.from_pretrained(model)
        source, trained = model, True
    else:
        torch.manual_seed(0)
        pipe = UnCLIPPipeline(**build_components(preset))
        source, trained = f"random seeded components, preset {preset!r}", False
    pipe.set_progress_bar_config(disable=True)
    return pipe, source, trained


def default_steps(pipe: Any) -> dict[str, int]:
    """The step counts `pipe.__call__` uses when none are given (read from its signature)."""
    import inspect

    params = inspect.signature(pipe.__call__).parameters
    return {k: params[k].default for k in ("prior_num_inference_steps", "decoder_num_inference_steps",
                                           "super_res_num_inference_steps")}


STOCK_STEPS = {"prior_num_inference_steps": 25, "decoder_num_inference_steps": 25, "super_res_num_inference_steps": 7}


def parse_steps(text: str) -> dict[str, int]:
    """`"10/15/5"` -> the three step-count arguments of the pipeline; a clear error for anything else."""
    parts = text.split("/")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--fast-steps takes PRIOR/DECODER/SUPER_RES positive step counts, e.g. 10/15/10; got {text!r}.")
    return dict(zip(STOCK_STEPS, (int(p) for p in parts)))


def with_solver(pipe: Any, name: str) -> Any:
    """A copy of `pipe` whose every stage samples with the app's scheduler `name` (same noise schedules)."""
    from unclip_diffusers.app.schedulers import SCHEDULERS

    if name not in SCHEDULERS:
        raise ValueError(f"Unknown --solvers {name!r}; choose from {sorted(SCHEDULERS)}.")
    cls, overrides = SCHEDULERS[name]
    copied = copy.copy(pipe)  # shares the models; only the schedulers differ
    copied.register_modules(**pipe.make_schedulers(cls, **overrides))
    return copied


def parse_decoder_row(text: str) -> tuple[str, str, float | None]:
    """`"distilled=runs/x/final:1"` -> `("distilled", "runs/x/final", 1.0)`; the guidance is optional."""
    name, sep, rest = text.partition("=")
    folder, _, guidance = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not sep or not name or not (folder or rest):
        raise ValueError(f"--decoders takes NAME=FOLDER or NAME=FOLDER:GUIDANCE, got {text!r}.")
    try:
        return name, folder or rest, float(guidance) if guidance else None
    except ValueError:
        raise ValueError(f"--decoders: the guidance after ':' must be a number, got {text!r}.") from None


def with_decoder(pipe: Any, folder: str) -> Any:
    """A copy of `pipe` (sharing its other models) with the decoder and text projection saved in `folder`, under
    bf16 autocast where `pipe` runs its models so."""
    from diffusers import UNet2DConditionModel

    from unclip_diffusers.models import UnCLIPTextProjection
    from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

    copied = copy.copy(pipe)
    copied.register_modules(decoder=UNet2DConditionModel.from_pretrained(Path(folder) / "decoder"),
                            text_proj=UnCLIPTextProjection.from_pretrained(Path(folder) / "text_proj"))
    if getattr(pipe.decoder, "_bf16_autocast", False):
        enable_cpu_bf16_autocast(copied)  # wraps the new decoder; the shared models are wrapped already
    return copied


def decoder_rows(pipe: Any, texts: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The `ours-fast-decoder-NAME` rows of `--decoders`."""
    rows = {}
    for text in texts:
        name, folder, guidance = parse_decoder_row(text)
        steps: dict[str, Any] = dict(default_steps(pipe))
        if guidance is not None:
            steps["decoder_guidance_scale"] = guidance
        rows[f"ours-fast-decoder-{name}"] = (with_decoder(pipe, folder), steps)
    return rows


def cascade_rows(pipe: Any, upsampler2: str, settings: str) -> dict[str, tuple[Any, dict[str, int]]]:
    """The `cascade-S:N` rows: `pipe` plus the second upsampler in `upsampler2`, bf16 like ours-fast, at the default
    step counts and each strength:steps of the second stage."""
    from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

    rows = {}
    for strength, steps in _common.parse_upsampler_settings(settings):
        cascade = copy.deepcopy(_common.with_second_upsampler(pipe, upsampler2, strength=strength))
        enable_cpu_bf16_autocast(cascade)
        rows[f"cascade-{strength:g}:{steps}"] = (cascade, {**default_steps(pipe),
                                                           "super_res_second_num_inference_steps": steps})
    return rows


def make_rows(
    pipe: Any, fast_steps: list[str] = (), solvers: list[str] = (), upsampler2: str | None = None,
    upsampler2_settings: str = "0.1:10", guidance_intervals: list[str] = (), decoders: list[str] = (),
) -> dict[str, tuple[Any, dict[str, int]]]:
    """Row name -> (callable pipeline, step counts); `fast_steps` adds `ours-fast-P/D/SR` rows, `solvers`
    `ours-fast-P/D/SR-SOLVER` rows, `guidance_intervals` `ours-fast-gi-...` rows and `upsampler2` the `cascade-S:N`
    rows."""
    from stock import build_stock_pipeline

    from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

    fast = copy.deepcopy(pipe)
    enable_cpu_bf16_autocast(fast)
    rows = {
        "ours-default": (pipe, default_steps(pipe)),
        "ours-fast": (fast, default_steps(fast)),
        "stock-25/25/7": (build_stock_pipeline(pipe), STOCK_STEPS),
        "ours-25/25/7": (pipe, STOCK_STEPS),
    }
    for text in fast_steps:
        rows[f"ours-fast-{text}"] = (fast, parse_steps(text))
    default_text = "/".join(str(v) for v in default_steps(fast).values())
    for solver in solvers:
        solver_pipe = with_solver(fast, solver)
        for text in fast_steps or [default_text]:
            rows[f"ours-fast-{text}-{solver}"] = (solver_pipe, parse_steps(text))
    for text in guidance_intervals:
        rows[f"ours-fast-gi-{text}"] = (_common.with_guidance_intervals(fast, text), default_steps(fast))
    rows.update(decoder_rows(fast, list(decoders)))
    if upsampler2:
        rows.update(cascade_rows(pipe, upsampler2, upsampler2_settings))
    return rows


def run_row(pipeline: Any, steps: dict[str, int], batch: int, seed: int = 0) -> Any:
    """One text-to-image call for `batch` prompts; returns the images as a float array (B, H, W, 3) in [0, 1]."""
    import torch

    prompts = (PROMPTS * batch)[:batch]
    generator = torch.Generator().manual_seed(seed)
    return pipeline(prompts, generator=generator, output_type="np", **steps).images


def quality_proxy(pipe: Any, rows: dict[str, tuple[Any, dict[str, int]]], reference_steps: int) -> dict[str, Any]:
    """Mean absolute difference (0-255) of each deterministic row's images to a many-step DPM-Solver reference."""
    import numpy as np

    steps = {k: reference_steps for k in STOCK_STEPS}
    reference = run_row(pipe, steps, batch=2, seed=1)
    proxy: dict[str, Any] = {"reference": f"this pipeline, DPM-Solver++ 2M, {reference_steps} steps per stage, "
                             "same seed; batch of 2 prompts"}
    for name, (pipeline, row_steps) in rows.items():
        if name.startswith("stock"):
            proxy[name] = "n/a (ancestral sampler: different noise path)"
            continue
        if name.startswith("cascade"):
            proxy[name] = "n/a (its images are larger than the reference's)"
            continue
        images = run_row(pipeline, row_steps, batch=2, seed=1)
        proxy[name] = float(np.abs(images - reference).mean() * 255)
    return proxy


QUALITY_ONLY = dict(  # the quality columns need text-to-image only: skip the report's other sections
    text_embedding_ablation=False, num_variation_inputs=0, num_interpolation_pairs=0, grid_prompts=0,
    prior_guidance_sweep=(), prior_sample_counts=(1,), clip_retrieval=False, num_fidelity_inputs=0,
    num_wording_inputs=0, num_edit_inputs=0, caption_context_ablation=False,
)


def load_evaluator(args: argparse.Namespace) -> Any:
    """The evaluator CLIP for the quality columns, loaded once; its text embeddings (the whole caption pool, the
    same for every row) are cached across rows."""
    from unclip_diffusers.evaluation.evaluator import EvaluatorCLIP

    evaluator = EvaluatorCLIP.from_pretrained(args.evaluator)
    embed_texts, cache = evaluator.embed_texts, {}

    def cached_embed_texts(texts: Any, **kwargs: Any) -> Any:
        key = tuple(texts)
        if key not in cache:
            cache[key] = embed_texts(texts, **kwargs)
        return cache[key]

    evaluator.embed_texts = cached_embed_texts
    return evaluator


def eval_quality(pipeline: Any, steps: dict[str, int], evaluator: Any, args: argparse.Namespace) -> dict[str, Any]:
    """CLIP-FD (with its real-vs-real floor) and R-precision per held-out split from `unclip-eval`'s `quick`
    settings at this row's steps, on `--quality-examples` prompts per split."""
    from unclip_diffusers.evaluation.runner import get_eval_settings, run_evaluation

    settings = get_eval_settings("quick", max_examples=args.quality_examples, **QUALITY_ONLY, **steps)
    results, _ = run_evaluation(pipeline, args.eval_data, evaluator, settings)
    out: dict[str, Any] = {}
    for split, section in results["splits"].items():
        scores = section["text_to_image"]["via_prior"]
        too_few = f"not measured ({scores['count']} examples are too few)"  # FD needs 2 per half, R-precision 2
        out[f"clip_fd/{split}"] = scores.get("clip_fd", too_few)
        out[f"clip_fd_floor/{split}"] = scores.get("clip_fd_floor", too_few)
        out[f"r_precision/{split}"] = scores["r_precision"]["r_precision"] if "r_precision" in scores else too_few
        everyday = section.get("slices", {}).get("everyday")
        if everyday:  # the slice users meet (issue 25): concept top-1 and R-precision of its rows
            out[f"everyday_concept_top1/{split}"] = everyday["concept_top1"]
            out[f"everyday_concept_top1_real/{split}"] = everyday["concept_top1_real"]
            if "r_precision" in everyday:
                out[f"everyday_r_precision/{split}"] = everyday["r_precision"]["r_precision"]
    return out


def quality_columns(rows: dict[str, tuple[Any, dict[str, int]]], pipe: Any, trained: bool,
                    args: argparse.Namespace) -> dict[str, Any]:
    """The quality columns of every row, or why they were not measured. The stock row is scored through
    `stock_sampling_pipeline`, this pipeline sampling exactly as the stock one (same images from the same seed)."""
    reason = None
    if not trained:
        reason = NOT_MEASURED
    elif not (args.eval_data and args.evaluator):
        reason = "not measured (pass --eval-data and --evaluator)"
    if reason:
        return {name: {"clip_fd": reason, "r_precision": reason} for name in rows}
    from stock import stock_sampling_pipeline

    evaluator = load_evaluator(args)
    return {name: eval_quality(stock_sampling_pipeline(pipe) if name.startswith("stock") else p, s, evaluator, args)
            for name, (p, s) in rows.items()}


def measure_rss(row: str, args: argparse.Namespace) -> float | str:
    """Peak RSS (GiB) of a fresh process that loads the pipeline and generates one batch-1 image with `row`."""
    command = [sys.executable, __file__, "--rss-row", row, "--threads", str(args.threads)]
    if args.preset:
        command += ["--preset", args.preset]
    if args.model:
        command += ["--model", args.model]
    if args.upsampler2:
        command += ["--upsampler2", args.upsampler2, "--upsampler2-settings", args.upsampler2_settings]
    if args.decoders:
        command += ["--decoders", *args.decoders]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **_common.MALLOC_ENV})
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return float(done.stdout.strip().splitlines()[-1])


def rss_child(args: argparse.Namespace) -> None:
    """Internal: build only what `args.rss_row` needs, run it once, print the peak RSS in GiB."""
    pipe, _, _ = load_pipeline(args.model, args.preset)
    if args.rss_row.startswith("cascade"):
        pipeline, steps = cascade_rows(pipe, args.upsampler2, args.upsampler2_settings)[args.rss_row]
        run_row(pipeline, steps, batch=1)
        print(_common.peak_rss_gib())
        return
    if args.rss_row.startswith("ours-fast"):
        from unclip_diffusers.utils.cpu_bf16 import enable_cpu_bf16_autocast

        enable_cpu_bf16_autocast(pipe)
    pipeline, steps = pipe, default_steps(pipe)
    if args.rss_row.startswith("stock"):
        from stock import build_stock_pipeline

        pipeline, steps = build_stock_pipeline(pipe), STOCK_STEPS
    elif args.rss_row == "ours-25/25/7":
        steps = STOCK_STEPS
    elif args.rss_row.startswith("ours-fast-decoder-"):
        pipeline, steps = decoder_rows(pipe, args.decoders)[args.rss_row]
    elif args.rss_row.startswith("ours-fast-gi-"):
        pipeline = _common.with_guidance_intervals(pipe, args.rss_row.removeprefix("ours-fast-gi-"))
    elif args.rss_row.startswith("ours-fast-"):  # ours-fast-P/D/SR or ours-fast-P/D/SR-SOLVER
        steps_text, _, solver = args.rss_row.removeprefix("ours-fast-").partition("-")
        steps = parse_steps(steps_text)
        if solver:
            pipeline = with_solver(pipe, solver)
    run_row(pipeline, steps, batch=1)
    print(_common.peak_rss_gib())


def time_rows(rows: dict[str, tuple[Any, dict[str, int]]], args: argparse.Namespace, warmup: int) -> dict[str, Any]:
    """Seconds per image of every row and batch size, interleaved, with the per-round ratio to the stock row."""
    timings: dict[str, Any] = {}
    for batch in args.batch_sizes:
        variants = {name: (lambda p=p, s=s: run_row(p, s, batch)) for name, (p, s) in rows.items()}
        times = _common.interleaved(variants, args.repeats, warmup=warmup)
        per_image = {name: [t / batch for t in ts] for name, ts in times.items()}
        entry: dict[str, Any] = {name: _common.summarize(ts) for name, ts in per_image.items()}
        if "stock-25/25/7" in per_image:
            entry["speedup_vs_stock"] = {name: _common.ratio_stats(per_image["stock-25/25/7"], ts)
                                         for name, ts in per_image.items() if name != "stock-25/25/7"}
        if "ours-fast" in per_image:  # the second upsampler's cost: the chain to 2x the size vs ours-fast
            entry["ratio_vs_ours_fast"] = {name: _common.ratio_stats(ts, per_image["ours-fast"])
                                           for name, ts in per_image.items() if name.startswith("cascade")}
        entry["loadavg"] = os.getloadavg()
        timings[f"batch{batch}"] = entry
    return timings


def merge(results: dict[str, Any], key: str, values: dict[str, Any]) -> None:
    """Set `results[key]` to `values`, keeping the entries of rows not measured this time (a `--rows` subset)."""
    results[key] = {**results.get(key, {}), **values}


def load_earlier_results(output: str, sections: list[str]) -> dict[str, Any]:
    """The results in `output` from an earlier run, to which the re-measured `sections` are written back (e.g. the
    load-independent quality and RSS columns measured while other jobs run, timings on an idle machine); `{}` when
    there is none yet."""
    path = Path(output)
    if not path.is_file():
        return {}  # nothing earlier: these sections start the file
    results = json.loads(path.read_text())
    updates = results.setdefault("section_updates", [])
    updates.append({"sections": sections, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                    "loadavg": os.getloadavg()})
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    _common.setup_torch(args.threads)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.rss_row:
        rss_child(args)
        return {}
    if args.quick:
        args.repeats, args.batch_sizes, args.reference_steps, args.no_rss = 1, [1], 4, True
    warmup = 0 if args.quick else 1
    import torch

    results: dict[str, Any] = {"machine": _common.machine_info(args.threads)}
    sections = set(args.sections)
    if sections != set(SECTIONS):  # re-measure some sections of an earlier run's results, keep the rest
        results = load_earlier_results(args.output, args.sections) or results
    with torch.inference_mode():
        pipe, source, trained = load_pipeline(args.model, args.preset)
        rows = make_rows(pipe, args.fast_steps, args.solvers, args.upsampler2, args.upsampler2_settings,
                         args.guidance_intervals, args.decoders)
        if args.rows:
            unknown = sorted(set(args.rows) - set(rows))
            if unknown:
                raise ValueError(f"Unknown --rows {unknown}; choose from {sorted(rows)}.")
            rows = {k: v for k, v in rows.items() if k in args.rows}
        results.update(weights=source, output_size=list(pipe.output_size), base_size=list(pipe.base_size))
        merge(results, "steps", {name: steps for name, (_, steps) in rows.items()})
        if "timing" in sections:
            results.update(seconds_per_image=time_rows(rows, args, warmup), repeats=args.repeats)
        if "quality" in sections:
            merge(results, "quality_proxy_mad255", quality_proxy(pipe, rows, args.reference_steps))
            merge(results, "quality", quality_columns(rows, pipe, trained, args))
    if "rss" in sections:
        merge(results, "peak_rss_gib", {name: "not measured (--no-rss)" if args.no_rss else measure_rss(name, args)
                                        for name in rows})
    print_table(results)
    path = _common.write_json(results, args.output)
    print(f"wrote {path}")
    return results


def quality_cell(quality: dict[str, Any], metric: str) -> str:
    """One quality column of a row: the value per held-out split (with the real-vs-real floor for CLIP-FD), or
    why it was not measured."""
    if metric in quality:
        return str(quality[metric])
    values = []
    for key, value in quality.items():
        if key.startswith(f"{metric}/"):
            split = key.split("/", 1)[1].removeprefix("heldout_")
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            floor = quality.get(f"{metric}_floor/{key.split('/', 1)[1]}")
            if isinstance(floor, float):
                text += f" (floor {floor:.3f})"
            values.append(f"{split} {text}")
    return "; ".join(values) or "–"


def print_table(results: dict[str, Any]) -> None:
    """Print the per-row table: s/image per batch size, speed-up vs stock, RSS and the quality columns."""
    header = ["row", "steps p/d/sr"]
    timings = results.get("seconds_per_image", {})
    batches = list(timings)
    header += [f"s/img {b} median (min–max)" for b in batches] + [f"x vs stock ({b})" for b in batches]
    cascades = [b for b in batches if timings[b].get("ratio_vs_ours_fast")]
    header += [f"time / ours-fast ({b})" for b in cascades]
    header += ["peak RSS GiB", "MAD to ref", "CLIP-FD", "R-precision", "everyday concept top-1", "everyday R-precision"]
    rows = []
    for name, steps in results["steps"].items():
        row: list[Any] = [name, "/".join(str(v) for v in steps.values())]
        row += [_common.fmt_stats(timings[b][name], "") if name in timings[b] else "–" for b in batches]
        for b in batches:
            ratio = timings[b].get("speedup_vs_stock", {}).get(name)
            row.append(_common.fmt_stats(ratio, "") if ratio else "1" if name == "stock-25/25/7" else "–")
        for b in cascades:
            ratio = timings[b]["ratio_vs_ours_fast"].get(name)
            row.append(_common.fmt_stats(ratio, "") if ratio else "1" if name == "ours-fast" else "–")
        rss = results.get("peak_rss_gib", {}).get(name, "–")
        mad = results.get("quality_proxy_mad255", {}).get(name, "–")
        quality = results.get("quality", {}).get(name, {})
        row += [f"{rss:.2f}" if isinstance(rss, float) else rss, f"{mad:.2f}" if isinstance(mad, float) else mad]
        row += [quality_cell(quality, "clip_fd"), quality_cell(quality, "r_precision"),
                quality_cell(quality, "everyday_concept_top1"), quality_cell(quality, "everyday_r_precision")]
        rows.append(row)
    print(_common.format_table(header, rows))


if __name__ == "__main__":
    _common.ensure_malloc_env()
    main()
