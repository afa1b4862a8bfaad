"""Token lengths of every training caption per language, to size the text tower's context and vocabulary.

Captions are built exactly as `unclip-data build` builds them, for every concept and style the installed artwork
covers (no image is rendered). Each tokenizer is measured on them and on ~400-character prompts:

    python -m unclip_diffusers.data.caption_lengths --npm-prefix /work/data/npm --output lengths.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .build import concept_texts
from .captions import captions_by_language
from .concepts import emoji_concepts
from .language import LanguageData, load_language_data
from .sources import STYLES, FoundSource, SearchPaths, find_sources

logger = logging.getLogger(__name__)

PROMPT_CHARS = 400
ENGLISH_PROMPT = (
    "a cute little orange cat with big round eyes sitting next to a steaming cup of coffee on a wooden table, "
    "drawn as a glossy Fluent 3D emoji with soft shadows and bright colours, a small red heart floating above its "
    "head, sunflowers in a blue vase behind it, morning light from a window on the left, friendly and happy "
    "expression, simple white background, centred, high detail, in the style of Microsoft's 3D emoji set, sticker"
)[:PROMPT_CHARS]
PERCENTILES = (50, 95, 99)


def caption_sets(
    language: LanguageData, found: Sequence[FoundSource] = (), concepts: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """All training captions per locale, for each (concept, style) the `found` sources draw (all styles if none)."""
    universe = emoji_concepts()
    keys = sorted(concepts) if concepts is not None else sorted(universe)
    by_locale: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        styles = [s for s in STYLES if any(f.spec.style == s and key in f.artwork for f in found)] if found else STYLES
        if not styles:
            continue
        aliases, tags = concept_texts(key, found)
        english = language.annotation(key, "en")
        for style in styles:
            per_locale = captions_by_language(universe[key].name, style, english.names + aliases,
                                              english.keywords + tags, language.localized(key),
                                              language.shortcodes.get(key, []))  # fmt: skip
            for locale, texts in per_locale.items():
                by_locale[locale] += texts
    return dict(by_locale)


def long_prompts(by_locale: dict[str, list[str]], chars: int = PROMPT_CHARS) -> dict[str, str]:
    """A prompt of about `chars` characters per locale: distinct captions joined by ', ' (English: a fixed one)."""
    prompts = {"en": ENGLISH_PROMPT}
    for locale, texts in by_locale.items():
        if locale == "en":
            continue
        prompt = ""
        for text in dict.fromkeys(texts):
            prompt = f"{prompt}, {text}" if prompt else text
            if len(prompt) >= chars:
                break
        prompts[locale] = prompt[:chars]
    return prompts


def _stats(lengths: np.ndarray) -> dict[str, float]:
    result = {f"p{p}": float(np.percentile(lengths, p)) for p in PERCENTILES}
    result["max"] = int(lengths.max())
    result["mean"] = round(float(lengths.mean()), 2)
    return result


def _is_byte_fragment(token: str) -> bool:
    """True for a token that is one byte of a multi-byte UTF-8 character (byte-level symbols from U+00A1 up)."""
    symbol = token.removesuffix("</w>")
    return len(symbol) == 1 and ord(symbol) > 0x7E


def measure(tokenizer, by_locale: dict[str, list[str]], prompts: dict[str, str], limit: int = 32) -> dict:
    """Per locale: token-length percentiles (BOS and EOS included), share over `limit`, byte tokens, prompt length."""
    report = {}
    for locale, texts in by_locale.items():
        distinct = list(dict.fromkeys(texts))
        ids = tokenizer(distinct).input_ids
        lengths = np.array([len(i) for i in ids])
        counts = {text: 0 for text in distinct}
        for text in texts:
            counts[text] += 1
        weights = np.array([counts[t] for t in distinct])
        all_lengths = np.repeat(lengths, weights)  # every caption as often as the build writes it
        inner = [token for row in ids for token in tokenizer.convert_ids_to_tokens(row[1:-1])]
        chars = sum(len(t) for t in distinct)
        prompt_ids = tokenizer(prompts[locale]).input_ids if locale in prompts else []
        report[locale] = {
            "captions": int(weights.sum()), "distinct": len(distinct), **_stats(all_lengths),
            f"over_{limit}": round(float((all_lengths > limit).mean()), 4),
            "tokens_per_char": round((lengths.sum() - 2 * len(distinct)) / max(chars, 1), 3),
            "byte_token_share": round(sum(map(_is_byte_fragment, inner)) / max(len(inner), 1), 3),
            "prompt_chars": len(prompts.get(locale, "")), "prompt_tokens": len(prompt_ids),
        }  # fmt: skip
    return report


# CLIP's word pattern with combining marks (\p{M}) kept inside words, so Devanagari vowel signs do not split words.
WORD_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}\p{M}]+|[\p{N}]|[^\s\p{L}\p{M}\p{N}]+"


def train_caption_bpe(by_locale: dict[str, list[str]], vocab_size: int):
    """A byte-level BPE trained on captions (CLIP-like: NFC, lower-case, '</w>' word ends, marks kept in words)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), end_of_word_suffix="</w>",
                                  show_progress=False)  # fmt: skip
    tokenizer.train_from_iterator((t for texts in by_locale.values() for t in dict.fromkeys(texts)), trainer)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(str(Path(tmp) / "tokenizer.json"))
        fast = PreTrainedTokenizerFast(tokenizer_file=str(Path(tmp) / "tokenizer.json"),
                                       bos_token="<|startoftext|>", eos_token="<|endoftext|>")  # fmt: skip
    fast._tokenizer.post_processor = _bos_eos(fast)
    return fast


