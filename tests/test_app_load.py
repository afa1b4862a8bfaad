"""Many visitors at once against a launched app (tiny model): every request gets images or a clear busy message."""

import pytest

from app_helpers import tiny_service
from unclip_diffusers.app import build_demo, launch_kwargs
from unclip_diffusers.app.load_test import RequestOutcome, classify_error, fire_requests, percentile, summarize_outcomes

pytestmark = pytest.mark.slow
ARGS = ["a cat", 1, False, 1, 2, 2, 2, 4.0, 8.0, "DPM-Solver++ 2M"]  # prompt, seed, randomize, images, steps, ...


@pytest.fixture(scope="module")
def small_queue_server():
    demo = build_demo(tiny_service(), "random tiny model", concurrency_limit=1, queue_size=2)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_kwargs())
    yield demo.local_url
    demo.close()


def test_more_visitors_than_the_queue_holds_get_images_or_a_busy_message(small_queue_server):
    outcomes = fire_requests(small_queue_server, 8, ARGS, timeout=60)
    summary = summarize_outcomes(outcomes)
    assert summary["failed"] == 0, summary["failures"]
    assert summary["ok"] >= 1 and summary["busy"] >= 1  # a queue of 2 cannot hold 8 at once
    assert summary["ok"] + summary["busy"] == 8
    assert all("queue" in o.message.lower() for o in outcomes if o.status == "busy")
    assert all(o.connect_seconds > 0 for o in outcomes)  # connected before the click, timed apart from the request
    assert summary["connect_max_s"] == max(o.connect_seconds for o in outcomes)


def test_visitors_that_cannot_connect_fail_without_holding_back_the_others():
    outcomes = fire_requests("http://127.0.0.1:1", 3, ARGS, timeout=30)  # nothing listens on port 1
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert all(o.seconds == o.connect_seconds and "Error" in o.message for o in outcomes)


def test_outcome_sorting_and_percentiles():
    assert classify_error(RuntimeError("Queue is full! Please try again.")) == "busy"
    assert classify_error(ValueError("Prompt is empty")) == "failed"
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([5.0], 95) == 5.0
    summary = summarize_outcomes([RequestOutcome("ok", 1.0), RequestOutcome("busy", 0.1),
                                  RequestOutcome("failed", 9.0, "Timeout")])
    assert (summary["ok"], summary["busy"], summary["failed"]) == (1, 1, 1)
    assert summary["max_s"] == 1.0 and summary["failures"] == ["Timeout"]
    with pytest.raises(ValueError, match="count must be >= 1"):
        fire_requests("http://127.0.0.1:1", 0, ARGS)
