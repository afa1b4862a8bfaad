"""LiT onto a new text side: `--init_text_from` warm-starts a larger-vocabulary, longer-context text tower."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from test_training_stages import _config
from unclip_diffusers.configs import MODEL_PRESETS, build_tokenizer, get_model_config
from unclip_diffusers.training.clip import CLIPStage, build_clip_model, features
from unclip_diffusers.training.trainer import run_training
from unclip_diffusers.training.warm_start import load_text_tower

CAPTION = "a photo of a cat, 3d style"


@pytest.fixture()
def old_clip(tmp_path, monkeypatch):
    """A `tiny` CLIP with CLIP's 7,678 merges and a 16-token context, saved as a CLIP run's final/."""
    old = replace(MODEL_PRESETS["tiny"], clip=replace(MODEL_PRESETS["tiny"].clip, num_merges=7678, max_text_length=16))
    monkeypatch.setitem(MODEL_PRESETS, "tiny-old", old)
    torch.manual_seed(0)
    model = build_clip_model(old)
    folder = tmp_path / "old" / "final"
    model.save_pretrained(folder / "clip", safe_serialization=True)
    build_tokenizer(old.clip).save_pretrained(folder / "tokenizer")
    return folder, model, build_tokenizer(old.clip)


def _text_embeds(model, tokenizer, captions):
    tokens = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    with torch.no_grad():
        return features(model.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask))


def test_warm_started_text_tower_embeds_old_captions_as_before(old_clip, caplog):
    folder, old, old_tokenizer = old_clip
    config = get_model_config("tiny-multilingual")
    new, tokenizer = build_clip_model(config), build_tokenizer(config.clip)
    assert tokenizer(CAPTION).input_ids[1:-1] == old_tokenizer(CAPTION).input_ids[1:-1]
    with caplog.at_level("WARNING"):
        load_text_tower(new, folder, tokenizer)
    assert "no tokenizer" not in caplog.text and "dropped" not in caplog.text  # the saved tokenizer/ was read
    torch.testing.assert_close(_text_embeds(new, tokenizer, [CAPTION]), _text_embeds(old, old_tokenizer, [CAPTION]))
    new_tokens = new.text_model.embeddings.token_embedding.weight
    old_tokens = old.text_model.embeddings.token_embedding.weight
    assert torch.equal(new_tokens[-2:], old_tokens[-2:]) and new_tokens.shape[0] == 16382 and old_tokens.shape[0] == 8192
    assert torch.equal(new_tokens[:8190], old_tokens[:8190])
    # "noto</w>" is a new token; it starts as the mean of the old tokens it replaces
    noto = tokenizer("noto", add_special_tokens=False).input_ids
    old_noto = old_tokenizer("noto", add_special_tokens=False).input_ids
    assert len(noto) == 1 and noto[0] >= 8190 and len(old_noto) > 1
    torch.testing.assert_close(new_tokens[noto[0]], old_tokens[old_noto].mean(dim=0))
    positions = new.text_model.embeddings.position_embedding.weight  # (77, D) from the old (16, D)
    assert torch.equal(positions[:16], old.text_model.embeddings.position_embedding.weight)
    assert torch.equal(positions[40], positions[15])
    with pytest.raises(ValueError, match="only the vocabulary and the context"):
        load_text_tower(build_clip_model(get_model_config("evaluator-tiny")), folder, tokenizer)


def test_lit_from_the_old_clip_trains_only_the_text_tower(old_clip, tmp_path):
    folder, old, _ = old_clip
    config = _config("clip", tmp_path, model_preset="tiny-multilingual", locked_image_tower=str(folder),
                     init_text_from=str(folder), max_steps=4, checkpoint_every=4, learning_rate=3e-3)  # fmt: skip
    run_dir = run_training(CLIPStage(config))
    trained = load_file(run_dir / "final" / "clip" / "model.safetensors")
    source = old.state_dict()
    image_keys = [k for k in trained if k.startswith(("vision_model.", "visual_projection."))]
    assert image_keys and all(torch.equal(trained[k], source[k]) for k in image_keys)
    layer = "text_model.encoder.layers.0.mlp.fc1.weight"
    assert not torch.equal(trained[layer], source[layer])  # the text tower learns, starting from the old one
    assert (trained[layer] - source[layer]).abs().max() < 0.1
    assert trained["text_model.embeddings.token_embedding.weight"].shape[0] == 16382
    with pytest.raises(ValueError, match="init_text_from"):
        _config("clip", tmp_path, init_text_from=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="set one of them"):
        _config("clip", tmp_path, init_text_from=str(folder), init_from=str(folder))
