"""Learn the extra BPE merges of the multilingual CLIP vocabulary and write them as a committed asset.

CLIP's first merges were learned on English web text, so captions in other scripts fall apart into byte tokens. The
extra merges continue CLIP's BPE on the non-English training captions: every caption is tokenized by the standard
``CLIPTokenizer`` with CLIP's first ``base_merges`` merges (its normaliser and word pattern, which splits Devanagari
and other Indic scripts at every vowel sign), and new merges are learned over those tokens. Applied after CLIP's
merges, each extra merge therefore fires exactly where it was learned, CLIP's ids stay and English is unchanged.

    python -m unclip_diffusers.tokenizer_build --npm-prefix /work/data/npm
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from transformers import CLIPTokenizer

from .tokenizer import EXTRA_MERGES_FILE, build_clip_tokenizer

logger = logging.getLogger(__name__)

BASE_MERGES = 7678  # the `small` preset's CLIP merges
EXTRA_MERGES = 8190  # 512 + 7,678 + 8,190 + 2 = 16,382 ids
PRIVATE_USE = 0xF0000  # token id i is the character PRIVATE_USE + i while learning (Supplementary Private Use Area-A)
ASSET = Path(__file__).parent / "assets" / "clip_bpe" / EXTRA_MERGES_FILE


def _token_words(texts: Iterable[str], base: CLIPTokenizer) -> Iterator[str]:
    """Each text as space-separated words, one private-use character per base token (a word ends at a '</w>' token)."""
    ends = {i for token, i in base.get_vocab().items() if token.endswith("</w>")}
    texts = list(texts)
    for start in range(0, len(texts), 4096):
        for row in base(texts[start : start + 4096], add_special_tokens=False).input_ids:
            yield "".join(chr(PRIVATE_USE + i) + (" " if i in ends else "") for i in row)


def learn_extra_merges(texts: Iterable[str], base: CLIPTokenizer, count: int) -> list[str]:
    """Up to `count` merges (``left right``, most frequent first) learned over `base`'s tokens of the distinct `texts`.

    Deterministic for the same texts in the same order. A learned merge whose token `base` already has (reached there
    by another split) is skipped, so every merge adds one new id.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}.")
    words = list(_token_words(dict.fromkeys(texts), base))
    alphabet = sorted({c for word in words for c in word if c != " "})
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Some learned tokens exist in `base` already and are skipped: learn more than needed.
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + 2 * count, initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(words, trainer)
    id_to_token = {i: token for token, i in base.get_vocab().items()}
    decode = lambda symbols: "".join(id_to_token[ord(c) - PRIVATE_USE] for c in symbols)  # noqa: E731
    known, merges = set(base.get_vocab()), []
    for pair in json.loads(tokenizer.to_str())["model"]["merges"]:
        left, right = pair.split(" ") if isinstance(pair, str) else pair
        left, right = decode(left), decode(right)
        if left + right in known:
            continue
        known.add(left + right)
        merges.append(f"{left} {right}")
        if len(merges) == count:
            break
    if len(merges) < count:
        logger.warning("Only %d distinct merges could be learned from these texts (asked for %d).", len(merges), count)
    return merges


def non_english_captions(npm_prefixes: list[Path]) -> tuple[list[str], dict[str, str]]:
    """The distinct non-English training captions of every concept (locales in order) and the data versions."""
    from .data.caption_lengths import caption_sets
    from .data.language import load_language_data
    from .data.sources import SearchPaths, find_sources

    search = SearchPaths.default()
    search.npm_prefixes = list(npm_prefixes) + search.npm_prefixes
    found, _ = find_sources(search)
    language = load_language_data(search)
    by_locale = caption_sets(language, found)
    texts = [text for locale in sorted(by_locale) if locale != "en" for text in dict.fromkeys(by_locale[locale])]
    return list(dict.fromkeys(texts)), _data_versions(search)


def _data_versions(search) -> dict[str, str]:
    """Versions of the installed CLDR and emojibase packages the captions come from."""
    versions = {}
    for name in ("cldr-annotations-full", "cldr-annotations-derived-full", "emojibase-data"):
        for prefix in search.npm_prefixes:
            package = Path(prefix) / "node_modules" / name / "package.json"
            if package.is_file():
                versions[name] = json.loads(package.read_text(encoding="utf-8")).get("version", "?")
                break
    return versions


def write_extra_merges(path: Path, merges: list[str], base_merges: int, header: list[str]) -> None:
    """Write the merges file: ``#key: value`` header lines (``base_merges`` first), then one merge a line."""
    lines = [f"#base_merges: {base_merges}", f"#extra_merges: {len(merges)}", *(f"#{line}" for line in header)]
    path.write_text("\n".join(lines + merges) + "\n", encoding="utf-8")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m unclip_diffusers.tokenizer_build",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--npm-prefix", action="append", default=[], type=Path,
                        help="folder given to `npm install --prefix` (repeatable; searched before the defaults)")
    parser.add_argument("--base-merges", type=int, default=BASE_MERGES, help="CLIP merges the new ones follow")
    parser.add_argument("--extra-merges", type=int, default=EXTRA_MERGES, help="merges to learn")
    parser.add_argument("--output", type=Path, default=ASSET, help="the merges file to write (default: the asset)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build every non-English caption, learn the merges, write the asset."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    texts, versions = non_english_captions(args.npm_prefix)
    logger.info("Learning %d merges from %d distinct non-English captions.", args.extra_merges, len(texts))
    merges = learn_extra_merges(texts, build_clip_tokenizer(args.base_merges, 10**6), args.extra_merges)
    data = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    header = [
        f"made by: python -m unclip_diffusers.tokenizer_build --base-merges {args.base_merges} "
        f"--extra-merges {args.extra_merges}",
        f"learned from: {len(texts)} distinct non-English training captions of every concept (data/captions.py), "
        f"tokenized by CLIPTokenizer with CLIP's first {args.base_merges} merges",
        f"data: {data or 'unknown versions'}; Unicode CLDR annotations (Unicode-3.0 licence), emojibase-data (MIT); "
        "see LICENSES.md",
    ]
    write_extra_merges(args.output, merges, args.base_merges, header)
    logger.info("Wrote %d merges to %s.", len(merges), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
