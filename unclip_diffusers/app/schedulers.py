"""The samplers a user can pick in "Advanced", each built fresh per request from a stage's own scheduler config."""

from __future__ import annotations

from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

DEFAULT_SCHEDULER = "DPM-Solver++ 2M"

# name -> (class, config overrides). Every entry supports the prior's x0 ("sample") and the other stages' epsilon
# prediction and needs no `scale_model_input`, so any of them can drive every stage.
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "DPM-Solver++ 2M": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM-Solver++ 2M Karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "DPM-Solver++ 3M": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 3}),
    "UniPC": (UniPCMultistepScheduler, {}),
    "DEIS": (DEISMultistepScheduler, {}),
    "DDIM": (DDIMScheduler, {"clip_sample": False, "set_alpha_to_one": False}),
    "DDPM (ancestral, slow)": (DDPMScheduler, {"clip_sample": False}),
}


def make_scheduler(name: str, config: Any) -> SchedulerMixin:
    """A new scheduler of kind `name` over the noise schedule in `config` (a stage's scheduler config).

    A new object per request: schedulers keep per-run state (timesteps, solver history), so sharing one between
    concurrent requests would mix their runs.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    cls, overrides = SCHEDULERS[name]
    return cls.from_config(config, **overrides)
