"""Many visitors at once: fire concurrent requests at a running app and sort every answer into ok / busy / failed.

A visitor must get either images or a sentence saying the app is busy; a request that hangs past its timeout or
fails with anything else counts as lost. Used by `benchmarks/bench_app_load.py` (the release under 20 visitors) and
by a bounded test against a tiny model.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

BUSY_WORDS = ("queue is full", "busy", "too many")  # what Gradio and the app say when a request is turned away


@dataclass
class RequestOutcome:
    """One visitor's request: `status` is "ok" (images came back), "busy" (a clear busy message) or "failed"."""

    status: str
    seconds: float  # from the click (the request's submission) to the answer
    message: str = ""
    connect_seconds: float = 0.0  # opening the page before the click: the client's config and API calls


def classify_error(error: BaseException) -> str:
    """'busy' when the error says the app is full or busy, else 'failed'."""
    text = str(error).lower()
    return "busy" if any(word in text for word in BUSY_WORDS) else "failed"


def _wait_for_everyone(start: threading.Barrier, timeout: float) -> None:
    """Wait until every visitor is connected; after `timeout` seconds (a client stuck connecting) go on anyway."""
    try:
        start.wait(timeout)
    except threading.BrokenBarrierError:
        pass


def _one_request(url: str, api_name: str, args: Sequence[Any], timeout: float,
                 start: threading.Barrier) -> RequestOutcome:
    from gradio_client import Client  # imported here: the app itself never needs the client

    connecting = time.perf_counter()
    try:  # each visitor has the page open before pressing the button, as in a browser
        client = Client(url, verbose=False, download_files=False)
    except Exception as error:  # noqa: BLE001 - every failure is sorted and reported, none is raised
        seconds = time.perf_counter() - connecting
        _wait_for_everyone(start, timeout)  # the others still press the button together
        return RequestOutcome(classify_error(error), seconds, f"{type(error).__name__}: {error}", seconds)
    connect_seconds = time.perf_counter() - connecting
    _wait_for_everyone(start, timeout)  # all visitors press the button at the same moment
    begin = time.perf_counter()
    try:
        result = client.submit(*args, api_name=api_name).result(timeout=timeout)
    except Exception as error:  # noqa: BLE001 - every failure is sorted and reported, none is raised
        return RequestOutcome(classify_error(error), time.perf_counter() - begin, f"{type(error).__name__}: {error}",
                              connect_seconds)
    images = result[0] if isinstance(result, (list, tuple)) and result else None
    status = "ok" if images else "failed"
    return RequestOutcome(status, time.perf_counter() - begin, "" if images else f"no images in {result!r:.200}",
                          connect_seconds)


def fire_requests(
    url: str, count: int, args: Sequence[Any], api_name: str = "/text_to_image", timeout: float = 120.0
) -> list[RequestOutcome]:
    """Send `count` requests to the app at `url` at the same moment, each from its own `gradio_client.Client`.

    Every client connects first (a visitor with the page open); the start signal waits for all of them, and each
    latency runs from the request's submission. A client that cannot connect is an answer at once (busy or failed).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}.")
    start = threading.Barrier(count)
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(_one_request, url, api_name, args, timeout, start) for _ in range(count)]
        return [future.result() for future in futures]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, linearly interpolated (`numpy.percentile`'s default)."""
    if not values:
        raise ValueError("No values.")
    return float(np.percentile(values, q))


def summarize_outcomes(outcomes: Sequence[RequestOutcome]) -> dict[str, Any]:
    """Counts per status, latency p50/p95/max over the answered (ok or busy) requests, and the slowest connection."""
    answered = [o.seconds for o in outcomes if o.status != "failed"]
    ok = [o.seconds for o in outcomes if o.status == "ok"]
    summary: dict[str, Any] = {s: sum(o.status == s for o in outcomes) for s in ("ok", "busy", "failed")}
    summary["requests"] = len(outcomes)
    if answered:
        summary.update(p50_s=percentile(answered, 50), p95_s=percentile(answered, 95), max_s=max(answered))
    if ok:
        summary.update(ok_p50_s=percentile(ok, 50), ok_p95_s=percentile(ok, 95), ok_mean_s=statistics.fmean(ok))
    summary["connect_max_s"] = max(o.connect_seconds for o in outcomes) if outcomes else 0.0
    summary["failures"] = [o.message for o in outcomes if o.status == "failed"][:5]
    return summary
