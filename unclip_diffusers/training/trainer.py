"""The training loop every stage shares: accelerate, AdamW, LR schedule, EMA, checkpoints, metrics and validation.

A stage (`clip.py`, `prior.py`, `decoder.py`, `upsampler.py`) supplies its module, its data, its loss for a batch
of example indices, its validation and its export; `run_training` does the rest identically for all four.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch import nn
from tqdm.auto import tqdm

from ..data.sampling import family_sampling_weights, sampled_share
from ..utils.cpu_bf16 import cpu_has_native_bf16
from .batches import batch_indices, step_generators, weighted_batch_indices
from .checkpointing import (
    TrainState,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from .config import TrainingConfig, load_config, save_config
from .provenance import SNAPSHOT_PREFIX
from .stopping import StopOnSignal, TrainingInterrupted
from .warm_start import initial_step, require_folder

logger = logging.getLogger(__name__)


class Stage(ABC):
    """One trainable unCLIP stage: what `run_training` needs to know about it."""

    def __init__(self, config: TrainingConfig) -> None:
        config.validate()
        self.config = config
        self.model_config = config.model_config
        self.module: nn.Module | None = None  # the trained module (unwrapped), set by `run_training`
        self.sampling_weights: torch.Tensor | None = None  # per-example draw weights (family balance), or None

    def balance_families(self, data, rows: Sequence[int] | None = None) -> None:
        """Weight the batch stream by `config.family_balance` over the `family` column of `data` (restricted to `rows`)."""
        temperature = self.config.family_balance
        if temperature == 0:
            self.sampling_weights = None
            return
        if "family" not in data.column_names:
            raise ValueError(f"family_balance={temperature} needs a 'family' column, but {self.config.data_path!r} has "
                             f"only {data.column_names}; rebuild the data with `unclip-data build` or set "
                             "family_balance=0.")
        families = list(data["family"])
        if rows is not None:
            families = [families[r] for r in rows]
        self.sampling_weights = torch.from_numpy(family_sampling_weights(families, temperature))
        if "slice" in data.column_names:
            slices = list(data["slice"])
            everyday = [slices[r] == "everyday" for r in (rows if rows is not None else range(len(slices)))]
            logger.info("Family balance %.2f: everyday share of a batch %.1f%% (%.1f%% without balancing).",
                        temperature, 100 * sampled_share(everyday, self.sampling_weights.numpy()),
                        100 * sampled_share(everyday))

    @abstractmethod
    def setup(self, accelerator: Accelerator) -> nn.Module:
        """Load the training data and build the trainable module (seeded by the caller)."""

    @property
    @abstractmethod
    def num_train_examples(self) -> int:
        """Number of training examples the batch stream draws from."""

    @abstractmethod
    def loss(self, model: nn.Module, indices: torch.Tensor, generator: torch.Generator, rng: random.Random) -> torch.Tensor:
        """Scalar training loss of the examples `indices`; every random draw uses `generator` / `rng`."""

    def batch_indices(self, micro_step: int, process_index: int, num_processes: int) -> torch.Tensor:
        """The training examples of one process's micro-batch: family-balanced draws, or the stream of random epochs."""
        if self.sampling_weights is not None:
            return weighted_batch_indices(self.sampling_weights, self.config.batch_size, micro_step, process_index,
                                          self.config.seed)
        return batch_indices(self.num_train_examples, self.config.batch_size, micro_step, process_index,
                             num_processes, self.config.seed)

    def after_optimizer_step(self, model: nn.Module) -> None:
        """Hook after each optimizer step (e.g. clamping CLIP's temperature)."""

    def validate(self, model: nn.Module, step: int, output_dir: Path) -> dict[str, float]:
        """Validation metrics (and files such as image grids) with the EMA weights loaded; main process only."""
        return {}

    @abstractmethod
    def save_final(self, model: nn.Module, directory: Path) -> None:
        """Export the (EMA) weights with `save_pretrained`, as safetensors, into `directory`."""

    @abstractmethod
    def load_weights(self, model: nn.Module, folder: Path) -> None:
        """Load trained weights saved under the pipeline's component names in `folder` (see `warm_start.py`)."""


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels only, none on biases, norms, gains or scalars."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def optimizer_step(
    stage: Stage, accelerator: Accelerator, model: nn.Module, optimizer: torch.optim.Optimizer, step: int
) -> float:
    """One optimizer step of `stage` (its gradient-accumulation micro-steps); returns the mean loss."""
    config = stage.config
    total = 0.0
    for micro in range(config.gradient_accumulation_steps):
        micro_step = step * config.gradient_accumulation_steps + micro
        indices = stage.batch_indices(micro_step, accelerator.process_index, accelerator.num_processes)
        generator, rng = step_generators(config.seed, micro_step, accelerator.process_index)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                loss = stage.loss(model, indices, generator, rng)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"The {config.stage} loss is {loss.item()} at step {step}; lower the learning rate or train "
                    "with mixed_precision='no'."
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        total += loss.detach().float().item() / config.gradient_accumulation_steps
    return total


