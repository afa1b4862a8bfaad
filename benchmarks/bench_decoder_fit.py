"""How well decoder weights fit held-out images, per slice: the denoising loss at fixed noise and timesteps.

Compares weight folders of the same decoder (an EMA snapshot, the raw weights of a checkpoint, an earlier release)
on the same held-out images, noise draws and timesteps, so the differences are paired and far less noisy than
sampled-image scores; cheap enough (forward passes only) to decide what buys quality per CPU-hour (EMA or not, a
learning-rate restart, more steps) before spending the hours:

    unclip-train export runs/decoder-lit --raw          # the optimiser's weights beside the EMA snapshot
    python benchmarks/bench_decoder_fit.py --run runs/decoder-lit \\
        --weights ema=runs/decoder-lit/snapshot-29000 raw=runs/decoder-lit/raw-29000 release=checkpoints/unclip-emoji \\
        --output benchmarks/results/decoder_fit.json

A weight folder holds `decoder/` and `text_proj/` (a run's final/ or snapshot, or a pipeline folder). The loss is
the training objective (Min-SNR-weighted epsilon MSE), with both the image embedding and the primary caption given.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from _common import (
    ensure_malloc_env,
    format_table,
    machine_info,
    named_folders,
    setup_torch,
    weight_comparison_parser,
    write_json,
)

def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = weight_comparison_parser(__doc__.splitlines()[0], "decoder", "benchmarks/results/decoder_fit.json")
    parser.add_argument("--draws", type=int, default=4, help="noise/timestep draws per image (paired across weights)")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; returns what it writes."""
    args = build_parser().parse_args(argv)
    ensure_malloc_env()
    setup_torch(args.threads)
    import torch

    from unclip_diffusers.configs import build_decoder, build_text_proj, build_train_scheduler
    from unclip_diffusers.training.batches import images_to_uint8
    from unclip_diffusers.training.config import load_config
    from unclip_diffusers.training.decoder import DecoderStage, DecoderWithProjection
    from unclip_diffusers.training.embeddings import primary_caption_rows, split_with_embeddings

    weights = named_folders(args.weights, "--weights", needs=("decoder", "text_proj"))
    config, _ = load_config(Path(args.run) / "config.json")
    config = replace(config, init_from="", num_validation_examples=0)
    stage = DecoderStage(config)
    stage.noise_scheduler = build_train_scheduler("epsilon")
    model_config = config.model_config
    results: dict = {"machine": machine_info(args.threads), "run": args.run, "draws": args.draws,
                     "weights": {k: str(v) for k, v in weights.items()}, "splits": {}}
    models = {}
    for name, folder in weights.items():
        model = DecoderWithProjection(build_decoder(model_config), build_text_proj(model_config))
        stage.load_weights(model, folder)
        models[name] = model.eval()
    rows_out = []
    for split in args.splits:
        data, cache, examples = split_with_embeddings(config, split, 0)
        images = images_to_uint8(data["image"], model_config.decoder.sample_size, desc=f"decoding {split}")
        slices = list(data["slice"]) if "slice" in data.column_names else ["all"] * len(data)
        by_slice = {s: [i for i, v in enumerate(slices) if v == s] for s in dict.fromkeys(slices)}
        results["splits"][split] = {}
        for slice_name, members in by_slice.items():
            indices = torch.tensor(members)
            rows = primary_caption_rows(cache, examples, indices)
            keep = torch.zeros(len(indices), dtype=torch.bool)
            losses = {}
            for name, model in models.items():
                total = 0.0
                for draw in range(args.draws):
                    generator = torch.Generator().manual_seed(1000 + draw)  # the same noise for every weight set
                    with torch.no_grad():
                        total += stage.diffusion_loss(model, cache, images, indices, rows, keep, None, generator).item()
                losses[name] = total / args.draws
            results["splits"][split][slice_name] = {"images": len(members), "loss": losses}
            rows_out.append([split, slice_name, len(members), *(losses[n] for n in models)])
            print(rows_out[-1], flush=True)
        if len(by_slice) > 1:  # the whole split: the slices' losses weighted by their sizes (each image once)
            scored = results["splits"][split]
            losses = {n: sum(v["images"] * v["loss"][n] for v in scored.values()) / len(slices) for n in models}
            scored["all"] = {"images": len(slices), "loss": losses}
            rows_out.append([split, "all", len(slices), *(losses[n] for n in models)])
    shown = [[*row[:3], *(f"{loss:.5f}" for loss in row[3:])] for row in rows_out]  # differences sit in the 4th digit
    print(format_table(["split", "slice", "images", *models], shown))
    print(f"wrote {write_json(results, args.output)}")
    return results


if __name__ == "__main__":
    main()
