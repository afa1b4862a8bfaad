"""One builder per tab; `unclip_diffusers.app.ui.build_demo` assembles them and wires the cross-tab buttons.

Each tab's model-running function is registered twice, by `EventOptions.register`: as the page's event (private) and
as the tab's public API endpoint. The two differ in what suits each caller:

- On the page a refused or failed request keeps the results and the seed already shown; the notes say why and a
  toast pops up (a raised `gr.Error` would cover every output with an error badge). API clients get the error itself.
- Where the page's input widget does not suit a client (the Edit tab's image editor holds the image and the painted
  mask; a client sends the two as images), `api_inputs` names the hidden components the endpoint reads instead.
- Over the API `randomize_seed` defaults to `False`, so a seed a client passes is used; `randomize_seed=True` draws a
  fresh one. On the page the "Randomize seed" box starts ticked. Either way the seed used is returned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

CONCURRENCY_ID = "unclip"  # every event that runs the model shares one concurrency limit


def keep_results_on_error(fn: Callable[..., Iterator[tuple]], num_outputs: int) -> Callable[..., Iterator[tuple]]:
    """The page's version of a tab function: on a `gr.Error` it leaves every output but the last (the notes) as it
    was and writes the error there, with a toast."""

    @functools.wraps(fn)
    def page(*args: Any, **kwargs: Any) -> Iterator[tuple]:
        try:
            yield from fn(*args, **kwargs)
        except gr.Error as error:
            gr.Warning(error.message, title="Not generated")
            yield (*[gr.skip()] * (num_outputs - 1), f"**Not generated:** {error.message}")

    return page


@dataclass
class EventOptions:
    """How each tab registers its model-running event."""

    concurrency_limit: int = 1  # simultaneous generations across all tabs
    cache_examples: bool = False  # cache example outputs lazily (computed on first click)

    def event_kwargs(self) -> dict:
        return {"concurrency_id": CONCURRENCY_ID, "concurrency_limit": self.concurrency_limit}

    def register(self, triggers: Sequence[Any], fn: Callable[..., Iterator[tuple]], inputs: list[Any],
                 outputs: list[Any], *, randomize: gr.Checkbox, api_name: str, api_description: str,
                 api_inputs: dict[Any, Any] | None = None) -> Any:
        """Register `fn` as the page's event on `triggers` and as the API endpoint `api_name` (see the module
        docstring); `randomize` is the page's "Randomize seed" box among `inputs`, and `api_inputs` maps other page
        inputs to the (hidden) components the endpoint reads in their place. Returns the page's event."""
        swaps = {randomize: gr.Checkbox(value=False, label="Randomize seed", visible=False), **(api_inputs or {})}
        endpoint_inputs = [swaps.get(component, component) for component in inputs]  # components hash by identity
        gr.on([], fn, endpoint_inputs, outputs, api_name=api_name, api_description=api_description,
              **self.event_kwargs())
        # Registered second, so the endpoint owns `api_name`; the page's event only gets a private one.
        return gr.on(triggers, keep_results_on_error(fn, len(outputs)), inputs, outputs, api_visibility="private",
                     **self.event_kwargs())
