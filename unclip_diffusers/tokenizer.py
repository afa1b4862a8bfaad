"""The real CLIP byte-level BPE tokenizer, built offline from the merges file shipped in this package.

OpenAI's CLIP vocabulary is 256 byte symbols, the same 256 with an end-of-word marker, 48,894 merges and two
special tokens (49,408 ids). A smaller vocabulary keeps only the first ``num_merges`` merges, so small models
share CLIP's ids for the most frequent words while their embedding tables stay small. ``extra_merges`` appends
merges learned from the non-English captions (``assets/clip_bpe/extra_merges.txt``, written by
``python -m unclip_diffusers.tokenizer_build``) after CLIP's first merges: CLIP's ids stay, the specials move last.
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


EXTRA_MERGES_FILE = "extra_merges.txt"


def read_merges_file(text: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """The ``#key: value`` header lines (at the top) and the merges (one ``left right`` pair a line) of a merges file."""
    header, merges = {}, []
    for line in text.split("\n"):
        if line.startswith("#") and not merges:
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        elif line:
            merges.append(line)
    return header, tuple(merges)


@lru_cache(maxsize=1)
def _extra_merges_asset() -> tuple[int, tuple[str, ...]]:
    """CLIP's merge count the committed extra merges were learned on top of, and the extra merges."""
    path = resources.files("unclip_diffusers.assets.clip_bpe").joinpath(EXTRA_MERGES_FILE)
    header, merges = read_merges_file(path.read_text(encoding="utf-8"))
    if "base_merges" not in header:
        raise RuntimeError(f"{EXTRA_MERGES_FILE} has no '#base_merges:' header line; the package is damaged.")
    return int(header["base_merges"]), merges


def clip_merges(num_merges: int = FULL_NUM_MERGES, extra_merges: int = 0) -> list[str]:
    """CLIP's first ``num_merges`` merges followed by the first ``extra_merges`` committed caption merges."""
    if not 0 <= num_merges <= FULL_NUM_MERGES:
        raise ValueError(f"num_merges must be between 0 and {FULL_NUM_MERGES}, got {num_merges}.")
    merges = list(_all_merges()[:num_merges])
    if extra_merges:
        base, extra = _extra_merges_asset()
        if num_merges != base:
            raise ValueError(f"extra_merges were learned on top of CLIP's first {base} merges; set num_merges={base} "
                             f"(got {num_merges}) or extra_merges=0.")  # fmt: skip
        if not 0 < extra_merges <= len(extra):
            raise ValueError(f"extra_merges must be between 0 and {len(extra)}, got {extra_merges}.")
        merges += extra[:extra_merges]
    return merges


def clip_vocab_size(num_merges: int = FULL_NUM_MERGES, extra_merges: int = 0) -> int:
    """Number of token ids of a CLIP vocabulary with ``num_merges`` (+ ``extra_merges``) merges (49,408 for the full one)."""
    return 512 + num_merges + extra_merges + 2


def write_tokenizer_files(save_directory: str, merges: list[str] | tuple[str, ...]) -> None:
    """Write ``vocab.json`` and ``merges.txt`` of a byte-level BPE: byte symbols, one new id per merge, BOS, EOS."""
    symbols = _byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split(" ")) for m in merges]
    vocab += [BOS_TOKEN, EOS_TOKEN]
    if len(set(vocab)) != len(vocab):
        repeated = sorted({t for t in vocab if vocab.count(t) > 1})[:5]
        raise ValueError(f"These merges make tokens that already exist ({repeated}); every merge needs a new token.")
    os.makedirs(save_directory, exist_ok=True)
    with open(os.path.join(save_directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({token: index for index, token in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(save_directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def write_clip_tokenizer_files(save_directory: str, num_merges: int = FULL_NUM_MERGES, extra_merges: int = 0) -> None:
    """Write ``vocab.json`` and ``merges.txt`` for CLIP's first ``num_merges`` merges (+ ``extra_merges``)."""
    write_tokenizer_files(save_directory, clip_merges(num_merges, extra_merges))


def tokenizer_from_merges(merges: list[str] | tuple[str, ...], model_max_length: int = 77) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` over these merges (see `write_tokenizer_files`).

    Loaded through ``from_pretrained`` on a temporary folder because in transformers 5 the constructor with file
    paths silently builds a 2-token vocabulary.
    """
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(tmp, merges)
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=model_max_length)


def build_clip_tokenizer(num_merges: int = FULL_NUM_MERGES, model_max_length: int = 77,
                         extra_merges: int = 0) -> CLIPTokenizer:  # fmt: skip
    """Return a ``CLIPTokenizer`` with CLIP's ids for the first ``num_merges`` merges, then ``extra_merges`` more."""
    return tokenizer_from_merges(clip_merges(num_merges, extra_merges), model_max_length)
