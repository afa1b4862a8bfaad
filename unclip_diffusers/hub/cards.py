"""Model cards for pipelines and single stages: Jinja templates in `model_cards/` rendered with `huggingface_hub`'s
`ModelCard`/`ModelCardData`, and an offline check that a card is complete and its metadata parses.

Every number on a card comes from a file (`card_inputs`): `metrics.json` of `unclip-eval`, the dataset's
`build_info.json`, the run's `metrics.jsonl` and the safetensors headers. What no file holds is printed as
"not measured" or "not recorded".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .card_inputs import METRICS, NOT_MEASURED, Metrics, TrainingData, format_value

TEMPLATE_PACKAGE = "unclip_diffusers.hub.model_cards"
CARD_KINDS = ("pipeline", "karlo", "clip", "prior", "decoder", "upsampler")
TEMPLATE_OF_KIND = {"karlo": "pipeline"}
REQUIRED_TAGS = ("unclip", "dalle-2")
# Hub license ids this project may use (https://huggingface.co/docs/hub/repositories-licenses).
HUB_LICENSES = ("apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "openrail", "creativeml-openrail-m", "ofl-1.1",
                "other")
LIBRARY_OF_KIND = {"clip": "transformers"}  # everything else: diffusers
PIPELINE_TAG_OF_KIND = {"pipeline": "text-to-image", "karlo": "text-to-image", "clip": "zero-shot-image-classification",
                        "upsampler": "image-to-image"}
EXTRA_TAGS = {"pipeline": ["text-to-image", "emoji"], "karlo": ["text-to-image", "karlo"],
              "clip": ["clip", "emoji"], "prior": ["diffusion-prior", "emoji"], "decoder": ["unclip-decoder", "emoji"],
              "upsampler": ["super-resolution", "emoji"]}
# Sections every card has, by heading (checked by `validate_card`).
REQUIRED_SECTIONS = ("## Usage", "## Evaluation", "## Training data", "## Intended use", "## Limitations",
                     "## Remote code and safety", "## How to reproduce")
# How a card states the upload's training details for each stage (`training_config.json` of the run).
TRAINING_KEYS = ("model_preset", "max_steps", "batch_size", "gradient_accumulation_steps", "learning_rate",
                 "lr_scheduler", "mixed_precision", "ema_decay", "seed")


@dataclass
class CardInputs:
    """Everything a card template is given besides the metadata."""

    kind: str
    repo_id: str
    license: str = "apache-2.0"
    metrics: Metrics = field(default_factory=lambda: Metrics(source=None))
    training_data: TrainingData = field(default_factory=lambda: TrainingData(recorded=False, origin="not recorded"))
    dataset_id: str | None = None
    parameters: dict[str, int] = field(default_factory=dict)
    resolutions: dict[str, int] = field(default_factory=dict)
    preset: str | None = None
    training: dict[str, Any] | None = None  # the stage run's config.json ({"stage", "training", "model"})
    validation: tuple[int, dict[str, float]] | None = None
    code_files: dict[str, str] = field(default_factory=dict)  # path → sha256 of the code the upload ships
    sample_grid: tuple[str, str] | None = None  # (path in the repo, caption)
    eval_grids: list[str] = field(default_factory=list)  # paths in the repo
    training_samples: str | None = None  # path in the repo of the run's last validation grid
    licenses_file: str | None = None  # path in the repo of the training data's LICENSES.md
    components: dict[str, str] = field(default_factory=dict)  # component → class (pipelines)
    provenance: dict[str, dict[str, Any]] | None = None  # a pipeline's training_provenance.json (stage → facts)
    notes: str | None = None  # Markdown for the "About this release" section


def _template(name: str) -> str:
    return resources.files(TEMPLATE_PACKAGE).joinpath(f"{name}.md.jinja").read_text(encoding="utf-8")


def _render_partial(name: str, **context: Any) -> str:
    return jinja2.Template(_template(name), trim_blocks=True, lstrip_blocks=True).render(**context).strip()


def _metric_context(inputs: CardInputs) -> dict[str, Any]:
    rows = []
    kind = "pipeline" if inputs.kind == "karlo" else inputs.kind
    for row in inputs.metrics.for_card(kind):
        cells = []
        for split in inputs.metrics.splits:
            value, reference = row.values[split], row.references[split]
            text = format_value(value)
            if value is not None and reference is not None:
                text += f" ({row.spec.reference_label}: {format_value(reference)})"
            cells.append(text)
        rows.append({"label": row.spec.label, "key": row.spec.key, "cells": cells, "meaningful": row.meaningful,
                     "direction": "higher is better" if row.spec.higher_is_better else "lower is better"})
    bar_rows = _bar_rows(inputs.metrics) if kind == "pipeline" else []
    return {"metric_rows": rows, "bar_rows": bar_rows, "metric_splits": inputs.metrics.splits,
            "metrics_source": inputs.metrics.source, "metrics_mode": inputs.metrics.mode,
            "metric_specs": [m.label for m in METRICS if kind in m.cards],
            "evaluator_trained": inputs.metrics.evaluator_trained, "eval_grids": inputs.eval_grids,
            "validation": inputs.validation, "not_measured": NOT_MEASURED,
            "breakdown": inputs.metrics.breakdown if kind == "pipeline" else ""}


def _bar_rows(metrics: Metrics) -> list[dict[str, Any]]:
    """The quality-bar table of a pipeline card: per split, met or not, the value and the limit it needs."""
    rows = []
    for check in metrics.bars:
        cells = []
        for split in metrics.splits:
            met = check.met.get(split)
            if met is None:
                cells.append(NOT_MEASURED)
            else:
                cells.append(f"{'met' if met else '**not met**'}: {format_value(check.values[split])} (needs "
                             f"{check.bar.comparison} {format_value(check.limits[split])})")
        rows.append({"label": check.bar.label, "cells": cells, "meaningful": check.meaningful})
    return rows


def eval_results(inputs: CardInputs) -> list[EvalResult]:
    """The measured, meaningful metrics of a card as `model-index` results (one per metric and split).

    A stage's card lists only what measures the stage alone (CLIP retrieval, prior cosine); pipeline-level numbers
    stay in its text, marked as such.
    """
    results = []
    dataset = inputs.dataset_id or "unclip-emoji"
    pipeline = inputs.kind in ("pipeline", "karlo")
    for row in inputs.metrics.for_card("pipeline" if pipeline else inputs.kind):
        if not row.meaningful or not (pipeline or row.spec.stage_alone):
            continue
        for split in inputs.metrics.splits:
            value = row.values[split]
            if value is None:
                continue
            results.append(EvalResult(task_type=row.spec.task, dataset_type=dataset,
                                      dataset_name=f"emoji captions ({split})", dataset_split=split,
                                      metric_type=row.spec.key, metric_name=row.spec.label,
                                      metric_value=value))
    return results


def card_data(inputs: CardInputs) -> ModelCardData:
    """The card's YAML metadata: license, library, pipeline tag, tags, datasets, metrics and evaluation results."""
    if inputs.kind not in CARD_KINDS:
        raise ValueError(f"Unknown card kind {inputs.kind!r}; choose one of {list(CARD_KINDS)}.")
    if inputs.license not in HUB_LICENSES:
        raise ValueError(f"License {inputs.license!r} is not one of the Hub license ids {list(HUB_LICENSES)}.")
    results = eval_results(inputs)
    return ModelCardData(
        license=inputs.license,
        library_name=LIBRARY_OF_KIND.get(inputs.kind, "diffusers"),
        pipeline_tag=PIPELINE_TAG_OF_KIND.get(inputs.kind),
        tags=list(REQUIRED_TAGS) + EXTRA_TAGS[inputs.kind],
        datasets=[inputs.dataset_id] if inputs.dataset_id else None,
        metrics=sorted({r.metric_type for r in results}) or None,
        model_name=inputs.repo_id.split("/")[-1],
        eval_results=results or None,
    )


