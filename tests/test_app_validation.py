"""Limits, prompt checks and seeds shared by the UI and the API."""

import random

import gradio as gr
import pytest

from unclip_diffusers.app.schedulers import SCHEDULERS, make_scheduler
from unclip_diffusers.app.validation import LIMITS, MAX_PROMPT_CHARS, InputError, check_number, check_prompt, resolve_seed
from unclip_diffusers.app.widgets import advanced_settings, seed_controls, slider
from unclip_diffusers.configs import build_sampling_scheduler


def test_prompt_is_stripped_and_only_absurd_lengths_are_refused():
    assert check_prompt("  a  red\napple ") == "a red apple"
    long = "red apple " * 100  # far past what the model reads: cut by tokens later (`fit_prompt`), not here
    assert check_prompt(long) == long.strip()
    with pytest.raises(InputError, match=f"prompt has {MAX_PROMPT_CHARS + 1} characters; at most {MAX_PROMPT_CHARS}"):
        check_prompt("x" * (MAX_PROMPT_CHARS + 1))


@pytest.mark.parametrize("prompt", ["", "   ", None, "\n\t"])
def test_blank_prompts_are_refused(prompt):
    with pytest.raises(InputError, match="empty"):
        check_prompt(prompt)


def test_numbers_are_range_checked_with_the_setting_name():
    assert check_number("num_images", 3) == 3 and isinstance(check_number("num_images", 3.0), int)
    with pytest.raises(InputError, match="Number of images must be between 1 and 4, got 9"):
        check_number("num_images", 9)
    with pytest.raises(InputError, match="whole number"):
        check_number("prior_steps", 2.5)
    with pytest.raises(InputError, match="must be a number"):
        check_number("decoder_guidance", "lots")
    with pytest.raises(InputError, match="must be a number"):
        check_number("decoder_guidance", float("nan"))
    assert check_number("amount", 1) == 1.0 and isinstance(check_number("amount", 1), float)


def test_defaults_lie_inside_their_limits():
    for name, limit in LIMITS.items():
        assert limit.minimum <= limit.default <= limit.maximum, name


def test_seeds():
    assert resolve_seed(7, False) == 7 and resolve_seed(7.0, False) == 7
    assert resolve_seed(7, True, random.Random(0)) == resolve_seed(0, True, random.Random(0))
    with pytest.raises(InputError, match="Seed"):
        resolve_seed(-1, False)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_keeps_the_stage_schedule(name):
    base = build_sampling_scheduler("sample")
    scheduler = make_scheduler(name, base.config)
    assert scheduler.config.prediction_type == "sample"
    assert scheduler.config.beta_schedule == base.config.beta_schedule
    assert scheduler is not make_scheduler(name, base.config)
    with pytest.raises(ValueError, match="Unknown scheduler"):
        make_scheduler("Euler", base.config)


@pytest.mark.parametrize("make, value, message", [
    (lambda: slider("num_images"), 2.5, "Number of images must be a whole number, got 2.5"),
    (lambda: seed_controls("t")[0], 1.5, "Seed must be a whole number, got 1.5"),
])
def test_integer_inputs_refuse_fractions_instead_of_rounding_them(make, value, message):
    with gr.Blocks():
        component = make()
    with pytest.raises(gr.Error, match=message) as refused:
        component.preprocess(value)
    assert refused.value.print_exception is False  # a sentence for the client, no traceback in the server log
    assert component.preprocess(float(int(value))) == int(value)  # 2.0 is a whole number and still accepted


def test_unknown_scheduler_is_refused_by_name_before_it_reaches_the_function():
    with gr.Blocks():
        dropdown = advanced_settings("t", {})[-1]
    assert dropdown.preprocess("UniPC") == "UniPC"
    with pytest.raises(gr.Error, match="Scheduler must be one of: DPM-Solver\\+\\+ 2M, .*; got 'Euler'") as refused:
        dropdown.preprocess("Euler")
    assert refused.value.print_exception is False
