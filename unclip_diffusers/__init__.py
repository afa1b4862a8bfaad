"""unclip-diffusers: DALL-E 2 (unCLIP) as diffusers components and pipelines that you can train yourself."""

__version__ = "0.1.0"

# diffusers loads a component declared as ["unclip_diffusers", "UnCLIPPriorTransformer"] in model_index.json by
# looking up, in this module, the diffusers base class that provides `from_pretrained`; so it must be visible here.
from diffusers import ModelMixin  # noqa: F401

from .models import UnCLIPPriorTransformer, UnCLIPTextProjection
from .pipelines import PromptEncodings, PromptFit, UnCLIPPipeline, UnCLIPPipelineOutput

__all__ = [
    "PromptEncodings",
    "PromptFit",
    "UnCLIPPipeline",
    "UnCLIPPipelineOutput",
    "UnCLIPPriorTransformer",
    "UnCLIPTextProjection",
    "__version__",
]
