"""`unclip-train pack`: everything the decoder or the upsampler trains on, in one safetensors file for a lent GPU.

A pack holds, per split (`train`, and the first examples of `heldout_pairs` for validation), the images at the
stage's resolution (uint8, lzma-compressed: emoji are mostly flat colour and shrink ~3.5x), the family and slice
of every image (family-balanced sampling, `data/sampling.py`) and, for the decoder, the cached CLIP embeddings the
decoder and `text_proj` read: image embeddings (fp16), every caption's text row and the distinct caption texts.
The caption conditioning is stored one of two ways (`text`):

- `"encodings"`: the cached text embeddings and token encodings themselves (fp16), ~8 KB per distinct text;
- `"tokens"`: the token ids (int16) plus the frozen CLIP text tower (fp16, ~9 MB once); the encodings are computed
  when the pack is loaded (a second on a GPU). The emoji set's ~100k distinct captions only fit this way.

Training reads a pack given as `--data_path FILE.safetensors`: then neither the dataset nor the CLIP run is needed.
"""

from __future__ import annotations

import json
import logging
import lzma
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save

from ..configs import get_model_config
from .batches import TRAIN_SPLIT, VALIDATION_SPLIT, column_images, images_to_uint8, load_split
from .embeddings import EmbeddingCache, clip_final_dir, encode_tokens, fingerprint_files, load_frozen_clip, \
    load_or_compute_embeddings

logger = logging.getLogger(__name__)

PACK_VERSION = "1"
PACK_SUFFIX = ".safetensors"
PACK_LIMIT_MIB = 50.0  # what a lent GPU's working tree (64 MiB) leaves beside the code and the weights
PACK_STAGES = ("decoder", "upsampler")
TEXT_MODES = ("tokens", "encodings")
TABLE_COLUMNS = ("family", "slice")  # per-image columns kept when the dataset has them
MIB = 1 << 20


def is_pack(path: str | os.PathLike) -> bool:
    """Whether a `data_path` names a pack file rather than a dataset folder."""
    return str(path).endswith(PACK_SUFFIX)


@dataclass
class PackedTable:
    """The columns a stage reads from a dataset split (`caption`, `captions`, `family`, `slice`), as lists."""

    columns: dict[str, list] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def __getitem__(self, name: str) -> list:
        if name not in self.columns:
            raise KeyError(f"The pack has no {name!r} column; it has {self.column_names}.")
        return self.columns[name]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))


@dataclass
class PackedSplit:
    """One split of a pack: its table, its uint8 images (N, 3, S, S) and, for the decoder, its CLIP embeddings."""

    table: PackedTable
    images: torch.Tensor
    cache: EmbeddingCache | None = None


@dataclass
class Pack:
    """A loaded pack: its splits and where its CLIP embeddings came from."""

    stage: str
    model_preset: str
    splits: dict[str, PackedSplit]
    clip_dir: str = ""
    clip_fingerprint: str = ""


# ---- writing ------------------------------------------------------------------------------------------------------


def _blob(data: bytes) -> torch.Tensor:
    """lzma-compressed bytes as a uint8 tensor."""
    return torch.frombuffer(bytearray(lzma.compress(data, preset=6)), dtype=torch.uint8)


def _unblob(tensor: torch.Tensor) -> bytes:
    return lzma.decompress(tensor.numpy().tobytes())


def subset_cache(cache: EmbeddingCache, rows: list[int]) -> EmbeddingCache:
    """The embeddings of examples `rows` only, with the text table reduced to the texts they use."""
    offsets = cache.caption_offsets
    caption_rows = [cache.caption_text_rows[int(offsets[r]) : int(offsets[r + 1])] for r in rows]
    flat = torch.cat(caption_rows) if caption_rows else torch.empty(0, dtype=torch.long)
    used, remapped = torch.unique(flat, return_inverse=True)  # sorted text rows, and each caption's new row
    starts = cache._token_offsets
    tokens = [cache.text_tokens[int(starts[u]) : int(starts[u + 1])] for u in used.tolist()]
    return EmbeddingCache(
        image_embeds=cache.image_embeds[rows],
        text_embeds=cache.text_embeds[used],
        text_tokens=torch.cat(tokens) if tokens else cache.text_tokens[:0],
        text_lengths=cache.text_lengths[used],
        caption_text_rows=remapped.long(),
        caption_offsets=torch.tensor([0] + [len(c) for c in caption_rows]).cumsum(0),
        empty_text_embeds=cache.empty_text_embeds,
        empty_text_tokens=cache.empty_text_tokens,
        context_length=cache.context_length,
    )


