"""What a person reads next to the built data: a concepts x styles contact sheet and the license/attribution file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from .language import FoundLanguagePackage
from .sources import STYLES, SourceSpec
from .split import SPLITS, unit_hash

if TYPE_CHECKING:  # imported where used, so training from a pack needs no `datasets`
    import datasets

# Cell frame colour per split, so the held-out images stand out on the sheet.
SPLIT_COLORS = {"train": (255, 255, 255), "heldout_pairs": (230, 120, 0), "heldout_concepts": (30, 90, 220)}
SPDX_URLS = {
    "OFL-1.1": "https://openfontlicense.org/open-font-license-official-text/",
    "Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "MIT": "https://opensource.org/license/mit",
    "Unicode-3.0": "https://www.unicode.org/license.txt",
}


def _as_dict(dataset: datasets.DatasetDict | datasets.Dataset) -> dict[str, datasets.Dataset]:
    import datasets

    return dict(dataset) if isinstance(dataset, datasets.DatasetDict) else {"train": dataset}


def pick_sheet_concepts(
    dataset: datasets.DatasetDict | datasets.Dataset, max_concepts: int, seed: int = 0
) -> list[str]:
    """Concepts for the sheet: always some from each held-out split, the rest spread pseudo-randomly."""
    if max_concepts < 1:
        raise ValueError(f"max_concepts must be >= 1, got {max_concepts}")
    per_split = {name: sorted(set(split["concept"]), key=lambda k: unit_hash(seed, "sheet", k))
                 for name, split in _as_dict(dataset).items()}  # fmt: skip
    picked: list[str] = []
    quota = {name: max(1, max_concepts // 6) for name in per_split if name != "train"}
    for name, keys in per_split.items():
        picked += [k for k in keys if k not in picked][: quota.get(name, 0)]
    for keys in per_split.values():
        picked += [k for k in keys if k not in picked]
    return sorted(picked[:max_concepts])


def make_contact_sheet(
    dataset: datasets.DatasetDict | datasets.Dataset,
    path: str | Path,
    concepts: Sequence[str] | None = None,
    max_concepts: int = 24,
    image_column: str = "image",
    cell_size: int = 64,
) -> Path:
    """Draw a concepts x styles grid PNG of `dataset` (frames: orange = held-out pair, blue = held-out concept).

    Args:
        dataset: a DatasetDict (all splits are shown) or one Dataset, with `concept`, `name` and `style` columns.
        path: where to write the PNG.
        concepts: concept keys for the rows; by default `pick_sheet_concepts(dataset, max_concepts)`.
        max_concepts: number of rows when `concepts` is not given.
        image_column: which image column to draw (`image` or `image_256`).
        cell_size: pixel size of each image on the sheet.
    """
    splits = _as_dict(dataset)
    for name, split in splits.items():
        missing = {"concept", "name", "style", image_column} - set(split.column_names)
        if missing:
            raise ValueError(f"split {name!r} lacks column(s) {sorted(missing)} needed for a contact sheet")
    rows = list(concepts) if concepts is not None else pick_sheet_concepts(dataset, max_concepts)
    present = {s for split in splits.values() for s in split.unique("style")}
    styles = [s for s in STYLES if s in present] + sorted(present - set(STYLES))
    cells: dict[tuple[str, str], tuple[Image.Image | None, str]] = {}
    names: dict[str, str] = {}
    wanted = set(rows)
    for split_name, split in splits.items():
        keys = split["concept"]
        for index in [i for i, k in enumerate(keys) if k in wanted]:
            row = split[index]
            names[row["concept"]] = row["name"]
            cells[(row["concept"], row["style"])] = (row[image_column], split_name)

    font = ImageFont.load_default(size=13)
    label_width, header, pad = 300, 40, 4
    step = cell_size + 2 * pad
    sheet = Image.new("RGB", (label_width + step * len(styles), header + step * len(rows) + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for j, style in enumerate(styles):
        label = style.replace(" ", "\n", 1) if draw.textlength(style, font=font) > step - 4 else style
        draw.multiline_text((label_width + j * step + step // 2, header // 2), label, fill="black", font=font,
                            anchor="mm", align="center")  # fmt: skip
    for i, key in enumerate(rows):
        y = header + i * step
        label = names.get(key, key)
        label = label if len(label) <= 40 else label[:39] + "…"
        draw.text((6, y + step // 2), label, fill="black", font=font, anchor="lm")
        for j, style in enumerate(styles):
            x = label_width + j * step
            image, split_name = cells.get((key, style), (None, ""))
            if image is None:
                draw.rectangle((x + pad, y + pad, x + pad + cell_size - 1, y + pad + cell_size - 1), fill=(235,) * 3)
                continue
            draw.rectangle((x, y, x + step - 1, y + step - 1), fill=SPLIT_COLORS.get(split_name, (255, 0, 0)))
            sheet.paste(image.convert("RGB").resize((cell_size, cell_size)), (x + pad, y + pad))
    legend = "grey: no artwork   orange frame: held-out (concept, style) pair   blue frame: held-out concept"
    draw.text((6, sheet.height - 12), legend, fill="black", font=font, anchor="lm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


@dataclass
class SourceUsage:
    """One source as used in a build: its spec, installed version, and how many images it gave."""

    spec: SourceSpec
    version: str
    images: int


# Used when an installed package lacks its LICENSE file.
FALLBACK_NOTICES = {
    "Unicode-3.0": "UNICODE LICENSE V3. Copyright © 2004-2026 Unicode, Inc. "
                   "Full text: https://www.unicode.org/license.txt",
    "MIT": "MIT License. Copyright (c) 2017-2019 Miles Johnson. Full text: https://opensource.org/license/mit",
}


def _language_lines(packages: Sequence[FoundLanguagePackage]) -> list[str]:
    """The LICENSES.md section on the packages the captions' names and keywords come from."""
    lines = ["", "## Caption text", "",
             "Captions use emoji names and keywords from these packages (selected, recombined with templates):", "",
             "| package | version | license | locales | attribution |", "|---|---|---|---|---|"]  # fmt: skip
    for found in packages:
        spec = found.spec
        lines.append(f"| `{spec.package}` | {found.version} | [{spec.license}]({SPDX_URLS.get(spec.license, '')}) "
                     f"| {' '.join(found.locales)} | {spec.attribution} ({spec.homepage}) |")
    # The Unicode License v3 asks for its copyright and permission notice with every copy; MIT asks the same.
    texts: dict[str, list[str]] = {}
    for found in packages:
        license_file = found.root / "LICENSE"
        text = license_file.read_text(encoding="utf-8").strip() if license_file.is_file() else ""
        text = text or FALLBACK_NOTICES.get(found.spec.license, found.spec.license)
        texts.setdefault(text, []).append(found.spec.package)
    for text, names in texts.items():
        lines += ["", f"### License of {', '.join(f'`{n}`' for n in names)}", "", "```", text, "```"]
    return lines


