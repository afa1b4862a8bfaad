"""Linear probes: how much of a label (a drawing style, a concept) an embedding space holds on its own.

CLIP's caption-based style accuracy asks both towers at once. A multinomial logistic regression fitted on the image
embeddings alone asks only the image tower: when the best linear classifier cannot tell two styles apart in the
embedding space, the image tower has not learnt the difference, and its confusion matrix says which styles it mixes.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F


__all__ = ["encode_labels", "fit_linear_probe", "probe_predict", "nearest_neighbour_predict", "confusion_matrix",
           "per_class_accuracy"]


def encode_labels(labels: Sequence[Hashable], classes: Sequence[Hashable]) -> torch.Tensor:
    """Class indices `(N,)` of `labels` in `classes`; an unknown label is an error, never a silent class."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(label) for label in labels if label not in index})
    if unknown:
        raise ValueError(f"Labels not among the {len(index)} classes: {unknown[:5]}.")
    return torch.tensor([index[label] for label in labels], dtype=torch.long)


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decay: float = 1e-6,
    max_iter: int = 300,
    seed: int = 0,
) -> torch.nn.Linear:
    """Fit an L2-regularised multinomial logistic regression on L2-normalised `features` `(N, D)` with full-batch
    L-BFGS (deterministic for a seed), and return it as a `torch.nn.Linear` that takes normalised features."""
    features = _check_features(features)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}.")
    if num_classes < 2 or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) with num_classes >= 2.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = torch.nn.Linear(features.shape[1], num_classes)
    x = F.normalize(features, dim=-1)
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(x), labels) + weight_decay * probe.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return probe.requires_grad_(False)


@torch.no_grad()
def probe_predict(probe: torch.nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """Predicted class `(N,)` of each feature row."""
    return probe(F.normalize(_check_features(features), dim=-1)).argmax(dim=-1)


@torch.no_grad()
def nearest_neighbour_predict(reference: torch.Tensor, reference_labels: torch.Tensor, query: torch.Tensor,
                              chunk: int = 1024) -> torch.Tensor:
    """The label `(N,)` of each query row's most cosine-similar reference row: what an embedding puts next to it."""
    reference = F.normalize(_check_features(reference), dim=-1)
    reference_labels = torch.as_tensor(reference_labels, dtype=torch.long)
    if reference_labels.shape != (reference.shape[0],):
        raise ValueError(f"reference_labels must have shape ({reference.shape[0]},), got {tuple(reference_labels.shape)}.")
    query = F.normalize(_check_features(query), dim=-1)
    nearest = [(query[start : start + chunk] @ reference.T).argmax(dim=1) for start in range(0, len(query), chunk)]
    return reference_labels[torch.cat(nearest)]


def confusion_matrix(true: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """`(C, C)` counts: row = true class, column = predicted class."""
    true, predicted = torch.as_tensor(true, dtype=torch.long), torch.as_tensor(predicted, dtype=torch.long)
    if true.shape != predicted.shape:
        raise ValueError(f"true and predicted differ in shape: {tuple(true.shape)} vs {tuple(predicted.shape)}.")
    return torch.bincount(true * num_classes + predicted, minlength=num_classes**2).view(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Recall of each class (None for a class with no true examples)."""
    totals = confusion.sum(dim=1)
    return [None if int(n) == 0 else float(confusion[i, i] / n) for i, n in enumerate(totals)]


def _check_features(features: torch.Tensor) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] == 0:
        raise ValueError("features must be a non-empty (N, D) tensor.")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values.")
    return features.float()
