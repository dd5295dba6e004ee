"""Train and evaluate any hf_erc model: the code behind ``scripts/train.py``.

    python scripts/train.py --config configs/sdt-meld.yaml [--any_field value ...]
    accelerate launch [--multi_gpu --num_processes N] scripts/train.py --config configs/sdt-meld.yaml

The YAML file holds fields of :class:`ERCModelArguments`, :class:`ERCDataArguments`,
:class:`DistillationArguments` and :class:`ERCTrainingArguments` (``TrainingArguments``);
command-line flags override it. The run builds the dialogue dataset, the model from its
dataset preset (feature sizes taken from the data), trains with :class:`ERCTrainer`
keeping the best validation weighted F1, evaluates that model on validation and test,
prints a table of the results and writes the model (safetensors, config and code),
``all_results.json``, ``test_results.json`` and the confusion matrices to ``output_dir``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, PretrainedConfig, PreTrainedModel
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging

from .arguments import DistillationArguments, ERCDataArguments, ERCModelArguments, ERCTrainingArguments
from .trainer import ERCTrainer

logger = logging.get_logger(__name__)

ARGUMENT_CLASSES = (ERCModelArguments, ERCDataArguments, DistillationArguments, ERCTrainingArguments)
# Columns a dialogue-level batch is built from (besides the feature columns).
DIALOGUE_COLUMNS = ("dialogue_id", "turn", "speaker", "emotion")


# ---- Model registry -----------------------------------------------------------------------


def _for_dataset(config_class: type[PretrainedConfig], preset: str, modalities: list[str], overrides: dict[str, Any]):
    return config_class.for_dataset(preset, modalities=modalities, **overrides)


@dataclass(frozen=True)
class ModelEntry:
    """How ``scripts/train.py`` builds one model family.

    Args:
        module: module exporting both classes (imported only when the model is used).
        config_class: name of the `PretrainedConfig` subclass in `module`.
        model_class: name of the `PreTrainedModel` trained by the Trainer.
        preset_builder: ``(config_class, preset, modalities, overrides) -> config``; by default
            ``config_class.for_dataset(preset, modalities=modalities, **overrides)``.
        stages: the values of ``--stage`` the model trains in (single-stage models: ``("full",)``).
    """

    module: str
    config_class: str
    model_class: str
    preset_builder: Callable[..., PretrainedConfig] = _for_dataset
    stages: tuple[str, ...] = ("full",)

    def load_classes(self) -> tuple[type[PretrainedConfig], type[PreTrainedModel]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class), getattr(module, self.model_class)


MODEL_REGISTRY: dict[str, ModelEntry] = {
    "sdt": ModelEntry("hf_erc.models.sdt", "SDTConfig", "SDTForEmotionRecognition"),
}


def register_model(model_type: str, entry: ModelEntry) -> None:
    """Make ``--model_type model_type`` build ``entry``'s model."""
    MODEL_REGISTRY[model_type] = entry


