"""What a model card states, read from files written by the other tools: evaluation metrics and training data.

Nothing here invents a number: a value that a file does not hold is `None` and the card says "not measured".

## The `metrics.json` schema the cards read (written by `unclip-eval`)

```
{"meta":   {"evaluator": {"trained": bool, ...}, "mode": str, ...},      # all optional
 "splits": {"<held-out split>": {                                         # e.g. heldout_pairs, heldout_concepts
     "num_examples": int,
     "text_to_image": {"via_prior": {"r_precision": {"r_precision": float, "chance": float},
                                     "clip_fd": float, "clip_fd_floor": float,
                                     "kid": {"kid": float}, "kid_floor": {"kid": float}}},
     "prior":  {"cos_prior": float, "cos_text_embedding": float},
     "clip":   {"generation_clip": {"image_to_text": {"top1": float}, "text_to_image": {"top1": float}}},
     "variations": {"cos_input_variation": float, "cos_input_random": float},
     "inception_fid": {"value": float | null}}}}
```

`METRICS` lists every value read (its path under a split, the reference printed next to it, which cards show it).
Missing keys and `null` mean "not measured". Values scored by the evaluator CLIP are left out of the card's
metadata when `meta.evaluator.trained` is false (the report then says they are not meaningful), and a stage's card
keeps in its metadata only the values that measure that stage alone (`MetricSpec.stage_alone`).

## Training data

A dataset folder built by `unclip-data` holds `build_info.json` (`{"sources": [{"id", "package", "version", "style",
"license", "images"}, ...], "concepts", "split_sizes", ...}`) and `LICENSES.md` (attribution); `build_info.json` may also list `"language_sources": [{"package", "version", "license",
"locales"}, ...]`, the packages of caption names and keywords. The card lists the sources from it and the upload ships `LICENSES.md` as `TRAINING_DATA_LICENSES.md`.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .quality_bars import BarCheck, check_bars, lookup_number

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class MetricSpec:
    """One number of `metrics.json` that cards report."""

    key: str  # the card metadata's metric type
    label: str
    path: tuple[str, ...]  # under splits.<split>
    reference: tuple[str, ...] | None  # a chance level, floor or baseline printed next to the value
    reference_label: str
    higher_is_better: bool
    cards: tuple[str, ...]  # the kinds of card that show it
    evaluator: bool  # scored by the independent evaluator CLIP
    task: str = "text-to-image"
    stage_alone: bool = False  # measures its stage alone (else the whole pipeline: stage cards omit it from metadata)


_T2I = ("text_to_image", "via_prior")
_EVERYDAY = ("slices", "everyday")
METRICS: tuple[MetricSpec, ...] = (
    # The headline: what users ask for most (evaluation/slices.py), each next to the real images' own score.
    MetricSpec("everyday_concept_top1", "Everyday things: concept top-1 of generated images", _EVERYDAY + ("concept_top1",),
               _EVERYDAY + ("concept_top1_real",), "ceiling: real images", True, ("pipeline", "decoder"), True),
    MetricSpec("everyday_variation_fidelity", "Everyday things: concept top-1 of variations of real images",
               ("variation_fidelity", "everyday", "variation_concept_top1"),
               ("variation_fidelity", "everyday", "real_concept_top1"), "ceiling: real images", True,
               ("pipeline", "decoder"), True),
    MetricSpec("everyday_r_precision", "Everyday things: R-precision", _EVERYDAY + ("r_precision", "r_precision"),
               _EVERYDAY + ("r_precision", "chance"), "chance", True, ("pipeline", "decoder"), True),
    MetricSpec("r_precision", "R-precision of generated images", _T2I + ("r_precision", "r_precision"),
               _T2I + ("r_precision", "chance"), "chance", True, ("pipeline", "decoder"), True),
    MetricSpec("clip_fd", "CLIP-FD, generated vs real images", _T2I + ("clip_fd",), _T2I + ("clip_fd_floor",),
               "real-vs-real floor", False, ("pipeline", "decoder"), True),
    MetricSpec("kid", "KID, generated vs real images", _T2I + ("kid", "kid"), _T2I + ("kid_floor", "kid"),
               "real-vs-real floor", False, ("pipeline", "decoder"), True),
    MetricSpec("fid", "Inception FID", ("inception_fid", "value"), None, "", False, ("pipeline",), False),
    MetricSpec("edit_region_concept_top1", "Edit: concept top-1 of the repainted centre (inpainting)",
               ("inpaint", "region_concept_top1_edited"), ("inpaint", "region_concept_top1_text_to_image"),
               "plain text-to-image", True, ("pipeline",), True, "image-to-image"),
    MetricSpec("edit_psnr_outside", "Edit: PSNR outside the mask, worst image (dB; 100 = unchanged)",
               ("inpaint", "psnr_outside_min_db"), None, "", True, ("pipeline",), False, "image-to-image"),
    MetricSpec("prior_cosine", "cos(prior sample, true CLIP image embedding)", ("prior", "cos_prior"),
               ("prior", "cos_text_embedding"), "text-embedding baseline", True, ("pipeline", "prior"),
               False, stage_alone=True),
    MetricSpec("variation_cosine", "cos(input, variation), evaluator CLIP", ("variations", "cos_input_variation"),
               ("variations", "cos_input_random"), "a random image", True, ("pipeline", "decoder"), True),
    MetricSpec("image_to_text_top1", "CLIP retrieval image→caption, top-1", ("clip", "generation_clip",
               "image_to_text", "top1"), None, "", True, ("pipeline", "clip"), False, "zero-shot-image-classification",
               stage_alone=True),
    MetricSpec("text_to_image_top1", "CLIP retrieval caption→image, top-1", ("clip", "generation_clip",
               "text_to_image", "top1"), None, "", True, ("pipeline", "clip"), False, "zero-shot-image-classification",
               stage_alone=True),
)


@dataclass
class MetricRow:
    """A metric on every split: the values (None = not measured) and their references."""

    spec: MetricSpec
    values: dict[str, float | None]
    references: dict[str, float | None]
    meaningful: bool  # False when an untrained evaluator scored it


@dataclass
class Metrics:
    """The metrics of one evaluation, as the cards use them."""

    source: str | None  # the metrics.json path, None when no evaluation was given
    splits: list[str] = field(default_factory=list)
    rows: list[MetricRow] = field(default_factory=list)
    evaluator_trained: bool | None = None
    mode: str | None = None
    grids: list[Path] = field(default_factory=list)  # image grids written next to metrics.json
    bars: list[BarCheck] = field(default_factory=list)  # the release's quality bars on every split
    breakdown: str = ""  # Markdown: the report's per-slice and per-wording tables (the everyday slice, languages)

    def for_card(self, kind: str) -> list[MetricRow]:
        """The rows shown on a card of this kind."""
        return [row for row in self.rows if kind in row.spec.cards]


def read_metrics(path: str | os.PathLike | None) -> Metrics:
    """Read `unclip-eval`'s `metrics.json` (the file, or the report folder holding it); `None` gives no metrics."""
    if path is None:
        return Metrics(source=None)
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    file = path / METRICS_FILE if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"No {METRICS_FILE} at {str(path)!r}; pass the file or the folder unclip-eval wrote.")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from error
    splits = data.get("splits") if isinstance(data, dict) else None
    if not isinstance(splits, dict):
        raise ValueError(f"{file} has no 'splits' object; is it unclip-eval's metrics.json?")
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    evaluator = meta.get("evaluator") if isinstance(meta.get("evaluator"), dict) else {}
    trained = evaluator.get("trained") if isinstance(evaluator.get("trained"), bool) else None
    names = sorted(splits)
    rows = []
    for spec in METRICS:
        values = {s: lookup_number(splits[s], spec.path) for s in names}
        references = {s: lookup_number(splits[s], spec.reference) if spec.reference else None for s in names}
        rows.append(MetricRow(spec, values, references, meaningful=not (spec.evaluator and trained is False)))
    grids = sorted(p for p in folder.glob("*.png") if p.is_file())
    from ..evaluation.report import slice_and_wording_sections  # the report's own tables; imports torch

    breakdown = "\n".join(slice_and_wording_sections({s: splits[s] for s in names}, heading="###"))
    return Metrics(source=str(file), splits=names, rows=rows, evaluator_trained=trained, mode=meta.get("mode"),
                   grids=grids, bars=check_bars(splits, trained), breakdown=breakdown)


