"""Loading: the committed fixture, other `save_to_disk` datasets, imagefolders, and clear errors."""

import json
from collections import defaultdict

import datasets
import numpy as np
import pytest
from PIL import Image

from unclip_diffusers.data import FIXTURE_PATH, SPLITS, load_image_text_dataset, make_contact_sheet, strip_skin_tones

CONTRACT_COLUMNS = {"image", "image_256", "caption", "captions", "concept", "name", "style", "source", "license"}


@pytest.fixture(scope="module")
def fixture_splits():
    return {split: load_image_text_dataset(FIXTURE_PATH, split=split) for split in SPLITS}


def test_fixture_matches_the_contract(fixture_splits):
    assert (FIXTURE_PATH / "LICENSES.md").is_file() and (FIXTURE_PATH / "contact_sheet.png").is_file()
    size = sum(f.stat().st_size for f in FIXTURE_PATH.rglob("*") if f.is_file())
    assert size < 600_000, f"fixture is {size} bytes"
    styles = set()
    for split, dataset in fixture_splits.items():
        assert len(dataset) > 0, split
        assert CONTRACT_COLUMNS <= set(dataset.column_names)
        styles |= set(dataset["style"])
        row = dataset[0]
        assert row["image"].mode == "RGB" and row["image"].size == (64, 64)
        assert row["caption"] == f"{row['name']}, {row['style']} style" and row["caption"] in row["captions"]
    assert len(styles) >= 3
    assert 24 <= sum(len(d) for d in fixture_splits.values()) <= 80


def test_fixture_split_is_disjoint(fixture_splits):
    pairs = {split: set(zip(d["concept"], d["style"])) for split, d in fixture_splits.items()}
    assert not (pairs["train"] & pairs["heldout_pairs"]) and not (pairs["train"] & pairs["heldout_concepts"])
    train_families = {strip_skin_tones(k) for k, _ in pairs["train"]}
    assert not train_families & {strip_skin_tones(k) for k, _ in pairs["heldout_concepts"]}
    train_styles = defaultdict(set)
    for key, style in pairs["train"]:
        train_styles[strip_skin_tones(key)].add(style)
    for key, style in pairs["heldout_pairs"]:
        assert style not in train_styles[strip_skin_tones(key)] and train_styles[strip_skin_tones(key)]


def _skin_brightness(image: Image.Image) -> float:
    """Mean brightness of the non-white, non-outline pixels (the hand)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    brightness = pixels.mean(axis=1)
    hand = pixels[(brightness < 245) & (brightness > 60)]
    return float(hand.mean())


def test_fixture_skin_tones_are_in_order(fixture_splits):
    """Light > medium-light > medium in every style, including the @lobehub one whose files are swapped."""
    rows = defaultdict(dict)
    for dataset in fixture_splits.values():
        for i, (key, style) in enumerate(zip(dataset["concept"], dataset["style"])):
            if key in ("1f44d-1f3fb", "1f44d-1f3fc", "1f44d-1f3fd") and "outline" not in style:
                rows[style][key] = _skin_brightness(dataset[i]["image"])
    assert "Fluent flat" in rows and len(rows) >= 3
    for style, tones in rows.items():
        assert tones["1f44d-1f3fb"] > tones["1f44d-1f3fc"] > tones["1f44d-1f3fd"], (style, tones)


def test_fixture_has_the_completed_england_flag(fixture_splits):
    england = "1f3f4-e0067-e0062-e0065-e006e-e0067-e007f"
    styles = {s for d in fixture_splits.values() for k, s in zip(d["concept"], d["style"]) if k == england}
    assert "Fluent flat" in styles


def test_image_256_column(fixture_splits):
    high = load_image_text_dataset(FIXTURE_PATH, image_column="image_256")
    train = fixture_splits["train"]
    assert 0 < len(high) < len(train)  # rows without 256-px art are left out
    assert high[0]["image"].size == (256, 256)
    assert "image_256" not in high.column_names
    assert set(high["source"]) <= {s for s, h in zip(train["source"], train.data.column("image_256").is_valid().to_pylist()) if h}


def test_caption_lists_and_other_caption_columns(fixture_splits):
    by_list = load_image_text_dataset(FIXTURE_PATH, caption_column="captions")
    assert by_list["caption"] == fixture_splits["train"]["caption"]
    by_name = load_image_text_dataset(FIXTURE_PATH, caption_column="name")
    assert by_name[0]["captions"] == [by_name[0]["caption"]] == [fixture_splits["train"][0]["name"]]


def test_single_saved_dataset(tmp_path):
    image = Image.new("RGB", (8, 8), "red")
    datasets.Dataset.from_dict({"img": [image], "text": ["a red square"]}).save_to_disk(str(tmp_path / "single"))
    dataset = load_image_text_dataset(tmp_path / "single", image_column="img", caption_column="text")
    assert dataset[0]["caption"] == "a red square" and dataset[0]["captions"] == ["a red square"]
    assert dataset[0]["image"].size == (8, 8)
    with pytest.raises(ValueError, match="split 'train' only"):
        load_image_text_dataset(tmp_path / "single", split="test", image_column="img", caption_column="text")


def test_imagefolder_with_metadata(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with open(folder / "metadata.jsonl", "w") as f:
        for i, color in enumerate(["red", "blue"]):
            Image.new("RGB", (8, 8), color).save(folder / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "text": f"a {color} square"}) + "\n")
    dataset = load_image_text_dataset(folder, caption_column="text")
    assert sorted(dataset["caption"]) == ["a blue square", "a red square"]
    assert dataset[0]["image"].size == (8, 8) and len(dataset[0]["captions"]) == 1


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_image_text_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither"):
        load_image_text_dataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="available splits"):
        load_image_text_dataset(FIXTURE_PATH, split="validation")
    with pytest.raises(ValueError, match="caption_column='text'"):
        load_image_text_dataset(FIXTURE_PATH, caption_column="text")


def test_contact_sheet(fixture_splits, tmp_path):
    sheet = make_contact_sheet(datasets.DatasetDict(fixture_splits), tmp_path / "sheet.png", max_concepts=4)
    image = Image.open(sheet)
    assert image.height > 4 * 64 and image.width > 3 * 64
    with pytest.raises(ValueError, match="lacks column"):
        make_contact_sheet(fixture_splits["train"].remove_columns("style"), tmp_path / "x.png")
