"""Upsampler settings: held-out PSNR, sharpness and seconds per image for each (strength, steps) pair, per stage.

Held-out high-resolution images (the real 256-px art, resized to the stage's output size) are downscaled to the
stage's input size (antialiased bicubic, no blur: what the previous stage hands over) and upsampled back by the
pipeline's `super_resolve` with every setting; bicubic upsampling is the baseline row. `--stage 0` measures the
first upsampler (base → 128 px), `--stage 1` the cascade's second (128 → 256 px, real 128-px input), `--stage
cascade` both in sequence from the base size (each setting applied to both stages).
Sharpness = RMS pixel gradient of the output / that of the target (1 = as sharp as the original; blur lowers it,
noise raises it). Grain = RMS pixel gradient (0-255) where the target is flat (its own gradient under 2/255 within
3 px): noise or texture the output invents; the target scores 0. TV ratio = mean absolute gradient / the target's (the measure
reported as "sharpness" before Dec 7 2026: a blur conserves it, so it cannot see blur). PSNR rewards blur: read the
columns together, and look at the grid.

    python benchmarks/bench_upsampler.py --upsampler runs/upsampler-small/snapshot-3000 --data data/emoji
    python benchmarks/bench_upsampler.py --pipeline checkpoints/unclip-emoji --data data/emoji
    python benchmarks/bench_upsampler.py --pipeline checkpoints/unclip-emoji --upsampler2 runs/upsampler2-small/final \
        --stage 1 --data data/emoji
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import _common

DEFAULT_SETTINGS = "1.0:10,0.7:10,0.5:10,0.5:6,0.3:10,0.3:4"
STAGE_CHOICES = ("0", "1", "cascade")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pipeline", help="a pipeline folder (its super_res_first is measured)")
    source.add_argument("--upsampler", help="a super_res_first folder, or a run (folder, final/ or snapshot-<step>/)")
    parser.add_argument("--upsampler2", default=None,
                        help="a super_res_second folder, or a second-upsampler run (folder, final/ or "
                             "snapshot-<step>/), added to the pipeline as its second stage")
    parser.add_argument("--stage", default="0", choices=STAGE_CHOICES,
                        help="which upsampler: 0 (the first), 1 (the second) or cascade (both in sequence)")
    parser.add_argument("--preset", default="small", help="with --upsampler: model preset of the other components")
    parser.add_argument("--data", default="data/emoji")
    parser.add_argument("--split", default="heldout_pairs")
    parser.add_argument("--column", default="image_256", help="high-resolution image column")
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="comma-separated strength:steps pairs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None,
                        help="JSON (default benchmarks/results/upsampler.json, upsampler-stage1.json for --stage 1, "
                             "upsampler-cascade.json)")
    parser.add_argument("--grid", default=None, help="PNG of the first 8 images per setting (default: next to --output)")
    return parser


def load_pipeline(args: argparse.Namespace) -> Any:
    """The pipeline whose upsampler(s) are measured."""
    from unclip_diffusers import UnCLIPPipeline

    if args.pipeline:
        pipe = UnCLIPPipeline.from_pretrained(args.pipeline)
    else:
        from diffusers import UNet2DModel

        from unclip_diffusers.configs import build_components

        components = build_components(args.preset)
        components["super_res_first"] = UNet2DModel.from_pretrained(_common.component_folder(args.upsampler, "super_res_first"),
                                                                    use_safetensors=True)
        pipe = UnCLIPPipeline(**components)
    if pipe.super_res_first is None:
        raise SystemExit("bench_upsampler: this pipeline has no upsampler.")
    if args.upsampler2:
        pipe = _common.with_second_upsampler(pipe, args.upsampler2)
    if args.stage != "0" and len(pipe.upsampler_stages) < 2:
        raise SystemExit(f"bench_upsampler: --stage {args.stage} needs a second upsampler; this pipeline has none "
                         "(pass --upsampler2 FOLDER).")
    for stage in pipe.upsampler_stages:
        stage.unet.float().eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stage_sizes(pipe: Any, stage: str) -> tuple[int, int, int | None]:
    """(input size, output size, `super_resolve`'s `stage`) of the measured stage(s)."""
    stages = pipe.upsampler_stages
    if stage == "cascade":
        return pipe.base_size[0], pipe.output_size[0], None
    index = int(stage)
    low = pipe.base_size[0] if index == 0 else stages[index - 1].size[0]
    return low, stages[index].size[0], index


def gradients(images: Any) -> tuple[Any, Any]:
    """Horizontal and vertical pixel differences of (N, 3, H, W) images, cropped to a common (H-1, W-1) grid."""
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]
    return dx, dy