def extended_clip_tokenizer(by_locale: dict[str, list[str]], num_merges: int, extra_merges: int):
    """CLIP's first `num_merges` merges (and ids) plus up to `extra_merges` merges learned from non-English captions.

    The same learning as the committed vocabulary (`unclip_diffusers.tokenizer_build`), under CLIP's own word pattern.
    """
    from ..tokenizer import build_clip_tokenizer, clip_merges, tokenizer_from_merges
    from ..tokenizer_build import learn_extra_merges

    base = build_clip_tokenizer(num_merges, model_max_length=10**6)
    texts = [text for locale, texts in by_locale.items() if locale != "en" for text in texts]
    learned = learn_extra_merges(texts, base, extra_merges)
    return tokenizer_from_merges(clip_merges(num_merges) + learned, model_max_length=10**6)


def _bos_eos(tokenizer):
    from tokenizers import processors

    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    return processors.TemplateProcessing(single=f"{bos} $A {eos}", special_tokens=[
        (bos, tokenizer.convert_tokens_to_ids(bos)), (eos, tokenizer.convert_tokens_to_ids(eos))])


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m unclip_diffusers.data.caption_lengths",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--npm-prefix", action="append", default=[], type=Path,
                        help="folder given to `npm install --prefix` (repeatable; searched before the defaults)")
    parser.add_argument("--num-merges", type=int, nargs="*", default=[7678, 48894],
                        help="CLIP BPE vocabularies to measure (default: the small preset's and the full one)")
    parser.add_argument("--train-vocab", type=int, nargs="*", default=[],
                        help="also train a byte-level BPE of these sizes on the captions and measure it")
    parser.add_argument("--extend-clip", type=int, nargs=2, action="append", default=[], metavar=("MERGES", "EXTRA"),
                        help="also measure CLIP's first MERGES merges plus EXTRA merges learned from the "
                             "non-English captions (repeatable)")
    parser.add_argument("--bpe-holdout", type=int, default=10,
                        help="a trained BPE learns from all concepts but every N-th and is measured on those")
    parser.add_argument("--max-concepts", type=int, default=None, help="measure only this many concepts")
    parser.add_argument("--limit", type=int, default=32, help="report the share of captions longer than this")
    parser.add_argument("--output", type=Path, default=None, help="write the report as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build every caption, measure each tokenizer, print a table per locale and tokenizer."""
    from ..tokenizer import build_clip_tokenizer

    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    search = SearchPaths.default()
    search.npm_prefixes = list(args.npm_prefix) + search.npm_prefixes
    found, _ = find_sources(search)
    language = load_language_data(search)
    keys = sorted(emoji_concepts())[: args.max_concepts] if args.max_concepts else None
    by_locale = caption_sets(language, found, keys)
    prompts = long_prompts(by_locale)
    keys = keys or sorted(emoji_concepts())
    tokenizers = {f"clip-{n}-merges": (build_clip_tokenizer(n, model_max_length=10**6), by_locale)
                  for n in args.num_merges}  # fmt: skip
    if args.train_vocab or args.extend_clip:
        seen = caption_sets(language, found, [k for i, k in enumerate(keys) if i % args.bpe_holdout])
        unseen = caption_sets(language, found, keys[:: args.bpe_holdout])
        for size in args.train_vocab:
            tokenizers[f"caption-bpe-{size} (unseen concepts)"] = (train_caption_bpe(seen, size), unseen)
        for merges, extra in args.extend_clip:
            label = f"clip-{merges}+{extra}-caption-merges (unseen concepts)"
            tokenizers[label] = (extended_clip_tokenizer(seen, merges, extra), unseen)
    report = {"concepts": len(keys), "prompts": prompts, "tokenizers": {}}
    for label, (tokenizer, measured) in tokenizers.items():
        report["tokenizers"][label] = {"vocab_size": len(tokenizer),
                                       "locales": measure(tokenizer, measured, prompts, args.limit)}  # fmt: skip
        print(f"\n{label} ({len(tokenizer)} ids): tokens per caption incl. BOS/EOS")
        print(f"{'locale':6} {'captions':>8} {'p50':>5} {'p95':>5} {'p99':>5} {'max':>4} {'>' + str(args.limit):>6} "
              f"{'tok/ch':>6} {'bytes':>5} {'400ch':>5}")  # fmt: skip
        for locale, row in report["tokenizers"][label]["locales"].items():
            print(f"{locale:6} {row['captions']:8d} {row['p50']:5.0f} {row['p95']:5.0f} {row['p99']:5.0f} "
                  f"{row['max']:4d} {row[f'over_{args.limit}']:6.3f} {row['tokens_per_char']:6.2f} "
                  f"{row['byte_token_share']:5.2f} {row['prompt_tokens']:5d}")  # fmt: skip
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
