"""Train and evaluate any hf_erc model: :func:`train` and :func:`evaluate` in a Python process, :func:`main` for a
command line (``scripts/train.py``, ``hf-erc train``, ``python -m hf_erc.commands.train``).

    from hf_erc.training import RunArguments, train

    arguments = RunArguments.from_config("configs/sdt-meld-text.yaml", data_dir="data/meld-features", seed=1)
    results = train(arguments)
    results.test["test_weighted_f1"]

    python scripts/train.py --config configs/sdt-meld.yaml [--any_field value ...]
    accelerate launch [--multi_gpu --num_processes N] scripts/train.py --config configs/sdt-meld.yaml
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/train.py --config ...

A run: check the launch -> look up the model family's recipe (:mod:`hf_erc.training.recipes`) and its stage -> the
stage builds model, data and collator -> take the output folder's lock -> train with :class:`ERCTrainer`, keeping the
best validation weighted F1 -> evaluate that model on validation and test -> print the results table and write the
checkpoint with its model card (:mod:`hf_erc.training.results`).

Under a launcher that started several processes, the run trains one model across them or refuses to start: on a
machine without an accelerator it trains on the CPU (``use_cpu`` unless the config or a flag says otherwise), where
the processes join over gloo.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.training_args import ParallelMode
from transformers.utils import logging

from ..data.collators import BlankModalities
from ..distributed import accelerator_available, end_process_group, launched_world_size
from ..hub import HubUploadError
from ..locking import OutputFolderInUseError, OutputFolderLock
from .arguments import ERCTrainingArguments, RunArguments, parse_run_arguments
from .recipes import get_recipe
from .results import TrainingResults, finalize_checkpoint, format_results_table, weights_fingerprints
from .resume import last_complete_checkpoint
from .stages import Stage, StageSetup
from .trainer import ERCTrainer

logger = logging.get_logger(__name__)

# What a run raises, before it trains or writes anything, for a configuration or data problem (the message names the
# file and the fix) or an output folder another run holds; `main` prints them on one line.
SETUP_ERRORS = (FileNotFoundError, ValueError, OutputFolderInUseError)


# ---- Entry points ----------------------------------------------------------------------------


def train(arguments: RunArguments) -> TrainingResults:
    """Train (with ``do_train``, the default) and evaluate one model, as ``scripts/train.py`` does, in this process.

    Writes to ``arguments.training.output_dir`` what the script writes (checkpoints, the final model with its model
    card, the metrics files, ``results.md``) and returns the metrics. Raises one of :data:`SETUP_ERRORS` before
    anything is trained or written; :class:`~hf_erc.hub.HubUploadError` when ``push_to_hub`` fails (the checkpoint
    is complete). ``arguments`` is completed in place, as the Trainer completes its own: the recipe's stage name,
    the sampler, DDP's search for unused parameters.
    """
    run = _prepare_run(arguments)
    with run.lock:
        return _train_and_evaluate(run)


def evaluate(arguments: RunArguments) -> TrainingResults:
    """Evaluate a trained model (``model_name_or_path``, or the checkpoints a stage reads) on validation and, with
    ``do_predict``, test, without training: :func:`train` with ``do_train`` false. ``arguments`` is not changed."""
    training = copy.copy(arguments.training)
    training.do_train = False
    return train(dataclasses.replace(arguments, training=training))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse a command line (default ``sys.argv[1:]``), train and evaluate; return the process exit status: 2 with a
    one-line ``train.py: error:`` for a configuration or data problem or a busy output folder, 1 when the push to the
    Hub fails."""
    try:
        return _main(argv)
    finally:
        end_process_group()


def _main(argv: Sequence[str] | None) -> int:
    try:
        run = _prepare_run(parse_run_arguments(argv))
    except SETUP_ERRORS as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    # Not through `train`: an error once training has started keeps its traceback.
    try:
        with run.lock:
            _train_and_evaluate(run)
    except HubUploadError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 1
    return 0


# ---- Setting a run up ----------------------------------------------------------------------------


@dataclasses.dataclass
class _PreparedRun:
    """A run checked and built, holding its output folder's lock; nothing trained or written yet."""

    arguments: RunArguments
    stage: Stage
    setup: StageSetup
    resume_from_checkpoint: str | None
    lock: OutputFolderLock


def _prepare_run(arguments: RunArguments) -> _PreparedRun:
    stage, setup = _set_up_stage(arguments)
    checkpoint = _resolve_checkpoint(arguments.training)
    lock = OutputFolderLock(arguments.training.output_dir, option="--output_dir").acquire()
    return _PreparedRun(arguments, stage, setup, checkpoint, lock)


