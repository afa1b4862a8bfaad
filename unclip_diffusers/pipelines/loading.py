"""How a saved unCLIP pipeline folder describes itself, so that diffusers can load it.

What diffusers 0.42 does with `model_index.json` (see `diffusers/pipelines/pipeline_loading_utils.py`):
- `_class_name` given as `[module, class]` with `module.py` in the folder makes `from_pretrained` load that file as
  custom pipeline code — only with `trust_remote_code=True`, even for a local folder.
- A component entry `[library, class]` whose library is not `diffusers`/`transformers` is taken from `sys.modules`;
  diffusers never imports it on the folder's say-so. The library object must also expose one of diffusers' base
  classes by name (`ModelMixin` for our models) so that diffusers finds the `from_pretrained` to call.

So a saved folder names `["pipeline_unclip", "UnCLIPPipeline"]` and ships `pipeline_unclip.py`, a two-line module
that imports the installed `unclip_diffusers` (which registers it in `sys.modules`), and our own components are
written as `["unclip_diffusers", ClassName]`. Then:
- `UnCLIPPipeline.from_pretrained(folder)` runs no code from the folder (`UnCLIPPipeline.load_config` reads the list
  form as our own class);
- `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` runs `pipeline_unclip.py`, gets our class and
  loads every component through it.
Shipping the full source for machines without the package is `unclip_diffusers.hub`'s job; it replaces this file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from diffusers.utils import logging

from .karlo import is_karlo_layout, karlo_components

logger = logging.get_logger(__name__)

PACKAGE = "unclip_diffusers"
PIPELINE_MODULE = "pipeline_unclip"
MODEL_INDEX = "model_index.json"
# Our own component classes; a pushed folder names them with their shipped code file (`unclip_diffusers.hub`).
PACKAGE_COMPONENTS = ("UnCLIPPriorTransformer", "UnCLIPTextProjection")
PIPELINE_CODE = '''"""Code for `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`: the installed class.

Install it with `pip install unclip-diffusers` (or load with `unclip_diffusers.UnCLIPPipeline.from_pretrained`).
"""

from unclip_diffusers.pipelines.pipeline_unclip import UnCLIPPipeline  # noqa: F401
'''


def rewrite_model_index(save_directory: str | os.PathLike, class_name: str) -> dict[str, Any]:
    """Make a freshly saved `model_index.json` self-describing (see the module docstring) and add the code file."""
    path = os.path.join(save_directory, MODEL_INDEX)
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    index["_class_name"] = [PIPELINE_MODULE, class_name]
    for name, value in index.items():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            if value[0] == PACKAGE or value[0].startswith(PACKAGE + "."):
                index[name] = [PACKAGE, value[1]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(save_directory, PIPELINE_MODULE + ".py"), "w", encoding="utf-8") as f:
        f.write(PIPELINE_CODE)
    return index


def read_model_index(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed `model_index.json` of a pipeline folder, with a clear error when it is missing."""
    path = os.path.join(folder, MODEL_INDEX)
    if not os.path.isfile(path):
        raise ValueError(f"{folder!s} is not a pipeline folder: it has no {MODEL_INDEX}.")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def download_folder(repo_id: str, **hub_kwargs: Any) -> str:
    """Fetch a pipeline repository from the Hub (configs, tokenizer files, safetensors and code only)."""
    from huggingface_hub import snapshot_download

    keep = {k: hub_kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only", "force_download")
            if k in hub_kwargs}
    patterns = ["*.json", "*.txt", "*.safetensors", "*.py", "*.model", "README.md"]
    return snapshot_download(repo_id, allow_patterns=patterns, **keep)


class UnCLIPLoadingMixin:
    """`save_pretrained`/`from_pretrained` for `UnCLIPPipeline`: safetensors only, self-describing folders, Karlo."""

    def save_pretrained(
        self, save_directory: str | os.PathLike, safe_serialization: bool = True, **kwargs: Any
    ) -> None:
        """Save every component (safetensors only) and a `model_index.json` that names this package's classes.

        The folder loads with `UnCLIPPipeline.from_pretrained(folder)` and with
        `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` (see `pipelines/loading.py`).
        """
        if not safe_serialization:
            raise ValueError("unclip-diffusers saves weights as safetensors only; safe_serialization must be True.")
        if kwargs.get("push_to_hub"):
            raise ValueError("Save to a folder first, then upload it with `unclip-push` (unclip_diffusers.hub).")
        super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        rewrite_model_index(save_directory, type(self).__name__)

    @classmethod
    def load_config(cls, *args: Any, **kwargs: Any) -> Any:
        """Read `model_index.json`; a folder naming this class through its code file loads without running the file."""
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        name = config.get("_class_name")
        if isinstance(name, (list, tuple)) and list(name) == [PIPELINE_MODULE, cls.__name__]:
            config["_class_name"] = cls.__name__
            for key, value in config.items():  # components whose code unclip-push shipped: use the installed classes
                if isinstance(value, list) and len(value) == 2 and value[1] in PACKAGE_COMPONENTS:
                    config[key] = [PACKAGE, value[1]]
        return loaded

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs: Any):
        r"""
        Load a saved pipeline folder or Hub repository; safetensors weights only.

        With no path, loads `unclip_diffusers.defaults.default_pretrained_path()` (the release checkpoint). A folder
        laid out like `kakaobrain/karlo-v1-alpha` is recognised and loaded with `from_karlo`. Without `dtype` every
        component is loaded in float32, whatever dtype its weights were saved in.
        """
        from ..defaults import default_pretrained_path  # not shipped as remote code: it locates the source checkout

        if kwargs.get("use_safetensors") is False:
            raise ValueError("unclip-diffusers loads safetensors weights only; use_safetensors must be True.")
        kwargs["use_safetensors"] = True
        # The release ships fp16 weights; transformers would keep the CLIP encoders in fp16 (slow and lossy on CPU)
        # while diffusers upcasts its models, so without a requested dtype every component loads in float32.
        if kwargs.get("dtype") is None and kwargs.get("torch_dtype") is None:
            kwargs["dtype"] = torch.float32
        path = str(pretrained_model_name_or_path or default_pretrained_path())
        if not os.path.isdir(path):
            if os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1:
                raise ValueError(f"{path!r} is neither a pipeline folder nor a Hub repository id (owner/name).")
            try:
                path = download_folder(path, **kwargs)
            except Exception as error:  # offline, missing repository, no access: say which path was tried and why
                hint = "" if pretrained_model_name_or_path else (
                    " (the default: no bundled checkpoints/unclip-emoji and no UNCLIP_PRETRAINED folder)")
                raise OSError(f"Could not load the pipeline {path!r}{hint}: {error}") from error
        if is_karlo_layout(read_model_index(path)):
            ignored = sorted(set(kwargs) - {"dtype", "torch_dtype", "use_safetensors", "revision", "cache_dir", "token",
                                            "local_files_only", "force_download"})
            if ignored:
                logger.warning(f"Loading a Karlo-layout folder ignores {ignored}.")
            return cls.from_karlo(path, torch_dtype=kwargs.get("dtype") or kwargs.get("torch_dtype"))
        return super().from_pretrained(path, **kwargs)

    @classmethod
    def from_karlo(cls, folder: str | os.PathLike, torch_dtype: torch.dtype | None = None):
        """Build the pipeline from a local folder laid out like `kakaobrain/karlo-v1-alpha` (`pipelines/karlo.py`).

        Karlo was trained on raw CLIP embeddings, so the pipeline gets `normalize_embeddings=False`.
        """
        return cls(**karlo_components(folder, read_model_index(folder), torch_dtype), normalize_embeddings=False)
