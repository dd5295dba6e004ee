"""Train and evaluate any hf_erc model: the code behind ``scripts/train.py``.

    python scripts/train.py --config configs/sdt-meld.yaml [--any_field value ...]
    accelerate launch [--multi_gpu --num_processes N] scripts/train.py --config configs/sdt-meld.yaml

Parse the YAML config and the command line (fields of :class:`ERCModelArguments`, :class:`ERCDataArguments`,
:class:`DistillationArguments`, :class:`ERCTrainingArguments` and
:class:`~hf_erc.teachers.TeacherPeftArguments`; flags win) -> look up the model family's recipe
(:mod:`hf_erc.training.recipes`) and its stage -> the stage builds model, data and collator -> train with
:class:`ERCTrainer`, keeping the best validation weighted F1 -> evaluate that model on validation and test ->
print the results table and write the checkpoint with its model card (:mod:`hf_erc.training.results`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, set_seed
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging

from ..teachers import TeacherPeftArguments
from .arguments import DistillationArguments, ERCDataArguments, ERCModelArguments, ERCTrainingArguments
from .recipes import get_recipe
from .results import finalize_checkpoint, format_results_table, weights_fingerprints
from .stages import RunArguments
from .trainer import ERCTrainer

logger = logging.get_logger(__name__)

ARGUMENT_CLASSES = (
    ERCModelArguments,
    ERCDataArguments,
    DistillationArguments,
    ERCTrainingArguments,
    TeacherPeftArguments,
)


# ---- Arguments ----------------------------------------------------------------------------


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.add_argument(
        "--config", default=None, help="YAML file of argument values; command-line flags override its values."
    )
    return parser


def parse_arguments(
    argv: Sequence[str] | None = None,
) -> tuple[ERCModelArguments, ERCDataArguments, DistillationArguments, ERCTrainingArguments]:
    """Parse ``--config file.yaml`` and the command line into the four main argument dataclasses (command line
    wins); :func:`parse_all_arguments` also returns the text teacher's ``TeacherPeftArguments``."""
    return parse_all_arguments(argv)[:4]


def parse_all_arguments(argv: Sequence[str] | None = None) -> tuple:
    """``(model, data, distillation, training, teacher PEFT)`` arguments from ``--config`` and the command line.

    The YAML values become the parser's defaults, so a flag given on the command line replaces
    them and everything goes through the same conversions and checks.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    config_parser = argparse.ArgumentParser(add_help=False)
    config_parser.add_argument("--config", default=None)
    known, _ = config_parser.parse_known_args(argv)
    if known.config is not None:
        parser.set_defaults(**_read_config_file(known.config, parser))
    # The last item is the namespace of `--config`, already read above.
    *arguments, _ = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    return tuple(arguments)


def _read_config_file(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    config_path = Path(path)
    if not config_path.is_file():
        raise FileNotFoundError(f"Config file {config_path} does not exist.")
    values = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(
            f"{config_path}: expected a mapping of argument names to values, got {type(values).__name__}."
        )
    known = {action.dest for action in parser._actions} - {"help", "config"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{config_path}: unknown key(s) {unknown}. Keys are the fields of ERCModelArguments, ERCDataArguments, "
            "DistillationArguments, TrainingArguments and TeacherPeftArguments (see `python scripts/train.py --help`)."
        )
    return values


def _resolve_checkpoint(training_args: ERCTrainingArguments) -> str | None:
    """``--resume_from_checkpoint`` as a path; ``last``/``true`` mean the newest checkpoint in ``output_dir``."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", "none", ""):
        return None
    if str(value).lower() in ("last", "true"):
        checkpoint = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if checkpoint is None:
            raise FileNotFoundError(f"--resume_from_checkpoint {value}: no checkpoint in {training_args.output_dir}.")
        return checkpoint
    if not os.path.isdir(value):
        raise FileNotFoundError(f"--resume_from_checkpoint {value} is not a checkpoint folder.")
    return value


# ---- Entry point ----------------------------------------------------------------------------


def _setup(argv):
    """Parse, find the recipe and its stage, seed, and let the stage build what it trains."""
    args = RunArguments(*parse_all_arguments(argv))
    recipe = get_recipe(args.model.model_type)
    stage_name, stage = recipe.stage(args.model.stage)
    args.model.stage = stage_name
    stage.model_class(recipe, args.data.modalities)  # the stage and --modalities agree
    # Seed before the model is built: its initial weights must depend on --seed alone, not on whatever used the
    # random generators earlier in the process (feature extraction, another run); the Trainer seeds only later.
    set_seed(args.training.seed)
    setup = stage.setup(recipe, args)
    training_args = args.training
    if training_args.train_sampling_strategy == "group_by_length" and (
        training_args.length_column_name not in setup.datasets["train"].column_names
    ):
        # Rows of equal cost (fixed-size frames, cached embeddings): nothing to bucket.
        training_args.train_sampling_strategy = "random"
    return args, stage, setup


def main(argv: Sequence[str] | None = None) -> int:
    """Run training and evaluation; return the process exit status."""
    try:
        return _main(argv)
    finally:
        # `accelerate launch` with several processes exits 1 ("terminate called without an active
        # exception") when a rank leaves with its process group still open.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _main(argv: Sequence[str] | None) -> int:
    try:
        args, stage, setup = _setup(argv)
        checkpoint = _resolve_checkpoint(args.training)
    except (FileNotFoundError, ValueError) as error:
        # Configuration and data errors name the file and the fix: show them without a traceback.
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    training_args, datasets = args.training, setup.datasets
    # The Trainer would push at every save (and fail offline); the run publishes once, at the end, with its card.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    trainer = ERCTrainer(
        model=setup.model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=setup.data_collator,
        teacher_model=setup.teacher_model,
        distillation_args=args.distillation,
    )
    logger.info(
        f"Training {args.model.model_type} ({args.model.stage}: {type(setup.model).__name__}) on "
        f"{args.data.dataset_name} ({', '.join(args.data.modalities)}) with {training_args.world_size} process(es): "
        f"{len(datasets['train'])} train, {len(datasets['validation'])} validation, {len(datasets['test'])} test "
        f"{stage.unit}."
    )
    if training_args.do_train:
        _train(trainer, setup, stage, checkpoint)
    results = _evaluate(trainer, training_args, datasets)
    if not trainer.is_world_process_zero():
        return 0
    table = format_results_table(results, trainer.emotion_names)
    print(f"\nResults of {training_args.output_dir} (%):\n{table}\n", flush=True)
    Path(training_args.output_dir, "results.md").write_text(table + "\n", encoding="utf-8")
    if training_args.do_train:
        return finalize_checkpoint(args, args.model.stage, stage, push_to_hub)
    return 0


def _train(trainer: ERCTrainer, setup, stage, checkpoint: str | None) -> None:
    """Train, save the best checkpoint's model (and what the stage saves with it), record the training metrics."""
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


def _evaluate(trainer: ERCTrainer, training_args, datasets) -> dict[str, dict[str, float]]:
    """Validation (and, with ``do_predict``, test) metrics of the trained model, logged and saved."""
    results = {"validation": trainer.evaluate(metric_key_prefix="eval")}
    trainer.log_metrics("eval", results["validation"])
    trainer.save_metrics("eval", results["validation"])
    if training_args.do_predict:
        results["test"] = trainer.predict(datasets["test"], metric_key_prefix="test").metrics
        trainer.log_metrics("test", results["test"])
        trainer.save_metrics("test", results["test"])
    return results
