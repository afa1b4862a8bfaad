"""`unclip-train {clip,prior,decoder,upsampler,upsampler2,embed,export,restore,pack} ...`: the training console script.

Every training setting of a stage is a command-line flag generated from its config dataclass; `--config` picks the
preset (`tiny` or `small`) the flags override. Not `transformers.HfArgumentParser`: its bool flags reject a bad word
without quoting it (tests/test_training_config.py checks `'maybe'` is named), accept t/f/y/n, read a bare flag as
true and add `--no_<flag>`, and its flags default to the dataclass values where an unset one must stay None (the
preset decides).

Before torch is imported, `main()` re-executes the process with glibc malloc tuned
(`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000`): without it, page faults from returning freed memory to
the OS nearly doubled fp32 step times on CPU. This module imports nothing heavy at the top so the re-exec happens
before torch loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
NO_REEXEC_ENV = "UNCLIP_TRAIN_NO_REEXEC"  # set to 1 to keep the current allocator settings


def ensure_malloc_env(argv: list[str]) -> None:
    """Re-exec this command with `MALLOC_ENV` set, unless it is set already (or disabled with UNCLIP_TRAIN_NO_REEXEC)."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()) or os.environ.get(NO_REEXEC_ENV):
        return
    env = dict(os.environ, **MALLOC_ENV)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "unclip_diffusers.training.cli", *argv], env)


TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


def parse_bool(text: str) -> bool:
    """A bool flag's value: true/yes/1 or false/no/0, any case (`bool("False")` would be True)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, yes/no or 1/0, got {text!r}")


def _add_config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    small = {}
    try:
        from .config import get_training_config

        small = get_training_config(config_cls.stage, "small").to_dict()
    except ValueError:
        pass
    for field in dataclasses.fields(config_cls):
        kind = type(field.default) if field.default is not dataclasses.MISSING else str
        if kind is bool:
            kind = parse_bool
        parser.add_argument(
            f"--{field.name}", type=kind, default=None,
            help=f"overrides the preset (small: {small.get(field.name, field.default)!r})",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `unclip-train`."""
    from .config import CONFIG_CLASSES, TRAINING_PRESETS

    parser = argparse.ArgumentParser(prog="unclip-train", description="Train one stage of unCLIP.")
    sub = parser.add_subparsers(dest="stage", required=True)
    for stage, config_cls in CONFIG_CLASSES.items():
        stage_parser = sub.add_parser(stage, help=(config_cls.__doc__ or "").strip())
        stage_parser.add_argument("--config", default="small", choices=TRAINING_PRESETS, help="training preset")
        stage_parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
        _add_config_flags(stage_parser, config_cls)
    evaluator = sub.add_parser("evaluator", help="train the independent evaluator CLIP of unclip-eval (its own "
                               "larger size and seed, the train split only) and save it in OUTPUT_DIR/evaluator")
    evaluator.add_argument("--config", default="small", choices=TRAINING_PRESETS,
                           help="the generation preset the evaluator accompanies (its size: evaluator-<preset>)")
    _add_config_flags(evaluator, CONFIG_CLASSES["clip"])
    embed = sub.add_parser("embed", help="compute and cache the CLIP embeddings of a dataset for the prior/decoder")
    embed.add_argument("--config", default="small", choices=TRAINING_PRESETS)
    embed.add_argument("--clip_dir", default=None, help="CLIP run folder (default runs/clip-<model preset>)")
    embed.add_argument("--data_path", default=None)
    embed.add_argument("--image_column", default=None)
    embed.add_argument("--caption_column", default=None)
    embed.add_argument("--splits", nargs="+", default=["train", "heldout_pairs"])
    embed.add_argument("--cache_captions_per_image", type=int, default=None,
                       help="captions cached per image, as the prior/decoder run will use (0 = all)")
    export = sub.add_parser(
        "export", help="write the EMA weights of a run's newest checkpoint to RUN_DIR/snapshot-<step>/ (like final/)"
    )
    export.add_argument("run_dir", help="a training run folder (holds config.json and checkpoint-<step>/)")
    export.add_argument("--checkpoint", default=None, help="a checkpoint folder of that run (default: the newest)")
    export.add_argument("--fp16", action="store_true", help="also write a float16 copy to --output/snapshot-<step>/")
    export.add_argument("--output", default=None, help="where the float16 copy goes (default RUN_DIR/fp16)")
    export.add_argument("--raw", action="store_true",
                        help="the optimiser's weights instead of their EMA, to RUN_DIR/raw-<step>/ (for comparisons)")
    pack = sub.add_parser("pack", help="pack what the decoder or upsampler trains on into one file (train with "
                                       "--data_path FILE)")
    pack.add_argument("--stage", dest="stage_name", required=True, choices=["decoder", "upsampler"])
    pack.add_argument("--config", default="small", choices=TRAINING_PRESETS, help="model preset (image size)")
    pack.add_argument("--data_path", default="data/emoji")
    pack.add_argument("--clip_dir", default="", help="the decoder's CLIP run (default runs/clip-<model preset>)")
    pack.add_argument("--output", required=True, help="the pack file, ending in .safetensors")
    pack.add_argument("--text", default="tokens", choices=["tokens", "encodings"],
                      help="decoder captions as token ids + the text tower (small) or as cached fp16 encodings")
    pack.add_argument("--max_images", type=int, default=0, help="a seeded random subset of training images (0 = all)")
    pack.add_argument("--num_validation_examples", type=int, default=64)
    pack.add_argument("--max_mib", type=float, default=50.0, help="refuse to write a larger pack")
    pack.add_argument("--high_res_column", default="image_256")
    pack.add_argument("--image_column", default="image")
    pack.add_argument("--caption_column", default="caption")
    restore = sub.add_parser(
        "restore", help="recreate run folders (final/ or snapshot-<step>/) from a pipeline folder's provenance"
    )
    restore.add_argument("pipeline_dir", help="a pipeline folder written by unclip-assemble (e.g. the release)")
    restore.add_argument("--runs", default="runs", help="where the run folders go (existing ones are left alone)")
    return parser


