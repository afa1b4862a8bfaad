"""Limits of every user-facing setting and the checks that turn bad values into one clear sentence.

The same limits feed the sliders' ranges (`ui`) and the checks on API calls (`inference`), so the two never drift.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unclip_diffusers.pipelines.pipeline_output import PromptFit

# Longer prompts are refused before tokenizing (a bound on the work one request can ask for). The model reads far fewer:
# `UnCLIPPipeline.fit_prompt` says how much, and the tab functions note where a prompt was cut.
MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Limit:
    """The range, default and step of one numeric setting."""

    label: str
    minimum: float
    maximum: float
    default: float
    step: float = 1
    integer: bool = True


LIMITS: dict[str, Limit] = {
    "num_images": Limit("Number of images", 1, 4, 2),
    "num_frames": Limit("Number of frames", 3, 16, 7),
    "prior_steps": Limit("Prior steps", 1, 100, 20),
    "decoder_steps": Limit("Decoder steps", 1, 100, 20),
    "super_res_steps": Limit("Upsampler steps", 1, 50, 7),
    "prior_guidance": Limit("Prior guidance scale", 1.0, 20.0, 4.0, step=0.5, integer=False),
    "decoder_guidance": Limit("Decoder guidance scale", 1.0, 20.0, 8.0, step=0.5, integer=False),
    "amount": Limit("Amount", 0.0, 1.0, 0.5, step=0.05, integer=False),
    "jumps": Limit("Resampling jumps", 0, 10, 0),
    "weight": Limit("Weight", 0.0, 1.0, 0.5, step=0.05, integer=False),
    "seed": Limit("Seed", 0, MAX_SEED, 0),
}


def format_number(value: float) -> str:
    """A number as a person would write it: `4294967295`, `0.5`, `8` (no exponent, no trailing `.0`)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class InputError(ValueError):
    """A user-facing problem with an input; the message is shown to the user as-is."""


def check_number(name: str, value: object, label: str | None = None) -> int | float:
    """Return `value` as a number inside `LIMITS[name]`, or raise `InputError` naming the setting (`label`, default
    the limit's own) and its range."""
    limit = LIMITS[name]
    if label is not None:
        limit = replace(limit, label=label)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{limit.label} must be a number, got {value!r}.")
    if not limit.minimum <= value <= limit.maximum:
        raise InputError(f"{limit.label} must be between {format_number(limit.minimum)} and "
                         f"{format_number(limit.maximum)}, got {format_number(value)}.")
    if limit.integer:
        if value != int(value):
            raise InputError(f"{limit.label} must be a whole number, got {format_number(value)}.")
        return int(value)
    return float(value)


def check_prompt(prompt: object, what: str = "prompt") -> str:
    """The prompt with its whitespace collapsed; raises `InputError` for a missing, blank or absurdly long prompt."""
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise InputError(f"The {what} must be text, got {type(prompt).__name__}.")
    prompt = " ".join(prompt.split())  # newlines and runs of spaces carry no meaning to the tokenizer
    if not prompt:
        raise InputError(f"The {what} is empty: describe what you want to see.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"The {what} has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted (the model "
                         "reads far fewer).")
    return prompt


def cut_prompt_note(fit: PromptFit, what: str = "prompt", words: int = 4) -> str | None:
    """A note saying where a prompt was cut (its last `words` words read, then what was ignored), or `None` if the
    model reads all of it."""
    if not fit.dropped:
        return None
    ignored = fit.dropped.split()
    ignored_text = " ".join(ignored[: 2 * words]) + (" …" if len(ignored) > 2 * words else "")
    return (f'The {what} is longer than the {fit.max_tokens} tokens the model reads: it was cut after '
            f'"…{" ".join(fit.kept.split()[-words:])}"; ignored: "{ignored_text}".')


def resolve_seed(seed: object, randomize: bool, rng: random.Random | None = None) -> int:
    """The seed a request runs with: a fresh random one if `randomize`, else the checked `seed`."""
    if randomize:
        return (rng or random.SystemRandom()).randint(0, MAX_SEED)
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    return int(check_number("seed", seed))
