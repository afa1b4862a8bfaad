"""The Gradio app: tab builders, the inference functions behind them, upload sanitising and pipeline loading.

`app.py` at the repo root assembles these and launches; everything here can be tested without a server.
"""

from .images import SanitizedImage, sanitize_image
from .inference import UnCLIPService
from .loading import LoadedPipeline, load_pipeline
from .ui import build_demo, launch_kwargs

__all__ = ["LoadedPipeline", "SanitizedImage", "UnCLIPService", "build_demo", "launch_kwargs", "load_pipeline",
           "sanitize_image"]