def _registry_entry(model_type: str) -> ModelEntry:
    if model_type not in MODEL_REGISTRY:
        raise ValueError(
            f"--model_type {model_type!r} is not available in this version (registered: {sorted(MODEL_REGISTRY)})."
        )
    return MODEL_REGISTRY[model_type]


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
    """Parse ``--config file.yaml`` and the command line into the four argument dataclasses (command line wins).

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
        raise ValueError(f"{config_path}: expected a mapping of argument names to values, got {type(values).__name__}.")
    known = {action.dest for action in parser._actions} - {"help", "config"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{config_path}: unknown key(s) {unknown}. Keys are the fields of ERCModelArguments, ERCDataArguments, "
            "DistillationArguments and TrainingArguments (see `python scripts/train.py --help`)."
        )
    return values


# ---- Data ---------------------------------------------------------------------------------


def load_dialogue_datasets(data_args: ERCDataArguments):
    """The train/validation/test splits as dialogue rows (``group_dialogues``), with the requested features.

    ``data_dir`` may be a raw release or a prepared (optionally feature-extracted) Parquet folder,
    both read by ``load_erc_dataset``, or a published feature pickle (a ``.pkl`` file or a folder
    holding ``meld_multimodal_features.pkl``/``iemocap_multimodal_features.pkl``).
    """
    from datasets import DatasetDict

    from ..data.dialogues import group_dialogues

    utterances = _load_utterances(data_args)
    missing_splits = [split for split in ("train", "validation", "test") if split not in utterances]
    if missing_splits:
        raise ValueError(f"{data_args.data_dir} has no {missing_splits} split(s); found {list(utterances)}.")

    dialogues = {}
    for split, dataset in utterances.items():
        if split not in ("train", "validation", "test"):
            continue
        for modality in data_args.modalities:
            column, standard = data_args.feature_column(modality), f"{modality}_features"
            if column not in dataset.column_names:
                raise ValueError(
                    f"{data_args.data_dir} (split {split!r}) has no {column!r} column for the {modality} modality. "
                    "Extract features first (`hf-erc extract-features`), point --data_dir to a feature file, or "
                    f"set --{modality}_feature_column / --modalities."
                )
            if column != standard:
                if standard in dataset.column_names:
                    dataset = dataset.remove_columns(standard)
                dataset = dataset.rename_column(column, standard)
        if split == "train" and data_args.max_turns is not None:
            dataset = dataset.filter(
                lambda turns: [turn < data_args.max_turns for turn in turns], input_columns="turn", batched=True
            )
        columns = [name for name in DIALOGUE_COLUMNS if name in dataset.column_names]
        columns += [f"{modality}_features" for modality in data_args.modalities]
        grouped = group_dialogues(dataset, columns=columns)
        limit = data_args.max_train_dialogues if split == "train" else data_args.max_eval_dialogues
        if limit is not None:
            grouped = grouped.select(range(min(limit, len(grouped))))
        dialogues[split] = grouped
    return DatasetDict(dialogues)


def _feature_pickle(data_args: ERCDataArguments) -> Path | None:
    from ..data.feature_files import FEATURE_FILE_NAMES

    path = Path(data_args.data_dir)
    if path.is_file() and path.suffix == ".pkl":
        return path
    candidate = path / FEATURE_FILE_NAMES[data_args.dataset_name]
    return candidate if candidate.is_file() else None


def _load_utterances(data_args: ERCDataArguments):
    if data_args.data_dir is None:
        raise ValueError("--data_dir is required: a raw release, a prepared Parquet folder or a feature pickle.")
    if not Path(data_args.data_dir).exists():
        raise FileNotFoundError(f"--data_dir {data_args.data_dir} does not exist.")
    pickle_path = _feature_pickle(data_args)
    if pickle_path is not None:
        from ..data.feature_files import read_feature_pickle

        return read_feature_pickle(pickle_path, data_args.dataset_name)
    from ..data.prepare import load_erc_dataset

    return load_erc_dataset(data_args.dataset_name, data_args.data_dir)


def feature_dims(dataset, modalities: Sequence[str]) -> dict[str, int]:
    """Size of each modality's feature vectors in a dialogue dataset (the first present vector), checked for agreement."""
    dims = {}
    for modality in modalities:
        column = f"{modality}_features"
        sizes = set()
        for dialogue in dataset.select(range(min(64, len(dataset))))[column]:
            sizes.update(len(vector) for vector in dialogue if vector is not None)
        if not sizes:
            raise ValueError(f"No {column} vector found in the first dialogues of the training split.")
        if len(sizes) > 1:
            raise ValueError(f"The {column} vectors of the training split have different sizes {sorted(sizes)}.")
        dims[modality] = sizes.pop()
    return dims


def speaker_vocab(data_args: ERCDataArguments) -> dict[str, int] | None:
    """Speaker name -> id, or ``None`` for ids by first appearance in each dialogue.

    IEMOCAP speakers are ``M``/``F`` (SDT: ``M`` -> 0, ``F`` -> 1) and feature-pickle MELD speakers
    are the one-hot slots (``speaker_<i>`` -> i); MELD character names are numbered by first
    appearance (capped at ``num_speakers``). ``--speaker_vocab_file`` (JSON) replaces all of this.
    """
    from ..data.feature_files import feature_file_speaker_vocab

    if data_args.speaker_vocab_file is not None:
        with open(data_args.speaker_vocab_file, encoding="utf-8") as file:
            vocab = json.load(file)
        if not isinstance(vocab, dict) or not all(isinstance(value, int) for value in vocab.values()):
            raise ValueError(f"{data_args.speaker_vocab_file}: expected a JSON object of speaker name -> integer id.")
        return vocab
    if data_args.dataset_name == "iemocap" or _feature_pickle(data_args) is not None:
        return feature_file_speaker_vocab(data_args.dataset_name)
    return None


