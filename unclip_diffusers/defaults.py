"""Where the released pipeline lives: the bundled checkpoint folder, an environment variable, or the Hub."""

from __future__ import annotations

import os
from pathlib import Path

HUB_REPO_ID = "unclip-diffusers/unclip-emoji"
ENV_VAR = "UNCLIP_PRETRAINED"
RELEASE_FOLDER = ("checkpoints", "unclip-emoji")


def repo_root() -> Path:
    """The source checkout this package was imported from (its parent folder; meaningful for editable installs)."""
    return Path(__file__).resolve().parent.parent


def default_pretrained_path(root: str | os.PathLike | None = None) -> str:
    """The pipeline `UnCLIPPipeline.from_pretrained()` loads when given no path.

    In order: `checkpoints/unclip-emoji` under the repository root if it holds a `model_index.json`; else the value of
    the `UNCLIP_PRETRAINED` environment variable if set; else the Hub id `unclip-diffusers/unclip-emoji`.
    `root` overrides the repository root (for tests).
    """
    folder = Path(root if root is not None else repo_root()).joinpath(*RELEASE_FOLDER)
    if (folder / "model_index.json").is_file():
        return str(folder)
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return from_env
    return HUB_REPO_ID
