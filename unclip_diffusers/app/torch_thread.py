"""One thread for all of the server's torch work.

Gradio runs each step of a request's generator in whichever of its worker threads is free. On a 2-core CPU, in a
process in which several OS threads had run torch, one request took 1.65-1.9 s; with one worker thread doing all of
it, 1.45-1.5 s (1.3 s when that thread was the main one; `benchmarks/RESULTS.md`, "Guidance interval and the
prior's caption cache"). Serving on the main thread of the app itself was tried and was slower (1.74-2.07 vs
1.49-1.86 s a request; RESULTS, "The first upsampler finished ...").
`TorchThread` is that single thread: the app loads the pipeline on it and runs every step of every request on it,
one step at a time, so concurrent requests interleave stage by stage (each still sees its base image early) instead
of competing for the cores. Each call runs in the caller's `contextvars` context, which is how Gradio's
`gr.Progress` and `gr.Warning` find their request.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()  # what `next(generator, _DONE)` returns at the end: StopIteration cannot cross a Future


class TorchThread:
    """A daemon thread that runs submitted calls one at a time, in submission order."""

    def __init__(self, name: str = "torch") -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the thread (at once when called from it); its result or its exception."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        if not self._thread.is_alive():
            raise RuntimeError("The torch thread has stopped.")
        future: Future = Future()
        self._calls.put((contextvars.copy_context(), fn, args, kwargs, future))
        return future.result()

    def iterate(self, generator: Iterator[T]) -> Iterator[T]:
        """The items of `generator`, each one produced on the thread (the generator's code runs there)."""
        while True:
            item = self.call(next, generator, _DONE)
            if item is _DONE:
                return
            yield item

    def stop(self) -> None:
        """Finish the calls already submitted, then end the thread."""
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (request := self._calls.get()) is not None:
            context, fn, args, kwargs, future = request
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(context.run(fn, *args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - handed to the caller, who raises it
                future.set_exception(error)
