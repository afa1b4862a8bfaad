"""Stop a training run on SIGTERM or SIGINT at the next step boundary, after writing a checkpoint.

Without this, `kill` (or the end of a session, or Ctrl-C) loses every step since the last periodic checkpoint (up
to `checkpoint_every` steps: minutes of CPU time for the `small` presets). The first signal only sets a flag; the
loop finishes its optimizer step, writes `checkpoint-<step>` and raises `TrainingInterrupted`, and `unclip-train`
exits with 128 + the signal number. A second signal acts as it would without this handler (Ctrl-C twice = stop now).
With several processes the flag is reduced across them every step, so all stop at the same step.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import torch

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal; `checkpoint` holds everything up to `step` (continue with `--resume`)."""

    def __init__(self, signal_number: int, step: int, checkpoint: Any) -> None:
        self.signal_number, self.step, self.checkpoint = signal_number, step, checkpoint
        name = signal.Signals(signal_number).name
        super().__init__(f"Stopped by {name} at step {step}; checkpoint {checkpoint} holds it, continue with --resume.")

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number


class StopOnSignal:
    """Context manager: while active, SIGTERM/SIGINT request a stop instead of killing the process.

    Handlers can only be installed from the main thread; elsewhere (e.g. a training run started from a worker
    thread) it does nothing and signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.signal_number = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.signal_number = number
        self._restore()  # a second signal gets the default behaviour

    def requested(self, accelerator: Any) -> int:
        """The signal number if any process was asked to stop (0 if none); a collective call with >1 process."""
        if accelerator.num_processes == 1:
            return self.signal_number
        flag = torch.tensor([float(self.signal_number)], device=accelerator.device)
        return int(accelerator.reduce(flag, "max").item())
