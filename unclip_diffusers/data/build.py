"""`unclip-data build`: render the installed emoji sources into a captioned, split `datasets.DatasetDict`.

Installs nothing: it detects each source, prints the apt/npm command for the missing ones, and builds from the rest.
Rendered images are cached per source version, so a re-run only renders what is new.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
from tqdm.auto import tqdm

import numpy as np
from PIL import Image

from .captions import build_captions, primary_caption
from .concepts import Concept, emoji_concepts, skin_tones_of, strip_skin_tones
from .families import family_of
from .groups import emoji_groups, group_of, slice_of
from .images import RenderJob, resize, render_job
from .language import LanguageData, load_language_data
from .quality import NEAR_DUPLICATE_SIZE, NEAR_DUPLICATE_THRESHOLD, find_duplicates, nearest_distances
from .report import SourceUsage, make_contact_sheet, write_licenses
from .sources import DEFAULT_NPM_PREFIX, STYLES, FoundSource, SearchPaths, find_sources, install_command
from .split import SPLITS, assign_splits, leak_free_splits, unit_hash

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = "data/emoji"
CACHE_VERSION = "v1"  # bump when the rendering changes, so cached images are redrawn
BUILD_VERSION = 3  # bump when captions, filtering or splitting change, so an up-to-date check rebuilds
SKIN_TONE_CHOICES = ("all", "single", "none")


def dataset_features() -> datasets.Features:
    """The columns of the built dataset (the contract training code relies on)."""
    return datasets.Features(
        {
            "image": datasets.Image(),  # 64 px RGB on white
            "image_256": datasets.Image(),  # 256 px, None where the source has no high-resolution art
            "caption": datasets.Value("string"),
            "captions": datasets.List(datasets.Value("string")),
            "names": datasets.Value("string"),  # JSON {locale: short name}, e.g. {"en": "cat", "de": "Katze"}
            "concept": datasets.Value("string"),
            "name": datasets.Value("string"),
            "style": datasets.Value("string"),
            "source": datasets.Value("string"),
            "license": datasets.Value("string"),
            "family": datasets.Value("string"),  # families.family_of: held out together, weighed equally
            "group": datasets.Value("string"),  # Unicode emoji group (emojibase-data), '' when unknown
            "slice": datasets.Value("string"),  # evaluation slice: everyday, people, flags or other (groups.py)
        }
    )


@dataclass
class BuildOptions:
    """Everything that decides what a build contains (saved in build_info.json)."""

    styles: list[str] | None = None  # None: every style with an installed source
    source_ids: list[str] | None = None  # None: every known source
    concepts: list[str] | None = None  # explicit concept keys; None: all
    max_concepts: int | None = None  # keep this many concepts (seeded choice), for small builds
    skin_tones: str = "all"  # "all", "single" (no mixed-tone pairs) or "none"
    heldout_pair_fraction: float = 0.05
    heldout_concept_fraction: float = 0.02
    seed: int = 0

    def validate(self) -> None:
        """Raise a ValueError naming the first bad option (before any rendering starts)."""
        if self.styles is not None:
            unknown = sorted(set(self.styles) - set(STYLES))
            if unknown:
                raise ValueError(f"unknown style(s) {unknown}; choose from {list(STYLES)}")
        if self.skin_tones not in SKIN_TONE_CHOICES:
            raise ValueError(f"skin_tones must be one of {SKIN_TONE_CHOICES}, got {self.skin_tones!r}")
        if self.max_concepts is not None and self.max_concepts < 1:
            raise ValueError(f"max_concepts must be >= 1, got {self.max_concepts}")
        for label in ("heldout_pair_fraction", "heldout_concept_fraction"):
            value = getattr(self, label)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {value}")
        if self.concepts is not None:
            universe = emoji_concepts()
            unknown = [k for k in self.concepts if k not in universe]
            if unknown:
                raise ValueError(f"unknown concept key(s) {unknown}; keys look like '1f63e' or '1f44d-1f3fd'")


def select_concepts(available: set[str], options: BuildOptions) -> list[str]:
    """The concept keys to build, after the skin-tone filter, an explicit list or a seeded subset."""
    options.validate()
    keys = set(available)
    if options.skin_tones == "none":
        keys = {k for k in keys if not skin_tones_of(k)}
    elif options.skin_tones == "single":
        keys = {k for k in keys if len(set(skin_tones_of(k))) <= 1}
    if options.concepts is not None:
        keys &= set(options.concepts)
    ordered = sorted(keys, key=lambda k: unit_hash(options.seed, "subset", k))
    if options.max_concepts is not None:
        ordered = ordered[: options.max_concepts]
    return sorted(ordered)


def _cache_stem(cache_dir: Path, source: FoundSource, key: str) -> Path:
    return cache_dir / CACHE_VERSION / f"{source.spec.id}-{source.version}" / key


def _is_done(stem: Path, high_res: bool) -> bool:
    ok = stem.with_suffix(".png").is_file() and (not high_res or stem.with_suffix(".256.png").is_file())
    return ok or stem.with_suffix(".skip").is_file()


def render_all(
    plan: dict[tuple[str, str], list[FoundSource]], cache_dir: Path, num_workers: int = 2, progress: bool = True
) -> dict[tuple[str, str], FoundSource]:
    """Render each (concept, style) from its first source that draws it; return which source won per pair."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    chosen: dict[tuple[str, str], FoundSource] = {}
    remaining = {pair: list(candidates) for pair, candidates in plan.items()}
    attempt = 0
    while remaining:
        attempt += 1
        jobs: list[tuple[tuple[str, str], FoundSource, RenderJob]] = []
        for pair, candidates in remaining.items():
            source = candidates[0]
            artwork = source.artwork[pair[0]]
            stem = _cache_stem(cache_dir, source, pair[0])
            stem.parent.mkdir(parents=True, exist_ok=True)
            font = str(source.root) if artwork.kind == "noto" else None
            jobs.append((pair, source, RenderJob(artwork.kind, artwork.source, str(stem), source.spec.high_res, font)))
        todo = [job for _, _, job in jobs if not _is_done(Path(job.out_stem), job.high_res)]
        if todo:
            desc = "rendering" if attempt == 1 else f"rendering fallbacks ({attempt})"
            bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress)
            if num_workers == 1:
                for job in todo:
                    render_job(job)
                    bar.update()
            else:
                with multiprocessing.get_context("fork").Pool(num_workers) as pool:
                    for _ in pool.imap_unordered(render_job, todo, chunksize=8):
                        bar.update()
            bar.close()
        next_round = {}
        for pair, source, job in jobs:
            if Path(job.out_stem).with_suffix(".png").is_file():
                chosen[pair] = source
            elif len(remaining[pair]) > 1:
                next_round[pair] = remaining[pair][1:]
        remaining = next_round
    return chosen


