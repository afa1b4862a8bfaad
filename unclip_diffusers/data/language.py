"""Emoji names and keywords in many languages, read from the Unicode CLDR and emojibase npm packages.

`cldr-annotations-full` holds a short name (`tts`) and keywords (`default`) per emoji and locale;
`cldr-annotations-derived-full` adds the sequences built from others (skin tones, ZWJ sequences, keycaps, flags);
`emojibase-data` adds its own label and tags per locale and the English shortcodes. All are keyed here by concept
key (see `concepts.concept_key`), so they line up with the artwork.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .concepts import concept_key, key_from_filename
from .sources import DEFAULT_NPM_PREFIX, SearchPaths, install_command, npm_package_dir

logger = logging.getLogger(__name__)

# English first; the others are the languages captions are written in (CLDR has all, emojibase all but ar and tr).
LOCALES = ("en", "es", "fr", "de", "it", "pt", "ja", "zh", "ko", "ru", "hi", "ar", "nl", "tr")
CLDR_INHERITED = "↑↑↑"  # CLDR's marker for "same as the parent locale"


@dataclass(frozen=True)
class LanguagePackage:
    """An npm package of emoji names and keywords, with its license and attribution."""

    package: str
    license: str  # SPDX id
    attribution: str
    homepage: str
    manager: str = "npm"


LANGUAGE_PACKAGES = (
    LanguagePackage("cldr-annotations-full", "Unicode-3.0",
                    "Unicode CLDR emoji annotations (short names and keywords), Copyright © Unicode, Inc.",
                    "https://cldr.unicode.org"),
    LanguagePackage("cldr-annotations-derived-full", "Unicode-3.0",
                    "Unicode CLDR derived emoji annotations (skin-tone and other sequences), Copyright © Unicode, Inc.",
                    "https://cldr.unicode.org"),
    LanguagePackage("emojibase-data", "MIT", "emojibase-data, Copyright (c) 2017-2019 Miles Johnson",
                    "https://emojibase.dev"),
)  # fmt: skip


@dataclass
class Annotation:
    """The names (short name first) and keywords of one emoji in one locale."""

    names: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)

    def extend(self, names: Iterable[str], keywords: Iterable[str]) -> None:
        """Append names and keywords that are not there yet (order kept, empties and CLDR's '↑↑↑' dropped)."""
        for target, words in ((self.names, names), (self.keywords, keywords)):
            for word in words:
                word = " ".join(word.split())
                if word and word != CLDR_INHERITED and word not in target:
                    target.append(word)


@dataclass
class FoundLanguagePackage:
    """An installed language package: where, which version, and which of the wanted locales it had."""

    spec: LanguagePackage
    root: Path
    version: str
    locales: list[str]


@dataclass
class LanguageData:
    """Names and keywords per locale and concept key, the English shortcodes, and which packages gave them."""

    annotations: dict[str, dict[str, Annotation]] = field(default_factory=dict)  # locale -> key -> annotation
    shortcodes: dict[str, list[str]] = field(default_factory=dict)  # key -> English shortcodes ('pouting_cat')
    found: list[FoundLanguagePackage] = field(default_factory=list)
    missing: list[LanguagePackage] = field(default_factory=list)

    @property
    def locales(self) -> list[str]:
        """The locales that have any annotation, in `LOCALES` order first."""
        order = {locale: i for i, locale in enumerate(LOCALES)}
        return sorted((k for k, v in self.annotations.items() if v), key=lambda k: (order.get(k, len(order)), k))

    def annotation(self, key: str, locale: str) -> Annotation:
        """The names and keywords of concept `key` in `locale` (empty when none are known)."""
        return self.annotations.get(locale, {}).get(key, Annotation())

    def localized(self, key: str, exclude: Sequence[str] = ("en",)) -> dict[str, Annotation]:
        """The annotations of `key` in every locale that names it, minus `exclude`."""
        return {locale: self.annotation(key, locale) for locale in self.locales
                if locale not in exclude and self.annotation(key, locale).names}  # fmt: skip

    def names(self, key: str) -> dict[str, str]:
        """The short name of `key` per locale that names it, e.g. {'en': 'pouting cat', 'de': 'schmollende Katze'}."""
        return {locale: a.names[0] for locale, a in self.localized(key, exclude=()).items()}

    def subset(self, keys: Iterable[str]) -> LanguageData:
        """The same data restricted to `keys` (small enough to hand to worker processes)."""
        keys = set(keys)
        annotations = {loc: {k: a for k, a in per_key.items() if k in keys} for loc, per_key in self.annotations.items()}
        shortcodes = {k: v for k, v in self.shortcodes.items() if k in keys}
        return LanguageData(annotations, shortcodes, list(self.found), list(self.missing))


def _read_json(path: Path) -> object:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _read_cldr(root: Path, folder: str, locale: str) -> dict[str, Annotation] | None:
    """One CLDR annotations file (`annotations` or `annotationsDerived`), keyed by concept key; None if absent."""
    path = root / folder / locale / "annotations.json"
    if not path.is_file():
        return None
    entries = _read_json(path)[folder]["annotations"]
    result: dict[str, Annotation] = {}
    for text, entry in entries.items():
        annotation = result.setdefault(concept_key(text), Annotation())
        annotation.extend(entry.get("tts", []), entry.get("default", []))
    return result


def _read_emojibase(root: Path, locale: str) -> dict[str, Annotation] | None:
    """emojibase's data.json of `locale` (label and tags, skin tones included), keyed by concept key."""
    path = root / locale / "data.json"
    if not path.is_file():
        return None
    result: dict[str, Annotation] = {}
    for entry in _read_json(path):
        for variant in [entry, *entry.get("skins", [])]:
            label = variant.get("label", "")
            if label.startswith("regional indicator"):
                continue  # single letters, not emoji people draw
            annotation = result.setdefault(key_from_filename(variant["hexcode"]), Annotation())
            annotation.extend([label], variant.get("tags", []))
    return result


def _read_shortcodes(root: Path) -> dict[str, list[str]]:
    """emojibase's own English shortcodes per concept key (a value may be one string or a list)."""
    path = root / "en" / "shortcodes" / "emojibase.json"
    if not path.is_file():
        return {}
    result = {}
    for hexcode, codes in _read_json(path).items():
        result[key_from_filename(hexcode)] = [codes] if isinstance(codes, str) else list(codes)
    return result


def _merge(into: dict[str, Annotation], other: dict[str, Annotation]) -> None:
    for key, annotation in other.items():
        into.setdefault(key, Annotation()).extend(annotation.names, annotation.keywords)


@lru_cache(maxsize=4)
def _load(roots: tuple[tuple[str, str | None], ...], locales: tuple[str, ...]) -> LanguageData:
    data = LanguageData(annotations={locale: {} for locale in locales})
    for package, root_text in roots:
        spec = next(p for p in LANGUAGE_PACKAGES if p.package == package)
        if root_text is None:
            data.missing.append(spec)
            continue
        root = Path(root_text)
        had = []
        for locale in locales:
            if package == "emojibase-data":
                entries = _read_emojibase(root, locale)
            else:
                entries = _read_cldr(root, "annotations" if package == "cldr-annotations-full" else "annotationsDerived",
                                     locale)  # fmt: skip
            if entries is not None:
                _merge(data.annotations[locale], entries)
                had.append(locale)
        if package == "emojibase-data":
            data.shortcodes = _read_shortcodes(root)
        version = str(_read_json(root / "package.json").get("version", "unknown"))
        data.found.append(FoundLanguagePackage(spec, root, version, had))
    return data


def load_language_data(search: SearchPaths | None = None, locales: Sequence[str] = LOCALES) -> LanguageData:
    """Names and keywords of every emoji in `locales` from the installed language packages (cached per location).

    Missing packages are logged with the npm command that installs them; without any, captions use the English
    names the artwork sources ship.
    """
    if not locales:
        raise ValueError("load_language_data needs at least one locale, e.g. LOCALES")
    search = search or SearchPaths.default()
    roots = []
    for spec in LANGUAGE_PACKAGES:
        root = npm_package_dir(spec.package, search)
        roots.append((spec.package, str(root) if root is not None else None))
    data = _load(tuple(roots), tuple(dict.fromkeys(locales)))
    if data.missing:
        logger.warning("missing language packages %s: captions use only the English names of the artwork sources. "
                       "To add names and keywords in %d languages, run:\n  %s", [m.package for m in data.missing],
                       len(locales), "\n  ".join(install_command(data.missing, DEFAULT_NPM_PREFIX)))  # fmt: skip
    absent = [loc for loc in locales if not data.annotations.get(loc)]
    if absent and len(data.missing) < len(LANGUAGE_PACKAGES):
        logger.warning("no installed language package has locale(s) %s", absent)
    return data


__all__ = ["LOCALES", "LANGUAGE_PACKAGES", "Annotation", "LanguageData", "LanguagePackage", "load_language_data"]
