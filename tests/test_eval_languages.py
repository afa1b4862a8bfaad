"""Text-to-image concept retrieval by a concept's bare name in each language."""

from types import SimpleNamespace

import pytest
import torch

from unclip_diffusers.configs import build_components
from unclip_diffusers.data import FIXTURE_PATH
from unclip_diffusers.evaluation.languages import concept_retrieval, language_retrieval


def test_concept_retrieval_counts_a_hit_in_any_style():
    images = torch.eye(4)
    concepts = ["cat", "cat", "dog", "pizza"]
    query = torch.stack([images[1], images[2], images[0] * 0.5 + images[3]])  # cat (2nd style), dog, pizza-ish
    result = concept_retrieval(query, ["cat", "dog", "cat"], images, concepts, k=2)
    assert result == {"top1": pytest.approx(2 / 3), "top2": 1.0, "queries": 3}


def test_language_retrieval_scores_every_locale_of_the_names_column():
    torch.manual_seed(0)
    parts = build_components("tiny")
    clip = SimpleNamespace(**{k: parts[k] for k in ("tokenizer", "text_encoder", "image_encoder", "feature_extractor")})
    result = language_retrieval(clip, str(FIXTURE_PATH), "train", locales=("en", "de", "ja"))
    assert set(result) == {"en (training wording)", "en", "de", "ja"}
    for scores in result.values():
        assert 0 <= scores["top1"] <= scores["top5"] <= 1 and scores["queries"] >= 5
