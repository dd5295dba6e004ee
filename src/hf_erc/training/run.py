"""Train and evaluate any hf_erc model: the code behind ``scripts/train.py``.

    python scripts/train.py --config configs/sdt-meld.yaml [--any_field value ...]
    accelerate launch [--multi_gpu --num_processes N] scripts/train.py --config configs/sdt-meld.yaml
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/train.py --config ...

Parse the YAML config and the command line (fields of :class:`ERCModelArguments`, :class:`ERCDataArguments`,
:class:`DistillationArguments`, :class:`ERCTrainingArguments` and
:class:`~hf_erc.training.teachers.TeacherPeftArguments`; flags win) -> look up the model family's recipe
(:mod:`hf_erc.training.recipes`) and its stage -> the stage builds model, data and collator -> train with
:class:`ERCTrainer`, keeping the best validation weighted F1 -> evaluate that model on validation and test ->
print the results table and write the checkpoint with its model card (:mod:`hf_erc.training.results`).

Under a launcher that started several processes, the run trains one model across them or refuses to start: on a
machine without an accelerator it trains on the CPU (``use_cpu`` unless the config or a flag says otherwise), where
the processes join over gloo.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, set_seed
from transformers.training_args import ParallelMode
from transformers.utils import logging

from ..distributed import accelerator_available, end_process_group, launched_world_size
from ..locking import OutputFolderInUseError, OutputFolderLock
from .teachers import TeacherPeftArguments
from .arguments import DistillationArguments, ERCDataArguments, ERCModelArguments, ERCTrainingArguments
from .recipes import get_recipe
from .resume import last_complete_checkpoint
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
    if not accelerator_available():
        # The processes of `accelerate launch --multi_gpu` train one model together only on the CPU (gloo); the
        # Trainer goes there with `use_cpu`. A config or flag that sets `use_cpu` still decides.
        parser.set_defaults(use_cpu=True)
    config_parser = argparse.ArgumentParser(add_help=False)
    config_parser.add_argument("--config", default=None)
    known, _ = config_parser.parse_known_args(argv)
    if known.config is not None:
        parser.set_defaults(**_read_config_file(known.config, parser))
    # The last item is the namespace of `--config`, already read above.
    *arguments, _ = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    return tuple(arguments)


def read_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping a YAML config file holds, read safely (plain YAML: a tag such as ``!!python/object`` is refused,
    nothing in the file is run). Every problem is a one-line error naming the file: :class:`FileNotFoundError` for a
    missing file, :class:`ValueError` for one that is unreadable, not UTF-8, not YAML or not a mapping."""
    config_path = Path(path)
    if not config_path.is_file():
        raise FileNotFoundError(f"Config file {config_path} does not exist.")
    try:
        values = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{config_path} is not a valid YAML config (not UTF-8 text: {error.reason} at byte {error.start})."
        ) from None
    except OSError as error:
        raise ValueError(f"cannot read config file {config_path}: {error.strerror or error}.") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{config_path} is not a valid YAML config ({_yaml_problem(error)}).") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(
            f"{config_path}: expected a mapping of argument names to values, got {type(values).__name__}."
        )
    return values


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong in a YAML file and where, on one line."""
    if isinstance(error, yaml.MarkedYAMLError):
        problem = "; ".join(part for part in (error.context, error.problem) if part) or "unreadable"
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        text = problem + where
    else:
        text = str(error)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


_SCALARS = (str, int, float)  # bool is an int


def _read_config_file(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The config's values as the parser's defaults: every key a known argument, every value of a shape its
    argument takes. Single values become text, so the parser converts and checks them as it does a flag's."""
    config_path = Path(path)
    values = read_yaml_config(config_path)
    actions = {action.dest: action for action in parser._actions if action.dest not in ("help", "config")}
    unknown = sorted(set(values) - set(actions), key=str)
    if unknown:
        raise ValueError(
            f"{config_path}: unknown key(s) {unknown}. Keys are the fields of ERCModelArguments, ERCDataArguments, "
            "DistillationArguments, TrainingArguments and TeacherPeftArguments (see `python scripts/train.py --help`)."
        )
    shapes = _field_shapes()
    return {
        key: _config_value(config_path, key, value, actions[key], shapes.get(key, ())) for key, value in values.items()
    }


def _field_shapes() -> dict[str, tuple[type, ...]]:
    """For each argument whose field takes a list or a mapping besides a single value: which of the two."""
    shapes = {}
    for argument_class in ARGUMENT_CLASSES:
        for name, annotation in typing.get_type_hints(argument_class).items():
            union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
            options = typing.get_args(annotation) if union else (annotation,)
            origins = {typing.get_origin(option) or option for option in options}
            shapes[name] = tuple(shape for shape in (list, dict) if shape in origins)
    return shapes


def _config_value(config_path: Path, key: str, value: Any, action: argparse.Action, shapes: tuple[type, ...]) -> Any:
    """``value`` checked against what the argument ``key`` takes: a single value, a list of them, or a mapping."""
    takes_list = list in shapes or action.nargs in ("+", "*") or isinstance(action.nargs, int) and action.nargs > 1
    if value is None or isinstance(value, dict) and dict in shapes:
        return value
    if isinstance(value, list) and takes_list:
        wrong = [item for item in value if not isinstance(item, _SCALARS)]
        if wrong:
            raise ValueError(
                f"{config_path}: {key} takes a list of single values, but it holds a {type(wrong[0]).__name__}."
            )
        return value
    if isinstance(value, _SCALARS):
        return value if isinstance(value, str) else str(value)
    takes = " or ".join(["a single value"] + ["a list"] * takes_list + ["a mapping"] * (dict in shapes))
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise ValueError(f"{config_path}: {key} takes {takes}, got a {type(value).__name__} ({shown}).")


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


# ---- Entry point ----------------------------------------------------------------------------


def _setup(argv):
    """Parse, check the launch, find the recipe and its stage, seed, and let the stage build what it trains."""
    args = RunArguments(*parse_all_arguments(argv))
    check_distributed_launch(args.training)
    recipe = get_recipe(args.model.model_type)
    stage_name, stage = recipe.stage(args.model.stage)
    args.model.stage = stage_name
    stage.model_class(recipe, args.data.modalities)  # the stage and --modalities agree
    # Seed before the model is built: its initial weights must depend on --seed alone, not on whatever used the
    # random generators earlier in the process (feature extraction, another run); the Trainer seeds only later.
    set_seed(args.training.seed)
    setup = stage.setup(recipe, args)
    training_args = args.training
    _find_unused_parameters(training_args, args.data.modalities)
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
        end_process_group()


def _main(argv: Sequence[str] | None) -> int:
    try:
        args, stage, setup = _setup(argv)
        checkpoint = _resolve_checkpoint(args.training)
        lock = OutputFolderLock(args.training.output_dir, option="--output_dir").acquire()
    except (FileNotFoundError, ValueError, OutputFolderInUseError) as error:
        # Configuration and data errors name the file and the fix, a busy output_dir its run: no traceback.
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    with lock:  # one run per output_dir (hf_erc.locking)
        return _train_and_evaluate(args, stage, setup, checkpoint)


def _train_and_evaluate(args, stage, setup, checkpoint: str | None) -> int:
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


def _every_process_holds_the_model(trainer: ERCTrainer) -> bool:
    """Whether every process holds all the weights (one process, DDP, DeepSpeed ZeRO-1/2), so that their
    fingerprints must agree; FSDP and ZeRO-3 shard them."""
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    return not (trainer.is_fsdp_enabled or is_deepspeed_zero3_enabled())


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
