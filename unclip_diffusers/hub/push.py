"""`unclip-push FOLDER REPO_ID`: upload a pipeline folder or one training stage to the Hugging Face Hub, with its model
card and the code that lets diffusers load it without this package.

The upload is first assembled in a temporary folder (`build_upload`): the checkpoint's configs, tokenizer files and
safetensors weights, the generated code (`remote_code`), images, the training data's license file and `README.md`
(`cards`). `--dry-run` lists it, `--local-hub DIR` copies it to `DIR/<owner>/<name>` (exactly what would be uploaded,
for tests and review), and otherwise it is uploaded with `huggingface_hub.HfApi.upload_folder`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import ModelCard

from ..pipelines.loading import PIPELINE_MODULE
from ..training.provenance import read_provenance
from .card_inputs import last_validation, read_metrics, read_training_data, training_data_path
from .cards import CardInputs, render_card, save_card, validate_card
from .folders import (
    CUSTOM_COMPONENTS,
    STAGE_PARTS,
    SourceFolder,
    copy_checkpoint,
    inspect_folder,
    latest_training_samples,
    model_preset,
    parameter_counts,
    resolutions,
)
from .remote_code import code_digest, write_component_code, write_pipeline_code
from .samples import DEFAULT_PROMPTS, DEFAULT_SEEDS, sample_grid

logger = logging.getLogger(__name__)

LICENSES_FILE = "TRAINING_DATA_LICENSES.md"
SAMPLE_GRID = "images/samples.png"
TRAINING_SAMPLES = "images/training_samples.png"
# On the Hub, Python files of earlier pushes that this one does not have are deleted (stale remote code).
DELETE_PATTERNS = ["*.py", "**/*.py"]


@dataclass
class UploadOptions:
    """What goes on the card besides the checkpoint itself."""

    metrics: str | None = None  # unclip-eval's metrics.json or its report folder
    data: str | None = None  # the dataset folder (build_info.json, LICENSES.md)
    dataset_id: str | None = None  # the dataset's Hub id, for the card metadata
    license: str = "apache-2.0"
    card: str | None = None  # a hand-written card to use (validated) instead of the generated one
    grid: bool = True  # generate a sample grid for pipeline cards
    grid_steps: int | None = None  # denoising steps per stage for the grid; None = the pipeline's defaults
    notes: str | None = None  # a Markdown file whose text becomes the card's "About this release" section
    grid_prompts: tuple[str, ...] = DEFAULT_PROMPTS
    grid_seeds: tuple[int, ...] = DEFAULT_SEEDS


@dataclass
class Upload:
    """An assembled upload folder."""

    kind: str
    folder: Path
    files: list[str]
    code_files: list[str]


def check_repo_id(repo_id: str) -> str:
    """Accept `owner/name` Hub ids only (the Hub's naming rules), with a clear error."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo_id.count("/") != 1:
        raise ValueError(f"REPO_ID must be 'owner/name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"Invalid REPO_ID {repo_id!r}: {error}") from error
    return repo_id


def _add_code(source: SourceFolder, folder: Path) -> list[str]:
    if source.kind == "pipeline":
        return write_pipeline_code(folder, PIPELINE_MODULE)
    written = []
    for part in STAGE_PARTS.get(source.kind, ()):
        if part in CUSTOM_COMPONENTS and (folder / part).is_dir():
            written.append(f"{part}/{write_component_code(folder / part, CUSTOM_COMPONENTS[part])}")
    return written


def _copy_file(path: Path, folder: Path, name: str) -> str:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, folder / name)
    return name


def build_upload(folder: str | os.PathLike, repo_id: str, staging: str | os.PathLike,
                 options: UploadOptions | None = None) -> Upload:
    """Assemble in `staging` exactly what `unclip-push` uploads for `folder`, card included, and validate the card."""
    options = options or UploadOptions()
    check_repo_id(repo_id)
    source = inspect_folder(folder)
    staging = Path(staging)
    copy_checkpoint(source, staging)
    code_files = _add_code(source, staging)
    metrics = read_metrics(options.metrics)
    data = read_training_data(options.data or training_data_path(source.training_config))
    inputs = CardInputs(kind=source.kind, repo_id=repo_id, license=options.license, metrics=metrics,
                        training_data=data, dataset_id=options.dataset_id, parameters=parameter_counts(staging),
                        code_files=code_digest(staging), training=source.training_config,
                        validation=last_validation(source.run_dir))
    if data.licenses_file is not None:
        inputs.licenses_file = _copy_file(data.licenses_file, staging, LICENSES_FILE)
    if source.kind in ("pipeline", "karlo"):
        inputs.resolutions = resolutions(staging)
        inputs.preset = model_preset(staging)
        inputs.components = {k: v[1] for k, v in sorted((source.model_index or {}).items())
                             if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[0] is not None}
        if options.grid and options.card is None:  # a hand-written card could not show it
            # generated from the upload folder itself, loaded with the installed package
            grid = sample_grid(staging, options.grid_prompts, options.grid_seeds, steps=options.grid_steps)
            (staging / SAMPLE_GRID).parent.mkdir(exist_ok=True)
            grid.image.save(staging / SAMPLE_GRID)
            inputs.sample_grid = (SAMPLE_GRID, grid.caption)
        inputs.eval_grids = [_copy_file(p, staging, f"images/eval/{p.name}") for p in metrics.grids]
        inputs.provenance = read_provenance(staging)
    elif source.kind in ("decoder", "upsampler"):  # the stages whose validation draws images
        samples = latest_training_samples(source.run_dir, source.kind)
        if samples is not None:
            inputs.training_samples = _copy_file(samples, staging, TRAINING_SAMPLES)
    if options.notes is not None:
        if not Path(options.notes).is_file():
            raise ValueError(f"The release notes {options.notes!r} are not a file.")
        inputs.notes = Path(options.notes).read_text(encoding="utf-8").strip()
    if options.card is not None:
        if not Path(options.card).is_file():
            raise ValueError(f"The card {options.card!r} is not a file.")
        card = ModelCard(Path(options.card).read_text(encoding="utf-8"))
    else:
        card = render_card(inputs)
    problems = validate_card(card, source.kind)
    if problems:
        raise ValueError(f"The model card for {repo_id} is incomplete: " + "; ".join(problems))
    save_card(card, staging)
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    return Upload(source.kind, staging, files, code_files)


def local_hub_path(local_hub: str | os.PathLike, repo_id: str, revision: str | None = None) -> Path:
    """Where `--local-hub DIR` mirrors a repository: `DIR/owner/name`, or `DIR/owner/name@revision`."""
    path = Path(local_hub) / repo_id
    return path.with_name(f"{path.name}@{revision}") if revision else path


def upload_to_hub(upload: Upload, repo_id: str, private: bool = False, revision: str | None = None) -> str:
    """Create the repository (and branch) if needed and upload the assembled folder; returns the commit and its sha."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise ValueError("HF_HUB_OFFLINE is set, so nothing can be uploaded; use --local-hub DIR or --dry-run.")
    ModelCard.load(upload.folder / "README.md").validate()  # the Hub's own metadata check
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(upload.folder), revision=revision,
                               commit_message=f"unclip-push: {upload.kind}", delete_patterns=DELETE_PATTERNS)
    return f"{commit.commit_url} (pin it with revision={commit.oid!r})"


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
         dry_run: bool = False, local_hub: str | os.PathLike | None = None,
         options: UploadOptions | None = None) -> Upload | Path | str:
    """Push `folder` to `repo_id`: the assembled upload for `dry_run`, the mirror folder for `local_hub`, else the
    commit URL."""
    if dry_run and local_hub is not None:
        raise ValueError("Pass either dry_run or local_hub, not both.")
    with tempfile.TemporaryDirectory(prefix="unclip-push-") as tmp:
        upload = build_upload(folder, repo_id, Path(tmp) / "upload", options)
        if dry_run:
            return _describe(upload)
        if local_hub is not None:
            target = local_hub_path(local_hub, repo_id, revision)
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(upload.folder, target)
            return target
        return upload_to_hub(upload, repo_id, private=private, revision=revision)


def _describe(upload: Upload) -> Upload:
    total = 0
    for name in upload.files:
        size = (upload.folder / name).stat().st_size
        total += size
        print(f"{size:>12,}  {name}")
    print(f"{total:>12,}  bytes in {len(upload.files)} files ({upload.kind}; {len(upload.code_files)} code files)")
    return Upload(upload.kind, Path("<dry-run>"), upload.files, upload.code_files)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `unclip-push`."""
    parser = argparse.ArgumentParser(prog="unclip-push", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a pipeline folder (save_pretrained), or a training run folder or its final/")
    parser.add_argument("repo_id", help="the Hub repository, owner/name")
    parser.add_argument("--private", action="store_true", help="create the repository as private (if it is new)")
    parser.add_argument("--revision", default=None, help="upload to this branch (created if missing)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dry-run", action="store_true", help="assemble and list the upload; upload nothing")
    where.add_argument("--local-hub", default=None, metavar="DIR",
                       help="write the upload to DIR/owner/name instead of the Hub (what would be uploaded, exactly)")
    parser.add_argument("--metrics", default=None, help="unclip-eval's metrics.json, or the folder it wrote")
    parser.add_argument("--data", default=None, help="the dataset folder trained on (build_info.json, LICENSES.md)")
    parser.add_argument("--dataset-id", default=None, help="the dataset's Hub id, listed in the card metadata")
    parser.add_argument("--license", default="apache-2.0", help="license id of the weights (default: %(default)s)")
    parser.add_argument("--card", default=None, help="use this README.md instead of the generated card (validated)")
    parser.add_argument("--notes", default=None,
                        help="a Markdown file shown on the card as its 'About this release' section")
    parser.add_argument("--no-grid", action="store_true", help="do not generate the sample grid of a pipeline card")
    parser.add_argument("--grid-steps", type=int, default=None,
                        help="denoising steps per stage for the sample grid (default: the pipeline's defaults)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `unclip-push` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = UploadOptions(metrics=args.metrics, data=args.data, dataset_id=args.dataset_id, license=args.license,
                            card=args.card, grid=not args.no_grid, grid_steps=args.grid_steps, notes=args.notes)
    try:
        result = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                             dry_run=args.dry_run, local_hub=args.local_hub, options=options)
    except ValueError as error:
        print(f"unclip-push: {error}", file=sys.stderr)
        return 2
    if isinstance(result, Path):
        print(f"unclip-push: wrote {result}")
    elif isinstance(result, str):
        print(f"unclip-push: uploaded {result}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
