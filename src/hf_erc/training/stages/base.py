"""What every training stage is: a small object that, given the run's arguments, builds the model to train, the
data it trains on and the collator; plus the helpers stages share (loading a stage checkpoint once, building
a stage model from a checkpoint, an encoder or a preset)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from ... import models  # noqa: F401  (registers the hf_erc configurations with AutoConfig)
from ...features.encoders import resolve_encoder_path
from ..arguments import RunArguments
from ..processors import pretrained_preprocessor

# `recipe` arguments are hf_erc.training.recipes.Recipe objects (not imported here: the recipes import the stages).


@dataclass
class StageSetup:
    """What a stage trains and on what.

    Args:
        model: the model the Trainer optimises.
        datasets: ``train``/``validation``/``test`` rows, in the form ``data_collator`` reads.
        data_collator: rows -> batch of ``model.forward`` keyword arguments (plus ``labels``).
        teacher_model: a frozen teacher run on every training batch (``None``: no teacher, or cached outputs).
        finalize_model: applied to the trained model before the final save (e.g. ``fold_peft``).
        save_with_model: objects with ``save_pretrained`` written next to the model (tokenizer, processor).
        metrics: numbers about the data view recorded with the training metrics (e.g. skipped utterances).
    """

    model: PreTrainedModel
    datasets: Mapping[str, Any]
    data_collator: Callable[[Sequence[Mapping[str, Any]]], dict[str, torch.Tensor]]
    teacher_model: nn.Module | None = None
    finalize_model: Callable[[PreTrainedModel], PreTrainedModel] | None = None
    save_with_model: list[Any] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


class Stage:
    """One training stage of a recipe. Subclasses say what one training row is (``reads``), what checkpoint they
    write (``writes``), how a model card describes that checkpoint's inputs (``usage``), which class they train
    (:meth:`model_class`) and how (:meth:`setup`)."""

    reads: ClassVar[str] = ""
    writes: ClassVar[str] = ""
    usage: ClassVar[str] = ""
    # What one dataset row is, for messages and metric names ("utterances" or "dialogues").
    unit: ClassVar[str] = "utterances"

    def model_class(self, recipe, modalities: Sequence[str]) -> type[PreTrainedModel]:
        """The class this stage trains for ``--modalities`` (a clear error when they do not fit the stage)."""
        raise NotImplementedError

    def setup(self, recipe, args: RunArguments) -> StageSetup:
        raise NotImplementedError


# ---- Shared by the stages ------------------------------------------------------------------


# Options naming each stage checkpoint a later stage reads.
STAGE_CHECKPOINT_OPTIONS = {
    "text": "--teacher_model_name_or_path",
    "audio": "--audio_student_name_or_path",
    "video": "--video_student_name_or_path",
}


def text_context_turns(args: RunArguments, text_model, text_path) -> int | None:
    """The context window of the prompts built by the stages that run a trained text model (the KD teacher, the
    fusion): the one its checkpoint records (``text_max_context_turns``, written by the text stage), or
    ``--max_context_turns`` for a checkpoint that records none (``None``: all turns). A run asking for another window
    than the recorded one is an error: the text model's embeddings of prompts it was not trained on are not what its
    classifier reads."""
    recorded = getattr(text_model.config, "text_max_context_turns", None)
    requested = args.data.max_context_turns
    if requested is not None and recorded is not None and requested != recorded:
        raise ValueError(
            f"--max_context_turns {requested}, but the text model {text_path} was trained with {recorded} context "
            "turns: leave --max_context_turns out (the fusion reads the text model's own) or set it to that value."
        )
    return requested if requested is not None else recorded


def preset_name(args: RunArguments) -> str:
    return args.model.preset or args.data.dataset_name


def preset_config(recipe, args: RunArguments, modalities: Sequence[str] | None, **fields):
    """``recipe.config_class.for_dataset`` of the run's preset, with ``--config_overrides`` and ``fields``."""
    overrides = {**dict(args.model.config_overrides), **fields}
    return recipe.config_class.for_dataset(preset_name(args), modalities=modalities, **overrides)


