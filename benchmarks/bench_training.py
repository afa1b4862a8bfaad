"""Training-step benchmark: images/s of one decoder training step (forward, backward, AdamW) on this machine.

The issue asks for `dalle2-pytorch`'s Unet at equal parameter count, interleaved in the same process. It is not run
here: `dalle2-pytorch` depends on torchvision and open-clip-torch, which have no CPU build in this environment (and
installing torchvision breaks `import diffusers`); see `benchmarks/RESULTS.md` for the reference figure quoted in the
issue. The rows compared instead are this project's decoder step in float32 and under bfloat16 autocast, interleaved.

    python benchmarks/bench_training.py                     # release-size decoder, batch 8, 2 threads
    python benchmarks/bench_training.py --preset tiny --quick --output /tmp/t.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

DALLE2_STATUS = ("not run: dalle2-pytorch requires torchvision and open-clip-torch, which have no CPU build in this "
                 "environment (torchvision also breaks `import diffusers`); see RESULTS.md for the issue's reference")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 2 rounds")
    parser.add_argument("--output", default="benchmarks/results/training.json")
    return parser


def make_step(decoder: Any, text_proj: Any, batch: int, bf16: bool) -> Any:
    """A closure doing one epsilon-prediction training step of the decoder (and text_proj) on random data."""
    import torch
    import torch.nn.functional as F

    from unclip_diffusers.configs import build_train_scheduler

    scheduler = build_train_scheduler("epsilon")
    parameters = list(decoder.parameters()) + list(text_proj.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    size, dim = decoder.config.sample_size, text_proj.config.clip_embeddings_dim
    images = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    image_embeds = F.normalize(torch.randn(batch, dim, generator=g), dim=-1)
    text_embeds = F.normalize(torch.randn(batch, dim, generator=g), dim=-1)
    tokens = torch.randn(batch, 32, dim, generator=g)

    def step() -> float:
        noise = torch.randn(images.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=g)
        noisy = scheduler.add_noise(images, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            context, time_embeddings = text_proj(image_embeddings=image_embeds, prompt_embeds=text_embeds,
                                                 text_encoder_hidden_states=tokens)
            prediction = decoder(noisy, t, encoder_hidden_states=context, class_labels=time_embeddings).sample
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    _common.setup_torch(args.threads)
    if args.quick:
        args.batch, args.repeats = 2, 2
    import copy

    import torch

    from unclip_diffusers.configs import build_components

    machine = _common.machine_info(args.threads)  # load average before the timed work

    torch.manual_seed(0)
    components = build_components(args.preset)
    decoder, text_proj = components["decoder"].train(), components["text_proj"].train()
    variants = {
        "decoder step fp32": make_step(decoder, text_proj, args.batch, bf16=False),
        "decoder step bf16 autocast": make_step(copy.deepcopy(decoder), copy.deepcopy(text_proj), args.batch,
                                                bf16=True),
    }
    times = _common.interleaved(variants, args.repeats, warmup=1)
    results: dict[str, Any] = {
        "machine": machine, "preset": args.preset, "batch": args.batch,
        "decoder_parameters": sum(p.numel() for p in decoder.parameters()),
        "text_proj_parameters": sum(p.numel() for p in text_proj.parameters()),
        "rows": {}, "dalle2_pytorch": DALLE2_STATUS,
    }
    table = []
    for name, ts in times.items():
        stats = _common.summarize(ts)
        images_per_s = args.batch / stats["median"]
        results["rows"][name] = {"seconds_per_step": stats, "images_per_s_median": images_per_s,
                                 "images_per_s_best": args.batch / stats["min"]}
        table.append([name, _common.fmt_stats(stats, ""), f"{images_per_s:.1f}"])
    table.append(["dalle2-pytorch Unet (equal params)", "—", DALLE2_STATUS])
    print(_common.format_table(["row", "s/step median (min–max)", "images/s (median)"], table))
    path = _common.write_json(results, args.output)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    _common.ensure_malloc_env()
    main()
