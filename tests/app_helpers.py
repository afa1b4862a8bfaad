"""Shared fixtures for the app tests: one seeded tiny pipeline and the service around it."""

import torch

from unclip_diffusers import UnCLIPPipeline
from unclip_diffusers.app import UnCLIPService
from unclip_diffusers.configs import build_components

FAST = {"prior_steps": 2, "decoder_steps": 2, "super_res_steps": 2}  # keep every test run to a fraction of a second


def tiny_service() -> UnCLIPService:
    """The tiny randomly initialised pipeline (seeded), served as the app serves its placeholder model."""
    torch.manual_seed(0)
    pipe = UnCLIPPipeline(**build_components("tiny"))
    pipe.set_progress_bar_config(disable=True)
    service = UnCLIPService(pipe, placeholder=True)
    service.defaults.update(FAST)  # the sliders and `None` settings then default to 2 steps per stage
    return service