def detail_scores(images: Any, targets: Any) -> dict[str, float]:
    """Sharpness (RMS gradient ratio), grain (RMS gradient on the target's flat areas, 0-255) and TV ratio of
    images against targets, both (N, 3, H, W) in [0, 1]."""
    dx, dy = gradients(images)
    tx, ty = gradients(targets)
    magnitude, target_magnitude = (dx**2 + dy**2).sum(1), (tx**2 + ty**2).sum(1)  # (N, H-1, W-1), over channels
    import torch.nn.functional as F

    near_edge = F.max_pool2d(target_magnitude.sqrt()[:, None], 7, stride=1, padding=3)[:, 0]  # 3-px margin
    flat = near_edge < 2 / 255
    grain = float(magnitude[flat].mean().sqrt() * 255) if flat.any() else float("nan")
    tv = float((dx.abs().mean() + dy.abs().mean()) / (tx.abs().mean() + ty.abs().mean()))
    return {"sharpness": float((magnitude.mean() / target_magnitude.mean()).sqrt()), "grain": grain, "tv_ratio": tv}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    settings = _common.parse_upsampler_settings(args.settings)
    if args.num_images < 1 or args.batch < 1:
        raise SystemExit("bench_upsampler: --num-images and --batch must be >= 1.")
    _common.setup_torch(args.threads)
    import datasets
    import torch
    import torch.nn.functional as F

    from unclip_diffusers.training.batches import column_images
    from unclip_diffusers.utils.psnr import psnr

    pipe = load_pipeline(args)
    low_size, size, stage_index = stage_sizes(pipe, args.stage)
    data = datasets.load_from_disk(args.data)
    if args.split not in data:
        raise SystemExit(f"bench_upsampler: {args.data!r} has no split {args.split!r} (it has {list(data)}).")
    split = data[args.split].select(range(min(len(data[args.split]), args.num_images * 4)))
    targets, _ = column_images(split, args.column, size, desc="decoding targets")
    targets = targets[: args.num_images].float() / 255.0
    if len(targets) == 0:
        raise SystemExit(f"bench_upsampler: no {args.column!r} images in {args.split!r}.")
    low = F.interpolate(targets, size=low_size, mode="bicubic", antialias=True).clamp(0, 1)
    bicubic = F.interpolate(low, size=size, mode="bicubic").clamp(0, 1)
    rows = {"bicubic": {"psnr": psnr(bicubic, targets), **detail_scores(bicubic, targets),
                        "seconds_per_image": 0.0, "strength": None, "steps": 0}}
    shown = {"bicubic": bicubic[:8], "target": targets[:8]}
    from tqdm.auto import tqdm

    for strength, steps in tqdm(settings, desc="settings"):
        outputs, start = [], time.perf_counter()
        for first in range(0, len(low), args.batch):
            batch = low[first : first + args.batch]
            generators = [torch.Generator().manual_seed(args.seed + first + i) for i in range(len(batch))]
            outputs.append(pipe.super_resolve(batch, num_inference_steps=steps, strength=strength,
                                              generator=generators, output_type="pt", stage=stage_index))
        elapsed = time.perf_counter() - start
        out = torch.cat(outputs)
        name = f"strength {strength:g}, {steps} steps"
        rows[name] = {"psnr": psnr(out, targets), **detail_scores(out, targets),
                      "seconds_per_image": elapsed / len(out), "strength": strength, "steps": steps}
        shown[name] = out[:8]

    table = [[name, "–" if r["strength"] is None else r["strength"], r["steps"], f"{r['psnr']:.2f}",
              f"{r['sharpness']:.3f}", f"{r['grain']:.2f}", f"{r['tv_ratio']:.3f}", f"{r['seconds_per_image']:.3f}"]
             for name, r in rows.items()]
    print(_common.format_table(["row", "strength", "steps", "PSNR dB", "sharpness (RMS gradient) vs target",
                                "grain (0-255)", "TV ratio", "s/img"], table))
    results = {"machine": _common.machine_info(args.threads), "source": args.pipeline or args.upsampler,
               "second_source": args.upsampler2, "stage": args.stage, "split": args.split, "num_images": len(targets),
               "input_resolution": low_size, "resolution": size, "rows": rows}
    default = {"0": "upsampler.json", "1": "upsampler-stage1.json", "cascade": "upsampler-cascade.json"}[args.stage]
    path = _common.write_json(results, args.output or f"benchmarks/results/{default}")
    grid_path = Path(args.grid) if args.grid else path.with_suffix(".png")
    grid = torch.cat([torch.cat(list(images), dim=2) for images in shown.values()], dim=1)
    from PIL import Image

    Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(grid_path)
    print(f"wrote {path} and {grid_path} (grid rows: {', '.join(shown)})")
    return results


if __name__ == "__main__":
    _common.ensure_malloc_env()
    main()
