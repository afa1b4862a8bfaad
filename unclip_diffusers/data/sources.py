"""Openly licensed emoji artwork shipped in Debian and npm packages: where to find each one and what it contains."""

from __future__ import annotations

import glob
import gzip
import json
import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .concepts import emoji_concepts, fix_lobehub_key, fluent_slug_to_key, key_from_filename

logger = logging.getLogger(__name__)

# Art styles in contact-sheet order; each is drawn by one or more sources (the first that has a concept wins).
STYLES = ("Noto", "Twemoji", "OpenMoji", "OpenMoji outline", "Fluent 3D", "Fluent flat", "Fluent color", "EmojiOne")
DEFAULT_NPM_PREFIX = "data/npm"


@dataclass(frozen=True)
class SourceSpec:
    """A package that ships one art style, with its license and how to install it."""

    id: str  # unique id, also the cache folder name
    package: str  # the Debian or npm package name (the dataset's `source` column)
    manager: str  # "apt" or "npm"
    style: str
    license: str  # SPDX id of the artwork license
    attribution: str
    homepage: str
    high_res: bool  # True when the artwork exists at 256 px or more (vector art or native 256-px bitmaps)


SOURCES = (
    SourceSpec("noto-font", "fonts-noto-color-emoji", "apt", "Noto", "OFL-1.1",
               "Noto Color Emoji font, Copyright 2013-2017 Google Inc.", "https://github.com/googlefonts/noto-emoji",
               high_res=False),
    SourceSpec("noto-npm", "emoji-datasource-google", "npm", "Noto", "Apache-2.0",
               "Noto Emoji images, Copyright Google Inc., via emoji-datasource by Cal Henderson",
               "https://github.com/googlefonts/noto-emoji", high_res=False),
    SourceSpec("twemoji", "emoji-datasource-twitter", "npm", "Twemoji", "CC-BY-4.0",
               "Twemoji graphics, Copyright Twitter, Inc and other contributors (jdecked/twemoji fork), "
               "via emoji-datasource by Cal Henderson", "https://github.com/jdecked/twemoji", high_res=False),
    SourceSpec("openmoji-color", "openmoji", "npm", "OpenMoji", "CC-BY-SA-4.0",
               "OpenMoji, the open-source emoji and icon project, https://openmoji.org", "https://openmoji.org",
               high_res=True),
    SourceSpec("openmoji-black", "openmoji", "npm", "OpenMoji outline", "CC-BY-SA-4.0",
               "OpenMoji, the open-source emoji and icon project, https://openmoji.org", "https://openmoji.org",
               high_res=True),
    SourceSpec("fluent-3d", "@lobehub/fluent-emoji-3d", "npm", "Fluent 3D", "MIT",
               "Fluent Emoji, Copyright Microsoft Corporation, packaged by LobeHub",
               "https://github.com/microsoft/fluentui-emoji", high_res=True),
    SourceSpec("fluent-flat", "@lobehub/fluent-emoji-flat", "npm", "Fluent flat", "MIT",
               "Fluent Emoji, Copyright Microsoft Corporation, packaged by LobeHub",
               "https://github.com/microsoft/fluentui-emoji", high_res=True),
    SourceSpec("fluentui-flat", "fluentui-emoji", "npm", "Fluent flat", "MIT",
               "Fluent Emoji, Copyright Microsoft Corporation, packaged by Mohammad Abu Mattar",
               "https://github.com/microsoft/fluentui-emoji", high_res=True),
    SourceSpec("fluentui-color", "fluentui-emoji", "npm", "Fluent color", "MIT",
               "Fluent Emoji, Copyright Microsoft Corporation, packaged by Mohammad Abu Mattar",
               "https://github.com/microsoft/fluentui-emoji", high_res=True),
    SourceSpec("emojione", "ruby-gemojione", "apt", "EmojiOne", "CC-BY-SA-4.0",
               "EmojiOne 2.2 artwork, Copyright 2014 Ranks.com Inc., via the gemojione gem",
               "https://github.com/jonathanwiesel/gemojione", high_res=True),
)  # fmt: skip
SOURCE_BY_ID = {spec.id: spec for spec in SOURCES}


