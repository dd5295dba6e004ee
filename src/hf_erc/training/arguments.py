"""The arguments of a training run and how they are read.

Five dataclasses, parsed with ``transformers.HfArgumentParser``: :class:`ERCModelArguments`, :class:`ERCDataArguments`,
:class:`DistillationArguments`, :class:`ERCTrainingArguments` (``transformers.TrainingArguments`` with ERC defaults)
and :class:`~hf_erc.training.teachers.TeacherPeftArguments`. :class:`RunArguments` holds one of each: what
:func:`hf_erc.training.train` takes. A YAML config file holds fields of all five; the command line
(:func:`parse_run_arguments`: ``scripts/train.py``, ``hf-erc train``) or Python values
(:meth:`RunArguments.from_config`) override any of them, through the same conversions and checks.
"""

import argparse
import json
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from ..distributed import accelerator_available
from .teachers import TeacherPeftArguments

MODALITIES = ("text", "audio", "video")


def _parse_json_dict(value: Any, name: str) -> dict[str, Any]:
    """Accept a dict (from YAML) or a JSON object string (from the command line)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"--{name} must be a JSON object such as '{{\"dropout\": 0.1}}': {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--{name} must be a mapping of field name to value, got {type(value).__name__}.")
    return value


@dataclass
class ERCModelArguments:
    """Which model to train, from which weights, with which configuration."""

    model_type: str = field(
        default="sdt",
        metadata={"help": "Model family: a recipe of hf_erc.training.recipes.RECIPES (sdt, telme, magtkd, cmath)."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoint (folder or Hub id) whose weights and config training starts from, e.g. to fine-tune "
            "or to continue from an earlier stage. Without it the model is built from the dataset preset."
        },
    )
    preset: str | None = field(
        default=None,
        metadata={"help": "Dataset preset of the configuration (`for_dataset(preset)`); defaults to dataset_name."},
    )
    config_overrides: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Fields of the model config to replace, a mapping in YAML or a JSON object on the command "
            "line, e.g. '{\"hidden_size\": 256, \"dropout\": 0.3}'."
        },
    )
    stage: str | None = field(
        default=None,
        metadata={
            "help": "Training stage, one of the recipe's stages (single-stage families need none). TelME: teacher, "
            "student (distilled from --teacher_model_name_or_path) or fusion. MAGTKD: text, audio, video "
            "(cross-entropy), kd (an audio or video model distilled from the text model --teacher_model_name_or_path), "
            "fusion, or features (the fusion on extracted features, e.g. the authors' first-stage pickles). SDT and "
            "CMATH: full."
        },
    )
    processor_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Where a student stage reads its audio feature extractor / video image processor (defaults to "
            "--model_name_or_path; without a preprocessor_config.json there, the reference's settings are used)."
        },
    )
    audio_student_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Fusion stage: the trained audio student (TelME) or distilled audio model (MAGTKD)."},
    )
    video_student_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Fusion stage: the trained video student (TelME) or video model (MAGTKD: the distilled one on "
            "MELD, the stage-1 one on IEMOCAP)."
        },
    )

    def __post_init__(self):
        self.config_overrides = _parse_json_dict(self.config_overrides, "config_overrides")


@dataclass
class ERCDataArguments:
    """Which dataset, where it is, and how dialogues become batches."""

    dataset_name: Literal["meld", "iemocap"] = field(default="meld", metadata={"help": "Dataset (sets the label set)."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "A raw release folder, a prepared Parquet folder (`hf-erc prepare`) or one with feature columns "
            "(`hf-erc extract-features`); read with hf_erc.data.load_erc_dataset."
        },
    )
    modalities: list[str] = field(
        default_factory=lambda: list(MODALITIES),
        metadata={"help": "Modalities the model reads, a subset of text audio video."},
    )
    text_feature_column: str = field(default="text_features", metadata={"help": "Column of the text features."})
    audio_feature_column: str = field(default="audio_features", metadata={"help": "Column of the audio features."})
    video_feature_column: str = field(default="video_features", metadata={"help": "Column of the video features."})
    max_turns: int | None = field(
        default=None,
        metadata={"help": "Keep at most this many turns of each dialogue (the first ones); None keeps all."},
    )
    num_speakers: int | None = field(
        default=None,
        metadata={
            "help": "Number of speaker ids the model embeds; speakers beyond it share the last id. Defaults to the "
            "model preset's value (SDT: 9 on MELD, 2 on IEMOCAP)."
        },
    )
    speaker_vocab_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON object speaker name -> id. Without it: IEMOCAP M/F -> 0/1, feature-pickle MELD slots -> "
            "their index, MELD names -> order of first appearance in the dialogue."
        },
    )
    max_train_dialogues: int | None = field(
        default=None, metadata={"help": "Train on the first N training dialogues only (smoke tests, debugging)."}
    )
    max_eval_dialogues: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N validation and test dialogues only."}
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Utterance-level text teachers: most tokens per input, prompt and mask included; the oldest "
            "context is cut first. Defaults to what the model's positions allow (TelME: text_max_length)."
        },
    )
    preprocessing: Literal["default", "reference"] = field(
        default="default",
        metadata={
            "help": "Utterance-level models (TelME, MAGTKD): 'reference' builds prompts, audio windows and frames as "
            "the authors' code does (per model and dataset); 'default' is hf_erc's choice. Saved with the processor; "
            "see docs/models/telme.md and docs/models/magtkd.md."
        },
    )
    max_context_turns: int | None = field(
        default=None, metadata={"help": "Text teachers: keep at most this many previous turns as context."}
    )
    blank_modalities: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Evaluation-only ablation of a fused model (the fusions, SDT, CMATH): after the final test "
            "evaluation, evaluate the test split again with each of these modalities blanked in turn, marked missing "
            "for every utterance as a missing clip is (modality_mask False, features zero), and record the scores as "
            "test_blank_<modality>_* metrics. Training and the choice of the best epoch see every modality."
        },
    )
    embedding_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where stages that read frozen models' outputs (TelME student: the teacher's logits and "
            "embeddings; fusion: the three utterance embeddings) cache them, keyed by checkpoints and data. "
            "Defaults to $HF_HOME/hf_erc/embeddings."
        },
    )

    def __post_init__(self):
        if isinstance(self.modalities, str):
            self.modalities = self.modalities.split()
        unknown = [modality for modality in self.modalities if modality not in MODALITIES]
        if unknown or not self.modalities:
            raise ValueError(f"--modalities must be a non-empty subset of {list(MODALITIES)}, got {self.modalities}.")
        # Canonical order, so that configs and checkpoints agree whatever order the user wrote.
        self.modalities = [modality for modality in MODALITIES if modality in self.modalities]
        if isinstance(self.blank_modalities, str):
            self.blank_modalities = self.blank_modalities.split()
        self.blank_modalities = list(self.blank_modalities or [])
        not_read = [modality for modality in self.blank_modalities if modality not in self.modalities]
        if not_read:
            raise ValueError(
                f"--blank_modalities {not_read}: the model does not read them (--modalities {self.modalities})."
            )
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"--max_turns must be at least 1, got {self.max_turns}.")

    def feature_column(self, modality: str) -> str:
        """Dataset column holding ``modality``'s utterance features."""
        return getattr(self, f"{modality}_feature_column")


