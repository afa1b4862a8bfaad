"""Concept families, the leak-free split, Unicode groups and slices, and the near-duplicate check."""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from unclip_diffusers.data.concepts import emoji_concepts
from unclip_diffusers.data.families import family_of
from unclip_diffusers.data.groups import group_of, read_emojibase_groups, slice_of
from unclip_diffusers.data.quality import find_duplicates, nearest_distances
from unclip_diffusers.data.split import assign_splits, leak_free_splits

EMOJIBASE_EXCERPT = Path(__file__).parent / "fixtures" / "emojibase" / "data.json"
CLIMBERS = ["1f9d7", "1f9d7-1f3fb", "1f9d7-200d-2642", "1f9d7-200d-2640", "1f9d7-1f3fb-200d-2640",
            "1f9d7-1f3ff-200d-2642"]  # fmt: skip


@pytest.mark.parametrize(
    "keys, family",
    [
        (CLIMBERS, "1f9d7"),
        (["1f9d1-200d-1f373", "1f468-200d-1f373", "1f469-1f3fd-200d-1f373"], "1f9d1-200d-1f373"),  # cooks
        (["1f9d1-200d-1f9bd", "1f468-200d-1f9bd", "1f9d1-200d-1f9bd-200d-27a1"], "1f9d1-200d-1f9bd"),  # wheelchair
        (["1f9d1", "1f468", "1f469-1f3fe", "1f468-200d-1f9b0", "1f9d1-200d-1f9b2"], "1f9d1"),  # person, hair
        (["1f48f", "1f469-200d-2764-200d-1f48b-200d-1f468", "1f9d1-1f3fb-200d-2764-200d-1f48b-200d-1f9d1-1f3ff"], "1f48f"),
        (["1f491", "1f468-200d-2764-200d-1f468"], "1f491"),  # couple with heart
        (["1f46a", "1f468-200d-1f469-200d-1f467", "1f9d1-200d-1f9d1-200d-1f9d2"], "1f46a"),  # family
        (["1f46b", "1f46d-1f3fc", "1f9d1-1f3fb-200d-1f91d-200d-1f9d1-1f3fc"], "1f9d1-200d-1f91d-200d-1f9d1"),
        (["1f385", "1f936", "1f9d1-200d-1f384"], "1f936"),  # Santa, Mrs. and Mx Claus
        (["1f408"], "1f408"),
        (["1f1f3-1f1f4"], "1f1f3-1f1f4"),
    ],
)
def test_siblings_share_a_family(keys, family):
    assert {family_of(k) for k in keys} == {family}


def test_different_things_stay_apart():
    assert len({family_of(k) for k in ["1f408", "1f408-200d-2b1b", "1f9d7", "1f3c3", "1f1f3-1f1f4", "1f1f8-1f1ef"]}) == 6


def test_every_real_concept_has_a_family_key_that_parses():
    families = {family_of(k) for k in emoji_concepts()}
    assert 1000 < len(families) < len(emoji_concepts())  # variants merged, distinct things kept


def _climbing_pairs():
    styles = ["Noto", "Twemoji", "OpenMoji", "Fluent flat"]
    others = [f"{0x1F300 + i:04x}" for i in range(300)]
    return [(k, s) for k in CLIMBERS + others for s in styles]


def test_leak_free_split_puts_every_sibling_in_one_split_across_seeds():
    for seed in range(40):
        legacy = assign_splits(_climbing_pairs(), 0.1, 0.1, seed=seed)
        assignment = leak_free_splits(legacy)
        climbers = {s for (k, _), s in assignment.items() if k in CLIMBERS}
        assert climbers in ({"train"}, {"heldout_concepts"}, {"train", "heldout_pairs"})
        by_style = defaultdict(set)
        for (key, style), split in assignment.items():
            if key in CLIMBERS:
                by_style[style].add(split)
        assert all(len(splits) == 1 for splits in by_style.values())  # no trained sibling in a held-out style
        # held-out splits only shrink, so weights trained on the legacy training split stay clean to evaluate
        for pair, split in assignment.items():
            assert split == "train" or legacy[pair] == split


def test_leak_free_split_moves_a_partly_held_out_family_to_training():
    legacy = {("1f9d7", "Noto"): "heldout_concepts", ("1f9d7-200d-2642", "Noto"): "train",
              ("1f9d7-200d-2640", "Noto"): "heldout_pairs", ("1f9d7-200d-2640", "Twemoji"): "heldout_pairs",
              ("1f9d7-200d-2642", "Twemoji"): "heldout_pairs"}  # fmt: skip
    result = leak_free_splits(legacy)
    assert result[("1f9d7", "Noto")] == "train"
    assert result[("1f9d7-200d-2640", "Noto")] == "train"  # "man climbing, Noto" is trained
    # "person climbing, Noto" (moved to train) makes Noto trained; Twemoji has no trained climber: stays held out
    assert result[("1f9d7-200d-2640", "Twemoji")] == result[("1f9d7-200d-2642", "Twemoji")] == "heldout_pairs"


def test_identical_images_of_a_gender_family_keep_the_neutral_concept():
    digests = {("1f9d1-200d-1f373", "OpenMoji"): "same", ("1f468-200d-1f373", "OpenMoji"): "same",
               ("1f408", "OpenMoji"): "other"}  # fmt: skip
    dropped = find_duplicates(digests)
    assert set(dropped) == {("1f468-200d-1f373", "OpenMoji")}


def test_groups_come_from_emojibase_and_variants_inherit_them():
    groups = read_emojibase_groups(EMOJIBASE_EXCERPT)
    assert groups["1f408"] == "animals-nature" and groups["1f9d7-1f3fb"] == "people-body"
    assert group_of("1f9d7-1f3ff-200d-2640", groups) == "people-body"  # via its family
    assert group_of("1f9ff", groups) == ""


@pytest.mark.parametrize(
    "key, group, expected",
    [("1f408", "animals-nature", "everyday"), ("1f355", "food-drink", "everyday"), ("1f44d-1f3fb", "", "people"),
     ("1f9d7", "people-body", "people"), ("1f1f3-1f1f4", "flags", "flags"), ("1f3fb", "component", "other"),
     ("1f9ff", "", "other")],
)  # fmt: skip
def test_slices(key, group, expected):
    assert slice_of(key, group) == expected


def test_nearest_distances_finds_the_copy_and_its_rms():
    rng = np.random.default_rng(0)
    references = rng.random((50, 48), dtype=np.float32)
    queries = np.stack([references[7], references[3] + 0.1, rng.random(48, dtype=np.float32)])
    distances, nearest = nearest_distances(queries, references, chunk=2)
    assert nearest[0] == 7 and distances[0] == pytest.approx(0, abs=1e-3)
    assert nearest[1] == 3 and distances[1] == pytest.approx(0.1, abs=1e-3)
    assert distances[2] > 0.2
    with pytest.raises(ValueError, match="references"):
        nearest_distances(queries, references[:, :10])