def render_card(inputs: CardInputs) -> ModelCard:
    """Render the card of `inputs.kind` from its template (shared sections come from `_*.md.jinja` partials)."""
    data = card_data(inputs)
    training = (inputs.training or {}).get("training") or {}
    context: dict[str, Any] = {
        "kind": inputs.kind, "repo_id": inputs.repo_id, "license": inputs.license, "preset": inputs.preset,
        "parameters": inputs.parameters, "total_parameters": sum(inputs.parameters.values()),
        "resolutions": inputs.resolutions, "components": inputs.components,
        "training": {k: training[k] for k in TRAINING_KEYS if k in training},
        "code_files": inputs.code_files, "sample_grid": inputs.sample_grid,
        "training_samples": inputs.training_samples, "data": inputs.training_data,
        "licenses_file": inputs.licenses_file, "dataset_id": inputs.dataset_id,
        "provenance": inputs.provenance, "notes": inputs.notes,
        "unfinished_stages": [k for k, v in (inputs.provenance or {}).items() if v.get("recorded") and not v["finished"]],
        **_metric_context(inputs),
    }
    for partial in ("metrics", "training_data", "training_progress", "remote_code", "reproduce"):
        context[f"{partial}_section"] = _render_partial(f"_{partial}", **context)
    card = ModelCard.from_template(data, template_str=_template(TEMPLATE_OF_KIND.get(inputs.kind, inputs.kind)),
                                   **context)
    card.content = re.sub(r"\n{3,}", "\n\n", card.content)
    return card


