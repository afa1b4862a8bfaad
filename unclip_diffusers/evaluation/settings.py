"""What `unclip-eval` measures and how much of it: `EvalSettings` and the named presets (`quick`, `full`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

HELDOUT_SPLITS = ("heldout_pairs", "heldout_concepts")


@dataclass
class EvalSettings:
    """What to measure and how much of it; `EVAL_PRESETS` holds `quick` (CI, seconds) and `full` (the report)."""

    splits: tuple[str, ...] = HELDOUT_SPLITS  # held-out splits to score; "train" is refused
    max_examples: int = 200  # held-out examples per split used for the generation metrics (0 = all); seeded pick
    prior_num_inference_steps: int | None = None  # None = the pipeline's default
    decoder_num_inference_steps: int | None = None
    super_res_num_inference_steps: int | None = None
    super_res_second_num_inference_steps: int | None = None  # the second upsampler's, where the pipeline has one
    prior_guidance_scale: float | None = None  # None = the pipeline's default
    decoder_guidance_scale: float | None = None
    prior_guidance_sweep: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # prior guidance scales compared (cosine to z_i)
    prior_sample_counts: tuple[int, ...] = (1, 2)  # prior draws per prompt, best kept (the paper's trick is 2)
    num_distractors: int = 99  # R-precision distractor captions (capped at the split's distinct captions - 1)
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at the half-split size
    text_embedding_ablation: bool = True  # also decode from the CLIP text embedding directly (the paper's ablation)
    # also decode the same prior samples with the empty caption: the decoder reading the image embedding alone, to
    # measure what its caption context (text_proj) adds, e.g. after the text encoder was retrained (issue 20)
    caption_context_ablation: bool = True
    num_variation_inputs: int = 8
    num_fidelity_inputs: int = 24  # real held-out images per slice whose one variation the evaluator must recognise
    num_wording_inputs: int = 8  # everyday rows per split drawn from every wording family (evaluation/wording.py)
    num_edit_inputs: int = 6  # everyday rows per split inpainted and mixed (evaluation/editing.py); 0 = skip
    variations_per_input: int = 4
    num_interpolation_pairs: int = 6
    interpolation_steps: int = 7  # frames per interpolation, endpoints included
    grid_prompts: int = 8
    grid_seeds: int = 8  # the card shows an 8 x 8 grid: grid_prompts held-out prompts x grid_seeds seeds
    batch_size: int = 16  # prompts per pipeline call
    seed: int = 0  # every random draw (example pick, noise, distractors) derives from it
    clip_retrieval: bool = True  # CLIP retrieval and accuracies over whole splits; False (sampler benchmarks) loads
    # and embeds only the scored rows: the generation metrics come out the same, except that the variations'
    # "random image" reference then averages over the scored rows instead of the whole split

    def validate(self) -> None:
        """Raise a `ValueError` naming the first bad setting."""
        if not self.splits:
            raise ValueError("splits must name at least one held-out split.")
        for split in self.splits:
            if split not in HELDOUT_SPLITS:
                raise ValueError(f"Only held-out splits are evaluated ({HELDOUT_SPLITS}); got {split!r}.")
        for name in ("max_examples", "num_variation_inputs", "num_fidelity_inputs", "num_wording_inputs",
                     "num_edit_inputs", "num_interpolation_pairs", "grid_prompts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("num_distractors", "kid_subsets", "kid_subset_size", "batch_size", "grid_seeds",
                     "variations_per_input"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.variations_per_input < 2:
            raise ValueError(f"variations_per_input must be >= 2 (diversity needs pairs), got "
                             f"{self.variations_per_input}.")
        if self.interpolation_steps < 3:
            raise ValueError(f"interpolation_steps must be >= 3, got {self.interpolation_steps}.")
        if any(not g >= 0 for g in self.prior_guidance_sweep):
            raise ValueError(f"prior_guidance_sweep must hold scales >= 0, got {self.prior_guidance_sweep}.")
        if any(c < 1 for c in self.prior_sample_counts):
            raise ValueError(f"prior_sample_counts must be >= 1, got {self.prior_sample_counts}.")


EVAL_PRESETS: dict[str, EvalSettings] = {
    "full": EvalSettings(),
    # a release scored within a CPU session's minutes: the full settings with fewer inputs to the fixed-size
    # sections (wording, fidelity, variations, edits, interpolation) and no text-embedding ablation
    "short": EvalSettings(
        max_examples=48, num_variation_inputs=4, num_fidelity_inputs=12, num_wording_inputs=6, num_edit_inputs=12,
        num_interpolation_pairs=2, text_embedding_ablation=False,
    ),
    "quick": EvalSettings(
        max_examples=8, prior_num_inference_steps=2, decoder_num_inference_steps=2, super_res_num_inference_steps=2,
        prior_guidance_sweep=(1.0, 4.0), num_distractors=99, kid_subsets=5, num_variation_inputs=2,
        variations_per_input=2, num_fidelity_inputs=2, num_wording_inputs=1, num_edit_inputs=2,
        num_interpolation_pairs=1, interpolation_steps=3, grid_prompts=2, grid_seeds=2, batch_size=8,
    ),
}


def get_eval_settings(preset: str = "full", **overrides: Any) -> EvalSettings:
    """The named settings (`quick`, `full`) with overrides, validated."""
    if preset not in EVAL_PRESETS:
        raise ValueError(f"Unknown evaluation preset {preset!r}; choose one of {sorted(EVAL_PRESETS)}.")
    unknown = sorted(set(overrides) - set(asdict(EVAL_PRESETS[preset])))
    if unknown:
        raise ValueError(f"Unknown evaluation setting(s) {unknown}.")
    settings = replace(EVAL_PRESETS[preset], **overrides)
    settings.validate()
    return settings


__all__ = ["EVAL_PRESETS", "HELDOUT_SPLITS", "EvalSettings", "get_eval_settings"]
