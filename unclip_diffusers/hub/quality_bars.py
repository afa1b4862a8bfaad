"""The quality bars a release is held to, checked against `unclip-eval`'s `metrics.json` for its model card.

A bar is a threshold on one value under `splits.<split>` of `metrics.json`, either absolute (`top-1 ≥ 0.75`) or a
multiple of a reference measured in the same run (`CLIP-FD ≤ 1.5 × the real-vs-real floor`). The card prints each
bar per split with the measured value and whether it is met, so an unmet bar is stated, never hidden; a value that
was not measured is neither met nor unmet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def lookup_number(data: Any, path: tuple[str, ...]) -> float | None:
    """The finite number at `path` in nested dicts, else None (missing key, null, NaN, not a number)."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    if isinstance(data, bool) or not isinstance(data, (int, float)) or not math.isfinite(data):
        return None
    return float(data)


@dataclass(frozen=True)
class QualityBar:
    """One bar: `value ≥ threshold` (or `≤` when lower is better), the threshold scaled by `reference` if given."""

    label: str
    path: tuple[str, ...]  # the value under splits.<split>
    threshold: float
    reference: tuple[str, ...] | None = None  # the bar is `threshold × reference` (a floor or baseline)
    higher_is_better: bool = True
    evaluator: bool = False  # scored by the evaluator CLIP (not meaningful when it was untrained)
    strict: bool = False  # "above the baseline": a tie does not meet it

    @property
    def comparison(self) -> str:
        """How a value must compare with the limit: `≥`, `≤`, `>` or `<`."""
        if self.strict:
            return ">" if self.higher_is_better else "<"
        return "≥" if self.higher_is_better else "≤"

    def passes(self, value: float, limit: float) -> bool:
        """Whether `value` meets the bar at `limit`."""
        return {"≥": value >= limit, "≤": value <= limit, ">": value > limit, "<": value < limit}[self.comparison]


_T2I = ("text_to_image", "via_prior")
_CLIP = ("clip", "generation_clip")
# The release bars (issue "The release checkpoint"), measured on held-out (concept, style) pairs.
QUALITY_BARS: tuple[QualityBar, ...] = (
    QualityBar("CLIP image→caption top-1 among all the split's captions ≥ 0.75", _CLIP + ("image_to_text", "top1"),
               0.75),
    QualityBar("CLIP style accuracy ≥ 0.95", _CLIP + ("style_accuracy", "accuracy"), 0.95),
    QualityBar("prior mean cos(ẑ_i, z_i) ≥ 0.8", ("prior", "cos_prior"), 0.8),
    QualityBar("prior mean cos(ẑ_i, z_i) above the text-embedding baseline", ("prior", "cos_prior"), 1.0,
               reference=("prior", "cos_text_embedding"), strict=True),
    QualityBar("text-to-image R-precision (evaluator CLIP, 1 vs 99) ≥ 0.70",
               _T2I + ("r_precision", "r_precision"), 0.70, evaluator=True),
    QualityBar("CLIP-FD ≤ 1.5 × the real-vs-real floor", _T2I + ("clip_fd",), 1.5, reference=_T2I + ("clip_fd_floor",),
               higher_is_better=False, evaluator=True),
)


@dataclass
class BarCheck:
    """A bar on every split: the measured value, the limit it is held to and whether it is met (None: not measured)."""

    bar: QualityBar
    values: dict[str, float | None]
    limits: dict[str, float | None]
    met: dict[str, bool | None]
    meaningful: bool  # False when an untrained evaluator CLIP scored it


def check_bars(
    splits: dict[str, Any],
    evaluator_trained: bool | None = None,
    bars: tuple[QualityBar, ...] = QUALITY_BARS,
) -> list[BarCheck]:
    """Check `bars` on each split of `metrics.json`'s `splits` object (split name → sections)."""
    checks = []
    for bar in bars:
        values, limits, met = {}, {}, {}
        for split in sorted(splits):
            value = lookup_number(splits[split], bar.path)
            limit = bar.threshold
            if bar.reference is not None:
                reference = lookup_number(splits[split], bar.reference)
                limit = None if reference is None else bar.threshold * reference
            values[split], limits[split] = value, limit
            met[split] = None if value is None or limit is None else bar.passes(value, limit)
        checks.append(BarCheck(bar, values, limits, met, meaningful=not (bar.evaluator and evaluator_trained is False)))
    return checks
