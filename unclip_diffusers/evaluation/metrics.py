"""Evaluation metrics as pure functions on embedding and image tensors (no models, no files).

Conventions: embeddings are `(N, D)` float tensors and are L2-normalised inside the functions that compare
directions (retrieval, R-precision, accuracies, cosines); Fréchet distance and KID use them as given. Every
random choice takes an explicit `torch.Generator`. Ties are scored against the true item (a model that maps
everything to the same vector gets accuracy 0, not 1).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "cosine_similarity_matrix",
    "mean_cosine",
    "retrieval_at_k",
    "r_precision",
    "group_accuracy",
    "group_choices",
    "group_means",
    "frechet_distance",
    "gaussian_frechet_distance",
    "kernel_inception_distance",
    "mean_pairwise_distance",
    "pixel_diversity",
    "path_smoothness",
]


def _check_2d(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return x.float()


def _check_pair(
    a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor, same_n: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _check_2d(a_name, a), _check_2d(b_name, b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{a_name} has width {a.shape[1]} but {b_name} has width {b.shape[1]}.")
    if same_n and a.shape[0] != b.shape[0]:
        raise ValueError(f"{a_name} has {a.shape[0]} rows but {b_name} has {b.shape[0]}; they must be paired.")
    return a, b


def _group_ids(name: str, groups: Sequence[Hashable] | torch.Tensor, n: int) -> torch.Tensor:
    """Map arbitrary hashable labels to integer ids (one per row)."""
    if isinstance(groups, torch.Tensor):
        groups = groups.tolist()
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"{name} has {len(groups)} entries, expected {n}.")
    lookup: dict[Hashable, int] = {}
    return torch.tensor([lookup.setdefault(g, len(lookup)) for g in groups], dtype=torch.long)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs cosine similarity `(N, M)` between rows of `a` `(N, D)` and `b` `(M, D)`."""
    a, b = _check_pair("a", a, "b", b, same_n=False)
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity between paired rows of `a` and `b` (both `(N, D)`)."""
    a, b = _check_pair("a", a, "b", b, same_n=True)
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1).mean().item()


def retrieval_at_k(similarity: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k retrieval accuracy: the share of queries with a positive candidate among their k best-scored ones.

    Args:
        similarity (`torch.Tensor` of shape `(N, M)`): score of every candidate for every query.
        positives (`torch.Tensor` of shape `(N, M)`, bool, or `(N,)` long): which candidates are correct for each
            query (several allowed, e.g. duplicate captions), or the index of the single correct candidate.
        ks (`Sequence[int]`, defaults to `(1, 5)`): the cut-offs.

    Returns:
        `{"top1": ..., "top5": ...}`: a query's rank is the number of wrong candidates scoring at least as high as
        its best positive (ties count against it); it is a hit at k when the rank is below k.
    """
    similarity = _check_2d("similarity", similarity)
    n, m = similarity.shape
    if positives.ndim == 1:
        if positives.shape[0] != n:
            raise ValueError(f"positives has {positives.shape[0]} indices for {n} queries.")
        if positives.min() < 0 or positives.max() >= m:
            raise ValueError(f"positive indices must lie in [0, {m}), got [{positives.min()}, {positives.max()}].")
        positives = F.one_hot(positives.long(), m).bool()
    if positives.shape != (n, m):
        raise ValueError(f"positives must have shape {(n, m)} or {(n,)}, got {tuple(positives.shape)}.")
    positives = positives.bool()
    if not positives.any(dim=1).all():
        raise ValueError("Every query needs at least one positive candidate.")
    if any(k < 1 for k in ks):
        raise ValueError(f"Every k must be >= 1, got {list(ks)}.")
    best_positive = similarity.masked_fill(~positives, -math.inf).max(dim=1, keepdim=True).values  # (N, 1)
    rank = ((similarity >= best_positive) & ~positives).sum(dim=1)  # (N,)
    return {f"top{k}": (rank < k).float().mean().item() for k in ks}


def same_caption_mask(captions: Sequence[str]) -> torch.Tensor:
    """`(N, N)` bool: pairs of rows with identical caption text (never each other's R-precision distractors)."""
    lookup: dict[str, int] = {}
    ids = torch.tensor([lookup.setdefault(c, len(lookup)) for c in captions])
    return ids.unsqueeze(0) == ids.unsqueeze(1)


