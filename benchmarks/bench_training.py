"""Training-step benchmark: images/s of one decoder training step (forward, backward, AdamW) on this machine.

Rows, timed interleaved in one process: this project's decoder step (`text_proj` + diffusers `UNet2DConditionModel`)
and, when `dalle2_pytorch` is importable, `dalle2-pytorch`'s `Unet` sized to the same parameter count (within 10%),
each in float32 and under bfloat16 autocast. Both sides get the same random batch, the same noising (our DDPM
schedule), an epsilon-MSE loss and one AdamW step per call; the ratio is ours / theirs in images/s, per round.

dalle2-pytorch needs torchvision, which has no CPU build here (and breaks `import diffusers`), so it only runs in the
separate environment made by `benchmarks/dalle2_env.sh`, with an import-only torchvision stub (see
`torchvision_stub`). Elsewhere its rows are replaced by a "not run: <ImportError>" status.

    bash benchmarks/dalle2_env.sh
    .venv-dalle2/bin/python benchmarks/bench_training.py --threads 1 --repeats 5
    python benchmarks/bench_training.py --preset tiny --quick --output /tmp/t.json   # our rows only
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import _common

# The only torchvision names dalle2-pytorch 1.15.6 touches at import time: `import torchvision` (vqgan_vae) and
# `import torchvision.transforms as T` (dalle2_pytorch). They are used only by classes this benchmark never builds
# (`VQGanVAE`'s VGG loss, `DALLE2`'s `T.ToPILImage`), never by `Unet`, so nothing of the stub runs in a training step.
TORCHVISION_STUB_MODULES = ("torchvision", "torchvision.transforms")
PARAMETER_TOLERANCE = 0.10  # dalle2-pytorch Unet parameters within ±10% of decoder + text_proj
MAX_TEXT_LEN = 32  # text tokens per caption in both steps (the `small` CLIP's max_text_length)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed rounds first (fp32 steps took 2-3 steps to settle: 1.4 s, 0.9 s, then 0.7 s)")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 1 warm-up and 2 timed rounds")
    parser.add_argument("--no-dalle2", action="store_true", help="skip the dalle2-pytorch rows even if importable")
    parser.add_argument("--dalle2-attention", choices=("ours", "default"), default="ours",
                        help="self-attention in dalle2-pytorch's Unet: at our decoder's attention resolutions (ours) "
                             "or only at the bottleneck (its default, self_attn=False)")
    parser.add_argument("--output", default="benchmarks/results/training.json")
    return parser


@contextmanager
def torchvision_stub() -> Iterator[None]:
    """Put empty `torchvision` modules in `sys.modules` for the duration of an import, then restore `sys.modules`.

    Only for importing dalle2-pytorch inside this benchmark process: the stub has no attributes besides the
    `transforms` submodule, so any real use of torchvision would fail loudly instead of silently doing nothing. It is
    removed afterwards so that later availability checks (diffusers, transformers) still see no torchvision.
    """
    saved = {name: sys.modules.get(name) for name in TORCHVISION_STUB_MODULES}
    if saved["torchvision"] is None:
        root = types.ModuleType("torchvision", "Import-only stub for dalle2-pytorch (bench_training.py).")
        root.__path__ = []  # a package, so `import torchvision.transforms` resolves through sys.modules
        transforms = types.ModuleType("torchvision.transforms", "Import-only stub (bench_training.py).")
        root.transforms = transforms
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = root, transforms
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def import_dalle2_unet() -> tuple[type | None, str]:
    """`(Unet class, status)` of dalle2-pytorch, or `(None, "not run: <the ImportError>")` when it cannot import."""
    try:
        with torchvision_stub():
            from dalle2_pytorch.dalle2_pytorch import Unet
            from dalle2_pytorch.version import __version__
    except ImportError as error:
        return None, (f"not run: {type(error).__name__}: {error} (dalle2-pytorch runs only in the environment made "
                      "by benchmarks/dalle2_env.sh)")
    return Unet, f"run: dalle2-pytorch {__version__} (torchvision stubbed at import, unused in the step)"


def dalle2_unet_candidates(
    num_levels: int, embed_dim: int, attention_head_dim: int, self_attn: tuple[bool, ...] | bool = False
) -> Iterator[dict[str, Any]]:
    """dalle2-pytorch `Unet` settings to search: width, multipliers with `num_levels` resolutions, blocks, cond width.

    Conditioned like our decoder: on the image embedding (4 tokens + added to the time embedding) and on the text
    token encodings; `cond_dim` is never `embed_dim` (dalle2-pytorch's Unet crashes then: its image-to-tokens
    projection becomes an identity with the wrong shape). Attention heads have our decoder's head width; `self_attn`
    (one flag per resolution, or one for all) says where the Unet adds self-attention besides its bottleneck.
    """
    if isinstance(self_attn, tuple) and len(self_attn) != num_levels:
        raise ValueError(f"self_attn needs one flag per resolution ({num_levels}), got {self_attn}.")
    multipliers = [(1, *m) for m in itertools.combinations_with_replacement((1, 2, 3, 4), num_levels - 1)]
    for dim, dim_mults, blocks, cond_dim in itertools.product((16, 32, 48, 64, 80, 96, 128), multipliers, (1, 2),
                                                               (32, 64, 128)):
        if cond_dim == embed_dim:
            continue
        yield {"dim": dim, "dim_mults": dim_mults, "num_resnet_blocks": blocks, "cond_dim": cond_dim,
               "image_embed_dim": embed_dim, "text_embed_dim": embed_dim, "cond_on_image_embeds": True,
               "cond_on_text_encodings": True, "max_text_len": MAX_TEXT_LEN, "attn_dim_head": attention_head_dim,
               "attn_heads": 4, "self_attn": self_attn}


def match_parameter_count(
    target: int, candidates: Iterable[dict[str, Any]], count: Callable[[dict[str, Any]], int],
    tolerance: float = PARAMETER_TOLERANCE, preference: Callable[[dict[str, Any]], float] | None = None,
) -> tuple[dict[str, Any], int]:
    """Among candidates whose `count(candidate)` is within `tolerance` (relative) of `target`, the most preferred one.

    Lowest `preference(candidate)` wins (all equal when not given), then the count closest to `target`, then the
    earliest candidate. Returns `(candidate, count)`; raises `ValueError` naming the closest candidate when none is
    within `tolerance`, or when there are no candidates.
    """
    if target <= 0:
        raise ValueError(f"target parameter count must be positive, got {target}.")
    counted = [(candidate, count(candidate)) for candidate in candidates]
    if not counted:
        raise ValueError("No candidate settings to match the parameter count against.")
    within = [(c, n) for c, n in counted if abs(n - target) <= tolerance * target]
    if not within:
        closest, n = min(counted, key=lambda item: abs(item[1] - target))
        raise ValueError(f"No candidate within {tolerance:.0%} of {target:,} parameters; the closest has {n:,}: "
                         f"{closest}")
    return min(within, key=lambda item: (preference(item[0]) if preference else 0.0, abs(item[1] - target)))


def width_mismatch(settings: dict[str, Any], block_out_channels: tuple[int, ...]) -> float:
    """How far a dalle2-pytorch Unet's per-resolution widths (`dim * dim_mults`) are from ours: sum of |log ratio|."""
    widths = [settings["dim"] * m for m in settings["dim_mults"]]
    if len(widths) != len(block_out_channels):
        raise ValueError(f"dim_mults {settings['dim_mults']} has {len(widths)} levels, the decoder "
                         f"{len(block_out_channels)} ({tuple(block_out_channels)}).")
    return sum(abs(math.log(w / c)) for w, c in zip(widths, block_out_channels))


