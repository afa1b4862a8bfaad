"""How close prior weight sets' sampled image embeddings come to the true ones on held-out images, per slice.

Compares prior weight folders (a run's `final/` or snapshot, or a pipeline folder: anything holding `prior/`) on the
same held-out images, captions, noise and guidance, so the differences are paired: the training loss (x0 MSE at
fixed timesteps) and the cosine between a sampled ẑ_i and the true z_i in the generation CLIP's space, once with
each image's English primary caption ("cat face, Twemoji style") and once with another of its cached captions
(other wordings and languages, one drawn per image with a fixed seed):

    python benchmarks/bench_prior_fit.py --run runs/prior-small-ft \\
        --weights release=checkpoints/unclip-emoji continued=runs/prior-small-ft/final \\
        --output benchmarks/results/prior_fit.json

The run folder's config gives the data, the CLIP and the cached captions per image.
"""

from __future__ import annotations

import argparse
import random
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

CAPTIONS = ("primary", "other")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = weight_comparison_parser(__doc__.splitlines()[0], "prior", "benchmarks/results/prior_fit.json")
    parser.add_argument("--guidance-scale", type=float, default=2.0, help="prior guidance (the release's is 2)")
    parser.add_argument("--steps", type=int, default=10, help="prior sampling steps (the pipeline's default)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def other_caption_rows(cache, examples: list[dict], indices, seed: int):
    """Per example, the cache row of one cached caption other than its primary one (the primary when it has none)."""
    import torch

    rng, rows = random.Random(seed), []
    for i in indices.tolist():
        captions = examples[i]["captions"]
        others = [k for k, caption in enumerate(captions) if caption != examples[i]["caption"]]
        rows.append(cache.caption_row(i, rng.choice(others) if others else captions.index(examples[i]["caption"])))
    return torch.tensor(rows, dtype=torch.long)


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; returns what it writes."""
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.guidance_scale < 0:
        raise SystemExit("--steps must be >= 1 and --guidance-scale >= 0.")
    ensure_malloc_env()
    setup_torch(args.threads)
    import torch
    import torch.nn.functional as F

    from unclip_diffusers.configs import build_prior, build_train_scheduler
    from unclip_diffusers.training.config import load_config
    from unclip_diffusers.training.embeddings import primary_caption_rows, split_with_embeddings
    from unclip_diffusers.training.prior import PriorStage, sample_prior_embeddings

    weights = named_folders(args.weights, "--weights", needs=("prior",))
    config, _ = load_config(Path(args.run) / "config.json")
    stage = PriorStage(replace(config, init_from="", num_validation_examples=0))
    stage.noise_scheduler = build_train_scheduler("sample")
    models = {}
    for name, folder in weights.items():
        model = build_prior(config.model_config)
        stage.load_weights(model, folder)
        models[name] = model.eval()
    results: dict = {"machine": machine_info(args.threads), "run": args.run, "guidance_scale": args.guidance_scale,
                     "steps": args.steps, "weights": {k: str(v) for k, v in weights.items()}, "splits": {}}
    table = []
    for split in args.splits:
        data, cache, examples = split_with_embeddings(config, split, 0)
        slices = list(data["slice"]) if "slice" in data.column_names else ["all"] * len(data)
        groups = {"all": list(range(len(slices))), **{s: [i for i, v in enumerate(slices) if v == s]
                                                      for s in dict.fromkeys(slices)}}
        results["splits"][split] = {}
        for group, members in groups.items():
            indices = torch.tensor(members)
            rows = {"primary": primary_caption_rows(cache, examples, indices),
                    "other": other_caption_rows(cache, examples, indices, args.seed)}
            target = cache.image_embeds[indices]
            scores: dict = {"images": len(members)}
            for name, model in models.items():
                stage.prior = model  # diffusion_loss standardises with the model's own embedding statistics
                with torch.no_grad():
                    loss = stage.diffusion_loss(model, cache, indices, rows["primary"], None,
                                                torch.Generator().manual_seed(args.seed)).item()
                    cosines = {}
                    for kind, kind_rows in rows.items():
                        sampled = sample_prior_embeddings(model, *cache.conditioning(kind_rows),
                                                          empty=cache.empty_conditioning(),
                                                          num_inference_steps=args.steps,
                                                          guidance_scale=args.guidance_scale,
                                                          generator=torch.Generator().manual_seed(args.seed))
                        cosines[kind] = F.cosine_similarity(sampled, target).mean().item()
                scores[name] = {"loss": loss, **{f"cos_{kind}": v for kind, v in cosines.items()}}
            results["splits"][split][group] = scores
            for metric in ("loss", *(f"cos_{kind}" for kind in CAPTIONS)):
                table.append([split, group, len(members), metric, *(f"{scores[n][metric]:.4f}" for n in models)])
            print(table[-1], flush=True)
    print(format_table(["split", "slice", "images", "metric", *models], table))
    print(f"wrote {write_json(results, args.output)}")
    return results


if __name__ == "__main__":
    main()
