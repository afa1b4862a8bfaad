"""Token-length measurement of the captions, on the committed excerpt of the language packages."""

from test_data_language import language_search

from unclip_diffusers.data.caption_lengths import (
    caption_sets,
    extended_clip_tokenizer,
    long_prompts,
    measure,
    train_caption_bpe,
)
from unclip_diffusers.data.language import load_language_data
from unclip_diffusers.data.sources import STYLES
from unclip_diffusers.tokenizer import build_clip_tokenizer

KEYS = ["1f63e", "1f680", "1f44d-1f3fd"]


def _sets():
    return caption_sets(load_language_data(language_search()), concepts=KEYS)


def test_caption_sets_cover_every_style_and_locale():
    sets = _sets()
    assert set(sets) == {"en", "es", "de", "ja", "zh", "ar"}
    assert "pouting cat, Fluent 3D style" in sets["en"]
    assert sum(len(v) for v in sets.values()) <= 64 * len(KEYS) * len(STYLES)
    assert "schmollende Katze" in sets["de"]


def test_measure_reports_percentiles_and_byte_fragments():
    sets = _sets()
    prompts = long_prompts(sets, chars=120)
    assert all(len(p) <= 400 for p in prompts.values()) and len(prompts["de"]) == 120
    report = measure(build_clip_tokenizer(1000, model_max_length=10**6), sets, prompts, limit=16)
    en, ja = report["en"], report["ja"]
    assert en["p50"] <= en["p95"] <= en["p99"] <= en["max"] and en["captions"] == len(sets["en"])
    assert ja["byte_token_share"] > 0.3 > en["byte_token_share"]  # Japanese falls apart into UTF-8 bytes
    assert ja["tokens_per_char"] > en["tokens_per_char"] and "over_16" in en and en["prompt_tokens"] > 20


def test_extended_clip_keeps_clip_ids_and_shortens_other_scripts():
    sets = _sets()
    clip = build_clip_tokenizer(1000, model_max_length=10**6)
    extended = extended_clip_tokenizer(sets, 1000, 200)
    assert 1000 < len(extended) - 514 <= 1200
    assert extended("a photo of a cat").input_ids[1:-1] == clip("a photo of a cat").input_ids[1:-1]
    japanese = "不機嫌な猫"
    assert len(extended(japanese).input_ids) < len(clip(japanese).input_ids)
    trained = train_caption_bpe(sets, 600)
    assert trained("pouting cat").input_ids[0] == trained.bos_token_id