def _set_up_stage(arguments: RunArguments) -> tuple[Stage, StageSetup]:
    """Check the launch, find the recipe and its stage, seed, and let the stage build what it trains."""
    check_distributed_launch(arguments.training)
    recipe = get_recipe(arguments.model.model_type)
    stage_name, stage = recipe.stage(arguments.model.stage)
    arguments.model.stage = stage_name
    stage.model_class(recipe, arguments.data.modalities)  # the stage and --modalities agree
    # Seed before the model is built: its initial weights must depend on --seed alone, not on whatever used the
    # random generators earlier in the process (feature extraction, another run); the Trainer seeds only later.
    set_seed(arguments.training.seed)
    setup = stage.setup(recipe, arguments)
    training_args = arguments.training
    _find_unused_parameters(training_args, arguments.data.modalities)
    if training_args.train_sampling_strategy == "group_by_length" and (
        training_args.length_column_name not in setup.datasets["train"].column_names
    ):
        # Rows of equal cost (fixed-size frames, cached embeddings): nothing to bucket.
        training_args.train_sampling_strategy = "random"
    _check_blanking(setup, arguments.data.blank_modalities)
    return stage, setup


def _check_blanking(setup: StageSetup, modalities: Sequence[str]) -> None:
    """Refuse ``--blank_modalities`` before training when the model cannot run without them: one blanked batch of
    a validation row through the untrained model (TelME's teacher, e.g., needs every utterance's text)."""
    if not modalities:
        return
    blanking = BlankModalities(setup.data_collator, modalities)
    model = setup.model
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(**blanking([setup.datasets["validation"][0]]))
    except ValueError as error:  # DataFormatError included
        raise ValueError(f"--blank_modalities {' '.join(modalities)}: {error}") from None
    finally:
        model.train(was_training)