def _is_checkpoint_of(config, model_class) -> bool:
    return getattr(config, "model_type", None) == model_class.config_class.model_type


def _auto_config(name_or_path: str):
    return AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)


def build_stage_model(recipe, model_class, args: RunArguments, name_or_path: str | None, **text_fields):
    """A stage model (TelME, MAGTKD): a checkpoint of that stage, or a pretrained encoder with a fresh head
    (``from_encoder_pretrained``), or (no path) the dataset preset with ``--config_overrides`` (``text_fields``
    set on its text encoder's configuration)."""
    overrides = dict(args.model.config_overrides)
    if name_or_path is None:
        config = preset_config(recipe, args, modalities=None)
        for name, value in text_fields.items():
            setattr(config.text_config, name, value)
        return model_class(config)
    path = resolve_encoder_path(name_or_path)
    config = _auto_config(path)
    if _is_checkpoint_of(config, model_class):
        return model_class.from_pretrained(path, use_safetensors=True, **overrides)
    return model_class.from_encoder_pretrained(path, dataset=preset_name(args), **overrides)


def load_stage_checkpoint(path: str | None, model_class, what: str):
    """The trained stage checkpoint at ``path``, read once, as ``model_class``; a clear error when the path is
    missing or holds another stage."""
    if path is None:
        raise ValueError(f"This stage needs {what}.")
    config = _auto_config(path)
    if not _is_checkpoint_of(config, model_class):
        raise ValueError(
            f"{path} is not a {model_class.__name__} checkpoint ({what}): pass the output_dir of that stage."
        )
    return model_class.from_pretrained(path, config=config, use_safetensors=True)


def check_same_labels(model, reference, reference_name: str) -> None:
    if dict(model.config.id2label) != dict(reference.config.id2label):
        raise ValueError(
            f"The model predicts {model.config.id2label} but {reference_name} predicts {reference.config.id2label}: "
            "train every stage on the same dataset (--dataset_name)."
        )


def build_stage_processor(
    recipe,
    args: RunArguments,
    config,
    max_length: int,
    tokenizer_source: str | None,
    audio_source: str | None = None,
    video_source: str | None = None,
):
    """The processor of ``recipe`` for this run's dataset and ``--preprocessing`` (its class's ``from_preset``, the
    preset computed once, from ``config``): every input of the stage's models is built by it, and it is saved with
    the stage's checkpoint.

    Its tokenizer is ``--tokenizer_name_or_path`` or ``tokenizer_source``'s, to which it adds the speaker markers its
    preset writes. In default preprocessing the feature extractor and image processor come from ``audio_source``/
    ``video_source``: a folder holding a saved processor (a stage checkpoint) or an encoder's own preprocessor (e.g.
    the Hub id of data2vec-audio-base-960h); failing that, the reference's. Reference preprocessing always uses the
    authors'.
    """
    processor_class = recipe.processor_class
    preprocessors = {}
    if args.data.preprocessing != "reference":
        preprocessors = {
            "feature_extractor": pretrained_preprocessor(processor_class, audio_source, "audio"),
            "image_processor": pretrained_preprocessor(processor_class, video_source, "video"),
        }
    tokenizer = _load_stage_tokenizer(args.peft.tokenizer_name_or_path or tokenizer_source)
    return processor_class.from_preset(
        args.data.dataset_name, args.data.preprocessing, tokenizer, config, max_length, **preprocessors
    )


def _load_stage_tokenizer(name_or_path: str | None):
    """The text model's tokenizer at ``name_or_path`` (an encoder name such as ``minilm`` resolves to its folder)."""
    if name_or_path is None:
        raise ValueError(
            "The text model's prompts (and the processor of the audio/video stages) need a tokenizer: pass "
            "--model_name_or_path (a text encoder such as roberta-large, or 'minilm') or --tokenizer_name_or_path "
            "(the text model's tokenizer)."
        )
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path(name_or_path), trust_remote_code=False)
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(f"The tokenizer of {name_or_path} has no mask or pad token; the prompt needs both.")
    return tokenizer
