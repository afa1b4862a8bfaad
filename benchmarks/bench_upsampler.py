"""Upsampler settings: held-out PSNR, sharpness and seconds per image for each (strength, steps) pair.

Held-out high-resolution images are downscaled x4 (antialiased bicubic, no blur: what the decoder hands over) and
upsampled back by the pipeline's `super_resolve` with every setting; bicubic upsampling is the baseline row.
Sharpness = mean gradient magnitude of the output / that of the target (1 = as sharp as the original; bicubic
scores well below 1). PSNR rewards blur, sharpness rewards noise: read them together, and look at the grid.

    python benchmarks/bench_upsampler.py --upsampler runs/upsampler-small/snapshot-3000 --data data/emoji
    python benchmarks/bench_upsampler.py --pipeline checkpoints/unclip-emoji --data data/emoji
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

DEFAULT_SETTINGS = "1.0:10,0.7:10,0.5:10,0.5:6,0.3:10,0.3:4"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pipeline", help="a pipeline folder (its super_res_first is measured)")
    source.add_argument("--upsampler", help="a super_res_first folder, or a run's final/ or snapshot-<step>/")
    parser.add_argument("--preset", default="small", help="with --upsampler: model preset of the other components")
    parser.add_argument("--data", default="data/emoji")
    parser.add_argument("--split", default="heldout_pairs")
    parser.add_argument("--column", default="image_256", help="high-resolution image column")
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="comma-separated strength:steps pairs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/upsampler.json")
    parser.add_argument("--grid", default=None, help="PNG of the first 8 images per setting (default: next to --output)")
    return parser


def parse_settings(text: str) -> list[tuple[float, int]]:
    """`"1.0:10,0.5:6"` -> [(1.0, 10), (0.5, 6)], with a clear error for anything else."""
    settings = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            strength, steps = item.split(":")
            settings.append((float(strength), int(steps)))
        except ValueError:
            raise SystemExit(f"bench_upsampler: bad setting {item!r}; expected strength:steps, e.g. 0.5:10.")
        if not 0 < settings[-1][0] <= 1 or settings[-1][1] < 1:
            raise SystemExit(f"bench_upsampler: bad setting {item!r}; strength in (0, 1], steps >= 1.")
    if not settings:
        raise SystemExit("bench_upsampler: --settings is empty.")
    return settings


def load_pipeline(args: argparse.Namespace) -> Any:
    """The pipeline whose upsampler is measured."""
    from unclip_diffusers import UnCLIPPipeline

    if args.pipeline:
        pipe = UnCLIPPipeline.from_pretrained(args.pipeline)
    else:
        from diffusers import UNet2DModel

        from unclip_diffusers.configs import build_components

        folder = Path(args.upsampler)
        folder = folder / "super_res_first" if (folder / "super_res_first").is_dir() else folder
        components = build_components(args.preset)
        components["super_res_first"] = UNet2DModel.from_pretrained(folder, use_safetensors=True)
        pipe = UnCLIPPipeline(**components)
    if pipe.super_res_first is None:
        raise SystemExit("bench_upsampler: this pipeline has no upsampler.")
    pipe.super_res_first.float().eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sharpness(images: Any) -> float:
    """Mean absolute horizontal + vertical pixel difference of (N, 3, H, W) images in [0, 1]."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return float(dx + dy)


def psnr(images: Any, targets: Any) -> float:
    """Mean PSNR (dB) of images in [0, 1]."""
    mse = ((images - targets) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * (1.0 / mse).log10()).mean())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    settings = parse_settings(args.settings)
    if args.num_images < 1 or args.batch < 1:
        raise SystemExit("bench_upsampler: --num-images and --batch must be >= 1.")
    _common.setup_torch(args.threads)
    import datasets
    import torch
    import torch.nn.functional as F

    from unclip_diffusers.training.batches import column_images

    pipe = load_pipeline(args)
    size = pipe.output_size[0]
    data = datasets.load_from_disk(args.data)
    if args.split not in data:
        raise SystemExit(f"bench_upsampler: {args.data!r} has no split {args.split!r} (it has {list(data)}).")
    split = data[args.split].select(range(min(len(data[args.split]), args.num_images * 4)))
    targets, _ = column_images(split, args.column, size, desc="decoding targets")
    targets = targets[: args.num_images].float() / 255.0
    if len(targets) == 0:
        raise SystemExit(f"bench_upsampler: no {args.column!r} images in {args.split!r}.")
    low = F.interpolate(targets, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    bicubic = F.interpolate(low, size=size, mode="bicubic").clamp(0, 1)
    target_sharpness = sharpness(targets)

    rows = {"bicubic": {"psnr": psnr(bicubic, targets), "sharpness": sharpness(bicubic) / target_sharpness,
                        "seconds_per_image": 0.0, "strength": None, "steps": 0}}
    shown = {"bicubic": bicubic[:8], "target": targets[:8]}
    from tqdm.auto import tqdm

    for strength, steps in tqdm(settings, desc="settings"):
        outputs, start = [], time.perf_counter()
        for first in range(0, len(low), args.batch):
            batch = low[first : first + args.batch]
            generators = [torch.Generator().manual_seed(args.seed + first + i) for i in range(len(batch))]
            outputs.append(pipe.super_resolve(batch, num_inference_steps=steps, strength=strength,
                                              generator=generators, output_type="pt"))
        elapsed = time.perf_counter() - start
        out = torch.cat(outputs)
        name = f"strength {strength:g}, {steps} steps"
        rows[name] = {"psnr": psnr(out, targets), "sharpness": sharpness(out) / target_sharpness,
                      "seconds_per_image": elapsed / len(out), "strength": strength, "steps": steps}
        shown[name] = out[:8]

    table = [[name, "–" if r["strength"] is None else r["strength"], r["steps"], f"{r['psnr']:.2f}",
              f"{r['sharpness']:.3f}", f"{r['seconds_per_image']:.3f}"] for name, r in rows.items()]
    print(_common.format_table(["row", "strength", "steps", "PSNR dB", "sharpness vs target", "s/img"], table))
    results = {"machine": _common.machine_info(args.threads), "source": args.pipeline or args.upsampler,
               "split": args.split, "num_images": len(targets), "resolution": size, "rows": rows}
    path = _common.write_json(results, args.output)
    grid_path = Path(args.grid) if args.grid else path.with_suffix(".png")
    grid = torch.cat([torch.cat(list(images), dim=2) for images in shown.values()], dim=1)
    from PIL import Image

    Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(grid_path)
    print(f"wrote {path} and {grid_path} (grid rows: {', '.join(shown)})")
    return results


if __name__ == "__main__":
    _common.ensure_malloc_env()
    main()
