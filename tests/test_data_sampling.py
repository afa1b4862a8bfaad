"""Family-balanced sampling weights (data/sampling.py) and the weighted batch stream that uses them."""

import numpy as np
import pytest
import torch

from unclip_diffusers.data.sampling import family_sampling_weights, sampled_share
from unclip_diffusers.training.batches import weighted_batch_indices

# One cat, and a person family of 15 images (5 skin tones x 3 genders).
FAMILIES = ["1f408"] + ["1f9d7"] * 15


def test_full_balance_makes_every_family_equally_likely():
    weights = family_sampling_weights(FAMILIES, temperature=1.0)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(0.5)  # the cat alone weighs as much as the 15 climbers together
    assert weights[1:].sum() == pytest.approx(0.5)


def test_zero_temperature_is_uniform_per_image_and_half_is_in_between():
    np.testing.assert_allclose(family_sampling_weights(FAMILIES, 0.0), np.full(16, 1 / 16))
    half = family_sampling_weights(FAMILIES, 0.5)
    assert half[0] / half[1:].sum() == pytest.approx(1 / 15**0.5)  # family weight n ** (1 - t)


def test_sampled_share_reports_the_everyday_share_before_and_after():
    everyday = [True] + [False] * 15
    assert sampled_share(everyday) == pytest.approx(1 / 16)
    assert sampled_share(everyday, family_sampling_weights(FAMILIES, 1.0)) == pytest.approx(0.5)


@pytest.mark.parametrize("temperature", [-0.1, 1.5])
def test_temperature_outside_unit_interval_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature must be in"):
        family_sampling_weights(FAMILIES, temperature)


def test_empty_and_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="at least one image"):
        family_sampling_weights([])
    with pytest.raises(ValueError, match="one weight per image"):
        sampled_share([True, False], [1.0])


def test_weighted_batches_follow_the_weights_and_repeat_on_resume():
    weights = torch.from_numpy(family_sampling_weights(FAMILIES, 1.0))
    draws = torch.cat([weighted_batch_indices(weights, 64, step, 0, seed=3) for step in range(50)])
    assert (draws == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    again = weighted_batch_indices(weights, 64, 7, 0, seed=3)
    assert torch.equal(again, weighted_batch_indices(weights, 64, 7, 0, seed=3))
    assert not torch.equal(again, weighted_batch_indices(weights, 64, 7, 1, seed=3))  # processes draw apart
    with pytest.raises(ValueError, match="non-negative"):
        weighted_batch_indices(torch.tensor([-1.0, 2.0]), 4, 0, 0, seed=0)