def _distinct_texts(captions: list[list[str]], cache: EmbeddingCache) -> list[str]:
    """The text of every row of `cache.text_embeds`, read off the examples' captions."""
    texts = [""] * cache.text_embeds.shape[0]
    for example, example_captions in enumerate(captions):
        for index, caption in enumerate(example_captions):
            texts[cache.caption_row(example, index)] = caption
    return texts


def _token_ids(clip, texts: list[str]) -> torch.Tensor:
    """The real tokens' ids of every text, text after text (as `EmbeddingCache.text_tokens` lays out encodings)."""
    tokens = clip.tokenizer(texts, padding="max_length", max_length=clip.tokenizer.model_max_length, truncation=True,
                            return_tensors="pt")
    return tokens.input_ids[tokens.attention_mask.bool()]


def _split_tensors(split: str, data, images: torch.Tensor, cache: EmbeddingCache | None, text: str, clip) -> dict:
    """A split's tensors under `<split>.` names."""
    columns = {name: list(data[name]) for name in TABLE_COLUMNS if name in data.column_names}
    tensors = {"images": _blob(images.numpy().tobytes()), "columns": _blob(json.dumps(columns).encode())}
    if cache is not None:
        captions = [list(c) for c in data["captions"]]
        texts = _distinct_texts(captions, cache)
        tensors.update(
            primary=torch.tensor([c.index(p) for c, p in zip(captions, data["caption"])], dtype=torch.int16),
            texts=_blob(json.dumps(texts).encode()),
            image_embeds=cache.image_embeds.half(),
            caption_text_rows=cache.caption_text_rows.int(),
            caption_offsets=cache.caption_offsets.int(),
            text_lengths=cache.text_lengths.short(),
        )
        if text == "encodings":
            tensors.update(text_embeds=cache.text_embeds.half(), text_tokens=cache.text_tokens.half())
        else:
            ids = _token_ids(clip, texts)
            if ids.numel() != int(cache.text_lengths.sum()):
                raise ValueError("The CLIP tokenizer gives other token counts than the cached embeddings hold; "
                                 "recompute them with `unclip-train embed`.")
            tensors["text_ids"] = ids.short() if (ids.numel() == 0 or int(ids.max()) < 2**15) else ids.int()
    return {f"{split}.{k}": v.contiguous() for k, v in tensors.items()}


def _read_split(stage: str, data_path: str, split: str, limit: int, size: int, column: str, image_column: str,
                caption_column: str, clip_dir: str, rows: list[int] | None = None):
    """(data, images, cache) of one split, restricted to `rows` (or its first `limit` examples)."""
    from types import SimpleNamespace

    settings = SimpleNamespace(data_path=data_path, image_column=image_column, caption_column=caption_column)
    data = load_split(settings, split)
    if stage == "upsampler":
        if column not in data.column_names:
            raise ValueError(f"Column {column!r} not in {data_path!r}; it has {data.column_names}.")
        present = [r for r, valid in enumerate(data.data.column(column).is_valid().to_pylist()) if valid]
        chosen = [present[r] for r in rows] if rows is not None else present[: limit or None]
        data = data.select(chosen)
        images, _ = column_images(data, column, size, desc=f"decoding {split} {column}")
        return data, images, None
    cache = load_or_compute_embeddings(clip_dir, data, split)
    chosen = rows if rows is not None else list(range(min(limit, len(data)) if limit else len(data)))
    data = data.select(chosen)
    return data, images_to_uint8(data["image"], size, desc=f"decoding {split} images"), subset_cache(cache, chosen)


