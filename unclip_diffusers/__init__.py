"""unclip-diffusers: DALL-E 2 (unCLIP) as diffusers components and pipelines that you can train yourself."""

__version__ = "0.1.0"

from .models import UnCLIPPriorTransformer, UnCLIPTextProjection

__all__ = ["UnCLIPPriorTransformer", "UnCLIPTextProjection", "__version__"]