def concept_texts(key: str, found: Iterable[FoundSource]) -> tuple[list[str], list[str]]:
    """Alternative names and tags of a concept from every installed source (skin-tone variants inherit the base's)."""
    concept: Concept = emoji_concepts()[key]
    base = strip_skin_tones(key)
    tones = skin_tones_of(key)
    suffix = ": " + ", ".join(f"{t} skin tone" for t in tones) if tones else ""
    aliases = list(concept.aliases)
    tags: list[str] = []
    for source in found:
        aliases += source.aliases.get(key, [])
        if base != key:
            aliases += [a + suffix for a in source.aliases.get(base, []) if ":" not in a]
        tags += source.tags.get(key, []) or source.tags.get(base, [])
    return aliases, tags


def _rows(
    pairs: tuple[tuple[str, str], ...],
    chosen: dict[tuple[str, str], FoundSource],
    cache_dir: Path,
    found: tuple[FoundSource, ...],
    groups: dict[str, str],
    language: LanguageData,
) -> Iterator[dict]:
    concepts = emoji_concepts()
    texts: dict[str, tuple[list[str], list[str]]] = {}
    for key, style in pairs:
        source = chosen[(key, style)]
        stem = _cache_stem(cache_dir, source, key)
        high = stem.with_suffix(".256.png")
        if key not in texts:
            texts[key] = concept_texts(key, found)
        aliases, tags = texts[key]
        name = concepts[key].name
        english = language.annotation(key, "en")
        captions = build_captions(name, style, english.names + aliases, english.keywords + tags,
                                  language.localized(key), language.shortcodes.get(key, []))  # fmt: skip
        group = group_of(key, groups)
        yield {
            "image": {"bytes": stem.with_suffix(".png").read_bytes(), "path": None},
            "image_256": {"bytes": high.read_bytes(), "path": None} if source.spec.high_res else None,
            "caption": primary_caption(name, style),
            "captions": captions,
            "names": json.dumps({**language.names(key), "en": name}, ensure_ascii=False),
            "concept": key,
            "name": name,
            "style": style,
            "source": source.spec.package,
            "license": source.spec.license,
            "family": family_of(key),
            "group": group,
            "slice": slice_of(key, group),
        }


def _small_images(pairs: list[tuple[str, str]], chosen: dict[tuple[str, str], FoundSource], cache_dir: Path) -> np.ndarray:
    """(N, D) float32 images of `pairs` at NEAR_DUPLICATE_SIZE px, flattened, in [0, 1]."""
    rows = []
    for key, style in pairs:
        with Image.open(_cache_stem(cache_dir, chosen[(key, style)], key).with_suffix(".png")) as image:
            small = resize(image.convert("RGB"), NEAR_DUPLICATE_SIZE)
        rows.append(np.asarray(small, dtype=np.float32).reshape(-1) / 255.0)
    return np.stack(rows) if rows else np.zeros((0, NEAR_DUPLICATE_SIZE**2 * 3), np.float32)


def drop_near_duplicates(
    assignment: dict[tuple[str, str], str], chosen: dict[tuple[str, str], FoundSource], cache_dir: Path,
    threshold: float = NEAR_DUPLICATE_THRESHOLD,
) -> dict:
    """Remove from `assignment` every held-out image that a training image of any style nearly copies; report it.

    Compares at NEAR_DUPLICATE_SIZE px by RMS pixel difference, across all styles (some draw alike), so an image
    drawn identically under another name (OpenMoji's "optical disk" and "dvd") cannot be scored as unseen.
    """
    train = sorted(p for p, s in assignment.items() if s == "train")
    report: dict = {"size_px": NEAR_DUPLICATE_SIZE, "threshold_rms": round(threshold, 5), "found": {},
                    "closest_left_rms": {}, "examples": {}}  # fmt: skip
    if not train:
        return report
    references = _small_images(train, chosen, cache_dir)
    for split in SPLITS[1:]:
        held = sorted(p for p, s in assignment.items() if s == split)
        if not held:
            continue
        distances, nearest = nearest_distances(_small_images(held, chosen, cache_dir), references)
        offenders = [(held[i], train[nearest[i]], float(distances[i])) for i in np.flatnonzero(distances < threshold)]
        for pair, _, _ in offenders:
            del assignment[pair]
        left = distances[distances >= threshold]
        report["found"][split] = len(offenders)
        report["closest_left_rms"][split] = round(float(left.min()), 5) if left.size else None
        report["examples"][split] = [f"{a[0]} {a[1]} ~ {b[0]} {b[1]} ({d:.4f})" for a, b, d in offenders[:10]]
        if offenders:
            logger.info("%s: dropped %d images a training image nearly copies, e.g. %s", split, len(offenders),
                        report["examples"][split][:3])  # fmt: skip
    return report


def _signature(options: BuildOptions, found: list[FoundSource], language: LanguageData) -> str:
    payload = {"options": vars(options), "cache": CACHE_VERSION, "build": BUILD_VERSION,
               "sources": sorted((f.spec.id, f.version, len(f.artwork)) for f in found),
               "language": sorted((f.spec.package, f.version, *f.locales) for f in language.found)}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _save_splits(
    folder: Path,
    by_split: dict[str, list[tuple[str, str]]],
    chosen: dict[tuple[str, str], FoundSource],
    cache_dir: Path,
    found: list[FoundSource],
    groups: dict[str, str],
    language: LanguageData,
) -> datasets.DatasetDict:
    """Write the DatasetDict to `folder` (streamed through a temporary Arrow cache, so memory stays small)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as arrow_cache:
        splits = {}
        for split in SPLITS:
            if not by_split[split]:  # e.g. no held-out pairs when only one style is built
                splits[split] = datasets.Dataset.from_dict({c: [] for c in dataset_features()}, dataset_features())
                continue
            splits[split] = datasets.Dataset.from_generator(
                _rows, features=dataset_features(), cache_dir=arrow_cache, split=datasets.Split(split),
                # tuples, not lists: `datasets` would try to shard list arguments
                gen_kwargs={"pairs": tuple(by_split[split]), "chosen": chosen, "cache_dir": cache_dir,
                            "found": tuple(found), "groups": groups, "language": language},
            )  # fmt: skip
        # an empty split needs one explicit (empty) shard, or `load_from_disk` fails on it
        num_shards = {name: 1 if len(split) == 0 else None for name, split in splits.items()}
        datasets.DatasetDict(splits).save_to_disk(str(folder), num_shards=num_shards)
    return datasets.load_from_disk(str(folder))


def build_dataset(
    output_dir: str | Path = DEFAULT_OUTPUT,
    options: BuildOptions | None = None,
    search: SearchPaths | None = None,
    cache_dir: str | Path | None = None,
    num_workers: int = 2,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Build the emoji dataset into `output_dir` (DatasetDict + LICENSES.md + contact_sheet.png + build_info.json).

    Args:
        output_dir: where the DatasetDict is saved (replaced atomically at the end).
        options: what to build; see `BuildOptions`.
        search: where to look for the sources; `SearchPaths.default()` if None.
        cache_dir: rendered-image cache; default `<output_dir>.cache` next to the output.
        num_workers: rendering processes.
        force: rebuild even when build_info.json says the same build is already there.
        progress: show tqdm progress bars.

    Returns:
        The build summary (also written to build_info.json): counts per style and split, sources, seconds taken.
    """
    start = time.perf_counter()
    options = options or BuildOptions()
    output_dir = Path(output_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else output_dir.with_name(output_dir.name + ".cache")
    options.validate()
    found, missing = find_sources(search, options.source_ids)
    if options.styles is not None:
        found = [f for f in found if f.spec.style in options.styles]
    wanted_missing = [m for m in missing if options.styles is None or m.style in options.styles]
    if wanted_missing:
        names = ", ".join(f"{m.id} ({m.package})" for m in wanted_missing)
        commands = "\n  ".join(install_command(wanted_missing))
        logger.warning("missing sources: %s. To add them, run:\n  %s", names, commands)
    if not found:
        raise ValueError("no emoji source is installed; install some with:\n  " + "\n  ".join(install_command(missing)))
    for source in found:
        logger.info("found %s %s at %s (%d images)", source.spec.package, source.version, source.root,
                    len(source.artwork))  # fmt: skip

    language = load_language_data(search)
    signature = _signature(options, found, language)
    info_path = output_dir / "build_info.json"
    if not force and info_path.is_file() and json.loads(info_path.read_text()).get("signature") == signature:
        logger.info("%s already holds this build (signature %s); use --force to rebuild", output_dir, signature)
        return json.loads(info_path.read_text())

    universe = emoji_concepts()
    available = {k for f in found for k in f.artwork if k in universe}
    keys = select_concepts(available, options)
    plan = {}
    for key in keys:
        for style in STYLES:
            candidates = [f for f in found if f.spec.style == style and key in f.artwork]
            if candidates:
                plan[(key, style)] = candidates
    chosen = render_all(plan, cache_dir, num_workers=num_workers, progress=progress)
    skipped = sorted(set(plan) - set(chosen))
    if skipped:
        logger.info("%d (concept, style) pairs have no usable artwork, e.g. %s", len(skipped), skipped[:5])

    digests = {pair: hashlib.md5(_cache_stem(cache_dir, source, pair[0]).with_suffix(".png").read_bytes()).hexdigest()
               for pair, source in chosen.items()}  # fmt: skip
    duplicates = find_duplicates(digests)
    if duplicates:
        logger.info("dropping %d images identical to another concept's in the same style, e.g. %s",
                    len(duplicates), list(duplicates.items())[:3])  # fmt: skip
    duplicates_per_style = Counter(style for _, style in duplicates)
    chosen = {pair: source for pair, source in chosen.items() if pair not in duplicates}

    assignment = assign_splits(chosen, options.heldout_pair_fraction, options.heldout_concept_fraction, options.seed)
    assignment = leak_free_splits(assignment)
    near = drop_near_duplicates(assignment, chosen, cache_dir)
    chosen = {pair: source for pair, source in chosen.items() if pair in assignment}
    by_split: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in sorted(chosen):
        by_split[assignment[pair]].append(pair)

    groups = emoji_groups(search or SearchPaths.default())
    partial = output_dir.with_name(output_dir.name + ".partial")
    dataset = _save_splits(partial, by_split, chosen, cache_dir, found, groups, language.subset(keys))
    per_source = Counter(f"{chosen[p].spec.id}" for p in chosen)
    usages = [SourceUsage(f.spec, f.version, per_source[f.spec.id]) for f in found if per_source[f.spec.id]]
    write_licenses(partial / "LICENSES.md", usages, language.found)
    make_contact_sheet(dataset, partial / "contact_sheet.png")
    summary = {
        "signature": signature,
        "options": vars(options),
        "concepts": len({k for k, _ in chosen}),
        "images_per_style": dict(sorted(Counter(s for _, s in chosen).items())),
        "images_256_per_style": dict(sorted(Counter(p[1] for p, f in chosen.items() if f.spec.high_res).items())),
        "split_sizes": {s: len(by_split[s]) for s in SPLITS},
        "sources": [{"id": u.spec.id, "package": u.spec.package, "version": u.version, "style": u.spec.style,
                     "license": u.spec.license, "images": u.images} for u in usages],
        "missing_sources": [m.id for m in missing],
        "language_sources": [{"package": f.spec.package, "version": f.version, "license": f.spec.license,
                              "locales": f.locales} for f in language.found],
        "missing_language_sources": [m.package for m in language.missing],
        "skipped_pairs": len(skipped),
        "duplicates_dropped_per_style": dict(sorted(duplicates_per_style.items())),
        "near_duplicates": near,
        "images_per_slice": {s: dict(sorted(Counter(dataset[s]["slice"]).items())) for s in SPLITS},
        "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    (partial / "build_info.json").write_text(json.dumps(summary, indent=2) + "\n")
    del dataset
    if output_dir.exists():
        shutil.rmtree(output_dir)
    partial.rename(output_dir)
    return summary


def _add_search_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--npm-prefix", action="append", default=[], type=Path,
                        help=f"folder given to `npm install --prefix` (repeatable; searched before the defaults: "
                             f"$UNCLIP_NPM_PREFIX, {DEFAULT_NPM_PREFIX}, ., ~/.cache/unclip-diffusers/npm, global)")
    parser.add_argument("--noto-font", action="append", default=[], type=Path, help="path of NotoColorEmoji.ttf")
    parser.add_argument("--gemojione-dir", action="append", default=[], help="gemojione gem folder (glob allowed)")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="unclip-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="list the installed sources and how to install the missing ones")
    _add_search_args(check)
    build = commands.add_parser("build", help="build the emoji image-caption dataset from installed packages")
    _add_search_args(build)
    build.add_argument("--output", default=DEFAULT_OUTPUT, help="output folder (default: %(default)s)")
    build.add_argument("--cache-dir", default=None, help="rendered-image cache (default: <output>.cache)")
    build.add_argument("--styles", nargs="+", default=None, metavar="STYLE", help=f"subset of {list(STYLES)}")
    build.add_argument("--sources", nargs="+", default=None, metavar="ID", help="subset of source ids")
    build.add_argument("--concepts", nargs="+", default=None, metavar="KEY", help="concept keys, e.g. 1f63e")
    build.add_argument("--max-concepts", type=int, default=None, help="keep this many concepts (seeded)")
    build.add_argument("--skin-tones", choices=SKIN_TONE_CHOICES, default="all")
    build.add_argument("--heldout-pair-fraction", type=float, default=0.05)
    build.add_argument("--heldout-concept-fraction", type=float, default=0.02)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--workers", type=int, default=2, help="rendering processes (default: %(default)s)")
    build.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
    build.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def _search_paths(args: argparse.Namespace) -> SearchPaths:
    search = SearchPaths.default()
    search.npm_prefixes = list(args.npm_prefix) + search.npm_prefixes
    search.noto_fonts = list(args.noto_font) + search.noto_fonts
    search.gemojione_dirs = list(args.gemojione_dir) + search.gemojione_dirs
    return search


def main(argv: list[str] | None = None) -> int:
    """Console entry point of `unclip-data`."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    search = _search_paths(args)
    if args.command == "check":
        found, missing = find_sources(search)
        for source in found:
            print(f"found    {source.spec.id:15} {source.spec.package} {source.version}: {len(source.artwork)} images")
        covered = {f.spec.style for f in found}
        for spec in missing:
            note = f"  (optional: {spec.style} already comes from another source)" if spec.style in covered else ""
            print(f"missing  {spec.id:15} {spec.package}{note}")
        language = load_language_data(search)
        for package in language.found:
            print(f"found    {package.spec.package} {package.version}: locales {' '.join(package.locales)}")
        for spec in language.missing:
            print(f"missing  {spec.package}  (names and keywords in other languages)")
        if missing or language.missing:
            print("install the missing ones with:\n  " + "\n  ".join(install_command([*missing, *language.missing])))
        return 0
    options = BuildOptions(
        styles=args.styles, source_ids=args.sources, concepts=args.concepts, max_concepts=args.max_concepts,
        skin_tones=args.skin_tones, heldout_pair_fraction=args.heldout_pair_fraction,
        heldout_concept_fraction=args.heldout_concept_fraction, seed=args.seed,
    )  # fmt: skip
    try:
        summary = build_dataset(args.output, options, search, args.cache_dir, args.workers, args.force,
                                progress=not args.no_progress)  # fmt: skip
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("concepts", "images_per_style", "split_sizes", "seconds")}, indent=2))
    print(f"saved to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