def _count_rows(stage: str, data_path: str, column: str, image_column: str, caption_column: str) -> int:
    from types import SimpleNamespace

    data = load_split(SimpleNamespace(data_path=data_path, image_column=image_column, caption_column=caption_column),
                      TRAIN_SPLIT)
    return len(data) - (data.data.column(column).null_count if stage == "upsampler" else 0)


def pack_stage(
    stage: str,
    data_path: str | os.PathLike,
    output: str | os.PathLike,
    clip_dir: str | os.PathLike = "",
    model_preset: str = "small",
    text: str = "tokens",
    max_images: int = 0,
    num_validation_examples: int = 64,
    max_mib: float = PACK_LIMIT_MIB,
    high_res_column: str = "image_256",
    image_column: str = "image",
    caption_column: str = "caption",
    seed: int = 0,
) -> Path:
    """Write what `stage` trains on to the pack `output` and return its path; refuse if over `max_mib` MiB.

    Args:
        stage: "decoder" or "upsampler".
        data_path: the dataset folder (`unclip-data build`'s output).
        output: the pack file to write (must end in `.safetensors`).
        clip_dir: the decoder's CLIP run (its cached embeddings are packed); unused by the upsampler.
        model_preset: sets the image size (the decoder's `sample_size`, the upsampler's output size).
        text: "tokens" (token ids + the text tower) or "encodings" (cached fp16 encodings); decoder only.
        max_images: pack a seeded random subset of this many training images (0 = all).
        num_validation_examples: held-out (`heldout_pairs`) examples packed for validation (0 = none).
        max_mib: the size limit in MiB.
        high_res_column: the upsampler's target column.
        image_column, caption_column: the dataset's columns, as for training.
        seed: seeds the subset.
    """
    if stage not in PACK_STAGES:
        raise ValueError(f"Cannot pack stage {stage!r}; choose one of {list(PACK_STAGES)}.")
    if text not in TEXT_MODES:
        raise ValueError(f"text must be one of {list(TEXT_MODES)}, got {text!r}.")
    if not is_pack(output):
        raise ValueError(f"The pack file must end in {PACK_SUFFIX!r}, got {str(output)!r}.")
    if max_images < 0 or num_validation_examples < 0:
        raise ValueError(f"max_images and num_validation_examples must be >= 0, got {max_images} and "
                         f"{num_validation_examples}.")
    model = get_model_config(model_preset)
    if stage == "upsampler" and model.super_res is None:
        raise ValueError(f"Model preset {model_preset!r} has no upsampler.")
    size = model.decoder.sample_size if stage == "decoder" else model.super_res.sample_size
    data_path = str(data_path)
    clip_dir = str(clip_dir or os.path.join("runs", f"clip-{model_preset}"))
    total = _count_rows(stage, data_path, high_res_column, image_column, caption_column)
    rows = None
    if max_images and max_images < total:
        rows = sorted(np.random.default_rng(seed).permutation(total)[:max_images].tolist())
    clip = load_frozen_clip(clip_dir) if stage == "decoder" and text == "tokens" else None
    tensors: dict[str, torch.Tensor] = {}
    splits = [(TRAIN_SPLIT, 0, rows)] + ([(VALIDATION_SPLIT, num_validation_examples, None)]
                                         if num_validation_examples else [])
    shapes: dict[str, list[int]] = {}
    cache = None
    for split, limit, chosen in splits:
        data, images, cache = _read_split(stage, data_path, split, limit, size, high_res_column, image_column,
                                          caption_column, clip_dir, rows=chosen)
        shapes[split] = list(images.shape)
        tensors.update(_split_tensors(split, data, images, cache, text, clip))
    metadata = {"version": PACK_VERSION, "stage": stage, "model_preset": model_preset, "image_size": str(size),
                "splits": json.dumps(shapes), "text": text if stage == "decoder" else "none",
                "source": data_path, "packed_of": f"{shapes[TRAIN_SPLIT][0]}/{total}"}
    if stage == "decoder":
        final = clip_final_dir(clip_dir)
        metadata.update(clip_dir=clip_dir, clip_fingerprint=fingerprint_files(final))
        tensors.update(empty_text_embeds=cache.empty_text_embeds.half(), empty_text_tokens=cache.empty_text_tokens.half(),
                       context_length=cache.context_length.long())
        if clip is not None:
            metadata.update(text_encoder_config=clip.text_encoder.config.to_json_string(),
                            pad_token_id=str(clip.tokenizer.pad_token_id))
            tensors.update({f"text_encoder.{k}": v.half().contiguous()
                            for k, v in clip.text_encoder.state_dict().items()})
    payload = save(tensors, metadata=metadata)
    _check_size(len(payload), max_mib, tensors, shapes[TRAIN_SPLIT][0], stage, text)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_bytes(payload)
    os.replace(temporary, output)
    logger.info("Packed %s images of %s for the %s into %s (%.1f MiB).", metadata["packed_of"], data_path, stage,
                output, len(payload) / MIB)
    return output