def validate_card(card: ModelCard | str, kind: str) -> list[str]:
    """Problems with a card, offline (an empty list when it is complete); `ModelCard.validate` asks the Hub too.

    Checks: the YAML metadata parses (including `model-index`), names a Hub license id, `library_name`, the tags
    `unclip` and `dalle-2` and, for pipelines, `pipeline_tag: text-to-image`; every required section is present; no
    template syntax is left; every metric in the metadata also appears in the text.
    """
    text = card.content if isinstance(card, ModelCard) else card
    problems: list[str] = []
    try:
        parsed = ModelCard(text, ignore_metadata_errors=False)
    except Exception as error:  # huggingface_hub raises ValueError/yaml errors for malformed metadata
        return [f"the metadata does not parse: {error}"]
    data = parsed.data
    if not text.startswith("---\n"):
        problems.append("the card does not start with YAML metadata")
    if data.license not in HUB_LICENSES:
        problems.append(f"license {data.license!r} is not a Hub license id")
    if data.library_name != LIBRARY_OF_KIND.get(kind, "diffusers"):
        problems.append(f"library_name is {data.library_name!r}")
    missing_tags = [t for t in REQUIRED_TAGS if t not in (data.tags or [])]
    if missing_tags:
        problems.append(f"tags lack {missing_tags}")
    if kind in ("pipeline", "karlo") and data.pipeline_tag != "text-to-image":
        problems.append(f"pipeline_tag is {data.pipeline_tag!r}, not 'text-to-image'")
    problems += [f"section {s!r} is missing" for s in REQUIRED_SECTIONS if s not in parsed.text]
    if re.search(r"{{|}}|{%|%}", parsed.text):
        problems.append("unrendered template syntax is left in the text")
    for result in data.eval_results or []:
        if format_value(float(result.metric_value)) not in parsed.text:
            problems.append(f"the metadata's {result.metric_type} = {result.metric_value} is not in the text")
    return problems


def save_card(card: ModelCard, folder: str | Path) -> Path:
    """Write the card as `README.md` in `folder`."""
    path = Path(folder) / "README.md"
    card.save(path)
    return path
