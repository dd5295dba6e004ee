"""Train and evaluate any hf_erc model: the code behind ``scripts/train.py``.

    python scripts/train.py --config configs/sdt-meld.yaml [--any_field value ...]
    accelerate launch [--multi_gpu --num_processes N] scripts/train.py --config configs/sdt-meld.yaml

The YAML file holds fields of :class:`ERCModelArguments`, :class:`ERCDataArguments`,
:class:`DistillationArguments`, :class:`ERCTrainingArguments` (``TrainingArguments``) and
:class:`~hf_erc.teachers.TeacherPeftArguments`; command-line flags override it. ``MODEL_REGISTRY``
says, for each ``--model_type`` and ``--stage``, which model class trains and how its data view,
collator and model are built (:class:`StageEntry`; the TelME stages live in
:mod:`hf_erc.training.stages`). Dialogue-level models (SDT) train on dialogue rows of feature
vectors, built from their dataset preset (feature sizes taken from the data). Every stage trains
with :class:`ERCTrainer` keeping the best validation weighted F1, evaluates that model on
validation and test, prints a table of the results and writes the model (safetensors, config and
code, plus a stage's tokenizer/processor), ``all_results.json``, ``test_results.json`` and the
confusion matrices to ``output_dir``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, PretrainedConfig, PreTrainedModel, set_seed
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging

from ..teachers import TeacherPeftArguments
from .arguments import DistillationArguments, ERCDataArguments, ERCModelArguments, ERCTrainingArguments
from .stages import (
    MAGTKD_FAMILY,
    TELME_FAMILY,
    StageContext,
    StageSetup,
    setup_magtkd_fusion,
    setup_media_stage,
    setup_telme_fusion,
    setup_text_stage,
    stage_preset,
)
from .trainer import ERCTrainer

logger = logging.get_logger(__name__)

ARGUMENT_CLASSES = (
    ERCModelArguments,
    ERCDataArguments,
    DistillationArguments,
    ERCTrainingArguments,
    TeacherPeftArguments,
)
# Columns a dialogue-level batch is built from (besides the feature columns).
DIALOGUE_COLUMNS = ("dialogue_id", "turn", "speaker", "emotion")


# ---- Model registry -----------------------------------------------------------------------


def _for_dataset(config_class: type[PretrainedConfig], preset: str, modalities: list[str], overrides: dict[str, Any]):
    return config_class.for_dataset(preset, modalities=modalities, **overrides)


@dataclass(frozen=True)
class StageEntry:
    """How one stage of a model family trains (see :mod:`hf_erc.training.stages`).

    Args:
        model_class: the `PreTrainedModel` the stage trains, a class name in the family's module; or a mapping
            modality -> class name for stages that train one model per modality (TelME's students, MAGTKD's
            audio/video/kd stages: the modality is the non-text one of ``--modalities``).
        setup: ``(StageContext) -> StageSetup``: builds the model (how it is initialised), the dataset view
            and the collator, and loads any teacher.
        data_view: what one training row is, for messages.
    """

    model_class: str | Mapping[str, str]
    setup: Callable[[StageContext], StageSetup]
    data_view: str = "dialogues"

    def model_class_name(self, stage: str, modalities: Sequence[str]) -> str:
        if isinstance(self.model_class, str):
            return self.model_class
        chosen = [modality for modality in modalities if modality in self.model_class]
        if len(chosen) != 1 or len(modalities) != 1:
            raise ValueError(
                f"--stage {stage} trains one model per modality ({sorted(self.model_class)}): pass exactly one of "
                f"them with --modalities (got {list(modalities)})."
            )
        return self.model_class[chosen[0]]


@dataclass(frozen=True)
class ModelEntry:
    """How ``scripts/train.py`` builds one model family.

    Args:
        module: module exporting the classes (imported only when the model is used).
        config_class: name of the `PretrainedConfig` subclass in `module`.
        model_class: name of the `PreTrainedModel` of the whole model.
        preset_builder: ``(config_class, preset, modalities, overrides) -> config``; by default
            ``config_class.for_dataset(preset, modalities=modalities, **overrides)``.
        stages: ``--stage`` value -> :class:`StageEntry`. A tuple of stage names (or the default) trains
            `model_class` on dialogue rows of feature vectors in each of them.
    """

    module: str
    config_class: str
    model_class: str
    preset_builder: Callable[..., PretrainedConfig] = _for_dataset
    stages: Mapping[str, StageEntry] | tuple[str, ...] = ("full",)

    def __post_init__(self):
        if not isinstance(self.stages, Mapping):
            entries = {stage: StageEntry(self.model_class, setup_dialogue_stage) for stage in self.stages}
            object.__setattr__(self, "stages", entries)

    def load_classes(self) -> tuple[type[PretrainedConfig], type[PreTrainedModel]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class), getattr(module, self.model_class)

    def stage_entry(self, model_type: str, stage: str) -> StageEntry:
        if stage not in self.stages:
            raise ValueError(
                f"--stage {stage} does not apply to {model_type}, which trains in stage(s) {list(self.stages)}."
            )
        return self.stages[stage]

    def stage_classes(self, model_type: str, stage: str, modalities: Sequence[str]):
        """The configuration class and the class ``stage`` trains."""
        name = self.stage_entry(model_type, stage).model_class_name(stage, modalities)
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class), getattr(module, name)


def setup_dialogue_stage(context: StageContext) -> StageSetup:
    """Dialogue-level models on feature vectors (SDT, CMATH): dialogue rows, ``DialogueCollator``."""
    from ..data.collators import DialogueCollator

    model_args, data_args = context.model_args, context.data_args
    dialogues = load_dialogue_datasets(data_args)
    dims = feature_dims(dialogues["train"], data_args.modalities)
    model = build_model(model_args, data_args, dims)
    # Stored in the config so that inference (hf_erc.pipelines) numbers speakers and names labels as training did.
    model.config.speaker_vocab = speaker_vocab(data_args)
    model.config.dataset_name = data_args.dataset_name
    collator = DialogueCollator(
        modalities=data_args.modalities,
        feature_dims=dims,
        speaker_vocab=model.config.speaker_vocab,
        num_speakers=data_args.num_speakers or getattr(model.config, "num_speakers", None),
    )
    return StageSetup(
        model=model,
        datasets=dialogues,
        data_collator=collator,
        teacher_model=load_teacher(context.distillation_args),
        unit="dialogues",
    )


_MEDIA_STAGE_VIEW = "utterances with decoded audio or video"
_TEXT_STAGE_VIEW = "utterances with dialogue context"

MODEL_REGISTRY: dict[str, ModelEntry] = {
    "sdt": ModelEntry("hf_erc.models.sdt", "SDTConfig", "SDTForEmotionRecognition"),
    "cmath": ModelEntry("hf_erc.models.cmath", "CMATHConfig", "CMATHForEmotionRecognition"),
    "telme": ModelEntry(
        TELME_FAMILY.module,
        "TelMEConfig",
        "TelMEForEmotionRecognition",
        preset_builder=stage_preset,
        stages={
            "teacher": StageEntry(
                TELME_FAMILY.text_model, functools.partial(setup_text_stage, family=TELME_FAMILY), _TEXT_STAGE_VIEW
            ),
            "student": StageEntry(
                {"audio": TELME_FAMILY.audio_model, "video": TELME_FAMILY.video_model},
                functools.partial(setup_media_stage, family=TELME_FAMILY, distil=True),
                _MEDIA_STAGE_VIEW,
            ),
            "fusion": StageEntry(
                "TelMEForEmotionRecognition", setup_telme_fusion, "utterances with cached embeddings"
            ),
        },
    ),
    # MAGTKD (Li et al., IJCAI 2025): text, audio and video models (cross-entropy), kd (an audio or video model
    # distilled from the frozen text model), fusion (dialogue-level, over the cached utterance embeddings).
    "magtkd": ModelEntry(
        MAGTKD_FAMILY.module,
        "MAGTKDConfig",
        "MAGTKDForEmotionRecognition",
        preset_builder=stage_preset,
        stages={
            "text": StageEntry(
                MAGTKD_FAMILY.text_model, functools.partial(setup_text_stage, family=MAGTKD_FAMILY), _TEXT_STAGE_VIEW
            ),
            "audio": StageEntry(
                {"audio": MAGTKD_FAMILY.audio_model},
                functools.partial(setup_media_stage, family=MAGTKD_FAMILY, distil=False),
                _MEDIA_STAGE_VIEW,
            ),
            "video": StageEntry(
                {"video": MAGTKD_FAMILY.video_model},
                functools.partial(setup_media_stage, family=MAGTKD_FAMILY, distil=False),
                _MEDIA_STAGE_VIEW,
            ),
            "kd": StageEntry(
                {"audio": MAGTKD_FAMILY.audio_model, "video": MAGTKD_FAMILY.video_model},
                functools.partial(setup_media_stage, family=MAGTKD_FAMILY, distil=True),
                _MEDIA_STAGE_VIEW,
            ),
            "fusion": StageEntry(
                "MAGTKDForEmotionRecognition", setup_magtkd_fusion, "dialogues of cached utterance embeddings"
            ),
        },
    ),
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
    config_class, model_class = entry.stage_classes(model_args.model_type, model_args.stage, data_args.modalities)
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
    from transformers import AutoModel

    import hf_erc.models  # noqa: F401  (registers the hf_erc model types with the Auto classes)

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
    model_args, data_args, distillation_args, training_args, peft_args = parse_all_arguments(argv)
    entry = _registry_entry(model_args.model_type)
    stage_entry = entry.stage_entry(model_args.model_type, model_args.stage)
    config_class, model_class = entry.stage_classes(model_args.model_type, model_args.stage, data_args.modalities)
    # Seed before the model is built: its initial weights must depend on --seed alone, not on whatever used the
    # random generators earlier in the process (feature extraction, another run); the Trainer seeds only later.
    set_seed(training_args.seed)
    context = StageContext(
        model_args=model_args,
        data_args=data_args,
        distillation_args=distillation_args,
        training_args=training_args,
        peft_args=peft_args,
        config_class=config_class,
        model_class=model_class,
        preset_builder=entry.preset_builder,
    )
    setup = stage_entry.setup(context)
    if training_args.train_sampling_strategy == "group_by_length" and (
        training_args.length_column_name not in setup.datasets["train"].column_names
    ):
        # Rows of equal cost (fixed-size frames, cached embeddings): nothing to bucket.
        training_args.train_sampling_strategy = "random"
    return context, setup


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
        context, setup = _setup(argv)
        training_args = context.training_args
        checkpoint = _resolve_checkpoint(training_args)
    except (FileNotFoundError, ValueError) as error:
        # Configuration and data errors name the file and the fix: show them without a traceback.
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    model_args, data_args = context.model_args, context.data_args

    # The Trainer would push at every save (and fail offline); the run publishes once, at the end, with its card.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    datasets = setup.datasets
    trainer = ERCTrainer(
        model=setup.model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=setup.data_collator,
        teacher_model=setup.teacher_model,
        distillation_args=context.distillation_args,
    )
    logger.info(
        f"Training {model_args.model_type} ({model_args.stage}: {type(setup.model).__name__}) on "
        f"{data_args.dataset_name} ({', '.join(data_args.modalities)}) with {training_args.world_size} process(es): "
        f"{len(datasets['train'])} train, {len(datasets['validation'])} validation, {len(datasets['test'])} test "
        f"{setup.unit}."
    )

    results: dict[str, dict[str, float]] = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        if setup.finalize_model is not None:
            trainer.model = setup.finalize_model(trainer.model)
        trainer.save_model()  # the best checkpoint's weights (load_best_model_at_end), config and code
        if trainer.is_world_process_zero():
            for item in setup.save_with_model:
                item.save_pretrained(training_args.output_dir)
        train_metrics = dict(train_result.metrics)
        train_metrics[f"train_{setup.unit}"] = len(datasets["train"])
        train_metrics.update(setup.metrics)
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
        results["test"] = trainer.predict(datasets["test"], metric_key_prefix="test").metrics
        trainer.log_metrics("test", results["test"])
        trainer.save_metrics("test", results["test"])

    if trainer.is_world_process_zero():
        table = format_results_table(results, trainer.emotion_names)
        print(f"\nResults of {training_args.output_dir} (%):\n{table}\n", flush=True)
        Path(training_args.output_dir, "results.md").write_text(table + "\n", encoding="utf-8")
        if training_args.do_train:
            return finalize_checkpoint(training_args, model_args, data_args, push_to_hub, setup.unit)
    return 0


def finalize_checkpoint(training_args, model_args, data_args, push_to_hub: bool, unit: str = "dialogues") -> int:
    """Make ``output_dir`` a publishable checkpoint: encoder record, JSON arguments, model card; push if asked.

    ``save_model`` also writes ``training_args.bin`` (a pickle); it is replaced by
    ``training_args.json`` so the published folder holds no pickle.
    """
    from ..features.extract import ENCODERS_FILE
    from ..hub import PAPERS, HubUploadError, push_checkpoint, write_model_card

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
        f"batch_size_per_device ({unit})": training_args.per_device_train_batch_size,
        "processes": training_args.world_size,
        "seed": training_args.seed,
        "best model selected on": training_args.metric_for_best_model,
    }
    (output_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    repo_id = training_args.hub_model_id or output_dir.name
    model_type = json.loads((output_dir / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type in PAPERS:
        write_model_card(output_dir, repo_id, dataset_name=data_args.dataset_name)
    else:
        logger.warning(f"No model card written: hf_erc.hub.PAPERS has no entry for model_type {model_type!r}.")
    if push_to_hub:
        try:
            url = push_checkpoint(
                output_dir, repo_id, private=bool(training_args.hub_private_repo), token=training_args.hub_token
            )
        except HubUploadError as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 1
        print(f"Pushed {output_dir} to {url}")
    return 0
