"""`TorchThread`: every step of every request on one thread, errors and Gradio's context carried across."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest

from app_helpers import tiny_service
from unclip_diffusers.app.torch_thread import TorchThread

REQUEST = contextvars.ContextVar("request", default=None)


@pytest.fixture
def torch_thread():
    thread = TorchThread(name="test-torch")
    yield thread
    thread.stop()


def test_calls_run_on_the_one_thread_in_the_callers_context(torch_thread):
    def where(x):
        return threading.current_thread().name, REQUEST.get(), x * 2

    def from_a_worker(i):
        REQUEST.set(f"request {i}")
        return torch_thread.call(where, i)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(from_a_worker, range(8)))
    assert results == [("test-torch", f"request {i}", 2 * i) for i in range(8)]
    assert torch_thread.call(torch_thread.call, where, 1)[0] == "test-torch"  # a call from the thread runs inline


def test_errors_reach_the_caller_and_the_thread_goes_on(torch_thread):
    def fail():
        raise ValueError("bad prompt")

    with pytest.raises(ValueError, match="bad prompt"):
        torch_thread.call(fail)
    assert torch_thread.call(lambda: threading.current_thread().name) == "test-torch"


def test_iterate_produces_every_item_on_the_thread_and_ends(torch_thread):
    def steps():
        for i in range(3):
            yield i, threading.current_thread().name

    assert list(torch_thread.iterate(steps())) == [(i, "test-torch") for i in range(3)]
    torch_thread.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        torch_thread.call(int)


def test_service_on_a_torch_thread_gives_the_same_images_and_user_errors(torch_thread):
    plain = tiny_service()
    threaded = tiny_service()
    threaded.torch_thread = torch_thread
    seen = []
    original = threaded.pipe.decode

    def decode(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    threaded.pipe.decode = decode
    settings = dict(seed=3, num_images=1, prior_steps=2, decoder_steps=2, super_res_steps=2)
    expected = list(plain.text_to_image("a cat", **settings, progress=lambda *a, **k: None))
    got = list(threaded.text_to_image("a cat", **settings, progress=lambda *a, **k: None))
    assert len(got) == len(expected) and seen == ["test-torch"]
    assert [image.tobytes() for image in got[-1][0]] == [image.tobytes() for image in expected[-1][0]]
    with pytest.raises(gr.Error, match="prompt"):
        list(threaded.text_to_image("", progress=lambda *a, **k: None))
