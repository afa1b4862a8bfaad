"""One builder per tab; `unclip_diffusers.app.ui.build_demo` assembles them and wires the cross-tab buttons."""

from dataclasses import dataclass

CONCURRENCY_ID = "unclip"  # every event that runs the model shares one concurrency limit


@dataclass
class EventOptions:
    """How each tab registers its model-running event."""

    concurrency_limit: int = 1  # simultaneous generations across all tabs
    cache_examples: bool = False  # cache example outputs lazily (computed on first click)

    def event_kwargs(self) -> dict:
        return {"concurrency_id": CONCURRENCY_ID, "concurrency_limit": self.concurrency_limit}
