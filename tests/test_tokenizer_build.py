"""The extra merges of the multilingual CLIP vocabulary: how they are learned and the committed asset."""

from importlib import resources

from unclip_diffusers.tokenizer import build_clip_tokenizer, clip_merges, read_merges_file, tokenizer_from_merges
from unclip_diffusers.tokenizer_build import learn_extra_merges, write_extra_merges

TEXTS = ["schmollende Katze", "不機嫌な猫", "猫の顔", "猫", "надутый кот", "кот", "गुस्से वाली बिल्ली", "बिल्ली"] * 2


def test_learned_merges_are_deterministic_new_and_shorten_the_texts():
    base = build_clip_tokenizer(1000, model_max_length=10**6)
    merges = learn_extra_merges(TEXTS, base, 40)
    assert merges == learn_extra_merges(TEXTS, base, 40) and 0 < len(merges) <= 40
    vocab = base.get_vocab()
    assert all("".join(m.split(" ")) not in vocab for m in merges) and len(set(merges)) == len(merges)
    extended = tokenizer_from_merges(clip_merges(1000) + merges, model_max_length=10**6)
    for text in TEXTS:
        assert len(extended(text).input_ids) <= len(base(text).input_ids)
    assert len(extended("кот").input_ids) < len(base("кот").input_ids)
    assert extended("a photo of a cat").input_ids[1:-1] == base("a photo of a cat").input_ids[1:-1]


def test_merges_file_round_trips(tmp_path):
    write_extra_merges(tmp_path / "m.txt", ["a b", "ab c"], 7678, ["made by: a test"])
    header, merges = read_merges_file((tmp_path / "m.txt").read_text(encoding="utf-8"))
    assert merges == ("a b", "ab c") and header["base_merges"] == "7678" and header["made by"] == "a test"


def test_committed_asset_says_how_it_was_made():
    text = resources.files("unclip_diffusers.assets.clip_bpe").joinpath("extra_merges.txt").read_text(encoding="utf-8")
    header, merges = read_merges_file(text)
    assert header["base_merges"] == "7678" and int(header["extra_merges"]) == len(merges) == 8190
    assert "tokenizer_build" in header["made by"] and "Unicode-3.0" in header["data"] and "MIT" in header["data"]
