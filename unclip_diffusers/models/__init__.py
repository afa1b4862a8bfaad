"""Models that diffusers and transformers do not provide as-is."""

from .prior_transformer import UnCLIPPriorTransformer
from .text_projection import UnCLIPTextProjection

__all__ = ["UnCLIPPriorTransformer", "UnCLIPTextProjection"]