@dataclass
class SearchPaths:
    """Where to look for installed sources (first hit wins)."""

    npm_prefixes: list[Path] = field(default_factory=list)  # folders given to `npm install --prefix`
    noto_fonts: list[Path] = field(default_factory=list)  # candidate NotoColorEmoji.ttf files
    gemojione_dirs: list[str] = field(default_factory=list)  # glob patterns of the gemojione gem folder

    @classmethod
    def default(cls) -> SearchPaths:
        """The usual install locations on Debian/Ubuntu, plus $UNCLIP_NPM_PREFIX and ./data/npm for npm."""
        env = [Path(p) for p in os.environ.get("UNCLIP_NPM_PREFIX", "").split(os.pathsep) if p]
        return cls(
            npm_prefixes=env + [Path(DEFAULT_NPM_PREFIX), Path("."), Path.home() / ".cache/unclip-diffusers/npm",
                                Path("/usr/local/lib"), Path("/usr/lib")],
            noto_fonts=[Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
                        Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),
                        Path("/usr/share/fonts/google-noto-color-emoji-fonts/NotoColorEmoji.ttf")],
            gemojione_dirs=["/usr/share/rubygems-integration/all/gems/gemojione-*", "/var/lib/gems/*/gems/gemojione-*",
                            str(Path.home() / ".gem/ruby/*/gems/gemojione-*")],
        )  # fmt: skip


@dataclass
class Artwork:
    """Where one concept's artwork lives inside a source: `kind` 'svg', 'raster' or 'noto', and a path or text."""

    kind: str
    source: str


@dataclass
class FoundSource:
    """An installed source: its location, version, artwork per concept key, and the names/tags it ships."""

    spec: SourceSpec
    root: Path
    version: str
    artwork: dict[str, Artwork]
    aliases: dict[str, list[str]] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)


class Installable(Protocol):
    """Anything `install_command` can install: a package name and its manager ("apt" or "npm")."""

    @property
    def package(self) -> str: ...

    @property
    def manager(self) -> str: ...


def install_command(specs: Sequence[Installable], npm_prefix: str = DEFAULT_NPM_PREFIX) -> list[str]:
    """The exact shell commands that install `specs` (apt and npm), for the message about missing packages."""
    apt = sorted({s.package for s in specs if s.manager == "apt"})
    npm = sorted({s.package for s in specs if s.manager == "npm"})
    commands = []
    if apt:
        commands.append("sudo apt-get install -y " + " ".join(apt))
    if npm:
        commands.append(f"npm install --prefix {shlex.quote(npm_prefix)} " + " ".join(npm))
    return commands


def npm_package_dir(package: str, search: SearchPaths) -> Path | None:
    """The folder of an installed npm `package` under the first of `search.npm_prefixes` that has it, else None."""
    for prefix in search.npm_prefixes:
        for candidate in (prefix / "node_modules" / package, prefix / "lib" / "node_modules" / package):
            if (candidate / "package.json").is_file():
                return candidate
    return None


def _npm_version(root: Path) -> str:
    return str(json.loads((root / "package.json").read_text())["version"])


def _debian_version(package: str) -> str:
    changelog = Path(f"/usr/share/doc/{package}/changelog.Debian.gz")
    try:
        with gzip.open(changelog, "rt") as f:
            return f.readline().split("(")[1].split(")")[0]
    except (OSError, IndexError):
        return "unknown"


def _split_tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _scan_noto_font(spec: SourceSpec, search: SearchPaths) -> FoundSource | None:
    font = next((p for p in search.noto_fonts if p.is_file()), None)
    if font is None:
        return None
    artwork = {key: Artwork("noto", c.text) for key, c in emoji_concepts().items()}
    return FoundSource(spec, font, _debian_version(spec.package), artwork)


def _scan_emoji_datasource(spec: SourceSpec, search: SearchPaths) -> FoundSource | None:
    root = npm_package_dir(spec.package, search)
    if root is None:
        return None
    image_set = spec.package.removeprefix("emoji-datasource-")
    found = FoundSource(spec, root, _npm_version(root), {})
    for entry in json.loads((root / "emoji.json").read_text()):
        variants = [entry] + list(entry.get("skin_variations", {}).values())
        for variant in variants:
            path = root / "img" / image_set / "64" / variant["image"]
            if variant.get(f"has_img_{image_set}") and path.is_file():
                found.artwork.setdefault(key_from_filename(variant["unified"]), Artwork("raster", str(path)))
        key = key_from_filename(entry["unified"])
        short_names = [s.replace("_", " ").replace("-", " ") for s in entry.get("short_names", [])]
        names = [entry.get("name") or ""] + short_names
        found.aliases[key] = [n.lower() for n in names if n]
    return found


