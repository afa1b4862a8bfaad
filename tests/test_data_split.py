"""The deterministic train / held-out split: disjoint, compositional, stable."""

from collections import defaultdict

import pytest

from unclip_diffusers.data import assign_splits, strip_skin_tones

STYLES = ["Noto", "Twemoji", "OpenMoji", "Fluent 3D", "EmojiOne"]
TONES = ["1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"]


def _pairs(n_concepts=400, styles=STYLES):
    pairs = []
    for i in range(n_concepts):
        base = f"{0x1F300 + i:04x}"
        keys = [base] + ([f"{base}-{t}" for t in TONES] if i % 7 == 0 else [])
        for key in keys:
            for j, style in enumerate(styles):
                if (i + j) % 5 != 4:  # not every concept exists in every style
                    pairs.append((key, style))
    return pairs


def _check_disjoint(assignment):
    by_split = defaultdict(set)
    for pair, split in assignment.items():
        by_split[split].add(pair)
    train = by_split["train"]
    train_families = {strip_skin_tones(k) for k, _ in train}
    train_styles_of = defaultdict(set)
    for key, style in train:
        train_styles_of[strip_skin_tones(key)].add(style)
    train_families_of_style = defaultdict(set)
    for key, style in train:
        train_families_of_style[style].add(strip_skin_tones(key))
    # a held-out concept family never appears in training, under any style or skin tone
    for key, _ in by_split["heldout_concepts"]:
        assert strip_skin_tones(key) not in train_families
    # a held-out pair: neither it nor a skin-tone sibling in the same style is trained; the family is trained in
    # another style and the style on other families
    for key, style in by_split["heldout_pairs"]:
        family = strip_skin_tones(key)
        assert style not in train_styles_of[family]
        assert train_styles_of[family], "family of a held-out pair must be trained in some other style"
        assert train_families_of_style[style] - {family}
    return by_split


def test_split_is_disjoint_and_compositional():
    pairs = _pairs()
    assignment = assign_splits(pairs, heldout_pair_fraction=0.05, heldout_concept_fraction=0.02, seed=0)
    assert set(assignment) == set(pairs)
    by_split = _check_disjoint(assignment)
    n = len(pairs)
    assert 0.02 * n < len(by_split["heldout_pairs"]) < 0.09 * n
    assert 0.003 * n < len(by_split["heldout_concepts"]) < 0.05 * n


def test_split_is_deterministic_and_seeded():
    pairs = _pairs()
    assert assign_splits(pairs, seed=3) == assign_splits(list(reversed(pairs)), seed=3)
    assert assign_splits(pairs, seed=3) != assign_splits(pairs, seed=4)


def test_heldout_concepts_do_not_move_when_a_style_is_added():
    before = assign_splits(_pairs(styles=STYLES[:3]))
    after = assign_splits(_pairs(styles=STYLES))
    held = lambda a: {strip_skin_tones(k) for (k, _), s in a.items() if s == "heldout_concepts"}  # noqa: E731
    assert held(before) == held(after)


def test_tiny_sets_get_every_split():
    pairs = [(f"{0x1F600 + i:04x}", style) for i in range(5) for style in STYLES[:3]]
    by_split = _check_disjoint(assign_splits(pairs))
    assert all(len(by_split[s]) >= 1 for s in ("train", "heldout_pairs", "heldout_concepts"))


def test_zero_fractions_keep_everything_in_train():
    pairs = _pairs(50)
    assert set(assign_splits(pairs, 0.0, 0.0).values()) == {"train"}


@pytest.mark.parametrize("kwargs", [{"heldout_pair_fraction": 1.0}, {"heldout_concept_fraction": -0.1}])
def test_bad_fractions(kwargs):
    with pytest.raises(ValueError, match="must be in"):
        assign_splits(_pairs(10), **kwargs)
