"""Offline quality figures for every unCLIP stage on held-out data: metrics, the evaluator CLIP, the runner, reports.

`metrics` holds pure functions on tensors; `evaluator` the independent evaluator CLIP; `runner` scores a pipeline;
`report` writes metrics.json, report.md, grids and plots; `cli` is the `unclip-eval` console script.
"""

from . import metrics
from .evaluator import EvaluatorCLIP, load_or_train_evaluator, train_evaluator
from .report import write_report
from .runner import run_evaluation
from .settings import EVAL_PRESETS, EvalSettings, get_eval_settings

__all__ = [
    "metrics",
    "EvaluatorCLIP",
    "load_or_train_evaluator",
    "train_evaluator",
    "write_report",
    "EVAL_PRESETS",
    "EvalSettings",
    "get_eval_settings",
    "run_evaluation",
]
