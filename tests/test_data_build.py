"""The build pipeline end to end on tiny fake npm packages (CI has no npm/apt sources)."""

import io
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from unclip_diffusers.data import load_image_text_dataset
from unclip_diffusers.data.build import (
    CACHE_VERSION,
    BuildOptions,
    build_dataset,
    drop_near_duplicates,
    main,
    select_concepts,
)
from unclip_diffusers.data.images import RenderJob, SkipArtwork, is_blank, render_job, render_noto, to_square_on_white
from unclip_diffusers.data.sources import SOURCE_BY_ID, SearchPaths, find_sources, install_command

LANGUAGE_FIXTURE = Path(__file__).parent / "fixtures" / "language"
ENGLAND = "1f3f4-e0067-e0062-e0065-e006e-e0067-e007f"


def _svg(color: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="12" fill="{color}"/></svg>'


BLANK_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"></svg>'


def _package(prefix: Path, name: str) -> Path:
    root = prefix / "node_modules" / name
    root.mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": name, "version": "0.0.1"}))
    return root


@pytest.fixture(scope="module")
def npm_prefix(tmp_path_factory) -> Path:
    """A fake npm prefix with @lobehub/fluent-emoji-flat, openmoji and emoji-datasource-twitter."""
    prefix = tmp_path_factory.mktemp("npm")
    flat = _package(prefix, "@lobehub/fluent-emoji-flat") / "assets"
    flat.mkdir()
    # lobehub's file names: 1f3fc holds the *medium* (1f3fd) artwork, England lacks its cancel tag
    files = {"1f63e": "#f0a000", "1f600": "#ffd000", "1f680": "#8080ff", "1f44d-1f3fc": "#a06040",
             "1f44d-1f3fd": "#f0c090", "1f3f4-e0067_e0062_e0065_e006e_e0067": "#ff0000"}  # fmt: skip
    for stem, color in files.items():
        (flat / f"{stem}.svg").write_text(_svg(color))
    (flat / "2764-fe0f.svg").write_text(BLANK_SVG)  # unusable artwork: skipped, not a crash

    openmoji = _package(prefix, "openmoji")
    entries = [
        {"hexcode": "1F63E", "annotation": "pouting cat", "tags": "cat, pouting", "openmoji_tags": "", "group": "smileys-emotion"},
        {"hexcode": "1F600", "annotation": "grinning face", "tags": "face, grin", "openmoji_tags": "", "group": "smileys-emotion"},
        {"hexcode": "1F680", "annotation": "rocket", "tags": "space", "openmoji_tags": "", "group": "travel-places"},
        {"hexcode": "2764-FE0F", "annotation": "red heart", "tags": "love", "openmoji_tags": "", "group": "smileys-emotion"},
        {"hexcode": "E000", "annotation": "openmoji logo", "tags": "", "openmoji_tags": "", "group": "extras-openmoji"},
    ]  # fmt: skip
    (openmoji / "data").mkdir()
    (openmoji / "data" / "openmoji.json").write_text(json.dumps(entries))
    for folder in ("color", "black"):
        (openmoji / folder / "svg").mkdir(parents=True)
        for i, entry in enumerate(entries):  # distinct images: identical ones would be dropped as placeholders
            shade = "a030" if folder == "color" else "30a0"  # styles apart too, or the near-duplicate check drops
            (openmoji / folder / "svg" / f"{entry['hexcode']}.svg").write_text(_svg(f"#{40 * i:02x}{shade}"))

    twitter = _package(prefix, "emoji-datasource-twitter")
    (twitter / "img" / "twitter" / "64").mkdir(parents=True)
    emoji_json = []
    for i, (unified, name) in enumerate((("1F63E", "POUTING CAT FACE"), ("1F600", "GRINNING FACE"),
                                         ("2764-FE0F", "HEAVY BLACK HEART"))):  # fmt: skip
        image = f"{unified.lower()}.png"
        Image.new("RGBA", (64, 64), (200, 50 * i, 50, 255)).save(twitter / "img" / "twitter" / "64" / image)
        emoji_json.append({"unified": unified, "name": name, "short_names": [name.lower().replace(" ", "_")],
                           "image": image, "has_img_twitter": True})  # fmt: skip
    (twitter / "emoji.json").write_text(json.dumps(emoji_json))
    return prefix


def _search(prefix: Path) -> SearchPaths:
    return SearchPaths(npm_prefixes=[prefix], noto_fonts=[], gemojione_dirs=[])


def test_find_sources_and_install_hint(npm_prefix):
    found, missing = find_sources(_search(npm_prefix))
    ids = {f.spec.id for f in found}
    assert ids == {"fluent-flat", "openmoji-color", "openmoji-black", "twemoji"}
    flat = next(f for f in found if f.spec.id == "fluent-flat")
    assert flat.artwork["1f44d-1f3fd"].source.endswith("1f44d-1f3fc.svg")  # skin-tone swap fixed
    assert ENGLAND in flat.artwork  # flag completed
    commands = install_command(missing, npm_prefix="data/npm")
    assert commands[0] == "sudo apt-get install -y fonts-noto-color-emoji ruby-gemojione"
    assert commands[1].startswith("npm install --prefix data/npm ") and "@lobehub/fluent-emoji-3d" in commands[1]
    with pytest.raises(ValueError, match="unknown source"):
        find_sources(_search(npm_prefix), ["nope"])


def test_build_end_to_end(npm_prefix, tmp_path, caplog):
    output = tmp_path / "emoji"
    options = BuildOptions(heldout_pair_fraction=0.2, heldout_concept_fraction=0.2)
    search = _search(npm_prefix)
    search.npm_prefixes.append(LANGUAGE_FIXTURE)  # the committed excerpt of the CLDR and emojibase packages
    summary = build_dataset(output, options, search, num_workers=1, progress=False)
    assert summary["images_per_style"] == {"Fluent flat": 6, "OpenMoji": 4, "OpenMoji outline": 4, "Twemoji": 3}
    assert summary["skipped_pairs"] == 1  # the blank heart
    assert sum(summary["split_sizes"].values()) == 17
    assert all(summary["split_sizes"][s] > 0 for s in ("train", "heldout_pairs", "heldout_concepts"))
    licenses = (output / "LICENSES.md").read_text()
    assert "CC-BY-SA-4.0" in licenses
    assert "UNICODE LICENSE V3" in licenses and "Copyright (c) 2017-2019 Miles Johnson" in licenses
    assert [t["package"] for t in summary["language_sources"]] == ["cldr-annotations-full",
                                                                   "cldr-annotations-derived-full", "emojibase-data"]
    assert summary["near_duplicates"]["found"] == {"heldout_pairs": 0, "heldout_concepts": 0}
    assert min(summary["near_duplicates"]["closest_left_rms"].values()) >= summary["near_duplicates"]["threshold_rms"]
    assert Image.open(output / "contact_sheet.png").width > 300

    rows = []
    for split in ("train", "heldout_pairs", "heldout_concepts"):
        rows += load_image_text_dataset(output, split=split).to_list()
    by_pair = {(r["concept"], r["style"]): r for r in rows}
    assert len(by_pair) == len(rows) == 17
    cat = by_pair[("1f63e", "OpenMoji")]
    assert cat["caption"] == "pouting cat, OpenMoji style" and cat["name"] == "pouting cat"
    assert cat["captions"][0] == cat["caption"] and len(cat["captions"]) <= 64
    assert {"pouting cat", "schmollende Katze", "不機嫌な猫", ":pouting_cat:"} <= set(cat["captions"])
    assert any("pouting cat face" in c for c in cat["captions"])  # another source's name (emoji-datasource)
    assert json.loads(cat["names"])["de"] == "schmollende Katze" and json.loads(cat["names"])["en"] == "pouting cat"
    assert cat["license"] == "CC-BY-SA-4.0" and cat["source"] == "openmoji"
    assert by_pair[("1f63e", "Twemoji")]["image_256"] is None  # 64-px source
    assert Image.open(io.BytesIO(cat["image_256"]["bytes"])).size == (256, 256)  # to_list() keeps encoded images
    # the medium-skin-tone row shows the artwork lobehub filed under 1f3fc
    medium = np.asarray(Image.open(io.BytesIO(by_pair[("1f44d-1f3fd", "Fluent flat")]["image"]["bytes"])))
    assert tuple(medium[32, 32]) == (0xA0, 0x60, 0x40)
    assert by_pair[(ENGLAND, "Fluent flat")]["name"] == "flag: England"
    assert by_pair[("1f44d-1f3fd", "Fluent flat")]["family"] == "1f44d"
    # groups from the emojibase excerpt; a skin tone makes "people" whatever the group
    assert {(r["concept"], r["group"], r["slice"]) for r in rows} == {
        ("1f63e", "smileys-emotion", "everyday"), ("1f600", "smileys-emotion", "everyday"),
        ("1f680", "travel-places", "everyday"), ("2764", "smileys-emotion", "everyday"),
        ("1f44d-1f3fc", "people-body", "people"), ("1f44d-1f3fd", "people-body", "people"),
        (ENGLAND, "flags", "flags")}

    with caplog.at_level(logging.INFO):
        again = build_dataset(output, options, search, num_workers=1, progress=False)
    assert again["signature"] == summary["signature"] and "already holds this build" in caplog.text

    # a forced rebuild reuses the rendered images instead of drawing them again
    cached = sorted((tmp_path / "emoji.cache").rglob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    rebuilt = build_dataset(output, options, search, num_workers=1, progress=False, force=True)
    assert rebuilt["split_sizes"] == summary["split_sizes"]
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "emoji.cache").rglob("*.png"))] == stamps


