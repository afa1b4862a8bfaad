"""Deploy the app to a Hugging Face Space in one command, or stage it into a local folder to inspect or test.

    python spaces/deploy.py USER/SPACE                 # create the Space if needed and upload
    python spaces/deploy.py USER/SPACE --dry-run       # list what would be uploaded, touch nothing
    python spaces/deploy.py USER/SPACE --local-dir DIR # write exactly what would be uploaded into DIR

The Space gets `README.md` and `requirements.txt` from this folder (pins and `sdk_version` set to the versions
installed where it is deployed from, which the tests ran with), the repo's `app.py`, the `unclip_diffusers`
package, and the bundled release weights (`checkpoints/unclip-emoji`) when they exist.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

SPACES_DIR = Path(__file__).resolve().parent
REPO_ROOT = SPACES_DIR.parent
WEIGHTS = Path("checkpoints") / "unclip-emoji"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store")


def installed_version(name: str) -> str:
    """The installed version of distribution `name` without a local label (`2.13.0+cpu` -> `2.13.0`)."""
    from importlib.metadata import version

    return version(name).split("+")[0]


def pinned_to_installed(requirements: str) -> str:
    """`requirements.txt` text with every `name==version` pin set to the version installed here.

    The committed file names the packages and the versions last deployed; a deploy pins the versions this
    environment (the one the tests ran in) has, so the Space runs what was tested.
    """
    lines = []
    for line in requirements.splitlines():
        name, separator, _ = line.partition("==")
        if separator and not line.lstrip().startswith(("#", "-")):
            line = f"{name.strip()}=={installed_version(name.strip())}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def with_installed_gradio(readme: str) -> str:
    """The Space README with `sdk_version:` set to the installed gradio (Spaces installs gradio from it)."""
    return re.sub(r"(?m)^sdk_version: .*$", f"sdk_version: {installed_version('gradio')}", readme, count=1)


def stage(target: Path, repo_root: Path = REPO_ROOT, include_weights: bool = True) -> list[str]:
    """Copy the Space's files into the empty or missing folder `target`; returns the relative paths written."""
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} is not empty; pick a new or empty folder so nothing stale is uploaded.")
    target.mkdir(parents=True, exist_ok=True)
    readme = (SPACES_DIR / "README.md").read_text(encoding="utf-8")
    (target / "README.md").write_text(with_installed_gradio(readme), encoding="utf-8")
    requirements = (SPACES_DIR / "requirements.txt").read_text(encoding="utf-8")
    (target / "requirements.txt").write_text(pinned_to_installed(requirements), encoding="utf-8")
    shutil.copy2(repo_root / "app.py", target / "app.py")
    shutil.copytree(repo_root / "unclip_diffusers", target / "unclip_diffusers", ignore=IGNORE)
    weights = repo_root / WEIGHTS
    if include_weights and (weights / "model_index.json").is_file():
        shutil.copytree(weights, target / WEIGHTS, ignore=IGNORE)
    elif include_weights:
        print(f"note: {WEIGHTS} does not exist; the Space will load the weights named in README.md's `models`, "
              "or fall back to a labelled random tiny model.", file=sys.stderr)
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())


def deploy(repo_id: str, *, local_dir: str | None = None, dry_run: bool = False, private: bool = False,
           include_weights: bool = True, token: str | None = None) -> list[str]:
    """Stage the Space and upload it to `repo_id` (or copy it to `local_dir`, or only list it when `dry_run`)."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"The Space id must look like 'user/space', got {repo_id!r}.")
    if local_dir is not None:
        return stage(Path(local_dir), include_weights=include_weights)
    with tempfile.TemporaryDirectory() as tmp:
        files = stage(Path(tmp) / "space", include_weights=include_weights)
        if dry_run:
            return files
        from huggingface_hub import create_repo, upload_folder

        create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private, token=token)
        upload_folder(repo_id=repo_id, repo_type="space", folder_path=Path(tmp) / "space", token=token,
                      commit_message="Deploy the unCLIP app", delete_patterns=["unclip_diffusers/**"])
        return files


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo_id", help="the Space, as user/space")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--local-dir", help="write the Space's files into this new folder instead of uploading")
    target.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded; upload nothing")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--no-weights", action="store_true", help="leave out checkpoints/unclip-emoji")
    args = parser.parse_args(argv)
    try:
        files = deploy(args.repo_id, local_dir=args.local_dir, dry_run=args.dry_run, private=args.private,
                       include_weights=not args.no_weights, token=os.environ.get("HF_TOKEN"))
    except ValueError as error:
        parser.error(str(error))
    action = "staged in " + args.local_dir if args.local_dir else ("would upload" if args.dry_run else "uploaded")
    print(f"{args.repo_id}: {action} {len(files)} files")
    for name in files:
        print("  " + name)


if __name__ == "__main__":
    main()
