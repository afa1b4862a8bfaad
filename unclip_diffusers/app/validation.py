"""Limits of every user-facing setting and the checks that turn bad values into one clear sentence.

The same limits feed the sliders' ranges (`ui`) and the checks on API calls (`inference`), so the two never drift.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MAX_PROMPT_CHARS = 400  # DALL-E 2's limit on prompt length
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
    "seed": Limit("Seed", 0, MAX_SEED, 0),
}


def format_number(value: float) -> str:
    """A number as a person would write it: `4294967295`, `0.5`, `8` (no exponent, no trailing `.0`)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class InputError(ValueError):
    """A user-facing problem with an input; the message is shown to the user as-is."""


def check_number(name: str, value: object) -> int | float:
    """Return `value` as a number inside `LIMITS[name]`, or raise `InputError` naming the setting and its range."""
    limit = LIMITS[name]
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


def check_prompt(prompt: object, what: str = "prompt") -> tuple[str, str | None]:
    """Strip a prompt and cut it to `MAX_PROMPT_CHARS`; returns the prompt and a notice if it was cut.

    Raises `InputError` for a missing or blank prompt.
    """
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise InputError(f"The {what} must be text, got {type(prompt).__name__}.")
    prompt = " ".join(prompt.split())  # newlines and runs of spaces carry no meaning to the tokenizer
    if not prompt:
        raise InputError(f"The {what} is empty: describe what you want to see.")
    if len(prompt) > MAX_PROMPT_CHARS:
        return (
            prompt[:MAX_PROMPT_CHARS],
            f"The {what} was cut to its first {MAX_PROMPT_CHARS} characters (it had {len(prompt)}), as in DALL·E 2.",
        )
    return prompt, None


def resolve_seed(seed: object, randomize: bool, rng: random.Random | None = None) -> int:
    """The seed a request runs with: a fresh random one if `randomize`, else the checked `seed`."""
    if randomize:
        return (rng or random.SystemRandom()).randint(0, MAX_SEED)
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    return int(check_number("seed", seed))