def test_select_concepts_filters():
    available = {"1f44d", "1f44d-1f3fb", "1f9d1-1f3fb-200d-1f91d-200d-1f9d1-1f3ff", "1f63e", "1f680"}
    assert set(select_concepts(available, BuildOptions(skin_tones="none"))) == {"1f44d", "1f63e", "1f680"}
    assert "1f44d-1f3fb" in select_concepts(available, BuildOptions(skin_tones="single"))
    assert len(select_concepts(available, BuildOptions(skin_tones="single"))) == 4
    subset = select_concepts(available, BuildOptions(max_concepts=2, seed=1))
    assert len(subset) == 2 and subset == select_concepts(available, BuildOptions(max_concepts=2, seed=1))
    assert select_concepts(available, BuildOptions(concepts=["1f63e", "1f600"])) == ["1f63e"]


def test_build_without_sources_names_the_install_commands(tmp_path):
    with pytest.raises(ValueError, match="apt-get install -y fonts-noto-color-emoji"):
        build_dataset(tmp_path / "out", search=_search(tmp_path), progress=False)


def test_build_options_are_validated(npm_prefix, tmp_path):
    with pytest.raises(ValueError, match="unknown style"):
        build_dataset(tmp_path / "o", BuildOptions(styles=["Apple"]), _search(npm_prefix), progress=False)
    with pytest.raises(ValueError, match="unknown concept"):
        build_dataset(tmp_path / "o", BuildOptions(concepts=["zzz"]), _search(npm_prefix), progress=False)
    with pytest.raises(ValueError, match="skin_tones"):
        build_dataset(tmp_path / "o", BuildOptions(skin_tones="some"), _search(npm_prefix), progress=False)


