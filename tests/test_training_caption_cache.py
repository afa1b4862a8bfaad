"""`cache_captions_per_image`: the prior/decoder cache keeps K captions per image and draws only among them."""

from __future__ import annotations

import random

import pytest
import torch

from test_training_stages import _config, tiny_runs
from unclip_diffusers.training.embeddings import (
    cached_captions,
    load_or_compute_embeddings,
    sample_caption_rows,
    split_with_embeddings,
)
from unclip_diffusers.training.prior import PriorStage

CAPTIONS = ["cat, Noto style", *[f"english {i}" for i in range(30)], *[f"locale {i}" for i in range(30)]]


def test_cached_captions_keep_the_primary_and_a_seeded_spread_of_others():
    chosen = cached_captions(CAPTIONS[0], CAPTIONS, 8)
    assert len(chosen) == 8 and chosen[0] == CAPTIONS[0] and len(set(chosen)) == 8
    assert chosen == cached_captions(CAPTIONS[0], list(CAPTIONS), 8)  # seeded by the primary caption
    assert [CAPTIONS.index(c) for c in chosen] == sorted(CAPTIONS.index(c) for c in chosen)  # list order kept
    assert cached_captions(CAPTIONS[0], CAPTIONS, 0) == CAPTIONS == cached_captions(CAPTIONS[0], CAPTIONS, 100)
    # over many images, other languages keep their share of the list (not only the English head of it)
    drawn = [c for k in range(200) for c in cached_captions(f"p{k}", [f"p{k}", *CAPTIONS[1:]], 8)[1:]]
    assert 0.35 < sum(c.startswith("locale") for c in drawn) / len(drawn) < 0.65


def test_prior_caches_and_draws_only_the_kept_captions(tmp_path):
    clip_dir = str(tiny_runs()["clip"][0])
    full_config = _config("prior", tmp_path, clip_dir=clip_dir)
    config = _config("prior", tmp_path, clip_dir=clip_dir, cache_captions_per_image=2)
    data, cache, examples = split_with_embeddings(config, "train", config.max_train_examples)
    _, full_cache, full_examples = split_with_embeddings(full_config, "train", config.max_train_examples)
    assert len(cache.caption_text_rows) == sum(min(2, len(c)) for c in data["captions"])
    assert len(cache.caption_text_rows) < len(full_cache.caption_text_rows) == sum(len(c) for c in data["captions"])
    assert all(e["captions"][0] == e["caption"] and len(e["captions"]) <= 2 for e in examples)
    rows = sample_caption_rows(cache, examples, torch.arange(len(examples)), random.Random(0))  # draws stay cached
    assert rows.max() < cache.text_embeds.shape[0]
    # the same caption has the same embedding in both caches
    i = next(i for i, e in enumerate(examples) if len(e["captions"]) == 2)
    row, full_row = cache.caption_row(i, 1), full_cache.caption_row(i, full_examples[i]["captions"].index(examples[i]["captions"][1]))
    torch.testing.assert_close(cache.text_embeds[row], full_cache.text_embeds[full_row])
    again = load_or_compute_embeddings(clip_dir, data, "train", per_image=2)  # read back from its own cache file
    assert torch.equal(again.caption_text_rows, cache.caption_text_rows)
    stage = PriorStage(config)
    stage.setup(None)
    assert stage.examples == examples
    with pytest.raises(ValueError, match="cache_captions_per_image"):
        _config("decoder", tmp_path, cache_captions_per_image=-1)
