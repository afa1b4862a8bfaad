"""`unclip-assemble`: load the trained stages from their run folders into one pipeline folder.

CLIP, prior and decoder are required; the upsampler (`--upsampler`) and, after it, the cascade's second upsampler
(`--upsampler2`) are optional.

Each run's `final/` holds its EMA weights (or a `snapshot-<step>/` from `unclip-train export`, for a run still
training); the prior and decoder runs record which CLIP they were trained on, and assembling refuses a prior or
decoder trained on a different CLIP. The pipeline folder gets `training_provenance.json`: steps and samples per stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from .provenance import write_provenance

logger = logging.getLogger(__name__)


def final_dir(run_dir: str | os.PathLike, part: str) -> Path:
    """The folder holding `part` of a run: `<run>/final` or the given folder itself."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / "final", run_dir):
        if (candidate / part).is_dir():
            return candidate
    raise ValueError(f"No trained {part!r} in {str(run_dir)!r} or its final/ folder; has that training run finished?")


def _recorded_image_tower(recorded: dict[str, Any]) -> str | None:
    """The image-tower fingerprint a clip_reference.json records, or (older references) that of its CLIP folder
    when it is still on this machine; None when neither is known."""
    if recorded.get("image_tower_fingerprint"):
        return recorded["image_tower_fingerprint"]
    from .embeddings import IMAGE_TOWER_PARTS, clip_final_dir, fingerprint_files

    try:
        return fingerprint_files(clip_final_dir(recorded.get("clip_dir", "")), IMAGE_TOWER_PARTS)
    except (ValueError, OSError):
        return None


def _check_clip_reference(run: Path, clip: Path, stage: str, allow_new_text_tower: bool = False) -> bool:
    """Refuse a stage trained on another CLIP than `clip`; returns True when only the text tower differs and that
    is allowed (`allow_new_text_tower`, for the decoder after locked-image tuning: same image embeddings)."""
    from .embeddings import IMAGE_TOWER_PARTS, fingerprint_files

    reference = run / "clip_reference.json"
    if not reference.exists():
        logger.warning("%s has no clip_reference.json; cannot check it was trained on this CLIP.", run)
        return False
    recorded = json.loads(reference.read_text(encoding="utf-8"))
    if recorded.get("clip_fingerprint") == fingerprint_files(clip):
        return False
    same_images = _recorded_image_tower(recorded) == fingerprint_files(clip, IMAGE_TOWER_PARTS)
    if allow_new_text_tower and same_images:
        logger.warning("The %s in %s was trained with the same image tower but another text tower (%s): its "
                       "caption context now comes from a text encoder it was not trained with.", stage, run,
                       recorded.get("clip_dir"))  # fmt: skip
        return True
    hint = (" It shares this CLIP's image tower: pass --allow-new-text-tower to use it with the new text tower."
            if same_images and stage == "decoder" else "")
    raise ValueError(
        f"The {stage} in {str(run)!r} was trained on a different CLIP ({recorded.get('clip_dir')!r}) than the one "
        f"given; retrain it on this CLIP or pass the CLIP it was trained on.{hint}"
    )


