"""Min-SNR-γ weighting of the diffusion loss: weights, limits and the validation of γ."""

import pytest
import torch
from diffusers.training_utils import compute_snr

from unclip_diffusers.configs import build_train_scheduler
from unclip_diffusers.training.config import get_training_config
from unclip_diffusers.training.losses import epsilon_loss, min_snr_weights


@pytest.fixture(scope="module")
def scheduler():
    return build_train_scheduler("epsilon")


def test_snr_is_alphas_cumprod_over_one_minus_and_falls_with_the_timestep(scheduler):
    timesteps = torch.arange(0, 1000, 100)
    snr = compute_snr(scheduler, timesteps)
    alphas_cumprod = scheduler.alphas_cumprod.double()[timesteps]
    torch.testing.assert_close(snr.double(), alphas_cumprod / (1 - alphas_cumprod), rtol=1e-6, atol=0)
    assert torch.all(snr[1:] < snr[:-1])


def test_min_snr_weights_cap_clean_steps_and_keep_noisy_ones(scheduler):
    timesteps = torch.tensor([0, 10, 500, 999])
    snr = compute_snr(scheduler, timesteps)
    weights = min_snr_weights(scheduler, timesteps, gamma=5.0)
    assert weights[0] == pytest.approx(5.0 / snr[0].item(), rel=1e-5)  # SNR >> 5: weight 5 / SNR << 1
    assert weights[0] < 0.01
    assert weights[-1] == pytest.approx(1.0)  # SNR < 5: weight 1
    assert torch.all(weights <= 1.0)


def test_gamma_zero_is_the_plain_mse(scheduler):
    generator = torch.Generator().manual_seed(0)
    pred, noise = torch.randn(4, 3, 8, 8, generator=generator), torch.randn(4, 3, 8, 8, generator=generator)
    timesteps = torch.tensor([1, 200, 400, 900])
    plain = epsilon_loss(pred, noise, timesteps, scheduler, 0.0)
    assert plain.item() == pytest.approx(torch.nn.functional.mse_loss(pred, noise).item(), rel=1e-6)
    weighted = epsilon_loss(pred, noise, timesteps, scheduler, 5.0)
    assert weighted < plain  # the two cleanest examples count less


def test_negative_gamma_is_refused(scheduler):
    with pytest.raises(ValueError, match="snr_gamma"):
        min_snr_weights(scheduler, torch.tensor([1]), -1.0)
    with pytest.raises(ValueError, match="snr_gamma"):
        get_training_config("decoder", "tiny", snr_gamma=-1.0)


def test_release_decoder_uses_min_snr():
    assert get_training_config("decoder", "small").snr_gamma == 5.0
    assert get_training_config("decoder", "tiny").snr_gamma == 0.0