def _scan_openmoji(spec: SourceSpec, search: SearchPaths) -> FoundSource | None:
    root = npm_package_dir(spec.package, search)
    if root is None:
        return None
    folder = root / ("color" if spec.id == "openmoji-color" else "black") / "svg"
    found = FoundSource(spec, root, _npm_version(root), {})
    for entry in json.loads((root / "data" / "openmoji.json").read_text()):
        if entry.get("group", "").startswith("extras"):
            continue  # OpenMoji's own (non-Unicode) icons and brand logos
        path = folder / f"{entry['hexcode']}.svg"
        key = key_from_filename(entry["hexcode"])
        if path.is_file():
            found.artwork.setdefault(key, Artwork("svg", str(path)))
        if entry.get("annotation"):
            found.aliases.setdefault(key, []).append(entry["annotation"])
        tags = _split_tags(entry.get("tags", "")) + _split_tags(entry.get("openmoji_tags", ""))
        if tags:
            found.tags.setdefault(key, []).extend(tags)
    return found


def _scan_lobehub(spec: SourceSpec, search: SearchPaths) -> FoundSource | None:
    root = npm_package_dir(spec.package, search)
    if root is None:
        return None
    suffix = ".webp" if spec.id == "fluent-3d" else ".svg"
    kind = "raster" if suffix == ".webp" else "svg"
    found = FoundSource(spec, root, _npm_version(root), {})
    for path in sorted((root / "assets").glob(f"*{suffix}")):
        try:
            key = fix_lobehub_key(key_from_filename(path.stem))
        except ValueError:
            logger.debug("skipping %s: not named by code points", path)
            continue
        found.artwork.setdefault(key, Artwork(kind, str(path)))
    return found


def _scan_fluentui(spec: SourceSpec, search: SearchPaths) -> FoundSource | None:
    root = npm_package_dir(spec.package, search)
    if root is None:
        return None
    folder = root / "icons" / ("modern" if spec.id == "fluentui-color" else "flat")
    slugs = fluent_slug_to_key()
    found = FoundSource(spec, root, _npm_version(root), {})
    unknown = []
    for path in sorted(folder.glob("*.svg")):
        key = slugs.get(path.stem)
        if key is None:
            unknown.append(path.stem)
            continue
        found.artwork.setdefault(key, Artwork("svg", str(path)))
    if unknown:
        logger.info("%s: %d file names match no emoji name, e.g. %s", spec.id, len(unknown), unknown[:5])
    return found


def _scan_gemojione(spec: SourceSpec, search: SearchPaths) -> FoundSource | None:
    roots = [Path(p) for pattern in search.gemojione_dirs for p in sorted(glob.glob(pattern))]
    root = next((r for r in roots if (r / "config" / "index.json").is_file()), None)
    if root is None:
        return None
    found = FoundSource(spec, root, root.name.removeprefix("gemojione-"), {})
    for entry in json.loads((root / "config" / "index.json").read_text()).values():
        key = key_from_filename(entry["unicode"])
        svg = root / "assets" / "svg" / f"{entry['unicode']}.svg"
        png = root / "assets" / "png" / f"{entry['unicode']}.png"
        if svg.is_file():
            found.artwork.setdefault(key, Artwork("svg", str(svg)))
        elif png.is_file():
            found.artwork.setdefault(key, Artwork("raster", str(png)))
        if " tone " not in f"{entry.get('name', '')} ":  # tone variants inherit the base emoji's words
            found.aliases[key] = [entry["name"]] if entry.get("name") else []
            found.tags[key] = list(entry.get("keywords", []))
    return found


_SCANNERS = {
    "noto-font": _scan_noto_font,
    "noto-npm": _scan_emoji_datasource,
    "twemoji": _scan_emoji_datasource,
    "openmoji-color": _scan_openmoji,
    "openmoji-black": _scan_openmoji,
    "fluent-3d": _scan_lobehub,
    "fluent-flat": _scan_lobehub,
    "fluentui-flat": _scan_fluentui,
    "fluentui-color": _scan_fluentui,
    "emojione": _scan_gemojione,
}


def find_sources(
    search: SearchPaths | None = None, source_ids: list[str] | None = None
) -> tuple[list[FoundSource], list[SourceSpec]]:
    """Look for every source (or those in `source_ids`); return (found, missing). Installs nothing."""
    search = search or SearchPaths.default()
    if source_ids is not None:
        unknown = sorted(set(source_ids) - set(SOURCE_BY_ID))
        if unknown:
            raise ValueError(f"unknown source id(s) {unknown}; choose from {sorted(SOURCE_BY_ID)}")
    found, missing = [], []
    for spec in SOURCES:
        if source_ids is not None and spec.id not in source_ids:
            continue
        result = _SCANNERS[spec.id](spec, search)
        if result is None:
            missing.append(spec)
        else:
            found.append(result)
    return found, missing


__all__ = [
    "STYLES", "SOURCES", "SOURCE_BY_ID", "SourceSpec", "SearchPaths", "Artwork", "FoundSource",
    "find_sources", "install_command", "npm_package_dir",
]  # fmt: skip
