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
