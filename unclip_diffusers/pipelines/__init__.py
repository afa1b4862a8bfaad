"""The unCLIP pipeline and its outputs."""

from .pipeline_output import PromptEncodings, UnCLIPPipelineOutput
from .pipeline_unclip import UnCLIPPipeline

__all__ = ["PromptEncodings", "UnCLIPPipeline", "UnCLIPPipelineOutput"]
