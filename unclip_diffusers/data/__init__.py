"""Offline training data: a multi-style emoji image-caption dataset built from Debian and npm packages."""

from .captions import build_captions, evaluation_prompts, primary_caption, sample_caption
from .concepts import concept_key, emoji_concepts, fix_lobehub_key, key_from_filename, strip_skin_tones
from .language import LOCALES, load_language_data
from .loading import FIXTURE_PATH, load_image_text_dataset
from .report import make_contact_sheet, write_licenses
from .split import SPLITS, assign_splits

__all__ = [
    "FIXTURE_PATH",
    "LOCALES",
    "SPLITS",
    "assign_splits",
    "build_captions",
    "concept_key",
    "emoji_concepts",
    "evaluation_prompts",
    "fix_lobehub_key",
    "key_from_filename",
    "load_image_text_dataset",
    "load_language_data",
    "make_contact_sheet",
    "primary_caption",
    "sample_caption",
    "strip_skin_tones",
    "write_licenses",
]