@dataclass
class DistillationArguments:
    """Distillation from a separate, frozen teacher model (TelME and MAGTKD students).

    The student's own loss (from its ``forward``) is weighted by ``ce_weight``; the trainer adds
    ``response_kd_weight`` × the response-based loss between the ``logits_key`` outputs and
    ``feature_kd_weight`` × the feature-based loss between the ``hidden_state_key`` outputs (see
    hf_erc.training.losses). Without a teacher only the student's own loss is used.
    """

    teacher_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Trained teacher checkpoint; frozen and run in eval mode."}
    )
    temperature: float = field(default=4.0, metadata={"help": "Temperature of the response-based KD."})
    response_kd_type: Literal["kl", "dist"] = field(
        default="kl",
        metadata={
            "help": "'kl': T²·KL(teacher_T ‖ student_T) (Hinton); 'dist': the correlation-based logit loss of TelME's "
            "released code (inter- and intra-class Pearson correlation, DIST)."
        },
    )
    response_kd_weight: float = field(default=1.0, metadata={"help": "Weight of the response-based KD term."})
    feature_kd_weight: float = field(default=0.0, metadata={"help": "Weight of the feature-based KD term."})
    feature_kd_temperature: float = field(
        default=1.0, metadata={"help": "Temperature of the batch-similarity softmax of the feature KD (TelME: 1)."}
    )
    ce_weight: float = field(default=1.0, metadata={"help": "Weight of the student's own loss."})
    logits_key: str = field(default="logits", metadata={"help": "Output of both models compared by response KD."})
    hidden_state_key: str | None = field(
        default=None,
        metadata={
            "help": "Output of both models compared by feature KD (e.g. 'utterance_embeddings'); required when "
            "feature_kd_weight > 0."
        },
    )
    cache_teacher_outputs: bool = field(
        default=True,
        metadata={
            "help": "Run the frozen teacher once over the training set before training and distil from its cached "
            "outputs (same values: the teacher is frozen and in eval mode). False runs it on every batch."
        },
    )

    def __post_init__(self):
        if self.temperature <= 0 or self.feature_kd_temperature <= 0:
            raise ValueError("--temperature and --feature_kd_temperature must be positive.")
        if self.feature_kd_weight > 0 and not self.hidden_state_key:
            raise ValueError("--feature_kd_weight > 0 needs --hidden_state_key: the model output holding the embeddings.")