# ---- Model --------------------------------------------------------------------------------


def build_model(model_args: ERCModelArguments, data_args: ERCDataArguments, dims: dict[str, int]) -> PreTrainedModel:
    """The model from ``model_name_or_path`` or from its dataset preset, with feature sizes matching the data."""
    entry = _registry_entry(model_args.model_type)
    if model_args.stage not in entry.stages:
        raise ValueError(
            f"--stage {model_args.stage} does not apply to {model_args.model_type}, which trains in stage(s) "
            f"{list(entry.stages)}."
        )
    config_class, model_class = entry.load_classes()
    overrides = dict(model_args.config_overrides)
    if model_args.model_name_or_path is not None:
        model = model_class.from_pretrained(model_args.model_name_or_path, **overrides)
    else:
        for modality, dim in dims.items():
            key = f"{modality}_dim"
            if key in overrides and overrides[key] != dim:
                raise ValueError(
                    f"config_overrides sets {key}={overrides[key]} but the {modality} features of {data_args.data_dir} "
                    f"have {dim} values: remove the override or use the matching features."
                )
            overrides[key] = dim
        preset = model_args.preset or data_args.dataset_name
        config = entry.preset_builder(config_class, preset, list(data_args.modalities), overrides)
        model = model_class(config)
    config = model.config
    for modality, dim in dims.items():
        expected = getattr(config, f"{modality}_dim", None)
        if expected is not None and expected != dim:
            raise ValueError(
                f"{model_args.model_name_or_path} expects {expected}-d {modality} features but {data_args.data_dir} "
                f"has {dim}-d ones: train from the preset instead, or use the features it was trained on."
            )
    return model


def load_teacher(distillation_args: DistillationArguments) -> PreTrainedModel | None:
    """The frozen teacher of a distillation stage, any registered hf_erc model (read with ``AutoModel``)."""
    if distillation_args.teacher_model_name_or_path is None:
        return None
    import hf_erc.models  # noqa: F401  (registers the hf_erc model types with the Auto classes)
    from transformers import AutoModel

    return AutoModel.from_pretrained(distillation_args.teacher_model_name_or_path)


# ---- Results ------------------------------------------------------------------------------