def assemble_components(
    clip_dir: str | os.PathLike,
    prior_dir: str | os.PathLike,
    decoder_dir: str | os.PathLike,
    upsampler_dir: str | os.PathLike | None = None,
    upsampler2_dir: str | os.PathLike | None = None,
    allow_new_text_tower: bool = False,
) -> dict[str, Any]:
    """The components of an `UnCLIPPipeline` (the keys of `build_components()`) from trained run folders.

    `allow_new_text_tower` accepts a decoder trained on another CLIP with the same image tower (a text tower retrained
    by locked-image tuning): its image embeddings are unchanged, its caption context is not what it trained on."""
    if upsampler2_dir is not None and upsampler_dir is None:
        raise ValueError("The second upsampler (upsampler2) runs on the first one's output; pass the first "
                         "upsampler's run too (--upsampler).")
    from diffusers import UNet2DConditionModel, UNet2DModel
    from transformers import (
        CLIPImageProcessorPil,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionModelWithProjection,
    )

    from ..configs import build_sampling_scheduler
    from ..models import UnCLIPPriorTransformer, UnCLIPTextProjection
    clip = final_dir(clip_dir, "text_encoder")
    prior_run, decoder_run = final_dir(prior_dir, "prior"), final_dir(decoder_dir, "decoder")
    _check_clip_reference(prior_run, clip, "prior")
    _check_clip_reference(decoder_run, clip, "decoder", allow_new_text_tower=allow_new_text_tower)
    components: dict[str, Any] = {
        "tokenizer": CLIPTokenizer.from_pretrained(clip / "tokenizer"),
        "text_encoder": CLIPTextModelWithProjection.from_pretrained(clip / "text_encoder", use_safetensors=True),
        "image_encoder": CLIPVisionModelWithProjection.from_pretrained(clip / "image_encoder", use_safetensors=True),
        "feature_extractor": CLIPImageProcessorPil.from_pretrained(clip / "feature_extractor"),
        "prior": UnCLIPPriorTransformer.from_pretrained(prior_run / "prior", use_safetensors=True),
        "text_proj": UnCLIPTextProjection.from_pretrained(decoder_run / "text_proj", use_safetensors=True),
        "decoder": UNet2DConditionModel.from_pretrained(decoder_run / "decoder", use_safetensors=True),
        "prior_scheduler": build_sampling_scheduler("sample"),
        "decoder_scheduler": build_sampling_scheduler("epsilon"),
        "super_res_first": None,
        "super_res_scheduler": None,
    }
    if upsampler_dir is not None:
        upsampler = final_dir(upsampler_dir, "super_res_first")
        components["super_res_first"] = UNet2DModel.from_pretrained(upsampler / "super_res_first", use_safetensors=True)
        components["super_res_scheduler"] = build_sampling_scheduler("epsilon")
    if upsampler2_dir is not None:
        second = final_dir(upsampler2_dir, "super_res_second")
        components["super_res_second"] = UNet2DModel.from_pretrained(second / "super_res_second", use_safetensors=True)
        components["super_res_second_scheduler"] = build_sampling_scheduler("epsilon")
    width = components["text_encoder"].config.projection_dim
    if components["prior"].config.embedding_dim != width or components["text_proj"].config.clip_embeddings_dim != width:
        raise ValueError(
            f"CLIP embeds to {width} but the prior expects {components['prior'].config.embedding_dim} and the text "
            f"projection {components['text_proj'].config.clip_embeddings_dim}."
        )
    return components


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `unclip-assemble`."""
    parser = argparse.ArgumentParser(prog="unclip-assemble", description="Assemble trained stages into a pipeline.")
    parser.add_argument("--clip", required=True, help="CLIP run folder")
    parser.add_argument("--prior", required=True, help="prior run folder")
    parser.add_argument("--decoder", required=True, help="decoder run folder")
    parser.add_argument("--upsampler", default=None, help="upsampler run folder (omit for base-resolution output)")
    parser.add_argument("--upsampler2", default=None,
                        help="second upsampler run folder (unclip-train upsampler2; needs --upsampler)")
    parser.add_argument("--allow-new-text-tower", action="store_true",
                        help="accept a decoder trained on another CLIP with this CLIP's image tower (after locked-image "
                             "tuning of the text tower); it is recorded in training_provenance.json")
    parser.add_argument("--output", default="checkpoints/unclip-emoji", help="pipeline folder to write")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16")
    parser.add_argument("--super-res-strength", type=float, default=0.3,
                        help="the pipeline's super_res_strength: 1 starts the upsampler from pure noise, below 1 from "
                             "the noised bicubic upsample (default 0.3, chosen with benchmarks/bench_upsampler.py)")
    parser.add_argument("--super-res-second-strength", type=float, default=0.3,
                        help="the pipeline's super_res_second_strength (default 0.3, the first stage's value; not yet "
                             "measured for the second: benchmarks/bench_upsampler.py --stage 1)")
    parser.add_argument("--prior-guidance-scale", type=float, default=2.0,
                        help="the pipeline's default prior guidance scale (default 2.0: better R-precision, CLIP-FD "
                             "and prior cosine than 4.0 on the emoji release, benchmarks/bench_guidance.py)")
    parser.add_argument("--decoder-guidance-scale", type=float, default=8.0,
                        help="the pipeline's default decoder guidance scale (8.0; 1 for a guidance-distilled decoder)")
    parser.add_argument("--prior-guidance-interval", type=_interval, default=(0.3, 10.0), metavar="LOW:HIGH",
                        help="noise levels sigma where the prior is guided; 'all' guides every step (default 0.3:10, "
                             "measured with benchmarks/bench_sampling.py --guidance-intervals)")
    parser.add_argument("--decoder-guidance-interval", type=_interval, default=(0.5, 10.0), metavar="LOW:HIGH",
                        help="the same for the decoder (default 0.5:10)")
    return parser


def _interval(text: str) -> tuple[float, float] | None:
    """`LOW:HIGH` -> a guidance interval; `all` -> `None` (every step)."""
    if text.strip().lower() == "all":
        return None
    from unclip_diffusers.pipelines.sampling import check_guidance_interval

    interval = text.split(":")
    try:
        check_guidance_interval(interval)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH noise levels or 'all', got {text!r}: {error}") from None
    return float(interval[0]), float(interval[1])


def main(argv: list[str] | None = None) -> None:
    """Entry point of `unclip-assemble`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    components = assemble_components(args.clip, args.prior, args.decoder, args.upsampler, args.upsampler2,
                                     allow_new_text_tower=args.allow_new_text_tower)
    try:
        from unclip_diffusers import UnCLIPPipeline
    except ImportError as error:  # the pipeline package is a separate part of the project
        raise ImportError("unclip_diffusers.UnCLIPPipeline is not available in this install.") from error
    pipeline = UnCLIPPipeline(**components, super_res_strength=args.super_res_strength,
                              prior_guidance_scale=args.prior_guidance_scale,
                              super_res_second_strength=args.super_res_second_strength,
                              prior_guidance_interval=args.prior_guidance_interval,
                              decoder_guidance_interval=args.decoder_guidance_interval,
                              decoder_guidance_scale=args.decoder_guidance_scale)
    if args.fp16:
        import torch

        pipeline = pipeline.to(torch.float16)
    pipeline.save_pretrained(args.output, safe_serialization=True)
    stages = {"clip": final_dir(args.clip, "text_encoder"), "prior": final_dir(args.prior, "prior"),
              "decoder": final_dir(args.decoder, "decoder")}
    if args.upsampler is not None:
        stages["upsampler"] = final_dir(args.upsampler, "super_res_first")
    if args.upsampler2 is not None:
        stages["upsampler2"] = final_dir(args.upsampler2, "super_res_second")
    provenance = write_provenance(args.output, stages)
    if args.allow_new_text_tower and _check_clip_reference(stages["decoder"], stages["clip"], "decoder",
                                                           allow_new_text_tower=True):
        data = json.loads(provenance.read_text(encoding="utf-8"))
        data["decoder"]["new_text_tower"] = True  # the card says its caption context is from an untrained-with tower
        provenance.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    unfinished = [name for name, folder in stages.items() if folder.name != "final"]
    if unfinished:
        logger.warning("Assembled from unfinished runs (snapshots): %s", ", ".join(unfinished))
    print(args.output)


if __name__ == "__main__":
    main()
