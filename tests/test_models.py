import torch
import pytest

from unclip_diffusers.configs import (
    MODEL_PRESETS,
    DecoderSize,
    UnCLIPModelConfig,
    build_components,
    get_model_config,
)
from unclip_diffusers.models import UnCLIPPriorTransformer, UnCLIPTextProjection
from unclip_diffusers.models.prior_transformer import CaptionKVCache


@pytest.fixture(scope="module")
def components():
    torch.manual_seed(0)
    return build_components("tiny")


def test_prior_is_causal_without_a_mask(components):
    prior: UnCLIPPriorTransformer = components["prior"]
    torch.manual_seed(0)
    x, proj, tokens = torch.randn(2, 32), torch.randn(2, 32), torch.randn(2, 77, 32)
    with_mask = prior(x, 3, proj, encoder_hidden_states=tokens, attention_mask=torch.ones(2, 77, dtype=torch.bool))
    without = prior(x, 3, proj, encoder_hidden_states=tokens)
    torch.testing.assert_close(with_mask.predicted_image_embedding, without.predicted_image_embedding)


def test_prior_with_cached_caption_keys_and_values_equals_the_full_forward(components):
    prior: UnCLIPPriorTransformer = components["prior"]
    generator = torch.Generator().manual_seed(1)
    batch, tokens = 4, prior.config.num_embeddings
    x, proj = torch.randn(batch, 32, generator=generator), torch.randn(batch, 32, generator=generator)
    hidden = torch.randn(batch, tokens, 32, generator=generator)
    lengths = torch.tensor([2, 5, tokens, 1])  # padded captions of different lengths
    mask = torch.arange(tokens)[None] < lengths[:, None]
    cache = CaptionKVCache()
    with torch.no_grad():
        for t in (999, 400, torch.tensor([3])):
            full = prior(x, t, proj, encoder_hidden_states=hidden, attention_mask=mask).predicted_image_embedding
            cached = prior(x, t, proj, encoder_hidden_states=hidden, attention_mask=mask,
                           caption_cache=cache).predicted_image_embedding
            half = prior(x[2:], t, proj[2:], encoder_hidden_states=hidden[2:], attention_mask=mask[2:],
                         caption_cache=cache).predicted_image_embedding  # a guidance interval's unguided step
            torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(half, full[2:], atol=1e-5, rtol=1e-5)
    assert sorted(cache.entries) == [2, 4]  # computed once per batch size, reused by the later steps


def test_prior_embedding_stats_round_trip(components):
    prior = components["prior"]
    mean, std = torch.randn(32), torch.rand(32) + 0.5
    prior.set_embedding_stats(mean, std)
    z = torch.randn(4, 32)
    torch.testing.assert_close(prior.post_process_latents(prior.normalize_embeddings(z)), z)
    with pytest.raises(ValueError, match="positive"):
        prior.set_embedding_stats(mean, torch.zeros(32))


def test_text_projection_shapes_and_guidance_batch(components):
    proj: UnCLIPTextProjection = components["text_proj"]
    z_i = torch.randn(3, 32)
    tokens, time = proj(
        image_embeddings=z_i,
        prompt_embeds=torch.randn(6, 32),
        text_encoder_hidden_states=torch.randn(6, 77, 32),
        do_classifier_free_guidance=True,
    )
    assert tokens.shape == (6, 4 + 77, proj.config.cross_attention_dim)
    assert time.shape == (6, proj.config.time_embed_dim)
    with pytest.raises(ValueError, match="Batch sizes differ"):
        proj(image_embeddings=z_i, prompt_embeds=torch.randn(3, 32), text_encoder_hidden_states=torch.randn(6, 77, 32))


def test_components_save_and_load(tmp_path, components):
    for name in ["prior", "text_proj", "decoder", "super_res_first"]:
        model = components[name]
        model.save_pretrained(tmp_path / name)
        loaded = type(model).from_pretrained(tmp_path / name)
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
            torch.testing.assert_close(a, b)
        assert (tmp_path / name / "diffusion_pytorch_model.safetensors").exists()


def test_get_model_config_returns_a_deep_copy(monkeypatch):
    config = get_model_config("tiny")
    config.decoder.sample_size, config.clip.embed_dim = 8, 1  # nested dataclasses
    assert get_model_config("tiny").decoder.sample_size == 16 and MODEL_PRESETS["tiny"].clip.embed_dim == 32
    monkeypatch.setitem(MODEL_PRESETS, "listed", UnCLIPModelConfig(decoder=DecoderSize(block_out_channels=[8, 16])))
    get_model_config("listed").decoder.block_out_channels.append(32)  # a list inside a nested dataclass
    assert MODEL_PRESETS["listed"].decoder.block_out_channels == [8, 16]
    passed = UnCLIPModelConfig()
    assert get_model_config(passed) is passed  # a config object passes through
