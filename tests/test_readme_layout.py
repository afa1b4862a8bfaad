"""The README's layout table matches the tree: every path it names exists, and every package folder is named."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout_paths() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return [path for cell in first_cells for path in re.findall(r"`([^`]+)`", cell)]


def test_every_path_in_the_layout_table_exists():
    paths = _layout_paths()
    assert len(paths) > 10
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


def test_every_package_folder_is_in_the_layout_table():
    named = {p.rstrip("/") for p in _layout_paths()}
    folders = sorted(f"unclip_diffusers/{d.name}" for d in (ROOT / "unclip_diffusers").iterdir()
                     if d.is_dir() and (d / "__init__.py").is_file())
    assert [f for f in folders if f not in named] == []