def count_parameters_on_meta(factory: Callable[..., Any], kwargs: dict[str, Any]) -> int:
    """Parameter count of `factory(**kwargs)` built on the meta device (no memory, no initialisation cost)."""
    import torch

    with torch.device("meta"):
        module = factory(**kwargs)
    return sum(p.numel() for p in module.parameters())


def _random_batch(batch: int, size: int, dim: int) -> dict[str, Any]:
    """The seeded batch every row trains on: images in [-1, 1], unit CLIP embeddings, text token encodings."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    return {
        "images": torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
        "image_embeds": F.normalize(torch.randn(batch, dim, generator=g), dim=-1),
        "text_embeds": F.normalize(torch.randn(batch, dim, generator=g), dim=-1),
        "tokens": torch.randn(batch, MAX_TEXT_LEN, dim, generator=g),
        "generator": g,
    }


def _training_step(parameters: list[Any], predict: Callable[..., Any], data: dict[str, Any], bf16: bool) -> Any:
    """A closure: noise the images at random timesteps, predict the noise, MSE, backward, one AdamW step."""
    import torch
    import torch.nn.functional as F

    from unclip_diffusers.configs import build_train_scheduler

    scheduler = build_train_scheduler("epsilon")
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    images, g = data["images"], data["generator"]

    def step() -> float:
        noise = torch.randn(images.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (images.shape[0],), generator=g)
        noisy = scheduler.add_noise(images, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            prediction = predict(noisy, t)
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def make_step(decoder: Any, text_proj: Any, batch: int, bf16: bool) -> Any:
    """A closure doing one epsilon-prediction training step of the decoder (and text_proj) on random data."""
    data = _random_batch(batch, decoder.config.sample_size, text_proj.config.clip_embeddings_dim)

    def predict(noisy: Any, t: Any) -> Any:
        context, time_embeddings = text_proj(image_embeddings=data["image_embeds"], prompt_embeds=data["text_embeds"],
                                             text_encoder_hidden_states=data["tokens"])
        return decoder(noisy, t, encoder_hidden_states=context, class_labels=time_embeddings).sample

    return _training_step(list(decoder.parameters()) + list(text_proj.parameters()), predict, data, bf16)


def make_dalle2_step(unet: Any, batch: int, size: int, dim: int, bf16: bool) -> Any:
    """The same training step for a dalle2-pytorch `Unet`, conditioned on the image embedding and text encodings."""
    data = _random_batch(batch, size, dim)

    def predict(noisy: Any, t: Any) -> Any:
        return unet(noisy, t, image_embed=data["image_embeds"], text_encodings=data["tokens"])

    return _training_step(list(unet.parameters()), predict, data, bf16)


def decoder_attention_levels(decoder: Any) -> tuple[bool, ...]:
    """Which resolutions of our decoder attend (diffusers' added-KV attention: over pixels and conditioning tokens)."""
    return tuple("CrossAttn" in block for block in decoder.config.down_block_types)


def build_dalle2_unet(
    unet_cls: type, decoder: Any, text_proj: Any, attention: str = "ours"
) -> tuple[Any, dict[str, Any], int]:
    """A seeded dalle2-pytorch `Unet` with the parameter count of `decoder` + `text_proj`: (unet, settings, count).

    Of the settings within the tolerance, the one whose per-resolution widths are closest to the decoder's wins, so
    equal parameters also means a similar amount of work per pixel. `attention="ours"` gives the Unet
    self-attention at the resolutions where our decoder attends; `"default"` keeps dalle2-pytorch's default (none
    outside the bottleneck; conditioning then reaches the pixels only through the ResNet blocks' cross-attention).
    """
    if attention not in ("ours", "default"):
        raise ValueError(f"attention must be 'ours' or 'default', got {attention!r}.")
    import torch

    target = sum(p.numel() for p in decoder.parameters()) + sum(p.numel() for p in text_proj.parameters())
    head_dim = decoder.config.attention_head_dim
    candidates = dalle2_unet_candidates(len(decoder.config.block_out_channels), text_proj.config.clip_embeddings_dim,
                                        head_dim if isinstance(head_dim, int) else head_dim[0],
                                        decoder_attention_levels(decoder) if attention == "ours" else False)
    channels = tuple(decoder.config.block_out_channels)
    settings, count = match_parameter_count(target, candidates, lambda kw: count_parameters_on_meta(unet_cls, kw),
                                            preference=lambda kw: width_mismatch(kw, channels))
    torch.manual_seed(0)
    return unet_cls(**settings).train(), settings, count


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time the training-step rows interleaved, print the table and write the JSON; returns the results."""
    args = build_parser().parse_args(argv)
    _common.setup_torch(args.threads)
    if args.quick:
        args.batch, args.repeats, args.warmup = 2, 2, 1
    import copy

    import torch

    from unclip_diffusers.configs import build_components

    machine = _common.machine_info(args.threads)  # load average before the timed work

    torch.manual_seed(0)
    components = build_components(args.preset)
    decoder, text_proj = components["decoder"].train(), components["text_proj"].train()
    ours = sum(p.numel() for p in decoder.parameters()) + sum(p.numel() for p in text_proj.parameters())
    size, dim = decoder.config.sample_size, text_proj.config.clip_embeddings_dim
    results: dict[str, Any] = {
        "machine": machine, "preset": args.preset, "batch": args.batch, "sample_size": size,
        "warmup_rounds": args.warmup, "timed_rounds": args.repeats,
        "decoder_parameters": sum(p.numel() for p in decoder.parameters()),
        "text_proj_parameters": sum(p.numel() for p in text_proj.parameters()),
        "rows": {}, "ratios_ours_over_dalle2_images_per_s": {},
    }
    unet_cls, status = (None, "not run: --no-dalle2") if args.no_dalle2 else import_dalle2_unet()
    results["dalle2_pytorch"] = status
    variants = {"decoder step fp32": make_step(decoder, text_proj, args.batch, bf16=False)}
    pairs = {}
    if unet_cls is not None:
        unet, settings, count = build_dalle2_unet(unet_cls, decoder, text_proj, args.dalle2_attention)
        results["dalle2_unet"] = {"settings": settings, "parameters": count, "parameter_ratio_to_ours": count / ours}
        print(f"parameters: ours {ours:,} (decoder + text_proj), dalle2-pytorch Unet {count:,} "
              f"({count / ours:.3f}x) with {settings}")
        variants["dalle2-pytorch Unet fp32"] = make_dalle2_step(unet, args.batch, size, dim, bf16=False)
        pairs["fp32"] = ("decoder step fp32", "dalle2-pytorch Unet fp32")
    variants["decoder step bf16 autocast"] = make_step(copy.deepcopy(decoder), copy.deepcopy(text_proj), args.batch,
                                                       bf16=True)
    if unet_cls is not None:
        variants["dalle2-pytorch Unet bf16 autocast"] = make_dalle2_step(copy.deepcopy(unet), args.batch, size, dim,
                                                                         bf16=True)
        pairs["bf16 autocast"] = ("decoder step bf16 autocast", "dalle2-pytorch Unet bf16 autocast")
    times = _common.interleaved(variants, args.repeats, warmup=args.warmup)

    table = []
    for name, ts in times.items():
        stats = _common.summarize(ts)
        images_per_s = args.batch / stats["median"]
        results["rows"][name] = {"seconds_per_step": stats, "seconds": ts, "images_per_s_median": images_per_s,
                                 "images_per_s_best": args.batch / stats["min"]}
        table.append([name, _common.fmt_stats(stats, ""), f"{images_per_s:.2f}", "—"])
    for precision, (mine, theirs) in pairs.items():
        # images/s ours / theirs = their seconds / our seconds, paired by round
        ratio = _common.ratio_stats(times[theirs], times[mine])
        results["ratios_ours_over_dalle2_images_per_s"][precision] = ratio
        table[list(times).index(theirs)][3] = _common.fmt_stats(ratio, "")
    if unet_cls is None:
        table.append(["dalle2-pytorch Unet (equal params)", "—", status, "—"])
    print(_common.format_table(["row", "s/step median (min–max)", "images/s (median)",
                                "ours/theirs images/s (median, min–max)"], table))
    path = _common.write_json(results, args.output)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    _common.ensure_malloc_env()
    main()