def run(args: argparse.Namespace) -> str:
    """Run a parsed `unclip-train` command; returns the run (or cache) folder."""
    from .config import get_training_config

    if args.stage == "embed":
        from .embeddings import split_with_embeddings

        overrides = {k: getattr(args, k) for k in ("clip_dir", "data_path", "image_column", "caption_column",
                                                   "cache_captions_per_image")}  # fmt: skip
        config = get_training_config("prior", args.config, **{k: v for k, v in overrides.items() if v is not None})
        for split in args.splits:
            data, cache, _ = split_with_embeddings(config, split, 0)
            logging.getLogger(__name__).info("%s: %d images, %d captions (%d distinct texts) embedded", split,
                                             len(cache), len(cache.caption_text_rows), cache.text_embeds.shape[0])
        return str(config.clip_dir or os.path.join("runs", f"clip-{config.model_preset}"))

    if args.stage == "export":
        from .export import export_checkpoint

        return str(export_checkpoint(args.run_dir, args.checkpoint, args.fp16, args.output, raw=args.raw))

    if args.stage == "pack":
        from .pack import pack_stage

        return str(pack_stage(
            args.stage_name, args.data_path, args.output, clip_dir=args.clip_dir, model_preset=args.config,
            text=args.text, max_images=args.max_images, num_validation_examples=args.num_validation_examples,
            max_mib=args.max_mib, high_res_column=args.high_res_column, image_column=args.image_column,
            caption_column=args.caption_column,
        ))

    if args.stage == "restore":
        from .restore import restore_runs

        restored = restore_runs(args.pipeline_dir, args.runs)
        return "\n".join(f"{stage}: {folder}" for stage, folder in restored.items())

    if args.stage == "evaluator":
        from ..evaluation.evaluator import EVALUATOR_SEED, default_evaluator_dir, train_evaluator

        preset_config = get_training_config("clip", args.config)
        names = {f.name for f in dataclasses.fields(preset_config)} - {"model_preset"}
        overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
        output_dir = overrides.pop("output_dir", None) or default_evaluator_dir(args.config)
        data_path = overrides.pop("data_path", None) or preset_config.data_path
        seed = overrides.pop("seed", EVALUATOR_SEED)
        train_evaluator(data_path, output_dir, preset=args.config, seed=seed, **overrides)
        return str(os.path.join(output_dir, "evaluator"))

    names = {f.name for f in dataclasses.fields(get_training_config(args.stage, args.config))}
    overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
    config = get_training_config(args.stage, args.config, **overrides)
    if args.stage == "clip":
        from .clip import train_clip as train
    elif args.stage == "prior":
        from .prior import train_prior as train
    elif args.stage == "decoder":
        from .decoder import train_decoder as train
    elif args.stage == "upsampler":
        from .upsampler import train_upsampler as train
    else:
        from .upsampler2 import train_upsampler2 as train
    return str(train(config, resume=args.resume))


def main(argv: list[str] | None = None) -> None:
    """Entry point of `unclip-train` (re-executes itself once with the malloc settings when called from a shell)."""
    if argv is None:
        argv = sys.argv[1:]
        ensure_malloc_env(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("unclip_diffusers").setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    from .stopping import TrainingInterrupted

    try:
        result = run(args)
    except TrainingInterrupted as stopped:
        logging.getLogger(__name__).warning("%s", stopped)
        sys.exit(stopped.exit_code)
    if os.environ.get("RANK", "0") == "0":
        print(result)


if __name__ == "__main__":
    main()
