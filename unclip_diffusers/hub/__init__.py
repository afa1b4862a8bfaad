"""Sharing on the Hugging Face Hub: `unclip-push` (`push`), model cards (`cards`, `model_cards/`) and the code an
upload ships so that diffusers loads it without this package (`remote_code`)."""

from .cards import CardInputs, render_card, validate_card
from .push import UploadOptions, build_upload, push_folder

__all__ = ["CardInputs", "UploadOptions", "build_upload", "push_folder", "render_card", "validate_card"]
