"""The unCLIP pipeline and its outputs."""

from .pipeline_output import PromptEncodings, PromptFit, UnCLIPPipelineOutput
from .pipeline_unclip import UnCLIPPipeline

__all__ = ["PromptEncodings", "PromptFit", "UnCLIPPipeline", "UnCLIPPipelineOutput"]
