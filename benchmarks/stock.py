"""diffusers' stock (deprecated) `UnCLIPPipeline` built from this project's components, sharing their weights.

Two thin adapters make our components fit it without changing a weight:
- the stock decoder loop expects a learned-variance decoder (it splits 2 x channels); ours predicts epsilon only, so
  `VarianceChannels` appends a constant -1 "variance" channel, and the decoder's `UnCLIPScheduler` uses
  `learned_range`, whose interpolation at v = -1 is exactly `fixed_small_log` (`frac = (v + 1) / 2 = 0`);
- our models were trained on L2-normalised CLIP embeddings, so `NormalizedTextEncoder` normalises `text_embeds` and
  `NormalizedPrior` normalises the prior's output, as `UnCLIPPipeline(normalize_embeddings=True)` does.
The stock pipeline needs a `super_res_last`; ours has one upsampler, so it is passed for both.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UnCLIPScheduler
from torch import nn


def load_stock_pipeline_class() -> type:
    """diffusers' deprecated `UnCLIPPipeline` (its import emits a deprecation warning, silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers.pipelines.deprecated.unclip import UnCLIPPipeline
    return UnCLIPPipeline


class VarianceChannels(nn.Module):
    """Wrap an epsilon-only UNet so its output carries a constant -1 variance channel per image channel."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    @property
    def config(self) -> Any:
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def forward(self, sample: torch.Tensor, timestep: Any, **kwargs: Any) -> Any:
        output = self.unet(sample, timestep, **kwargs)
        eps = output.sample
        output.sample = torch.cat([eps, torch.full_like(eps, -1.0)], dim=1)  # learned_range at v=-1 == fixed_small_log
        return output


class NormalizedTextEncoder(nn.Module):
    """A CLIP text encoder whose pooled `text_embeds` are L2-normalised (what our prior and decoder were trained on)."""

    def __init__(self, text_encoder: nn.Module):
        super().__init__()
        self.text_encoder = text_encoder

    @property
    def config(self) -> Any:
        return self.text_encoder.config

    @property
    def dtype(self) -> torch.dtype:
        return self.text_encoder.dtype

    @property
    def device(self) -> torch.device:
        return self.text_encoder.device

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.text_encoder(*args, **kwargs)
        output.text_embeds = F.normalize(output.text_embeds, dim=-1)
        return output


class NormalizedPrior(nn.Module):
    """A prior whose post-processed image embeddings are L2-normalised."""

    def __init__(self, prior: nn.Module):
        super().__init__()
        self.prior = prior

    @property
    def config(self) -> Any:
        return self.prior.config

    @property
    def dtype(self) -> torch.dtype:
        return self.prior.dtype

    @property
    def device(self) -> torch.device:
        return self.prior.device

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.prior(*args, **kwargs)

    def post_process_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.prior.post_process_latents(latents), dim=-1)


def stock_schedulers() -> dict[str, UnCLIPScheduler]:
    """The stock pipeline's samplers, configured like Karlo's (cosine schedule, 1000 steps)."""
    return {
        "prior_scheduler": UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                           clip_sample_range=5.0),
        "decoder_scheduler": UnCLIPScheduler(variance_type="learned_range", prediction_type="epsilon"),
        "super_res_scheduler": UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon"),
    }


def build_stock_pipeline(pipe: Any, normalize: bool = True) -> Any:
    """diffusers' stock `UnCLIPPipeline` over the very modules of our `pipe` (no weight is copied)."""
    if pipe.super_res_first is None:
        raise ValueError("The stock UnCLIPPipeline needs an upsampler; this pipeline has none.")
    stock_class = load_stock_pipeline_class()
    normalize = normalize and pipe.config.normalize_embeddings
    decoder = pipe.decoder
    if decoder.config.out_channels == decoder.config.in_channels:
        decoder = VarianceChannels(decoder)
    stock = stock_class(
        prior=NormalizedPrior(pipe.prior) if normalize else pipe.prior,
        decoder=decoder,
        text_encoder=NormalizedTextEncoder(pipe.text_encoder) if normalize else pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        text_proj=pipe.text_proj,
        super_res_first=pipe.super_res_first,
        super_res_last=pipe.super_res_last if pipe.super_res_last is not None else pipe.super_res_first,
        **stock_schedulers(),
    )
    stock.set_progress_bar_config(disable=True)
    return stock


def stock_sampling_pipeline(pipe: Any) -> Any:
    """This project's pipeline over the same modules, sampling as the stock one does: `UnCLIPScheduler` for every
    stage (the epsilon-only decoder with `fixed_small_log`, which is `learned_range` at v = -1, see
    `VarianceChannels`) and the upsampler from pure noise. `unclip-eval` drives this project's pipeline API, so the
    benchmark scores the stock row's quality through this twin."""
    schedulers = stock_schedulers()
    schedulers["decoder_scheduler"] = UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon")
    twin = type(pipe)(**{**pipe.components, **schedulers}, normalize_embeddings=pipe.config.normalize_embeddings,
                      super_res_strength=1.0, prior_guidance_scale=4.0)  # the stock pipeline's defaults
    twin.set_progress_bar_config(disable=True)
    return twin