def format_value(value: float | None) -> str:
    """A metric value for a card table: 4 significant digits, or "not measured"."""
    return NOT_MEASURED if value is None else f"{value:.4g}"


@dataclass
class DataSource:
    """One source of training images (a row of `build_info.json`, or of the data code's list)."""

    style: str
    package: str
    license: str
    version: str | None = None
    images: int | None = None


@dataclass
class TextSource:
    """A package the captions' names and keywords come from (a row of `build_info.json`'s `language_sources`)."""

    package: str
    license: str
    version: str | None = None
    locales: list[str] = field(default_factory=list)


@dataclass
class TrainingData:
    """The training data a card lists: where it was read from, its sources and their licenses."""

    recorded: bool  # True when read from the dataset build that was used
    origin: str  # where the list comes from, in words
    sources: list[DataSource] = field(default_factory=list)
    licenses_file: Path | None = None
    concepts: int | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)
    text_sources: list[TextSource] = field(default_factory=list)  # caption names and keywords (CLDR, emojibase)

    @property
    def licenses(self) -> list[str]:
        """The distinct SPDX license ids of the sources."""
        return sorted({s.license for s in self.sources})

    @property
    def text_locales(self) -> list[str]:
        """The distinct locales of the caption text packages."""
        return sorted({locale for t in self.text_sources for locale in t.locales})


