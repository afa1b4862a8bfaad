"""Small helpers shared by the pipeline, training and evaluation code (each defined once, here)."""

from .images import postprocess_images, to_rgb, to_tensor_images, upsample_for_super_res, validate_pil_images
from .slerp import slerp

__all__ = ["postprocess_images", "slerp", "to_rgb", "to_tensor_images", "upsample_for_super_res",
           "validate_pil_images"]
