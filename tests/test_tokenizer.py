import pytest

from unclip_diffusers.tokenizer import build_clip_tokenizer, clip_vocab_size


def test_full_vocabulary_matches_openai_clip_ids():
    tokenizer = build_clip_tokenizer()
    assert len(tokenizer) == 49408 == clip_vocab_size()
    # Ids of OpenAI's CLIP tokenizer for this sentence.
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_small_vocabulary_shares_ids_of_frequent_words():
    small = build_clip_tokenizer(num_merges=7678, model_max_length=32)
    assert len(small) == 8192
    assert small("a photo of a cat").input_ids == [8190, 320, 1125, 539, 320, 2368, 8191]
    assert small.model_max_length == 32


def test_long_prompt_is_truncated_to_model_max_length():
    tokenizer = build_clip_tokenizer(num_merges=1000, model_max_length=77)
    ids = tokenizer("cat " * 200, truncation=True, max_length=tokenizer.model_max_length).input_ids
    assert len(ids) == 77 and ids[-1] == len(tokenizer) - 1


def test_bad_merge_count_is_rejected():
    with pytest.raises(ValueError, match="num_merges"):
        build_clip_tokenizer(num_merges=10**6)


def test_extra_merges_keep_clip_ids_and_load_as_a_plain_clip_tokenizer(tmp_path):
    from transformers import CLIPTokenizer

    small = build_clip_tokenizer(num_merges=7678, model_max_length=32)
    extended = build_clip_tokenizer(num_merges=7678, model_max_length=64, extra_merges=8190)
    assert len(extended) == 16382 == clip_vocab_size(7678, 8190)
    assert extended("a photo of a cat").input_ids == [16380, 320, 1125, 539, 320, 2368, 16381]
    old_vocab, new_vocab = small.get_vocab(), extended.get_vocab()
    assert all(new_vocab[t] == i for t, i in old_vocab.items() if i < 8190)  # every non-special id is unchanged
    japanese, russian = "不機嫌な猫、Fluent 3D スタイル", "надутый кот в стиле Noto"
    for text in (japanese, russian):
        assert len(extended(text).input_ids) < 0.6 * len(small(text).input_ids)
    extended.save_pretrained(tmp_path)
    reloaded = CLIPTokenizer.from_pretrained(tmp_path)  # a plain transformers tokenizer, no project code
    assert reloaded(japanese).input_ids == extended(japanese).input_ids and reloaded.model_max_length == 64


def test_extra_merges_need_clip_s_base_merges():
    with pytest.raises(ValueError, match="num_merges=7678"):
        build_clip_tokenizer(num_merges=1000, extra_merges=10)
    with pytest.raises(ValueError, match="extra_merges must be"):
        build_clip_tokenizer(num_merges=7678, extra_merges=10**6)