def effective_mixed_precision(config: TrainingConfig) -> str:
    """The configured mixed precision, except bf16 on a CPU without native bf16 (there it is ~18x slower): 'no'."""
    on_cpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    if config.mixed_precision == "bf16" and on_cpu and not cpu_has_native_bf16():
        # Measured on an AMD EPYC with AVX2 only (decoder, small, 1 thread): 97.6 s/step with bf16, 5.3 s in fp32.
        logger.warning("This CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 autocast is emulated and many "
                       "times slower: training in fp32 instead (mixed_precision='no').")
        return "no"
    return config.mixed_precision


def make_accelerator(config: TrainingConfig) -> Accelerator:
    """The run's `Accelerator` (mixed precision, accumulation; CPU processes over gloo when there is no GPU)."""
    return Accelerator(
        mixed_precision=effective_mixed_precision(config),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        # Without a GPU, say so: then `accelerate launch --multi_gpu --num_processes N` (torchrun) trains N CPU
        # processes over gloo instead of N unconnected copies.
        cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),
    )


def make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, with weight decay on matrices only."""
    return torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
    )


def make_ema(model: nn.Module, config: TrainingConfig) -> EMAModel:
    """EMA of every parameter, with warm-up (decay = 1 - (1 + step) ** -ema_power, capped at ema_decay)."""
    return EMAModel(model.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=config.ema_power)


def reset_accelerate_state() -> None:
    """Forget the process-wide mixed-precision setting so the next `Accelerator` here may choose another one.

    accelerate keeps it in a singleton; the distributed state is kept.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _prepare_output_dir(config: TrainingConfig, output_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a run unless resuming; refuse to resume with a different model; write config.json."""
    config_file = output_dir / "config.json"
    has_run = bool(list_checkpoints(output_dir)) or (output_dir / "final").exists()
    if has_run and not resume:
        raise ValueError(
            f"{str(output_dir)!r} already holds a training run; pass --resume to continue it or choose another output_dir."
        )
    if resume and config_file.exists():
        old, old_model = load_config(config_file)
        if old.stage != config.stage:
            raise ValueError(f"{str(output_dir)!r} is a {old.stage} run, not a {config.stage} run.")
        if old_model != config.model_config:
            raise ValueError(
                f"Cannot resume {str(output_dir)!r}: its model config differs from preset {config.model_preset!r}."
            )
        changed = [f.name for f in fields(config) if getattr(old, f.name) != getattr(config, f.name)]
        if changed:
            logger.warning("Resuming with changed settings: %s", ", ".join(changed))
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    save_config(config, config_file)


def _save_final(stage: Stage, model: nn.Module, output_dir: Path, name: str = "final") -> Path:
    """Write `final/` (or `name/`) through a temporary folder and a rename, like the checkpoints."""
    final, temporary = output_dir / name, output_dir / f".tmp-{name}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir(parents=True)
    stage.save_final(model, temporary)
    shutil.copyfile(output_dir / "config.json", temporary / "config.json")
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    return final


class _MetricsLog:
    """Appends one JSON object per line to `metrics.jsonl` (main process only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def run_training(stage: Stage, resume: bool = False, clock: Callable[[], float] = time.monotonic) -> Path:
    """Train `stage` to `config.max_steps` and write `final/`; with `resume`, continue from the latest checkpoint.

    With `config.max_minutes`, stop once that much time (read from `clock`, in seconds) has passed and write
    `checkpoint-<step>` and `snapshot-<step>/` instead of `final/`. Returns the run folder.
    """
    try:
        return _run_training(stage, resume, clock)
    finally:
        reset_accelerate_state()


@dataclass
class PreparedRun:
    """Everything a checkpoint holds, built and registered in the order `accelerate` saves and restores them."""

    accelerator: Accelerator
    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    ema: EMAModel
    state: TrainState

    @property
    def unwrapped(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)


def prepare_run(stage: Stage, accelerator: Accelerator) -> PreparedRun:
    """Set the stage up (seeded) and build its optimizer, LR schedule, EMA and step counter for `accelerator`."""
    config = stage.config
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's global RNG
        torch.manual_seed(config.seed)
        model = stage.setup(accelerator)
    start_step = 0
    if config.init_from:
        folder = require_folder(config.init_from)
        stage.load_weights(model, folder)
        start_step = initial_step(folder, config.stage)
        if start_step >= config.max_steps:
            raise ValueError(
                f"init_from {str(folder)!r} was trained for {start_step} steps, not fewer than max_steps "
                f"({config.max_steps}); raise max_steps to train it further."
            )
        logger.info("Initialised from %s (continuing at step %d)", folder, start_step)
    stage.module = model
    optimizer = make_optimizer(model, config)
    lr_scheduler = get_scheduler(
        config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps, num_training_steps=config.max_steps
    )
    ema = make_ema(model, config)
    model, optimizer = accelerator.prepare(model, optimizer)
    ema.to(accelerator.device)  # the shadow weights live beside the weights (a GPU's, once prepared)
    state = TrainState()
    if start_step:
        state.step = ema.optimization_step = start_step
        lr_scheduler.last_epoch = start_step - 1
        with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": intended here
            warnings.simplefilter("ignore", UserWarning)
            lr_scheduler.step()
    accelerator.register_for_checkpointing(lr_scheduler, ema, state)
    return PreparedRun(accelerator, model, optimizer, lr_scheduler, ema, state)


def _out_of_time(config: TrainingConfig, accelerator: Accelerator, elapsed: float) -> bool:
    """Whether the `max_minutes` budget is spent (on any process: all then stop at the same step)."""
    if not config.max_minutes:
        return False
    spent = float(elapsed >= 60.0 * config.max_minutes)
    if accelerator.num_processes > 1:
        spent = accelerator.reduce(torch.tensor([spent], device=accelerator.device), "max").item()
    return bool(spent)


def _save_ema(stage: Stage, run: PreparedRun, output_dir: Path, name: str = "final") -> Path:
    """Write the EMA weights to `output_dir/name` (main process), leaving the raw weights in the model."""
    unwrapped = run.unwrapped
    run.ema.store(unwrapped.parameters())
    run.ema.copy_to(unwrapped.parameters())
    folder = _save_final(stage, unwrapped, output_dir, name)
    run.ema.restore(unwrapped.parameters())
    logger.info("Wrote the EMA weights to %s", folder)
    return folder


def _run_training(stage: Stage, resume: bool, clock: Callable[[], float] = time.monotonic) -> Path:
    started = clock()
    config = stage.config
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    accelerator = make_accelerator(config)
    output_dir = config.resolved_output_dir()
    if accelerator.is_main_process:
        _prepare_output_dir(config, output_dir, resume)
    accelerator.wait_for_everyone()

    run = prepare_run(stage, accelerator)
    if stage.num_train_examples < config.batch_size:
        logger.warning("Only %d training examples for batch size %d.", stage.num_train_examples, config.batch_size)
    model, optimizer, lr_scheduler, ema, state = run.model, run.optimizer, run.lr_scheduler, run.ema, run.state
    unwrapped = run.unwrapped

    checkpoint = latest_checkpoint(output_dir) if resume else None
    if checkpoint is not None:
        load_checkpoint(accelerator, checkpoint)
        ema.to(accelerator.device)  # restored on the CPU
        logger.info("Resumed from %s (step %d)", checkpoint, state.step)
    elif resume:
        logger.info("No checkpoint in %s: starting from step 0.", output_dir)

    metrics = _MetricsLog(output_dir / "metrics.jsonl", accelerator.is_main_process)
    samples_per_step = config.batch_size * config.gradient_accumulation_steps * accelerator.num_processes
    progress = tqdm(
        total=config.max_steps, initial=state.step, desc=f"train {config.stage}", disable=not accelerator.is_local_main_process
    )
    window_loss, window_steps, window_time = 0.0, 0, 0.0
    model.train()
    with StopOnSignal() as stop:
        while state.step < config.max_steps:
            start = time.perf_counter()
            step_loss = optimizer_step(stage, accelerator, model, optimizer, state.step)
            lr_scheduler.step()
            ema.step(unwrapped.parameters())
            stage.after_optimizer_step(unwrapped)
            state.step += 1
            window_time += time.perf_counter() - start
            window_loss += step_loss
            window_steps += 1
            progress.update(1)

            if state.step % config.log_every == 0 or state.step == config.max_steps:
                mean_loss = accelerator.reduce(torch.tensor(window_loss / window_steps), "mean").item()
                images_per_s = samples_per_step * window_steps / max(window_time, 1e-9)
                progress.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{images_per_s:.1f}")
                metrics.write({
                    "step": state.step, "loss": mean_loss, "lr": lr_scheduler.get_last_lr()[0],
                    "images_per_s": images_per_s, "epoch": state.step * samples_per_step / stage.num_train_examples,
                    "processes": accelerator.num_processes,
                })
                window_loss, window_steps, window_time = 0.0, 0, 0.0

            finished = state.step == config.max_steps
            if (config.validate_every and state.step % config.validate_every == 0) or finished:
                if accelerator.is_main_process:
                    ema.store(unwrapped.parameters())
                    ema.copy_to(unwrapped.parameters())
                    unwrapped.eval()
                    with torch.no_grad():
                        values = stage.validate(unwrapped, state.step, output_dir)
                    unwrapped.train()
                    ema.restore(unwrapped.parameters())
                    if values:
                        metrics.write({"step": state.step, "validation": values})
                        logger.info("step %d validation: %s", state.step, values)
                accelerator.wait_for_everyone()
            if state.step % config.checkpoint_every == 0 or finished:
                save_checkpoint(accelerator, output_dir, state.step, config.checkpoints_total_limit, output_dir / "config.json")
            signal_number = stop.requested(accelerator)
            if signal_number and not finished:  # stop cleanly: nothing trained so far is lost
                checkpoint = output_dir / f"checkpoint-{state.step}"
                if state.step % config.checkpoint_every:
                    checkpoint = save_checkpoint(accelerator, output_dir, state.step, config.checkpoints_total_limit,
                                                 output_dir / "config.json")
                progress.close()
                raise TrainingInterrupted(signal_number, state.step, checkpoint)
            if not finished and _out_of_time(config, accelerator, clock() - started):
                if state.step % config.checkpoint_every:
                    save_checkpoint(accelerator, output_dir, state.step, config.checkpoints_total_limit,
                                    output_dir / "config.json")
                logger.info("max_minutes=%g reached at step %d of %d.", config.max_minutes, state.step,
                            config.max_steps)
                break
    progress.close()

    if accelerator.is_main_process:
        finished = state.step == config.max_steps
        _save_ema(stage, run, output_dir, "final" if finished else f"{SNAPSHOT_PREFIX}{state.step}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir

