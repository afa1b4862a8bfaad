"""The independent evaluator CLIP: larger than the generation CLIP, seeded apart, saved and loaded exactly."""

import pytest
import torch
from PIL import Image

from unclip_diffusers.configs import get_model_config
from unclip_diffusers.evaluation.evaluator import (
    EVALUATOR_SEED,
    EvaluatorCLIP,
    clip_model_config,
    default_evaluator_dir,
    evaluator_size,
)


def _clip_parameters(size) -> int:
    from transformers import CLIPModel

    with torch.device("meta"):
        return sum(p.numel() for p in CLIPModel(clip_model_config(size)).parameters())


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_evaluator_is_larger_than_the_generation_clip(preset):
    generation, evaluator = get_model_config(preset).clip, evaluator_size(preset)
    assert _clip_parameters(evaluator) > 1.5 * _clip_parameters(generation)
    assert evaluator.vision_layers > generation.vision_layers and evaluator.embed_dim > generation.embed_dim
    # Same inputs as the generation CLIP: same vocabulary and image resolution.
    assert (evaluator.num_merges, evaluator.image_size) == (generation.num_merges, generation.image_size)


def test_evaluator_seed_differs_from_the_generation_clip_seed():
    config = pytest.importorskip("unclip_diffusers.training.config")
    for preset in ("tiny", "small"):
        assert config.get_training_config("clip", preset).seed != EVALUATOR_SEED


def test_unknown_presets_are_refused():
    with pytest.raises(ValueError, match="Unknown evaluator preset 'huge'"):
        evaluator_size("huge")
    assert default_evaluator_dir("tiny").as_posix() == "runs/evaluator-clip-tiny"


@pytest.fixture(scope="module")
def evaluator():
    return EvaluatorCLIP.from_size(evaluator_size("tiny"))


def _images():
    return [Image.new("RGB", (64, 64), c) for c in ["red", "blue", "white"]] + [Image.new("L", (40, 50), 128)]


def test_random_init_is_seeded_and_leaves_the_global_rng_alone(evaluator):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    again = EvaluatorCLIP.from_size(evaluator_size("tiny"))
    assert torch.rand(1) == expected
    for a, b in zip(evaluator.model.state_dict().values(), again.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_embeddings_are_normalised_and_batch_independent(evaluator):
    texts = evaluator.embed_texts(["red circle, Flat style", "a blue square", "x"])
    images = evaluator.embed_images(_images())
    assert texts.shape == (3, 48) and images.shape == (4, 48)
    torch.testing.assert_close(images.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(evaluator.embed_images(_images(), batch_size=1), images, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(evaluator.embed_texts(["x", "a blue square"], batch_size=1), texts[[2, 1]],
                               atol=1e-5, rtol=1e-5)


def test_save_and_load_round_trip(evaluator, tmp_path):
    evaluator.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    loaded = EvaluatorCLIP.from_pretrained(tmp_path)
    assert loaded.info["seed"] == EVALUATOR_SEED and loaded.info["trained"] is False
    torch.testing.assert_close(loaded.embed_images(_images()), evaluator.embed_images(_images()))
    torch.testing.assert_close(loaded.embed_texts(["a red cat"]), evaluator.embed_texts(["a red cat"]))


def test_bad_inputs(evaluator, tmp_path):
    with pytest.raises(TypeError, match="PIL images"):
        evaluator.embed_images([torch.zeros(3, 8, 8)])
    with pytest.raises(ValueError, match="non-empty"):
        evaluator.embed_texts([])
    with pytest.raises(ValueError, match="non-empty"):
        evaluator.embed_texts("a single string")
    with pytest.raises(ValueError, match="no config.json"):
        EvaluatorCLIP.from_pretrained(tmp_path)