@dataclass
class ERCTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the defaults of ERC training and the reference optimizer option.

    Changed defaults: train and test, evaluate and save every epoch, keep the best checkpoint on validation
    weighted F1, bucket dialogues by their ``length`` column, keep every dataset column (the
    dialogue collator needs ``speaker``, ``emotion`` and the feature columns, which are not
    ``forward`` arguments), and report to no tracker. On a machine without an accelerator ``scripts/train.py``
    also defaults ``use_cpu`` to true, so that the processes of ``accelerate launch`` train on the CPU together.
    """

    eval_strategy: IntervalStrategy | str = field(default="epoch", metadata={"help": "When to evaluate: 'no', 'steps' or 'epoch'."})
    save_strategy: SaveStrategy | str = field(default="epoch", metadata={"help": "When to save: 'no', 'steps', 'epoch' or 'best'."})
    logging_strategy: IntervalStrategy | str = field(default="epoch", metadata={"help": "When to log: 'no', 'steps' or 'epoch'."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Reload the best checkpoint at the end."})
    metric_for_best_model: str | None = field(
        default="eval_weighted_f1", metadata={"help": "Validation metric selecting the best checkpoint."}
    )
    greater_is_better: bool | None = field(default=True, metadata={"help": "Whether a larger metric is better."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best is always kept)."})
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={
            "help": "Training sampler: 'group_by_length' buckets dialogues by length (column `length_column_name`).",
            "choices": ["random", "sequential", "group_by_length", "batch_rebalance"],
        },
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep all columns: the dialogue collator reads non-forward columns."}
    )
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Trackers to report to."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoint folder to resume training from; bare, 'last' or 'true': the newest complete checkpoint "
            "in output_dir (after a crash, rerun the same command with this flag).",
            "nargs": "?",
            "const": "last",
        },
    )
    do_train: bool = field(default=True, metadata={"help": "Train (otherwise only evaluate the given model)."})
    do_predict: bool = field(default=True, metadata={"help": "Evaluate the final model on the test split."})
    decay_all_parameters: bool = field(
        default=False,
        metadata={
            "help": "Apply AdamW's weight decay to every parameter, biases and LayerNorm weights included, as the "
            "TelME and MAGTKD authors' `torch.optim.AdamW(model.parameters())` does (the Trainer exempts them)."
        },
    )
    adam_l2_regularization: bool = field(
        default=False,
        metadata={
            "help": "Optimise with torch.optim.Adam whose `weight_decay` is an L2 term added to the gradient of every "
            "parameter (the reference SDT code), instead of the Trainer's AdamW with decoupled decay that skips "
            "biases and norms. `weight_decay` gives the L2 coefficient."
        },
    )


ARGUMENT_CLASSES = (
    ERCModelArguments,
    ERCDataArguments,
    DistillationArguments,
    ERCTrainingArguments,
    TeacherPeftArguments,
)


@dataclass
class RunArguments:
    """The parsed arguments of one training run, one dataclass of each kind: what :func:`hf_erc.training.train`
    takes. Build it with :meth:`from_config` (a YAML config and Python values) or :func:`parse_run_arguments` (a
    command line)."""

    model: ERCModelArguments
    data: ERCDataArguments
    distillation: DistillationArguments
    training: ERCTrainingArguments
    peft: TeacherPeftArguments

    @classmethod
    def from_config(cls, config: str | os.PathLike | None = None, **overrides: Any) -> "RunArguments":
        """The arguments of the YAML file ``config`` (``None``: the defaults), each field named in ``overrides``
        replaced by its value.

        Overrides are checked and converted as the config's values and the command line's flags are: a name that is
        no field is a :class:`ValueError`, a single value is converted as its flag's text would be
        (``num_train_epochs=2``, ``2.0`` and ``"2"`` are the same), a list or a mapping goes to a field that takes
        one, and the dataclasses' own checks raise their :class:`ValueError`. A problem of the file is a one-line
        error naming it (:func:`read_yaml_config`).
        """
        parser = build_argument_parser()
        if config is not None:
            parser.set_defaults(**_parser_defaults(parser, read_yaml_config(config), source=str(config)))
        values = {
            name: os.fspath(value) if isinstance(value, os.PathLike) else value
            for name, value in overrides.items()
        }
        parser.set_defaults(**_parser_defaults(parser, values, source="overrides"))
        parser.exit_on_error = False  # a value its field cannot take is a ValueError here, not the end of the process
        try:
            *arguments, _ = parser.parse_args_into_dataclasses(args=[], look_for_args_file=False)
        except argparse.ArgumentError as error:
            name = (error.argument_name or "").split("/")[0].lstrip("-")
            source = "overrides" if name in overrides or config is None else str(config)
            raise ValueError(f"{source}: {error}") from None
        return cls(*arguments)


def build_argument_parser() -> HfArgumentParser:
    """The parser of a training command line: every field of the five dataclasses as a flag, and ``--config``.

    On a machine without an accelerator ``use_cpu`` defaults to true: the processes of ``accelerate launch
    --multi_gpu`` train one model together only on the CPU (gloo), and the Trainer goes there with ``use_cpu``. A
    config or flag that sets it still decides.
    """
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.add_argument(
        "--config", default=None, help="YAML file of argument values; command-line flags override its values."
    )
    if not accelerator_available():
        parser.set_defaults(use_cpu=True)
    return parser


def parse_run_arguments(argv: Sequence[str] | None = None) -> RunArguments:
    """The arguments of a command line (default ``sys.argv[1:]``): ``--config file.yaml`` and flags, which win.

    The config's values become the parser's defaults, so a flag given on the command line replaces them and
    everything goes through the same conversions and checks. A value a flag cannot take ends the process as
    ``argparse`` does (usage and exit status 2).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_argument_parser()
    config_parser = argparse.ArgumentParser(add_help=False)
    config_parser.add_argument("--config", default=None)
    known, _ = config_parser.parse_known_args(argv)
    if known.config is not None:
        parser.set_defaults(**_parser_defaults(parser, read_yaml_config(known.config), source=known.config))
    # The last item is the namespace of `--config`, already read above.
    *arguments, _ = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    return RunArguments(*arguments)


