"""Stage 1: CLIP, trained with the symmetric contrastive loss over each batch and a learnable temperature.

Each batch holds N matching (image, caption) pairs; the loss is the mean of the cross-entropies of the N x N
similarity matrix over rows (image -> caption) and columns (caption -> image); identical caption texts (with
`concept_positives`, images of one concept) count as matches. Batches are random examples or, with
`styles_per_concept > 1`, groups of one concept's styles. Under data parallelism each process contrasts its own
micro-batch (no all-gather of features). The caption of each image is
drawn per step from its alternative captions. The result is frozen for every later stage. With
`locked_image_tower` (LiT, Zhai et al. 2022) the image tower of a trained CLIP is loaded and frozen and only the
text tower and the temperature learn, so a new text side fits the image-embedding space the later stages use;
`init_text_from` starts that text tower from the old one (its vocabulary and context may grow). With
`augment_min_crop_area` / `augment_color_jitter` the images of both trained towers are randomly cropped and
colour-jittered each step (training/augment.py).
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from transformers import CLIPConfig, CLIPModel, CLIPTextModelWithProjection, CLIPVisionModelWithProjection

from ..configs import UnCLIPModelConfig, build_image_processor, build_tokenizer, clip_text_config, clip_vision_config
from ..data import sample_caption
from .augment import augment_images
from .batches import (
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
    caption_examples,
    clip_pixel_values,
    grouped_batch_indices,
    images_to_uint8,
    load_split,
)
from .config import CLIPTrainingConfig
from .trainer import Stage, run_training
from .warm_start import (
    is_whole_clip_folder,
    load_clip_halves,
    load_component,
    load_image_tower,
    load_text_tower,
)

logger = logging.getLogger(__name__)


def build_clip_model(config: UnCLIPModelConfig) -> CLIPModel:
    """A randomly initialised `CLIPModel` whose halves are the pipeline's text and image encoders."""
    text, vision = clip_text_config(config.clip), clip_vision_config(config.clip)
    clip_config = CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=config.clip.embed_dim
    )
    return CLIPModel(clip_config)


def split_clip_model(model: CLIPModel) -> tuple[CLIPTextModelWithProjection, CLIPVisionModelWithProjection]:
    """The text and image halves of a `CLIPModel` as the standalone classes the pipeline loads (shared weights copied)."""
    text = CLIPTextModelWithProjection(model.config.text_config)
    vision = CLIPVisionModelWithProjection(model.config.vision_config)
    state = model.state_dict()
    for half in (text, vision):
        half.load_state_dict({k: state[k] for k in half.state_dict()}, strict=True)
        half.eval()
    return text, vision


def features(output) -> torch.Tensor:
    """The projected embeddings of `get_text_features`/`get_image_features` (a tensor, or an output's pooler_output)."""
    return getattr(output, "pooler_output", output)


