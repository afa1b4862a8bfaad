"""The real CLIP byte-level BPE tokenizer, built offline from the merges file shipped in this package.

OpenAI's CLIP vocabulary is 256 byte symbols, the same 256 with an end-of-word marker, 48,894 merges and two
special tokens (49,408 ids). A smaller vocabulary keeps only the first ``num_merges`` merges, so small models
share CLIP's ids for the most frequent words while their embedding tables stay small.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from importlib import resources

from transformers import CLIPTokenizer

FULL_NUM_MERGES = 48894
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"


@lru_cache(maxsize=1)
def _byte_symbols() -> list[str]:
    """Printable stand-ins for the 256 byte values, in CLIP's (GPT-2's) order: printable bytes keep their own
    character, the rest are mapped to code points from 256 upwards."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in printable] + [symbols[b] for b in range(256) if b not in printable]


@lru_cache(maxsize=1)
def _all_merges() -> tuple[str, ...]:
    text = resources.files("unclip_diffusers.assets.clip_bpe").joinpath("merges.txt").read_text(encoding="utf-8")
    lines = [line for line in text.split("\n") if line and not line.startswith("#version")]
    if len(lines) != FULL_NUM_MERGES:
        raise RuntimeError(f"merges.txt holds {len(lines)} merges, expected {FULL_NUM_MERGES}; the package is damaged.")
    return tuple(lines)


def clip_vocab_size(num_merges: int = FULL_NUM_MERGES) -> int:
    """Number of token ids of a CLIP vocabulary with ``num_merges`` merges (49,408 for the full one)."""
    return 512 + num_merges + 2


def write_clip_tokenizer_files(save_directory: str, num_merges: int = FULL_NUM_MERGES) -> None:
    """Write ``vocab.json`` and ``merges.txt`` for a CLIP vocabulary truncated to ``num_merges`` merges."""
    if not 0 <= num_merges <= FULL_NUM_MERGES:
        raise ValueError(f"num_merges must be between 0 and {FULL_NUM_MERGES}, got {num_merges}.")
    merges = _all_merges()[:num_merges]
    symbols = _byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split(" ")) for m in merges]
    vocab += [BOS_TOKEN, EOS_TOKEN]
    os.makedirs(save_directory, exist_ok=True)
    with open(os.path.join(save_directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({token: index for index, token in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(save_directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def build_clip_tokenizer(num_merges: int = FULL_NUM_MERGES, model_max_length: int = 77) -> CLIPTokenizer:
    """Return a ``CLIPTokenizer`` with CLIP's ids for the first ``num_merges`` merges.

    Loaded through ``from_pretrained`` on a temporary folder because in transformers 5 the constructor with file
    paths silently builds a 2-token vocabulary.
    """
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer_files(tmp, num_merges)
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=model_max_length)