def parse_command_line_overrides(flags: Sequence[str]) -> dict[str, Any]:
    """The fields that the training flags ``flags`` set (``--config`` aside), as written: field name -> the text
    (a list of texts for a field that takes several; the flag's constant for a bare flag such as ``--do_train``).

    These are overrides of :meth:`RunArguments.from_config`, which converts them as a command line's values, and
    they turn back into the same flags with :func:`command_line_flags`. An unknown flag or a value a flag's choices
    refuse is a :class:`ValueError`.
    """
    parser = HfArgumentParser(ARGUMENT_CLASSES, exit_on_error=False)
    for action in parser._actions:
        action.default = argparse.SUPPRESS  # only the flags given end up in the namespace
        action.type = None  # keep the text; RunArguments.from_config converts it
    try:
        namespace, unknown = parser.parse_known_args(list(flags))
    except argparse.ArgumentError as error:
        raise ValueError(str(error)) from None
    if unknown:
        raise ValueError(f"unrecognized training arguments: {' '.join(unknown)}")
    return vars(namespace)


def command_line_flags(overrides: Mapping[str, Any]) -> list[str]:
    """The training flags that set ``overrides`` (field name -> value), for a command line of ``hf-erc train``."""
    flags = []
    for name, value in overrides.items():
        if value is None:
            raise ValueError(f"{name}=None cannot be written as a command-line flag; set it in the config instead.")
        if isinstance(value, (list, tuple)):
            flags += [f"--{name}", *map(_flag_text, value)]
        else:
            flags += [f"--{name}", _flag_text(value)]
    return flags


def _flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


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


def _parser_defaults(parser: argparse.ArgumentParser, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` (of the config file or the overrides named by ``source``) as the parser's defaults: every key a
    known argument, every value of a shape its argument takes. Single values become text, so the parser converts
    and checks them as it does a flag's."""
    actions = {action.dest: action for action in parser._actions if action.dest not in ("help", "config")}
    unknown = sorted(set(values) - set(actions), key=str)
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown}. Keys are the fields of ERCModelArguments, ERCDataArguments, "
            "DistillationArguments, TrainingArguments and TeacherPeftArguments (see `python scripts/train.py --help`)."
        )
    shapes = _field_shapes()
    return {
        key: _parser_default(source, key, value, actions[key], shapes.get(key, ())) for key, value in values.items()
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


def _parser_default(source: str, key: str, value: Any, action: argparse.Action, shapes: tuple[type, ...]) -> Any:
    """``value`` checked against what the argument ``key`` takes: a single value, a list of them, or a mapping."""
    takes_list = list in shapes or action.nargs in ("+", "*") or isinstance(action.nargs, int) and action.nargs > 1
    if value is None or isinstance(value, dict) and dict in shapes:
        return value
    if isinstance(value, list) and takes_list:
        wrong = [item for item in value if not isinstance(item, _SCALARS)]
        if wrong:
            raise ValueError(
                f"{source}: {key} takes a list of single values, but it holds a {type(wrong[0]).__name__}."
            )
        return value
    if isinstance(value, _SCALARS):
        return value if isinstance(value, str) else str(value)
    takes = " or ".join(["a single value"] + ["a list"] * takes_list + ["a mapping"] * (dict in shapes))
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise ValueError(f"{source}: {key} takes {takes}, got a {type(value).__name__} ({shown}).")
