"""Standard Inception FID through `torch-fidelity` or `clean-fid`, only when they and their weights are on this machine.

Both packages require torchvision and download their Inception weights on first use; neither is possible on the
project's offline CPU machine, so this module detects what is there and says why FID was not computed instead of
downloading anything or substituting another network.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

TORCH_FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity: torch hub checkpoints folder
CLEAN_FID_WEIGHTS = "inception-2015-12-05.pt"  # clean-fid: its download folder, /tmp on Linux


def _torch_fidelity_weights() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_WEIGHTS


def _clean_fid_weights() -> Path:
    return Path(os.environ.get("CLEAN_FID_WEIGHTS_DIR", "/tmp")) / CLEAN_FID_WEIGHTS


def inception_fid_backend() -> tuple[str | None, str]:
    """`(backend, explanation)`: the usable backend (`"torch-fidelity"`, `"clean-fid"`) or None and the reason."""
    reasons = []
    for backend, module, weights in (("torch-fidelity", "torch_fidelity", _torch_fidelity_weights()),
                                     ("clean-fid", "cleanfid", _clean_fid_weights())):
        if importlib.util.find_spec(module) is None:
            reasons.append(f"{backend} is not installed")
            continue
        if not weights.is_file():
            reasons.append(f"{backend} is installed but its Inception weights are not at {weights}")
            continue
        try:
            importlib.import_module(module)
        except Exception as error:  # e.g. a torchvision without a CPU build
            reasons.append(f"{backend} fails to import ({type(error).__name__}: {error})")
            continue
        return backend, f"computed with {backend} ({weights})"
    return None, ("not computed: " + "; ".join(reasons) + " (both need torchvision and download weights, "
                  "neither of which is possible offline here)")


def _write_folder(images: Sequence[Image.Image], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.convert("RGB").save(folder / f"{i:06d}.png")


def inception_fid(generated: Sequence[Image.Image], real: Sequence[Image.Image]) -> dict[str, Any]:
    """`{"value", "backend", "status"}`: Inception FID between two image sets, or `value` None with the reason."""
    backend, status = inception_fid_backend()
    if backend is None:
        return {"value": None, "backend": None, "status": status}
    with tempfile.TemporaryDirectory() as tmp:
        gen_dir, real_dir = Path(tmp) / "generated", Path(tmp) / "real"
        _write_folder(generated, gen_dir)
        _write_folder(real, real_dir)
        if backend == "torch-fidelity":
            import torch_fidelity

            value = torch_fidelity.calculate_metrics(input1=str(gen_dir), input2=str(real_dir), fid=True,
                                                     cuda=torch.cuda.is_available(), verbose=False)
            value = value["frechet_inception_distance"]
        else:
            from cleanfid import fid

            value = fid.compute_fid(str(gen_dir), str(real_dir), mode="clean", num_workers=0,
                                    device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return {"value": float(value), "backend": backend, "status": status}
