"""Each metric on constructed cases whose right answer is known in closed form."""

import math

import pytest
import torch

from unclip_diffusers.evaluation import metrics


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_retrieval_perfectly_aligned_and_reversed():
    z = torch.eye(10)
    assert metrics.retrieval_at_k(z @ z.T, torch.arange(10)) == {"top1": 1.0, "top5": 1.0}
    # Every query's true item scores lowest: rank 9 → never in the top 5.
    scores = -torch.eye(10)
    assert metrics.retrieval_at_k(scores, torch.arange(10), ks=(1, 5, 10)) == {"top1": 0.0, "top5": 0.0, "top10": 1.0}


def test_retrieval_counts_ties_against_the_query_and_accepts_several_positives():
    collapsed = torch.ones(6, 6)  # a model that maps everything to one vector
    assert metrics.retrieval_at_k(collapsed, torch.arange(6))["top1"] == 0.0
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.2, 0.1, 0.8]])
    positives = torch.tensor([[True, True, False], [True, False, False]])
    assert metrics.retrieval_at_k(scores, positives, ks=(1, 2)) == {"top1": 0.5, "top2": 1.0}


def test_retrieval_rejects_bad_input():
    with pytest.raises(ValueError, match="positive indices"):
        metrics.retrieval_at_k(torch.eye(3), torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="at least one positive"):
        metrics.retrieval_at_k(torch.eye(2), torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        metrics.retrieval_at_k(torch.eye(3)[0], torch.tensor([0]))


def test_r_precision_aligned_is_one_and_shuffled_is_chance():
    torch.manual_seed(0)
    text = torch.randn(2000, 16)
    images = text + 0.01 * torch.randn(2000, 16)
    aligned = metrics.r_precision(images, text, generator=_gen(1))
    assert aligned["r_precision"] == 1.0 and aligned["chance"] == pytest.approx(0.01)
    shuffled = metrics.r_precision(images[torch.randperm(2000)], text, generator=_gen(2))
    # Binomial(2000, 0.01): standard deviation 0.0022; 4 sigma.
    assert abs(shuffled["r_precision"] - 0.01) < 0.009
    assert shuffled["num_distractors"] == 99 and shuffled["count"] == 2000


def test_r_precision_is_seeded_and_respects_exclusions():
    torch.manual_seed(0)
    a, b = torch.randn(300, 8), torch.randn(300, 8)
    first = metrics.r_precision(a, b, num_distractors=20, generator=_gen(5))
    assert first == metrics.r_precision(a, b, num_distractors=20, generator=_gen(5))
    # Two identical captions never serve as each other's distractor, so duplicated text does not cost a hit.
    text = torch.eye(4)[[0, 0, 1, 2]]
    same = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    result = metrics.r_precision(text, text, num_distractors=2, same_caption=same, generator=_gen(0))
    assert result["r_precision"] == 1.0
    with pytest.raises(ValueError, match="num_distractors must be between 1 and 2"):
        metrics.r_precision(text, text, num_distractors=3, same_caption=same)


def test_group_accuracy_style_and_concept():
    # 3 concepts x 2 styles; embedding = concept one-hot + style one-hot (weighted).
    concepts, styles = ["cat", "cat", "dog", "dog", "owl", "owl"], ["a", "b", "a", "b", "a", "b"]
    basis = torch.eye(5)
    text = torch.stack([basis[i // 2] + 0.5 * basis[3 + i % 2] for i in range(6)])
    exact = metrics.group_accuracy(text, text, torch.arange(6), concepts, concepts)
    assert exact == {"accuracy": 1.0, "chance": 0.5, "count": 6}
    # Images that get the concept right but the style wrong: style accuracy 0, concept accuracy 1.
    wrong_style = text[[1, 0, 3, 2, 5, 4]]
    assert metrics.group_accuracy(wrong_style, text, torch.arange(6), concepts, concepts)["accuracy"] == 0.0
    by_style = metrics.group_accuracy(wrong_style, text, torch.arange(6), styles, styles)
    assert by_style["accuracy"] == 1.0 and by_style["chance"] == pytest.approx(1 / 3)


def test_group_accuracy_skips_singletons_and_checks_groups():
    text = torch.eye(3)
    result = metrics.group_accuracy(text, text, torch.arange(3), ["x", "y", "y"], ["x", "y", "y"])
    assert result["count"] == 2
    with pytest.raises(ValueError, match="belong to the query's group"):
        metrics.group_accuracy(text, text, torch.tensor([1, 0, 2]), ["x", "y", "y"], ["x", "y", "y"])


def test_group_means_are_normalised_means():
    means = metrics.group_means(torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, -1.0]]), ["a", "a", "b"])
    torch.testing.assert_close(means["a"], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    torch.testing.assert_close(means["b"], torch.tensor([0.0, -1.0]))


def test_frechet_distance_identical_sets_is_zero():
    torch.manual_seed(0)
    x = torch.randn(500, 16)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # Fewer samples than dimensions (singular covariance) still works.
    assert metrics.frechet_distance(x[:8], x[:8]) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_the_closed_form_for_two_gaussians():
    torch.manual_seed(0)
    d = 8
    mean_a, mean_b = torch.zeros(d), torch.full((d,), 0.5)
    q, _ = torch.linalg.qr(torch.randn(d, d))
    cov_a = torch.diag(torch.linspace(0.5, 2.0, d))
    cov_b = q @ torch.diag(torch.linspace(0.2, 3.0, d)) @ q.T  # does not commute with cov_a
    expected = metrics.gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b)
    # Diagonal case checked by hand: |Δμ|² + Σ (√a − √b)².
    diag = metrics.gaussian_frechet_distance(mean_a, cov_a, mean_b, 4 * cov_a)
    assert diag == pytest.approx(d * 0.25 + cov_a.diagonal().sum().item(), rel=1e-9)
    a = torch.distributions.MultivariateNormal(mean_a, cov_a).sample((20000,))
    b = torch.distributions.MultivariateNormal(mean_b, cov_b).sample((20000,))
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.05)


