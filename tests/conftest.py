"""Shared test fixtures: one thread for the tiny models and one seeded tiny pipeline per module."""

import pytest
import torch

from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.configs import build_components


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; several threads per process thrash a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_tiny_pipeline(with_embedding_stats: bool = True) -> UnCLIPPipeline:
    """The seeded tiny pipeline; with non-trivial prior statistics so `post_process_latents` is exercised."""
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    if with_embedding_stats:
        pipe.prior.set_embedding_stats(torch.randn(32) * 0.1, torch.rand(32) + 0.5)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe() -> UnCLIPPipeline:
    return make_tiny_pipeline()