def _resolve_checkpoint(training_args: ERCTrainingArguments) -> str | None:
    """``--resume_from_checkpoint`` as a path; bare, ``last`` or ``true``, the newest complete checkpoint in
    ``output_dir`` (:func:`~hf_erc.training.resume.last_complete_checkpoint`)."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", "none", ""):
        return None
    if str(value).lower() in ("last", "true"):
        checkpoint = last_complete_checkpoint(training_args.output_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"--resume_from_checkpoint {value}: no checkpoint in {training_args.output_dir}.")
        return checkpoint
    if not os.path.isdir(value):
        raise FileNotFoundError(f"--resume_from_checkpoint {value} is not a checkpoint folder.")
    return value


def check_distributed_launch(training_args: ERCTrainingArguments) -> None:
    """Refuse a launch whose processes would not train one model together.

    A launcher that started several processes (``WORLD_SIZE`` > 1) expects data-parallel training across them; a
    Trainer that is not distributed over exactly those processes would train one model per process, every one of
    them writing the same ``output_dir``.
    """
    launched = launched_world_size()
    if launched <= 1:
        return
    if training_args.parallel_mode == ParallelMode.DISTRIBUTED and training_args.world_size == launched:
        return
    if not accelerator_available() and not training_args.use_cpu:
        fix = (
            "This machine has no GPU: drop `use_cpu: false` from the config (or pass `--use_cpu true`) so that the "
            "processes train together on the CPU over gloo."
        )
    else:
        fix = (
            "Launch one process per device with `accelerate launch --multi_gpu --num_processes N` (or a config of "
            "configs/accelerate/), or run `python scripts/train.py` for a single process."
        )
    raise ValueError(
        f"The launcher started {launched} processes, but the Trainer would not train one model across them "
        f"(parallel mode {training_args.parallel_mode.value}, world size {training_args.world_size}): each process "
        f"would train its own model into {training_args.output_dir}. Nothing was written. {fix}"
    )


def _find_unused_parameters(training_args: ERCTrainingArguments, modalities: Sequence[str]) -> None:
    """Let DistributedDataParallel look for parameters without a gradient when the model reads several modalities.

    A batch that lacks a modality (or a rank whose batch lacks it) may leave that modality's parameters out of the
    graph; DDP would otherwise wait for their gradients. A value set in the config or on the command line wins.
    """
    if training_args.ddp_find_unused_parameters is None and len(modalities) > 1:
        training_args.ddp_find_unused_parameters = True


# ---- Training and evaluating ----------------------------------------------------------------------------


def _train_and_evaluate(run: _PreparedRun) -> TrainingResults:
    arguments, stage, setup = run.arguments, run.stage, run.setup
    training_args, datasets = arguments.training, setup.datasets
    # The Trainer would push at every save (and fail offline); the run publishes once, at the end, with its card.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    trainer = ERCTrainer(
        model=setup.model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=setup.data_collator,
        teacher_model=setup.teacher_model,
        distillation_args=arguments.distillation,
    )
    logger.info(
        f"Training {arguments.model.model_type} ({arguments.model.stage}: {type(setup.model).__name__}) on "
        f"{arguments.data.dataset_name} ({', '.join(arguments.data.modalities)}) with {training_args.world_size} "
        f"process(es): {len(datasets['train'])} train, {len(datasets['validation'])} validation, "
        f"{len(datasets['test'])} test {stage.unit}."
    )
    train_metrics = _train(trainer, setup, stage, run.resume_from_checkpoint) if training_args.do_train else {}
    evaluation = _evaluate(trainer, training_args, datasets, arguments.data.blank_modalities)
    results = TrainingResults(
        output_dir=Path(training_args.output_dir),
        train=train_metrics,
        validation=evaluation["validation"],
        test=evaluation.get("test", {}),
    )
    if trainer.is_world_process_zero():
        table = format_results_table(evaluation, trainer.emotion_names)
        print(f"\nResults of {training_args.output_dir} (%):\n{table}\n", flush=True)
        Path(training_args.output_dir, "results.md").write_text(table + "\n", encoding="utf-8")
        if training_args.do_train:
            finalize_checkpoint(arguments, stage, push_to_hub)
    return results


def _train(trainer: ERCTrainer, setup: StageSetup, stage: Stage, checkpoint: str | None) -> dict[str, Any]:
    """Train, save the best checkpoint's model (and what the stage saves with it); return the training metrics."""
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    if setup.finalize_model is not None:
        trainer.model = setup.finalize_model(trainer.model)
    trainer.save_model()  # the best checkpoint's weights (load_best_model_at_end), config and code
    if trainer.is_world_process_zero():
        for item in setup.save_with_model:
            item.save_pretrained(trainer.args.output_dir)
    metrics = dict(train_result.metrics)
    metrics[f"train_{stage.unit}"] = len(setup.datasets["train"])
    metrics.update(setup.metrics)
    metrics["world_size"] = trainer.args.world_size
    metrics["global_step"] = trainer.state.global_step
    if _every_process_holds_the_model(trainer):
        fingerprints = weights_fingerprints(trainer.model)
        metrics["weights_sha256_per_rank"] = ",".join(fingerprint[:16] for fingerprint in fingerprints)
        if len(set(fingerprints)) > 1:
            logger.warning(f"The processes ended with different weights: {fingerprints}.")
    if trainer.state.best_model_checkpoint is not None:
        metrics["best_checkpoint"] = os.path.basename(trainer.state.best_model_checkpoint)
        metrics["best_eval_weighted_f1"] = trainer.state.best_metric
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    return metrics


def _every_process_holds_the_model(trainer: ERCTrainer) -> bool:
    """Whether every process holds all the weights (one process, DDP, DeepSpeed ZeRO-1/2), so that their
    fingerprints must agree; FSDP and ZeRO-3 shard them."""
    return not (trainer.is_fsdp_enabled or is_deepspeed_zero3_enabled())


def _evaluate(
    trainer: ERCTrainer, training_args: ERCTrainingArguments, datasets, blank_modalities: Sequence[str] = ()
) -> dict[str, dict[str, float]]:
    """Validation (and, with ``do_predict``, test) metrics of the trained model, logged and saved; with
    ``blank_modalities``, the test metrics also hold ``test_blank_<modality>_*``: the test split evaluated again with
    that modality blanked (:class:`~hf_erc.data.collators.BlankModalities`)."""
    results = {"validation": trainer.evaluate(metric_key_prefix="eval")}
    trainer.log_metrics("eval", results["validation"])
    trainer.save_metrics("eval", results["validation"])
    if training_args.do_predict:
        results["test"] = trainer.predict(datasets["test"], metric_key_prefix="test").metrics
        collator = trainer.data_collator
        try:
            for modality in blank_modalities:
                trainer.data_collator = BlankModalities(collator, [modality])
                prefix = f"test_blank_{modality}"
                results["test"].update(trainer.predict(datasets["test"], metric_key_prefix=prefix).metrics)
        finally:
            trainer.data_collator = collator
        trainer.log_metrics("test", results["test"])
        trainer.save_metrics("test", results["test"])
    return results