def test_cli_check_and_build(npm_prefix, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout, whose data/npm (where a real build installed it) would be found
    assert main(["check", "--npm-prefix", str(npm_prefix)]) == 0
    out = capsys.readouterr().out
    assert "found    fluent-flat" in out and "npm install --prefix" in out
    code = main(["build", "--npm-prefix", str(npm_prefix), "--output", str(tmp_path / "cli"), "--styles", "OpenMoji",
                 "--concepts", "1f63e", "1f680", "1f600", "--workers", "2", "--no-progress"])  # fmt: skip
    assert code == 0
    info = json.loads((tmp_path / "cli" / "build_info.json").read_text())
    assert info["images_per_style"] == {"OpenMoji": 3}
    assert main(["build", "--npm-prefix", str(npm_prefix), "--output", str(tmp_path / "x"),
                 "--heldout-pair-fraction", "1.5", "--no-progress"]) == 2  # fmt: skip


def test_render_job_and_square_padding(tmp_path):
    wide = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    square = to_square_on_white(wide)
    assert square.mode == "RGB" and square.size == (20, 20)
    assert square.getpixel((0, 0)) == (255, 255, 255) and square.getpixel((10, 10)) == (255, 0, 0)

    svg = tmp_path / "a.svg"
    svg.write_text(_svg("#0000ff"))
    assert render_job(RenderJob("svg", str(svg), str(tmp_path / "a"), high_res=True)) is None
    low, high = Image.open(tmp_path / "a.png"), Image.open(tmp_path / "a.256.png")
    assert (low.size, low.mode, high.size) == ((64, 64), "RGB", (256, 256))
    assert low.getpixel((0, 0)) == (255, 255, 255) and low.getpixel((32, 32)) == (0, 0, 255)

    blank = tmp_path / "b.svg"
    blank.write_text(BLANK_SVG)
    assert "blank" in render_job(RenderJob("svg", str(blank), str(tmp_path / "b"), high_res=True))
    assert (tmp_path / "b.skip").is_file() and not (tmp_path / "b.png").exists()
    with pytest.raises(ValueError, match="unknown RenderJob kind"):
        render_job(RenderJob("gif", str(blank), str(tmp_path / "c"), high_res=False))


NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")


@pytest.mark.skipif(not NOTO_FONT.is_file(), reason="needs Debian's fonts-noto-color-emoji")
def test_noto_font_rejects_multi_glyph_and_missing_emoji():
    glyph = render_noto("\U0001f63e", NOTO_FONT)
    assert glyph.size == (136, 128) and not is_blank(glyph)
    # a sequence this font version cannot ligate falls apart into several glyphs; an unknown code point is blank
    with pytest.raises(SkipArtwork, match="glyphs"):
        render_noto("\U0001f9d1\U0001f3fb\u200d\U0001f430\u200d\U0001f9d1\U0001f3ff", NOTO_FONT)
    with pytest.raises(SkipArtwork, match="no glyph"):
        render_noto("\U0001fae9", NOTO_FONT)


def test_every_source_has_a_known_license():
    assert {s.license for s in SOURCE_BY_ID.values()} <= {"OFL-1.1", "Apache-2.0", "CC-BY-4.0", "CC-BY-SA-4.0", "MIT"}


def test_held_out_copies_of_training_images_are_dropped(tmp_path):
    source = SimpleNamespace(spec=SimpleNamespace(id="fake"), version="1")
    stem = tmp_path / CACHE_VERSION / "fake-1"
    stem.mkdir(parents=True)
    colours = {"1f4bf": (10, 10, 200), "1f4c0": (12, 10, 200), "1f680": (200, 10, 10), "1f408": (10, 200, 10)}
    for key, colour in colours.items():  # optical disk and dvd drawn (nearly) alike
        Image.new("RGB", (64, 64), colour).save(stem / f"{key}.png")
    assignment = {("1f4bf", "S"): "train", ("1f4c0", "S"): "heldout_concepts", ("1f680", "S"): "train",
                  ("1f408", "S"): "heldout_pairs"}  # fmt: skip
    report = drop_near_duplicates(assignment, {pair: source for pair in assignment}, tmp_path)
    assert ("1f4c0", "S") not in assignment and ("1f408", "S") in assignment
    assert report["found"] == {"heldout_pairs": 0, "heldout_concepts": 1}
    assert report["closest_left_rms"]["heldout_pairs"] > 0.5 and "1f4bf" in report["examples"]["heldout_concepts"][0]