def read_training_data(data_dir: str | os.PathLike | None) -> TrainingData:
    """The sources of a dataset folder (`build_info.json`), else the data code's list of sources, else nothing."""
    if data_dir is not None:
        folder = Path(data_dir)
        info_path = folder / "build_info.json"
        if not info_path.is_file():
            raise ValueError(f"{str(folder)!r} has no build_info.json; pass the folder unclip-data build wrote.")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        sources = [DataSource(style=s.get("style", "?"), package=s.get("package", "?"), license=s.get("license", "?"),
                              version=s.get("version"), images=s.get("images")) for s in info.get("sources", [])]
        if not sources:
            raise ValueError(f"{info_path} lists no sources.")
        text_sources = [TextSource(package=t.get("package", "?"), license=t.get("license", "?"), version=t.get("version"),
                                   locales=list(t.get("locales") or [])) for t in info.get("language_sources", [])]
        licenses = folder / "LICENSES.md"
        return TrainingData(recorded=True, origin=f"the dataset build `{folder.name}` (build_info.json)",
                            sources=sources, licenses_file=licenses if licenses.is_file() else None,
                            concepts=info.get("concepts"), split_sizes=dict(info.get("split_sizes") or {}),
                            text_sources=text_sources)
    sources = data_code_sources()
    if sources is None:
        return TrainingData(recorded=False, origin="not recorded")
    return TrainingData(recorded=False, origin="the sources unclip-data can build from (the build used was not given)",
                        sources=sources)


def data_code_sources() -> list[DataSource] | None:
    """Every source the data code (`unclip_diffusers.data.sources.SOURCES`) knows, or None without that code."""
    try:
        specs = importlib.import_module("unclip_diffusers.data.sources").SOURCES
    except (ImportError, AttributeError):
        return None
    return [DataSource(style=s.style, package=s.package, license=s.license) for s in specs]


def training_data_path(training_config: dict[str, Any] | None) -> str | None:
    """The dataset folder a training run recorded in its config, if it still exists with a `build_info.json`."""
    path = ((training_config or {}).get("training") or {}).get("data_path")
    if path and (Path(path) / "build_info.json").is_file():
        return str(path)
    return None


def last_validation(run_dir: str | os.PathLike | None) -> tuple[int, dict[str, float]] | None:
    """`(step, values)` of the last validation record in a training run's `metrics.jsonl`, if any."""
    if run_dir is None or not (Path(run_dir) / "metrics.jsonl").is_file():
        return None
    found = None
    for line in (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("Skipping a malformed line of %s/metrics.jsonl", run_dir)
            continue
        if isinstance(record, dict) and isinstance(record.get("validation"), dict):
            values = {k: float(v) for k, v in record["validation"].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
            found = (int(record.get("step", -1)), values)
    return found
