"""CLIP embeddings of a dataset split, computed once with the frozen CLIP and cached as safetensors.

The prior and the decoder read these instead of running CLIP every step. The cache lives in the CLIP run folder
(`<clip_dir>/embeddings/<split>-<data key>.safetensors`) and records a fingerprint of the CLIP weights: a retrained
CLIP or a changed dataset gives a different key and the embeddings are recomputed.

Convention (the pipeline follows it too): `image_embeds` and `text_embeds` are L2-normalised; the token encodings are
the text encoder's `last_hidden_state` with the tokenizer's attention mask, at the padded context length.

Storage: only the encodings of real tokens are kept (float16, packed), and padding positions come back as zeros.
The prior and the decoder mask padding out of every attention (as the pipeline does), so the values there never
reach an output; packing keeps the 133k captions of the emoji set at ~0.8 GB instead of ~2.2 GB. Each distinct
caption text is encoded and stored once (many captions name no style and are shared by a concept's styles), and
every example's captions point into that table. With `cache_captions_per_image` = K > 0 only K captions of each
image are cached (its primary caption and K - 1 others, `cached_captions`), and the prior and decoder draw among those:
~1M distinct multilingual captions at 64 tokens would otherwise take ~30 GB.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import CLIPImageProcessorPil, CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionModelWithProjection

from ..data import sample_caption
from .batches import caption_examples, clip_pixel_values, images_to_uint8, load_split

logger = logging.getLogger(__name__)

CACHE_VERSION = "3"  # 3: each distinct caption text encoded and stored once
_CLIP_PARTS = ("text_encoder", "image_encoder", "tokenizer", "feature_extractor")
IMAGE_TOWER_PARTS = ("image_encoder", "feature_extractor")  # what the image embeddings depend on


@dataclass
class FrozenCLIP:
    """The trained CLIP halves in eval mode, with their tokenizer and image processor."""

    text_encoder: CLIPTextModelWithProjection
    image_encoder: CLIPVisionModelWithProjection
    tokenizer: CLIPTokenizer
    feature_extractor: CLIPImageProcessorPil
    fingerprint: str


@dataclass
class EmbeddingCache:
    """Normalised CLIP embeddings of one split: one image row per example, one text row per caption."""

    image_embeds: torch.Tensor  # (N, D) float32, L2-normalised
    text_embeds: torch.Tensor  # (U, D) float32, L2-normalised, one row per distinct caption text
    text_tokens: torch.Tensor  # (sum of lengths, D) float16: the real tokens' encodings, text after text
    text_lengths: torch.Tensor  # (U,) int64 number of real tokens (attention mask ones) per text
    caption_text_rows: torch.Tensor  # (M,) int64: the text row of every caption; example i's are offsets[i]:offsets[i+1]
    caption_offsets: torch.Tensor  # (N + 1,) int64
    empty_text_embeds: torch.Tensor  # (D,) the empty prompt (classifier-free guidance's unconditional branch)
    empty_text_tokens: torch.Tensor  # (length, D) float16
    context_length: torch.Tensor  # () int64: the padded token count T the models expect

    def __post_init__(self) -> None:
        self._token_offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.text_lengths.cumsum(0)])

    def __len__(self) -> int:
        return self.image_embeds.shape[0]

    def caption_row(self, example: int, caption_index: int) -> int:
        """Text row of the `caption_index`-th caption of example `example`."""
        return int(self.caption_text_rows[int(self.caption_offsets[example]) + caption_index])

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.contiguous() for k, v in vars(self).items() if not k.startswith("_")}

    def token_encodings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded float32 token encodings (B, T, D) (zeros at padding) and attention masks (B, T) of caption rows."""
        length = int(self.context_length)
        positions = torch.arange(length)
        mask = positions[None] < self.text_lengths[rows][:, None]  # (B, T)
        index = (self._token_offsets[rows][:, None] + positions[None])[mask]
        hidden = torch.zeros(len(rows), length, self.text_tokens.shape[1])
        hidden[mask] = self.text_tokens[index].float()
        return hidden, mask

    def empty_conditioning(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The empty prompt's (text embedding (D,), token encodings (T, D), mask (T,))."""
        length = int(self.context_length)
        hidden = torch.zeros(length, self.empty_text_tokens.shape[1])
        hidden[: len(self.empty_text_tokens)] = self.empty_text_tokens.float()
        return self.empty_text_embeds, hidden, torch.arange(length) < len(self.empty_text_tokens)

    def conditioning(
        self, rows: torch.Tensor, drop: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(text embeddings, token encodings, masks) of caption rows; rows where `drop` is set get the empty prompt's."""
        embeds = self.text_embeds[rows]
        hidden, mask = self.token_encodings(rows)
        if drop is not None:
            empty_embeds, empty_hidden, empty_mask = self.empty_conditioning()
            embeds = torch.where(drop[:, None], empty_embeds[None], embeds)
            hidden = torch.where(drop[:, None, None], empty_hidden[None], hidden)
            mask = torch.where(drop[:, None], empty_mask[None], mask)
        return embeds, hidden, mask


def clip_final_dir(clip_dir: str | os.PathLike) -> Path:
    """The folder with the trained CLIP parts: `<clip_dir>/final`, or `clip_dir` itself if it holds them."""
    clip_dir = Path(clip_dir)
    for candidate in (clip_dir / "final", clip_dir):
        if all((candidate / part).is_dir() for part in _CLIP_PARTS):
            return candidate
    raise ValueError(
        f"No trained CLIP in {str(clip_dir)!r} (expected {list(_CLIP_PARTS)} in it or in its final/ folder); "
        "train one first with `unclip-train clip`."
    )


def fingerprint_files(folder: str | os.PathLike, parts: tuple[str, ...] = _CLIP_PARTS) -> str:
    """SHA-256 over the names and bytes of every file under `folder/<part>` (identifies trained weights)."""
    digest = hashlib.sha256()
    for part in parts:
        for path in sorted((Path(folder) / part).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(folder)).encode())
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
    return digest.hexdigest()


def load_frozen_clip(clip_dir: str | os.PathLike) -> FrozenCLIP:
    """Load the trained CLIP of a CLIP run folder, frozen and in eval mode."""
    final = clip_final_dir(clip_dir)
    text_encoder = CLIPTextModelWithProjection.from_pretrained(final / "text_encoder").eval().requires_grad_(False)
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(final / "image_encoder").eval().requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(final / "tokenizer")
    feature_extractor = CLIPImageProcessorPil.from_pretrained(final / "feature_extractor")
    return FrozenCLIP(text_encoder, image_encoder, tokenizer, feature_extractor, fingerprint_files(final))


def cached_captions(caption: str, captions: list[str], per_image: int) -> list[str]:
    """The captions of one image that the prior/decoder cache: all (`per_image` 0), else the primary one first plus
    `per_image - 1` others drawn with a generator seeded by the primary caption, in their list order.

    Drawn rather than the first ones: `data/captions.py` lists English first (shuffled) and then each language, so
    the first few would all be English; a seeded draw keeps every language's share of the list on average.
    """
    if per_image <= 0 or len(captions) <= per_image:
        return list(captions)
    primary = [caption] if caption in captions else []
    others = [i for i, c in enumerate(captions) if c != caption]
    seed = int.from_bytes(hashlib.sha256(caption.encode()).digest()[:8], "big")
    chosen = sorted(random.Random(seed).sample(others, per_image - len(primary)))
    return primary + [captions[i] for i in chosen]


def restrict_captions(examples: list[dict], per_image: int) -> list[dict]:
    """`caption_examples` rows whose `captions` are only the cached ones (`cached_captions`), so draws stay in the cache."""
    return [{**e, "captions": cached_captions(e["caption"], e["captions"], per_image)} for e in examples]


def dataset_key(data, image_column: str = "image", per_image: int = 0) -> str:
    """A short hash of a split's identity: its datasets fingerprint, length, every caption and the cached share."""
    digest = hashlib.sha256()
    digest.update(f"{CACHE_VERSION}|{getattr(data, '_fingerprint', '')}|{len(data)}|{image_column}".encode())
    digest.update(json.dumps([list(c) for c in data["captions"]]).encode())
    if per_image > 0:  # 0 (all captions) keeps the key of caches written before the setting existed
        digest.update(f"|captions_per_image={per_image}".encode())
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_tokens(
    text_encoder: CLIPTextModelWithProjection, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised text embeddings (B, D), packed float16 encodings of the real tokens, and their counts (B,)."""
    mask = attention_mask.bool()
    if not torch.all(mask[:, :-1] >= mask[:, 1:]):
        raise ValueError("The tokenizer must pad on the right (the attention masks are not prefixes).")
    output = text_encoder(input_ids=input_ids, attention_mask=attention_mask)
    embeds = F.normalize(output.text_embeds.float(), dim=-1)
    return embeds, output.last_hidden_state[mask].half(), mask.sum(1)  # tokens: (real tokens, D), text after text


@torch.no_grad()
def encode_captions(
    clip: FrozenCLIP, captions: list[str], batch_size: int = 256, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised text embeddings (M, D), packed float16 encodings of the real tokens, and their counts (M,)."""
    embeds, tokens_out, lengths = [], [], []
    for start in tqdm(range(0, len(captions), batch_size), desc="CLIP text", disable=not progress, leave=False):
        tokens = clip.tokenizer(
            captions[start : start + batch_size], padding="max_length", max_length=clip.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        )
        for out, part in zip((embeds, tokens_out, lengths),
                             encode_tokens(clip.text_encoder, tokens.input_ids, tokens.attention_mask)):
            out.append(part)
    return torch.cat(embeds), torch.cat(tokens_out), torch.cat(lengths)


@torch.no_grad()
def encode_images(clip: FrozenCLIP, images: torch.Tensor, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Normalised image embeddings (N, D) of uint8 images already at the CLIP resolution."""
    fx = clip.feature_extractor
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="CLIP images", disable=not progress, leave=False):
        pixels = clip_pixel_values(images[start : start + batch_size], fx.image_mean, fx.image_std)
        out.append(F.normalize(clip.image_encoder(pixel_values=pixels).image_embeds.float(), dim=-1))
    return torch.cat(out)


def compute_embeddings(clip: FrozenCLIP, data, progress: bool = True, per_image: int = 0) -> EmbeddingCache:
    """Embed every image and the cached captions (`cached_captions`) of a split (`image`, `caption`, `captions`)."""
    size = clip.image_encoder.config.image_size
    images = images_to_uint8(data["image"], size, desc="decoding images for CLIP")
    caption_lists = [e["captions"] for e in restrict_captions(caption_examples(data), per_image)]
    rows: dict[str, int] = {}  # each distinct text once, in order of first appearance
    caption_text_rows = torch.tensor([rows.setdefault(c, len(rows)) for captions in caption_lists for c in captions],
                                     dtype=torch.long)
    offsets = torch.tensor([0] + [len(c) for c in caption_lists]).cumsum(0)
    text_embeds, text_tokens, text_lengths = encode_captions(clip, list(rows), progress=progress)
    empty_embeds, empty_tokens, _ = encode_captions(clip, [""])
    return EmbeddingCache(
        image_embeds=encode_images(clip, images, progress=progress),
        text_embeds=text_embeds,
        text_tokens=text_tokens,
        text_lengths=text_lengths,
        caption_text_rows=caption_text_rows,
        caption_offsets=offsets,
        empty_text_embeds=empty_embeds[0],
        empty_text_tokens=empty_tokens,
        context_length=torch.tensor(clip.tokenizer.model_max_length),
    )


def cache_path(clip_dir: str | os.PathLike, split: str, data, per_image: int = 0) -> Path:
    """Where the embeddings of `split` of `data` (`per_image` captions each, 0 = all) are cached for this CLIP run."""
    return Path(clip_dir) / "embeddings" / f"{split}-{dataset_key(data, per_image=per_image)}.safetensors"


def load_or_compute_embeddings(
    clip_dir: str | os.PathLike, data, split: str, write: bool = True, per_image: int = 0
) -> EmbeddingCache:
    """The cached embeddings of a split if they match this CLIP's weights, otherwise computed (and cached).

    `per_image` > 0 caches only that many captions of each image (`cached_captions`); 0 caches all of them.
    """
    clip_dir = Path(clip_dir)
    final = clip_final_dir(clip_dir)
    fingerprint = fingerprint_files(final)
    path = cache_path(clip_dir, split, data, per_image)
    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("clip_fingerprint") == fingerprint and metadata.get("version") == CACHE_VERSION:
                cache = EmbeddingCache(**{k: f.get_tensor(k) for k in f.keys()})
                if len(cache) == len(data):
                    return cache
        logger.info("Cached embeddings %s are stale (CLIP or data changed): recomputing.", path)
    clip = load_frozen_clip(clip_dir)
    cache = compute_embeddings(clip, data, per_image=per_image)
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")  # per process: two runs may fill the same cache at once
        metadata = {"clip_fingerprint": fingerprint, "version": CACHE_VERSION, "split": split, "examples": str(len(data)),
                    "captions_per_image": str(per_image)}  # fmt: skip
        save_file(cache.to_tensors(), str(temporary), metadata=metadata)
        os.replace(temporary, path)
        logger.info("Cached %d image and %d caption embeddings (%d distinct texts) in %s", len(cache),
                    len(cache.caption_text_rows), cache.text_embeds.shape[0], path)
    return cache


def resolve_clip_dir(config) -> Path:
    """The CLIP run a prior/decoder config points at (`clip_dir`, default `runs/clip-<model_preset>`)."""
    return Path(config.clip_dir or os.path.join("runs", f"clip-{config.model_preset}"))


def split_with_embeddings(config, split: str, limit: int, accelerator=None):
    """A split of the configured dataset, its cached embeddings (computed by the main process first) and its
    `caption_examples` restricted to the cached captions (`config.cache_captions_per_image`)."""
    data = load_split(config, split, limit)
    clip_dir = resolve_clip_dir(config)
    per_image = config.cache_captions_per_image
    examples = restrict_captions(caption_examples(data), per_image)
    if accelerator is None:
        return data, load_or_compute_embeddings(clip_dir, data, split, per_image=per_image), examples
    with accelerator.main_process_first():
        cache = load_or_compute_embeddings(clip_dir, data, split, write=accelerator.is_main_process, per_image=per_image)
    return data, cache, examples


def primary_caption_rows(cache: EmbeddingCache, examples: list[dict], indices: torch.Tensor) -> torch.Tensor:
    """Cache rows of each example's primary caption (validation uses these)."""
    rows = [cache.caption_row(i, examples[i]["captions"].index(examples[i]["caption"])) for i in indices.tolist()]
    return torch.tensor(rows, dtype=torch.long)


def sample_caption_rows(cache: EmbeddingCache, examples: list[dict], indices: torch.Tensor, rng) -> torch.Tensor:
    """Cache rows of one caption per example, each drawn with `sample_caption` (alternative captions per step)."""
    rows = []
    for i in indices.tolist():
        captions = examples[i]["captions"]
        rows.append(cache.caption_row(i, captions.index(sample_caption(examples[i], rng))))
    return torch.tensor(rows, dtype=torch.long)