def contrastive_loss(logits_per_image: torch.Tensor, match_keys: list[str]) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over the batch's image x caption logits `(N, N)`.

    Pairs whose `match_keys` are equal are all counted as matches (the target spreads evenly over them). The keys
    are the caption texts (two images of one concept drawn with the same style-free caption are not pushed apart as
    if one were wrong) or, with `concept_positives`, the concepts. With distinct keys this is exactly the usual loss.
    """
    ids: dict[str, int] = {}
    caption_ids = torch.tensor([ids.setdefault(c, len(ids)) for c in match_keys], device=logits_per_image.device)
    same = (caption_ids.unsqueeze(0) == caption_ids.unsqueeze(1)).float()
    targets = same / same.sum(dim=1, keepdim=True)  # symmetric, so the caption -> image direction uses it too
    logits = logits_per_image.float()
    return 0.5 * (nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(logits.T, targets))


def retrieval_accuracy(image_embeds: torch.Tensor, text_embeds: torch.Tensor, top_k: int = 1) -> tuple[float, float]:
    """Fraction of images whose own caption is among the top-k captions, and vice versa (row i matches row i)."""
    similarity = image_embeds @ text_embeds.T  # (N, N)
    k = min(top_k, similarity.shape[0])
    target = torch.arange(similarity.shape[0]).unsqueeze(1)
    image_to_text = (similarity.topk(k, dim=1).indices == target).any(dim=1).float().mean().item()
    text_to_image = (similarity.T.topk(k, dim=1).indices == target).any(dim=1).float().mean().item()
    return image_to_text, text_to_image


class CLIPStage(Stage):
    """Contrastive training of a small CLIP on the dataset's `train` split."""

    config: CLIPTrainingConfig
    concept_groups: list[torch.Tensor] | None = None  # set by setup when styles_per_concept > 1
    group_weights: torch.Tensor | None = None  # the groups' family-balance weights, when family_balance is set
    concepts: list[str] | None = None  # every training row's concept, with concept_positives (the loss's match keys)
    locked_image_embeds: torch.Tensor | None = None  # (N, D) normalised, filled at the first locked step

    def setup(self, accelerator: Accelerator) -> nn.Module:
        size = self.model_config.clip
        self.tokenizer = build_tokenizer(size)
        self.processor = build_image_processor(size)
        train = load_split(self.config, TRAIN_SPLIT, self.config.max_train_examples)
        self.images = images_to_uint8(train["image"], size.image_size, desc="decoding train images")
        self.examples = caption_examples(train)
        self.balance_families(train)
        self.concept_groups, self.group_weights, self.concepts = None, None, None
        needs_concepts = {"styles_per_concept > 1": self.config.styles_per_concept > 1,
                          "concept_positives": self.config.concept_positives}
        for option, used in needs_concepts.items():
            if used and "concept" not in train.column_names:
                raise ValueError(f"{option} needs the dataset's 'concept' column, which {self.config.data_path!r} "
                                 "lacks; rebuild it with `unclip-data build` or leave the option off.")
        if self.config.concept_positives:
            self.concepts = list(train["concept"])
        if self.config.styles_per_concept > 1:
            rows: dict[str, list[int]] = {}
            for row, concept in enumerate(train["concept"]):
                rows.setdefault(concept, []).append(row)
            self.concept_groups = [torch.tensor(r) for r in rows.values()]
            if self.sampling_weights is not None:  # family-balanced groups: each weighs what its rows weigh
                self.group_weights = torch.stack([self.sampling_weights[g].sum() for g in self.concept_groups])
        self.validation = None
        if self.config.num_validation_examples:
            heldout = load_split(self.config, VALIDATION_SPLIT, self.config.num_validation_examples)
            self.validation = (images_to_uint8(heldout["image"], size.image_size, desc="decoding held-out images"),
                               list(heldout["caption"]))
        self.model = build_clip_model(self.model_config)
        self.locked_image_embeds: torch.Tensor | None = None  # (N, D) normalised, filled at the first locked step
        if self.config.locked_image_tower:
            load_image_tower(self.model, Path(self.config.locked_image_tower))
            for module in (self.model.vision_model, self.model.visual_projection):
                module.requires_grad_(False)
        if self.config.init_text_from:
            load_text_tower(self.model, Path(self.config.init_text_from), self.tokenizer)
        return self.model

    @property
    def num_train_examples(self) -> int:
        return len(self.examples)

    def batch_indices(self, micro_step: int, process_index: int, num_processes: int) -> torch.Tensor:
        """Random examples, or concept groups of up to `styles_per_concept` styles each (see the config)."""
        if self.concept_groups is None:
            return super().batch_indices(micro_step, process_index, num_processes)
        return grouped_batch_indices(self.concept_groups, self.config.batch_size, self.config.styles_per_concept,
                                     micro_step, process_index, self.config.seed, group_weights=self.group_weights)

    def tokenize(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask padded to the model's context length, as the pipeline tokenizes."""
        return self.tokenizer(
            captions, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        )

    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        return clip_pixel_values(images, self.processor.image_mean, self.processor.image_std)

    def frozen_image_embeds(self, model: nn.Module) -> torch.Tensor:
        """Normalised embeddings of every training image by the locked image tower (computed once, then reused)."""
        if self.locked_image_embeds is None:
            clip = getattr(model, "module", model)
            was_training = clip.training
            clip.eval()  # the tower is frozen, so its embeddings are the same at every step
            with torch.no_grad():
                chunks = [clip.get_image_features(pixel_values=self.pixel_values(self.images[start : start + 256]))
                          for start in range(0, len(self.images), 256)]
            clip.train(was_training)
            self.locked_image_embeds = nn.functional.normalize(torch.cat([features(c) for c in chunks]).float(), dim=-1)
        return self.locked_image_embeds

    def training_caption(self, index: int, rng: random.Random) -> str:
        """The caption example `index` trains with this step: its primary one with `primary_caption_prob`, else drawn."""
        example = self.examples[index]
        if self.config.primary_caption_prob > 0 and rng.random() < self.config.primary_caption_prob:
            return example["caption"]
        return sample_caption(example, rng)

    def loss(self, model: nn.Module, indices: torch.Tensor, generator: torch.Generator, rng: random.Random) -> torch.Tensor:
        captions = [self.training_caption(i, rng) for i in indices.tolist()]
        tokens = self.tokenize(captions)
        matches = captions if self.concepts is None else [self.concepts[i] for i in indices.tolist()]
        if self.config.locked_image_tower:  # LiT: only the text tower runs with gradients
            clip = getattr(model, "module", model)
            text = clip.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)
            text = nn.functional.normalize(features(text).float(), dim=-1)
            logits_per_image = clip.logit_scale.exp() * self.frozen_image_embeds(model)[indices] @ text.T
            return contrastive_loss(logits_per_image, matches)
        output = model(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
            pixel_values=self.pixel_values(augment_images(self.images[indices], self.config.augmentation, generator)),
        )
        return contrastive_loss(output.logits_per_image, matches)

    def after_optimizer_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, math.log(self.config.max_logit_scale))

    def embed(self, model: CLIPModel, images: torch.Tensor, captions: list[str], batch_size: int = 256):
        """L2-normalised image and text embeddings of paired images and captions."""
        image_embeds, text_embeds = [], []
        for start in range(0, len(captions), batch_size):
            tokens = self.tokenize(captions[start : start + batch_size])
            text = model.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)
            image = model.get_image_features(pixel_values=self.pixel_values(images[start : start + batch_size]))
            text_embeds.append(features(text))
            image_embeds.append(features(image))
        normalize = lambda x: nn.functional.normalize(torch.cat(x).float(), dim=-1)  # noqa: E731
        return normalize(image_embeds), normalize(text_embeds)

    def validate(self, model: nn.Module, step: int, output_dir: Path) -> dict[str, float]:
        """Top-1/top-5 image<->caption retrieval on held-out (concept, style) pairs and on as many training pairs."""
        metrics: dict[str, float] = {"logit_scale": model.logit_scale.exp().item()}
        sets = {}
        if self.validation is not None:
            sets["heldout"] = self.validation
        count = self.config.num_validation_examples or 64
        sets["train"] = (self.images[:count], [e["caption"] for e in self.examples[:count]])
        for name, (images, captions) in sets.items():
            image_embeds, text_embeds = self.embed(model, images, captions)
            for k in (1, 5):
                i2t, t2i = retrieval_accuracy(image_embeds, text_embeds, top_k=k)
                metrics[f"{name}_image_to_text_top{k}"] = i2t
                metrics[f"{name}_text_to_image_top{k}"] = t2i
            metrics[f"{name}_pairs"] = float(len(captions))
        return metrics

    def load_weights(self, model: nn.Module, folder: Path) -> None:
        """`clip/` (a CLIP run's whole model), a saved whole CLIP itself (a shipped evaluator folder), else the
        pipeline's `text_encoder/` and `image_encoder/`."""
        if (folder / "clip").is_dir():
            load_component(model, folder / "clip")
        elif is_whole_clip_folder(folder):
            load_component(model, folder)
        else:
            load_clip_halves(model, folder)

    def save_final(self, model: nn.Module, directory: Path) -> None:
        """`clip/` (the whole CLIPModel), `text_encoder/`, `image_encoder/`, `tokenizer/`, `feature_extractor/`."""
        model.save_pretrained(directory / "clip", safe_serialization=True)
        text, vision = split_clip_model(model)
        text.save_pretrained(directory / "text_encoder", safe_serialization=True)
        vision.save_pretrained(directory / "image_encoder", safe_serialization=True)
        self.tokenizer.save_pretrained(directory / "tokenizer")
        self.processor.save_pretrained(directory / "feature_extractor")


def train_clip(config: CLIPTrainingConfig, resume: bool = False) -> Path:
    """Train CLIP; returns the run folder (weights in `final/`)."""
    return run_training(CLIPStage(config), resume=resume)