def format_results_table(results: dict[str, dict[str, float]], label_names: Sequence[str]) -> str:
    """A Markdown table of weighted F1, accuracy, macro F1 and per-class F1 (in %), one column per split."""
    splits = list(results)
    rows = [("weighted F1", "weighted_f1"), ("accuracy", "accuracy"), ("macro F1", "macro_f1")]
    rows += [(f"F1 {name}", f"f1_{name}") for name in label_names]
    lines = ["| metric | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for title, key in rows:
        cells = []
        for split in splits:
            value = results[split].get(f"{_prefix(split)}_{key}")
            cells.append("-" if value is None else f"{100 * value:.2f}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _prefix(split: str) -> str:
    return "eval" if split == "validation" else split


def weights_fingerprints(model: torch.nn.Module) -> list[str]:
    """SHA-256 of the model's weights on every process (one entry per rank, in rank order).

    Data-parallel ranks must end with identical weights; the run records these so that a
    divergence (a rank that skipped a synchronisation) is visible in ``all_results.json``.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    fingerprint = digest.hexdigest()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [fingerprint]
    fingerprints = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(fingerprints, fingerprint)
    return fingerprints


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


# ---- Entry point --------------------------------------------------------------------------


def _setup(argv):
    model_args, data_args, distillation_args, training_args = parse_arguments(argv)
    dialogues = load_dialogue_datasets(data_args)
    dims = feature_dims(dialogues["train"], data_args.modalities)
    model = build_model(model_args, data_args, dims)
    teacher = load_teacher(distillation_args)
    return model_args, data_args, distillation_args, training_args, dialogues, dims, model, teacher


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
    from ..data.collators import DialogueCollator

    try:
        model_args, data_args, distillation_args, training_args, dialogues, dims, model, teacher = _setup(argv)
        checkpoint = _resolve_checkpoint(training_args)
    except (FileNotFoundError, ValueError) as error:
        # Configuration and data errors name the file and the fix: show them without a traceback.
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2

    # Stored in the config so that inference (hf_erc.pipelines) numbers speakers and names labels as training did.
    model.config.speaker_vocab = speaker_vocab(data_args)
    model.config.dataset_name = data_args.dataset_name
    collator = DialogueCollator(
        modalities=data_args.modalities,
        feature_dims=dims,
        speaker_vocab=model.config.speaker_vocab,
        num_speakers=data_args.num_speakers or getattr(model.config, "num_speakers", None),
    )
    # The Trainer would push at every save (and fail offline); the run publishes once, at the end, with its card.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    trainer = ERCTrainer(
        model=model,
        args=training_args,
        train_dataset=dialogues["train"],
        eval_dataset=dialogues["validation"],
        data_collator=collator,
        teacher_model=teacher,
        distillation_args=distillation_args,
    )
    logger.info(
        f"Training {model_args.model_type} on {data_args.dataset_name} ({', '.join(data_args.modalities)}) with "
        f"{training_args.world_size} process(es): {len(dialogues['train'])} train, {len(dialogues['validation'])} "
        f"validation, {len(dialogues['test'])} test dialogues."
    )

    results: dict[str, dict[str, float]] = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()  # the best checkpoint's weights (load_best_model_at_end), config and code
        train_metrics = dict(train_result.metrics)
        train_metrics["train_dialogues"] = len(dialogues["train"])
        train_metrics["world_size"] = training_args.world_size
        train_metrics["global_step"] = trainer.state.global_step
        fingerprints = weights_fingerprints(trainer.model)
        train_metrics["weights_sha256_per_rank"] = ",".join(fingerprint[:16] for fingerprint in fingerprints)
        if len(set(fingerprints)) > 1:
            logger.warning(f"The processes ended with different weights: {fingerprints}.")
        if trainer.state.best_model_checkpoint is not None:
            train_metrics["best_checkpoint"] = os.path.basename(trainer.state.best_model_checkpoint)
            train_metrics["best_eval_weighted_f1"] = trainer.state.best_metric
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()

    results["validation"] = trainer.evaluate(metric_key_prefix="eval")
    trainer.log_metrics("eval", results["validation"])
    trainer.save_metrics("eval", results["validation"])
    if training_args.do_predict:
        results["test"] = trainer.predict(dialogues["test"], metric_key_prefix="test").metrics
        trainer.log_metrics("test", results["test"])
        trainer.save_metrics("test", results["test"])

    if trainer.is_world_process_zero():
        table = format_results_table(results, trainer.emotion_names)
        print(f"\nResults of {training_args.output_dir} (%):\n{table}\n", flush=True)
        Path(training_args.output_dir, "results.md").write_text(table + "\n", encoding="utf-8")
        if training_args.do_train:
            return finalize_checkpoint(training_args, model_args, data_args, push_to_hub)
    return 0


def finalize_checkpoint(training_args, model_args, data_args, push_to_hub: bool) -> int:
    """Make ``output_dir`` a publishable checkpoint: encoder record, JSON arguments, model card; push if asked.

    ``save_model`` also writes ``training_args.bin`` (a pickle); it is replaced by
    ``training_args.json`` so the published folder holds no pickle.
    """
    from ..features.extract import ENCODERS_FILE
    from ..hub import HubUploadError, push_checkpoint, write_model_card

    output_dir = Path(training_args.output_dir)
    encoders = Path(data_args.data_dir) / ENCODERS_FILE if data_args.data_dir else None
    if encoders is not None and encoders.is_file():
        (output_dir / ENCODERS_FILE).write_text(encoders.read_text(encoding="utf-8"), encoding="utf-8")
    (output_dir / "training_args.bin").unlink(missing_ok=True)
    (output_dir / "training_args.json").write_text(training_args.to_json_string(), encoding="utf-8")
    summary = {
        "model_type": model_args.model_type,
        "stage": model_args.stage,
        "dataset": data_args.dataset_name,
        "modalities": ", ".join(data_args.modalities),
        "epochs": training_args.num_train_epochs,
        "learning_rate": training_args.learning_rate,
        "batch_size_per_device (dialogues)": training_args.per_device_train_batch_size,
        "processes": training_args.world_size,
        "seed": training_args.seed,
        "best model selected on": training_args.metric_for_best_model,
    }
    (output_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    repo_id = training_args.hub_model_id or output_dir.name
    write_model_card(output_dir, repo_id, dataset_name=data_args.dataset_name)
    if push_to_hub:
        try:
            url = push_checkpoint(output_dir, repo_id, private=bool(training_args.hub_private_repo), token=training_args.hub_token)
        except HubUploadError as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 1
        print(f"Pushed {output_dir} to {url}")
    return 0