def write_licenses(
    path: str | Path, usages: Sequence[SourceUsage], language: Sequence[FoundLanguagePackage] = ()
) -> Path:
    """Write LICENSES.md: per artwork source and per caption-text package (`language`) its license and credit."""
    lines = [
        "# Licenses and attribution",
        "",
        "The images in this dataset are adaptations of openly licensed emoji artwork: rasterised (SVG) or redrawn "
        "(font), composited on white, padded to a square and resized to 64 and 256 px. Each row of the dataset "
        "names its `source` package and `license` (SPDX id). Apple and Facebook emoji are not openly licensed "
        "and are not included.",
        "",
        "| style | package | version | license | images | attribution |",
        "|---|---|---|---|---|---|",
    ]
    for usage in usages:
        spec = usage.spec
        lines.append(f"| {spec.style} | `{spec.package}` | {usage.version} | [{spec.license}]"
                     f"({SPDX_URLS.get(spec.license, '')}) | {usage.images} | {spec.attribution} ({spec.homepage}) |")
    licenses = Counter()
    for usage in usages:
        licenses[usage.spec.license] += usage.images
    lines += ["", "## What the licenses ask", ""]
    if licenses.get("CC-BY-SA-4.0"):
        lines.append("- **CC-BY-SA-4.0** (OpenMoji, EmojiOne): credit the authors as above; adapted images must be "
                     "shared under the same license.")
    if licenses.get("CC-BY-4.0"):
        lines.append("- **CC-BY-4.0** (Twemoji): credit the authors as above and indicate that changes were made.")
    if licenses.get("Apache-2.0") or licenses.get("OFL-1.1"):
        lines.append("- **Apache-2.0 / OFL-1.1** (Noto): keep the copyright notice and license text.")
    if licenses.get("MIT"):
        lines.append("- **MIT** (Fluent Emoji): keep the copyright notice and permission notice.")
    lines += ["", "Images per license: " + ", ".join(f"{k} {v}" for k, v in sorted(licenses.items()))]
    if language:
        lines += _language_lines(language)
    lines.append("")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


__all__ = ["SPLITS", "make_contact_sheet", "pick_sheet_concepts", "write_licenses", "SourceUsage"]