def test_kid_near_zero_for_same_distribution_and_positive_for_different():
    torch.manual_seed(0)
    x, y = torch.randn(2000, 16), torch.randn(2000, 16)
    # Independent subsets of one set share a few rows (k(x, x) is large), which biases KID slightly below 0.
    same = metrics.kernel_inception_distance(x, x, num_subsets=50, subset_size=100, generator=_gen(0))
    assert abs(same["kid"]) < 0.02 and same["subset_size"] == 100
    iid = metrics.kernel_inception_distance(x, y, num_subsets=50, subset_size=100, generator=_gen(0))
    shifted = metrics.kernel_inception_distance(x, y + 0.5, num_subsets=50, subset_size=100, generator=_gen(0))
    assert abs(iid["kid"]) < 3 * iid["kid_std"] / math.sqrt(50) + 0.005
    assert shifted["kid"] > 10 * max(abs(iid["kid"]), abs(same["kid"]))


def test_kid_is_unbiased_where_the_plug_in_estimate_is_not():
    # The exact MMD² between N(0, I) and itself is 0; the unbiased estimator averages to 0 even at tiny subsets.
    torch.manual_seed(0)
    x, y = torch.randn(2000, 4), torch.randn(2000, 4)
    kid = metrics.kernel_inception_distance(x, y, num_subsets=200, subset_size=10, generator=_gen(3))
    assert abs(kid["kid"]) < 3 * kid["kid_std"] / math.sqrt(200)


def test_diversity_zero_for_identical_images_and_positive_otherwise():
    image = torch.rand(1, 3, 8, 8)
    assert metrics.pixel_diversity(image.repeat(5, 1, 1, 1)) == 0.0
    assert metrics.mean_pairwise_distance(torch.ones(4, 3)) == pytest.approx(0.0, abs=1e-6)
    black_white = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    assert metrics.pixel_diversity(black_white) == pytest.approx(1.0)
    assert metrics.mean_pairwise_distance(torch.eye(3)) == pytest.approx(1.0)  # orthogonal: 1 − cos = 1
    with pytest.raises(ValueError, match="metric"):
        metrics.mean_pairwise_distance(torch.eye(3), metric="manhattan")


def test_smoothness_of_a_linear_path_and_of_a_jump():
    start, end = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0])
    line = torch.stack([start + t * (end - start) for t in torch.linspace(0, 1, 9)])
    straight = metrics.path_smoothness(line, normalize=False)
    assert straight["step_cv"] == pytest.approx(0.0, abs=1e-6) and straight["straightness"] == pytest.approx(1.0)
    assert straight["mean_step"] == pytest.approx(1 / 8) and straight["path_length"] == pytest.approx(1.0)
    # Seen by direction (normalised), the same line is a 45° arc walked unevenly: chord / arc = 2 sin(π/8) / (π/4).
    seen = metrics.path_smoothness(line)
    assert seen["straightness"] == pytest.approx(2 * math.sin(math.pi / 8) / (math.pi / 4), rel=1e-3)
    angles = torch.atan(torch.linspace(0, 1, 9, dtype=torch.float64))
    chords = 2 * torch.sin(angles.diff() / 2)  # the first step (near the axis) is the longest
    assert seen["max_over_mean"] == pytest.approx((chords.max() / chords.mean()).item(), rel=1e-5)
    arc = torch.stack([torch.tensor([math.cos(a), math.sin(a), 0.0]) for a in torch.linspace(0, 1, 9)])
    even = metrics.path_smoothness(arc)
    assert even["step_cv"] == pytest.approx(0.0, abs=1e-6) and even["max_over_mean"] == pytest.approx(1.0)
    jump = metrics.path_smoothness(torch.stack([start] * 4 + [end] * 5))
    assert jump["max_over_mean"] == pytest.approx(8.0) and jump["straightness"] == pytest.approx(1.0)


def test_cosines_and_input_checks():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert metrics.mean_cosine(a, a * 3) == pytest.approx(1.0)
    assert metrics.mean_cosine(a, -a) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="paired"):
        metrics.mean_cosine(a, a[:1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(torch.full((3, 2), float("nan")), a)
    with pytest.raises(ValueError, match="width"):
        metrics.frechet_distance(torch.zeros(3, 2), torch.zeros(3, 3))