def _check_size(size: int, max_mib: float, tensors: dict[str, torch.Tensor], images: int, stage: str,
                text: str) -> None:
    """Raise a `ValueError` saying by how much a pack of `size` bytes is over `max_mib`, and what would fit."""
    if size <= max_mib * MIB:
        return
    parts: dict[str, int] = {}
    for name, tensor in tensors.items():
        key = name.split(".", 1)[-1] if not name.startswith("text_encoder.") else "text_encoder"
        parts[key] = parts.get(key, 0) + tensor.numel() * tensor.element_size()
    largest = ", ".join(f"{k} {v / MIB:.1f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:4])
    fits = int(images * max_mib * MIB / size * 0.95)
    hints = [f"--max_images {fits} (a random subset that would fit)"]
    if stage == "decoder" and text == "encodings":
        hints.insert(0, "--text tokens (token ids and the text tower instead of fp16 encodings)")
    hints.append("--num_validation_examples 0")
    raise ValueError(f"The {stage} pack would be {size / MIB:.1f} MiB, {size / MIB - max_mib:.1f} MiB over the "
                     f"{max_mib:g} MiB limit (largest parts, MiB: {largest}); try {' or '.join(hints)}.")


# ---- reading ------------------------------------------------------------------------------------------------------


def _text_encoder(handle, metadata: dict[str, str], device: torch.device | str):
    """The pack's frozen CLIP text tower, in float32 on `device`."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig.from_dict(json.loads(metadata["text_encoder_config"]))
    encoder = CLIPTextModelWithProjection(config)
    state = {k[len("text_encoder."):]: handle.get_tensor(k).float() for k in handle.keys()
             if k.startswith("text_encoder.")}
    encoder.load_state_dict(state, strict=True)
    return encoder.to(device).eval().requires_grad_(False)


@torch.no_grad()
def _encode_ids(encoder, ids: torch.Tensor, lengths: torch.Tensor, context: int, pad: int,
                device: torch.device | str, batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Text embeddings (U, D) and packed fp16 token encodings of packed token ids, as `encode_captions` gives."""
    starts = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    embeds, tokens = [], []
    positions = torch.arange(context)
    for first in range(0, len(lengths), batch_size):
        batch = lengths[first : first + batch_size]
        mask = positions[None] < batch[:, None]  # (B, T)
        input_ids = torch.full(mask.shape, pad, dtype=torch.long)
        input_ids[mask] = ids[int(starts[first]) : int(starts[first + len(batch)])].long()
        embed, token, _ = encode_tokens(encoder, input_ids.to(device), mask.long().to(device))
        embeds.append(embed.cpu())
        tokens.append(token.cpu())
    return torch.cat(embeds), torch.cat(tokens)


def load_pack(path: str | os.PathLike, stage: str, device: torch.device | str = "cpu") -> Pack:
    """Read a pack written by `pack_stage` for `stage`; token ids are encoded on `device`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Pack {str(path)!r} does not exist; write it with `unclip-train pack`.")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("version") != PACK_VERSION:
            raise ValueError(f"{str(path)!r} is not a version-{PACK_VERSION} pack (version "
                             f"{metadata.get('version')!r}); write it again with `unclip-train pack`.")
        if metadata["stage"] != stage:
            raise ValueError(f"{str(path)!r} packs the {metadata['stage']}'s data, not the {stage}'s.")
        get = handle.get_tensor
        encoder = _text_encoder(handle, metadata, device) if metadata["text"] == "tokens" else None
        splits = {}
        for split, shape in json.loads(metadata["splits"]).items():
            images = torch.frombuffer(bytearray(_unblob(get(f"{split}.images"))), dtype=torch.uint8).view(*shape)
            table = PackedTable(json.loads(_unblob(get(f"{split}.columns"))))
            cache = None
            if stage == "decoder":
                cache, captions, primary = _read_cache(get, split, metadata, encoder, device)
                table.columns["captions"] = captions
                table.columns["caption"] = [c[p] for c, p in zip(captions, primary)]
            splits[split] = PackedSplit(table, images, cache)
    return Pack(stage, metadata["model_preset"], splits, metadata.get("clip_dir", ""),
                metadata.get("clip_fingerprint", ""))


def _read_cache(get, split: str, metadata: dict[str, str], encoder, device) -> tuple[EmbeddingCache, list, list]:
    """A decoder split's `EmbeddingCache` (float32 embeddings), its examples' captions and primary caption indices."""
    lengths = get(f"{split}.text_lengths").long()
    context = int(get("context_length"))
    if encoder is not None:
        text_embeds, text_tokens = _encode_ids(encoder, get(f"{split}.text_ids"), lengths, context,
                                               int(metadata["pad_token_id"]), device)
    else:
        text_embeds, text_tokens = get(f"{split}.text_embeds").float(), get(f"{split}.text_tokens")
    cache = EmbeddingCache(
        image_embeds=get(f"{split}.image_embeds").float(),
        text_embeds=text_embeds,
        text_tokens=text_tokens,
        text_lengths=lengths,
        caption_text_rows=get(f"{split}.caption_text_rows").long(),
        caption_offsets=get(f"{split}.caption_offsets").long(),
        empty_text_embeds=get("empty_text_embeds").float(),
        empty_text_tokens=get("empty_text_tokens"),
        context_length=torch.tensor(context),
    )
    texts = json.loads(_unblob(get(f"{split}.texts")))
    offsets, rows = cache.caption_offsets.tolist(), cache.caption_text_rows.tolist()
    captions = [[texts[r] for r in rows[offsets[i] : offsets[i + 1]]] for i in range(len(cache))]
    return cache, captions, get(f"{split}.primary").tolist()


def head(split: PackedSplit, limit: int) -> PackedSplit:
    """The first `limit` examples of a packed split (all of them when `limit` is 0)."""
    if not limit or limit >= len(split.images):
        return split
    rows = list(range(limit))
    table = PackedTable({k: v[:limit] for k, v in split.table.columns.items()})
    cache = subset_cache(split.cache, rows) if split.cache is not None else None
    return PackedSplit(table, split.images[:limit], cache)


def pack_summary(path: str | os.PathLike) -> dict[str, Any]:
    """A pack's metadata (stage, splits and their shapes, text mode, source) without loading its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def check_pack_size(pack: Pack, config, image_size: int) -> None:
    """Refuse a pack whose images are not at the resolution the configured model trains at."""
    packed = pack.splits[TRAIN_SPLIT].images.shape[-1]
    if packed != image_size:
        raise ValueError(f"The pack holds {packed}-px images but model preset {config.model_preset!r} trains the "
                         f"{pack.stage} at {image_size} px; pack again with --config {config.model_preset}.")
