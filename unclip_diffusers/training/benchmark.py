"""Measure a stage's steady-state training throughput (samples/s) at its preset's real sizes, on synthetic data.

The timed step is the training loop's own (`optimizer_step` + EMA update), with the stage's own loss; only the
data is random (random images, random unit-norm embeddings, emoji-length captions), so no dataset or trained CLIP
is needed. Used to size the `small` preset and to plan runs:

    python -m unclip_diffusers.training.benchmark decoder --config small --mixed_precision bf16 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch
from torch.nn import functional as F

from ..configs import build_decoder, build_image_processor, build_prior, build_super_res, build_text_proj
from ..configs import build_tokenizer, build_train_scheduler
from .clip import CLIPStage, build_clip_model
from .config import get_training_config
from .decoder import DecoderStage, DecoderWithProjection
from .embeddings import EmbeddingCache
from .prior import PriorStage, embedding_stats
from .trainer import Stage, make_accelerator, make_ema, make_optimizer, optimizer_step, reset_accelerate_state
from .upsampler import UpsamplerStage
from .upsampler2 import Upsampler2Stage

NUM_EXAMPLES = 256
CAPTIONS = ["pouting cat, Fluent 3D style", "cat, angry, pouting face in the OpenMoji style",
            "grinning face with big eyes, Noto style"]


def _random_cache(stage: Stage, generator: torch.Generator) -> EmbeddingCache:
    clip = stage.model_config.clip
    tokenizer = build_tokenizer(clip)
    lengths = torch.tensor([len(ids) for ids in tokenizer(CAPTIONS, truncation=True).input_ids]).repeat(NUM_EXAMPLES)
    rows = NUM_EXAMPLES * len(CAPTIONS)
    unit = lambda n: F.normalize(torch.randn(n, clip.embed_dim, generator=generator), dim=-1)  # noqa: E731
    return EmbeddingCache(
        image_embeds=unit(NUM_EXAMPLES), text_embeds=unit(rows),
        text_tokens=torch.randn(int(lengths.sum()), clip.embed_dim, generator=generator).half(),
        text_lengths=lengths, caption_text_rows=torch.arange(rows), caption_offsets=torch.arange(0, rows + 1, len(CAPTIONS)),
        empty_text_embeds=unit(1)[0], empty_text_tokens=torch.randn(2, clip.embed_dim).half(),
        context_length=torch.tensor(clip.max_text_length),
    )


def synthetic_stage(stage_name: str, config) -> tuple[Stage, torch.nn.Module]:
    """A stage whose data attributes are random tensors of the right shapes, and its freshly built module."""
    generator = torch.Generator().manual_seed(0)
    examples = [{"caption": CAPTIONS[0], "captions": list(CAPTIONS)} for _ in range(NUM_EXAMPLES)]
    images = lambda size: torch.randint(0, 256, (NUM_EXAMPLES, 3, size, size), dtype=torch.uint8, generator=generator)  # noqa: E731
    if stage_name == "clip":
        stage = CLIPStage(config)
        stage.tokenizer, stage.processor = build_tokenizer(stage.model_config.clip), build_image_processor(stage.model_config.clip)
        stage.images, stage.examples = images(stage.model_config.clip.image_size), examples
        return stage, build_clip_model(stage.model_config)
    if stage_name == "prior":
        stage = PriorStage(config)
        stage.cache, stage.examples = _random_cache(stage, generator), examples
        stage.noise_scheduler = build_train_scheduler("sample")
        stage.prior = build_prior(stage.model_config)
        stage.prior.set_embedding_stats(*embedding_stats(stage.cache.image_embeds))
        stage.prior.clip_mean.requires_grad_(False)
        stage.prior.clip_std.requires_grad_(False)
        return stage, stage.prior
    if stage_name == "decoder":
        stage = DecoderStage(config)
        stage.cache, stage.examples = _random_cache(stage, generator), examples
        stage.images = images(stage.model_config.decoder.sample_size)
        stage.noise_scheduler = build_train_scheduler("epsilon")
        return stage, DecoderWithProjection(build_decoder(stage.model_config), build_text_proj(stage.model_config))
    if stage_name == "upsampler":
        stage = UpsamplerStage(config)
        stage.targets = images(stage.model_config.super_res.sample_size)
        stage.noise_scheduler = build_train_scheduler("epsilon")
        return stage, build_super_res(stage.model_config)
    if stage_name == "upsampler2":  # includes the BSR-like degradation of every batch, as in training
        stage = Upsampler2Stage(config)
        stage.targets = images(stage.model_config.super_res_second.sample_size)
        stage.noise_scheduler = build_train_scheduler("epsilon")
        return stage, stage.build_model()
    raise ValueError(f"Unknown stage {stage_name!r}.")


def benchmark_stage(
    stage_name: str, preset: str = "small", seconds: float = 60.0, warmup_steps: int = 3, **overrides: Any
) -> dict[str, Any]:
    """Train `stage_name` on synthetic data for about `seconds` after `warmup_steps`; returns throughput figures."""
    config = get_training_config(stage_name, preset, **overrides)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        accelerator = make_accelerator(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            stage, model = synthetic_stage(stage_name, config)
        optimizer = make_optimizer(model, config)
        ema = make_ema(model, config)
        model, optimizer = accelerator.prepare(model, optimizer)
        model.train()
        step, timed_steps, elapsed, cpu_time = 0, 0, 0.0, 0.0
        while step < warmup_steps or timed_steps == 0 or elapsed < seconds:  # at least one timed step
            start, start_cpu = time.perf_counter(), time.process_time()
            optimizer_step(stage, accelerator, model, optimizer, step)
            ema.step(accelerator.unwrap_model(model).parameters())
            if step >= warmup_steps:
                elapsed += time.perf_counter() - start
                cpu_time += time.process_time() - start_cpu
                timed_steps += 1
            step += 1
        samples = timed_steps * config.batch_size * config.gradient_accumulation_steps * accelerator.num_processes
        parameters = sum(p.numel() for p in accelerator.unwrap_model(model).parameters())
    finally:
        reset_accelerate_state()
    return {
        "stage": stage_name, "preset": preset, "mixed_precision": config.mixed_precision,
        "threads": torch.get_num_threads(), "batch_size": config.batch_size, "parameters_m": round(parameters / 1e6, 2),
        "timed_steps": timed_steps, "seconds": round(elapsed, 1), "samples_per_s": round(samples / elapsed, 2),
        "ms_per_step": round(1000 * elapsed / timed_steps, 1), "max_steps": config.max_steps,
        "projected_hours": round(config.max_steps * elapsed / timed_steps / 3600, 2),
        "malloc_tuned": os.environ.get("MALLOC_MMAP_MAX_") == "0",
        # CPU seconds used per wall second per thread: well below 1 means other processes shared the cores.
        "cpu_utilisation": round(cpu_time / (elapsed * torch.get_num_threads()), 2),
        # Throughput per CPU second of this process: what one uncontended core delivers (at 1 thread).
        "samples_per_cpu_s": round(samples / cpu_time, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: print one JSON line of `benchmark_stage` figures."""
    parser = argparse.ArgumentParser(description="Measure training throughput of one stage on synthetic data.")
    parser.add_argument("stage", choices=["clip", "prior", "decoder", "upsampler", "upsampler2"])
    parser.add_argument("--config", default="small")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup_steps", type=int, default=3)
    parser.add_argument("--mixed_precision", default=None)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--model_preset", default=None)
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("mixed_precision", "batch_size", "num_threads", "model_preset")}
    result = benchmark_stage(args.stage, args.config, args.seconds, args.warmup_steps,
                             **{k: v for k, v in overrides.items() if v is not None})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