def r_precision(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    num_distractors: int = 99,
    same_caption: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """CLIP R-precision (R = 1): the share of images whose own caption beats `num_distractors` random other captions.

    Args:
        image_embeds (`torch.Tensor` of shape `(N, D)`): one image per caption (row i was made from caption i).
        text_embeds (`torch.Tensor` of shape `(N, D)`): the captions.
        num_distractors (`int`, defaults to 99): wrong captions drawn (without replacement) for each image.
        same_caption (`torch.Tensor` of shape `(N, N)`, bool, *optional*): pairs that must never be distractors of
            each other (e.g. identical caption text); the diagonal is always excluded.
        generator (`torch.Generator`, *optional*): draws the distractors.

    Returns:
        `{"r_precision", "chance", "num_distractors", "count"}`; chance is `1 / (num_distractors + 1)`.
    """
    image_embeds, text_embeds = _check_pair("image_embeds", image_embeds, "text_embeds", text_embeds, same_n=True)
    n = image_embeds.shape[0]
    allowed = ~torch.eye(n, dtype=torch.bool)
    if same_caption is not None:
        if same_caption.shape != (n, n):
            raise ValueError(f"same_caption must have shape {(n, n)}, got {tuple(same_caption.shape)}.")
        allowed &= ~same_caption.bool()
    fewest = int(allowed.sum(dim=1).min())
    if num_distractors < 1 or num_distractors > fewest:
        raise ValueError(f"num_distractors must be between 1 and {fewest} (the fewest distinct other captions), "
                         f"got {num_distractors}.")
    similarity = cosine_similarity_matrix(image_embeds, text_embeds)  # (N, N)
    hits = 0
    for start in range(0, n, 256):  # chunks keep the (rows, N) random matrix small
        rows = slice(start, min(start + 256, n))
        keys = torch.rand(allowed[rows].shape, generator=generator).masked_fill(~allowed[rows], -1.0)
        distractors = keys.topk(num_distractors, dim=1).indices  # (rows, K)
        true_score = similarity[rows].diagonal(offset=start).unsqueeze(1)  # (rows, 1)
        hits += (similarity[rows].gather(1, distractors) < true_score).all(dim=1).sum().item()
    chance = 1.0 / (num_distractors + 1)
    return {"r_precision": hits / n, "chance": chance, "num_distractors": num_distractors, "count": n}


def group_accuracy(
    query_embeds: torch.Tensor,
    candidate_embeds: torch.Tensor,
    true_index: torch.Tensor,
    query_groups: Sequence[Hashable],
    candidate_groups: Sequence[Hashable],
) -> dict[str, float]:
    """Share of queries whose true candidate scores highest among the candidates of the query's group.

    Style accuracy groups captions by concept (the right style among the same concept's captions); concept accuracy
    groups them by style. Queries whose group has a single candidate decide nothing and are skipped.

    Args:
        query_embeds (`torch.Tensor` of shape `(N, D)`): e.g. image embeddings.
        candidate_embeds (`torch.Tensor` of shape `(M, D)`): e.g. caption embeddings.
        true_index (`torch.Tensor` of shape `(N,)`): the correct candidate of each query; it must be in the group.
        query_groups / candidate_groups: a hashable group label per query / per candidate.

    Returns:
        `{"accuracy", "chance", "count"}`; chance is the mean of `1 / group size` over the counted queries.
    """
    query_embeds, candidate_embeds = _check_pair("query_embeds", query_embeds, "candidate_embeds", candidate_embeds,
                                                 same_n=False)
    n, m = query_embeds.shape[0], candidate_embeds.shape[0]
    in_group = _in_group_mask(query_groups, candidate_groups, n, m)
    true_index = torch.as_tensor(true_index, dtype=torch.long)
    if true_index.shape != (n,) or true_index.min() < 0 or true_index.max() >= m:
        raise ValueError(f"true_index must be {n} indices in [0, {m}).")
    if not in_group[torch.arange(n), true_index].all():
        raise ValueError("Each query's true candidate must belong to the query's group.")
    group_size = in_group.sum(dim=1)
    keep = group_size > 1
    if not keep.any():
        return {"accuracy": float("nan"), "chance": float("nan"), "count": 0}
    similarity = cosine_similarity_matrix(query_embeds, candidate_embeds)
    true_score = similarity.gather(1, true_index.unsqueeze(1))  # (N, 1)
    others = in_group.clone()
    others[torch.arange(n), true_index] = False
    beaten = ((similarity >= true_score) & others).any(dim=1)
    return {
        "accuracy": (~beaten[keep]).float().mean().item(),
        "chance": (1.0 / group_size[keep].float()).mean().item(),
        "count": int(keep.sum()),
    }


def group_choices(
    query_embeds: torch.Tensor,
    candidate_embeds: torch.Tensor,
    query_groups: Sequence[Hashable],
    candidate_groups: Sequence[Hashable],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best-scoring candidate of each query among the candidates of its group (what `group_accuracy` scores,
    as choices, e.g. for a confusion matrix), and the group's size; -1 where the group has no candidate."""
    query_embeds, candidate_embeds = _check_pair("query_embeds", query_embeds, "candidate_embeds", candidate_embeds,
                                                 same_n=False)
    in_group = _in_group_mask(query_groups, candidate_groups, query_embeds.shape[0], candidate_embeds.shape[0])
    similarity = cosine_similarity_matrix(query_embeds, candidate_embeds).masked_fill(~in_group, float("-inf"))
    group_size = in_group.sum(dim=1)
    return torch.where(group_size > 0, similarity.argmax(dim=1), -1), group_size


def _in_group_mask(query_groups: Sequence[Hashable], candidate_groups: Sequence[Hashable], n: int,
                   m: int) -> torch.Tensor:
    """`(N, M)` bool: candidate j has query i's group label."""
    labels = list(candidate_groups) + list(query_groups)
    ids = _group_ids("groups", labels, len(labels))
    cand_ids, query_ids = ids[:m], ids[m:]
    if len(cand_ids) != m or len(query_ids) != n:
        raise ValueError(f"Expected {m} candidate and {n} query groups, got {len(cand_ids)} and {len(query_ids)}.")
    return query_ids.unsqueeze(1) == cand_ids.unsqueeze(0)


def group_means(embeds: torch.Tensor, groups: Sequence[Hashable]) -> dict[Hashable, torch.Tensor]:
    """Normalised mean embedding of each group (the "mean train embedding of the same concept" baseline)."""
    embeds = _check_2d("embeds", embeds)
    groups = list(groups)
    ids = _group_ids("groups", groups, embeds.shape[0])
    names = list(dict.fromkeys(groups))
    sums = torch.zeros(len(names), embeds.shape[1]).index_add_(0, ids, F.normalize(embeds, dim=-1))
    return {name: F.normalize(sums[i], dim=-1) for i, name in enumerate(names)}


def _mean_and_covariance(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.double()
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / (x.shape[0] - 1)


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def gaussian_frechet_distance(
    mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor
) -> float:
    """Fréchet (2-Wasserstein²) distance of two Gaussians: |μa−μb|² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½)."""
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    root_a = _sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross
    return max(distance.item(), 0.0)


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets `(N, D)` and `(M, D)` (FID's formula).

    The eigen-decomposition route is exact for symmetric PSD covariances, so it also works when N < D (singular
    covariances), where scipy's `sqrtm` needs an epsilon; the estimate is biased upwards for small N either way,
    so compare numbers only at equal sample sizes (the runner reports a real-vs-real floor for that).
    """
    x, y = _check_pair("x", x, "y", y, same_n=False)
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"Fréchet distance needs at least 2 rows per set, got {x.shape[0]} and {y.shape[0]}.")
    return gaussian_frechet_distance(*_mean_and_covariance(x), *_mean_and_covariance(y))


def _polynomial_mmd2(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD² with the kernel k(a, b) = (γ a·b + c)^d."""
    m = x.shape[0]
    k_xx = (gamma * x @ x.T + coef0) ** degree
    k_yy = (gamma * y @ y.T + coef0) ** degree
    k_xy = (gamma * x @ y.T + coef0) ** degree
    off_diagonal = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return (off_diagonal - 2 * k_xy.mean()).item()


def kernel_inception_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Kernel (Inception) Distance of Bińkowski et al. 2018: unbiased polynomial-kernel MMD² averaged over subsets.

    Each subset draws `subset_size` rows (capped at the smaller set) without replacement from each set. Unlike FD it
    is unbiased, so it is ≈0 (and may be slightly negative) for two samples of the same distribution.

    Args:
        x, y (`torch.Tensor` of shapes `(N, D)`, `(M, D)`): the two embedding sets.
        num_subsets (`int`, defaults to 100), subset_size (`int`, defaults to 1000): the subset averaging.
        degree (`int`, defaults to 3), gamma (`float`, defaults to `1 / D`), coef0 (`float`, defaults to 1.0):
            the kernel `(gamma * a·b + coef0) ** degree`.
        generator (`torch.Generator`, *optional*): draws the subsets.

    Returns:
        `{"kid": mean, "kid_std": standard deviation over subsets, "subset_size": ..., "num_subsets": ...}`.
    """
    x, y = _check_pair("x", x, "y", y, same_n=False)
    x, y = x.double(), y.double()
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 rows per set, got {x.shape[0]} and {y.shape[0]}.")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}.")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    values = []
    for _ in range(num_subsets):
        xs = x[torch.randperm(x.shape[0], generator=generator)[:size]]
        ys = y[torch.randperm(y.shape[0], generator=generator)[:size]]
        values.append(_polynomial_mmd2(xs, ys, degree, gamma, coef0))
    values_t = torch.tensor(values, dtype=torch.float64)
    std = values_t.std().item() if num_subsets > 1 else 0.0
    return {"kid": values_t.mean().item(), "kid_std": std, "subset_size": size, "num_subsets": num_subsets}


def mean_pairwise_distance(x: torch.Tensor, metric: str = "cosine") -> float:
    """Mean distance over all unordered pairs of rows: `"cosine"` (1 − cos) or `"euclidean"`; 0 for identical rows."""
    x = _check_2d("x", x)
    if x.shape[0] < 2:
        raise ValueError(f"Pairwise distance needs at least 2 rows, got {x.shape[0]}.")
    if metric == "cosine":
        distances = 1.0 - cosine_similarity_matrix(x, x)
    elif metric == "euclidean":
        distances = torch.cdist(x.double(), x.double())
    else:
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")
    upper = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    return distances[upper[0], upper[1]].clamp_min(0).mean().item()


def pixel_diversity(images: torch.Tensor) -> float:
    """Mean pairwise root-mean-square pixel difference among images `(N, C, H, W)` in [0, 1] (0 = all identical)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {getattr(images, 'shape', type(images))}.")
    flat = images.flatten(1).double()
    return mean_pairwise_distance(flat, "euclidean") / math.sqrt(flat.shape[1])


def path_smoothness(frames: torch.Tensor, normalize: bool = True) -> dict[str, float]:
    """How evenly a sequence of embeddings `(T, D)` moves: distances between consecutive frames (L2-normalised first
    unless `normalize=False`; CLIP embeddings are compared by direction, so the default normalises).

    Returns `mean_step`, `max_step`, `step_cv` (std / mean: 0 for equal steps), `max_over_mean` (1 for equal
    steps; large when the path jumps), `path_length`, `endpoint_distance` and `straightness`
    (endpoint distance / path length: 1 for a straight path).
    """
    frames = _check_2d("frames", frames)
    if frames.shape[0] < 2:
        raise ValueError(f"A path needs at least 2 frames, got {frames.shape[0]}.")
    frames = F.normalize(frames.double(), dim=-1) if normalize else frames.double()
    steps = (frames[1:] - frames[:-1]).norm(dim=1)  # (T-1,)
    mean_step = steps.mean().item()
    length = steps.sum().item()
    endpoint = (frames[-1] - frames[0]).norm().item()
    std = steps.std(unbiased=False).item()
    return {
        "mean_step": mean_step,
        "max_step": steps.max().item(),
        "step_cv": std / mean_step if mean_step > 0 else 0.0,
        "max_over_mean": steps.max().item() / mean_step if mean_step > 0 else 1.0,
        "path_length": length,
        "endpoint_distance": endpoint,
        "straightness": endpoint / length if length > 0 else 1.0,
    }

