"""Small helpers shared by the pipeline, training and evaluation code (each defined once, here)."""

from .cpu_bf16 import cpu_has_native_bf16, enable_cpu_bf16_autocast
from .images import postprocess_images, to_rgb, to_tensor_images, upsample_for_super_res, validate_pil_images
from .psnr import psnr
from .slerp import slerp

__all__ = ["cpu_has_native_bf16", "enable_cpu_bf16_autocast", "postprocess_images", "psnr", "slerp", "to_rgb",
           "to_tensor_images", "upsample_for_super_res", "validate_pil_images"]
