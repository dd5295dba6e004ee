"""How each model family trains: its stages, in the order they run.

A :class:`Recipe` is a family of the model registry (:mod:`hf_erc.models.registry`: its classes, processor and
paper) plus its training stages; ``scripts/train.py`` looks up ``--model_type`` here. Adding a model is its folder
under ``hf_erc/models``, its family in the registry and one recipe here; adding a stage is one
:class:`~hf_erc.training.stages.Stage` subclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from transformers import PretrainedConfig, PreTrainedModel, ProcessorMixin

from ..models.registry import ModelFamily, get_family, register_family
from .stages import (
    DialogueStage,
    DistilledMediaStage,
    FeatureFusionStage,
    MAGTKDFusionStage,
    MediaStage,
    Stage,
    TelMEFusionStage,
    TextStage,
)


@dataclass(frozen=True)
class Recipe:
    """How one model family is trained.

    Args:
        family: the family's classes, processor and paper (from the model registry).
        stages: ``--stage`` value -> stage, in the order they run (each reads the checkpoints of earlier ones).

    The family's class references (``config_class``, ``model_class``, ``stage_models``, ``processor_class``) are
    read through the recipe, as the stages build from them.
    """

    family: ModelFamily
    stages: Mapping[str, Stage]

    @property
    def name(self) -> str:
        """The ``--model_type`` value (``"telme"``)."""
        return self.family.name

    @property
    def config_class(self) -> type[PretrainedConfig]:
        return self.family.config_class

    @property
    def model_class(self) -> type[PreTrainedModel]:
        return self.family.model_class

    @property
    def stage_models(self) -> Mapping[str, type[PreTrainedModel]]:
        return self.family.stage_models

    @property
    def processor_class(self) -> type[ProcessorMixin] | None:
        return self.family.processor_class

    def stage(self, name: str | None) -> tuple[str, Stage]:
        """``(name, stage)`` for ``--stage name``; a single-stage family needs no name."""
        if name is None:
            if len(self.stages) == 1:
                return next(iter(self.stages.items()))
            raise ValueError(f"--model_type {self.name} trains in stages: pass --stage, one of {list(self.stages)}.")
        if name not in self.stages:
            raise ValueError(
                f"--stage {name} does not apply to {self.name}, which trains in stage(s) {list(self.stages)}."
            )
        return name, self.stages[name]


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(get_family("sdt"), {"full": DialogueStage()}),
        Recipe(get_family("cmath"), {"full": DialogueStage()}),
        Recipe(
            get_family("telme"),
            {"teacher": TextStage(), "student": DistilledMediaStage(), "fusion": TelMEFusionStage()},
        ),
        # MAGTKD's stages (Li et al., IJCAI 2025): text, audio and video models (cross-entropy), kd (an audio or
        # video model distilled from the frozen text model), fusion (dialogue-level, over cached embeddings), features
        # (the fusion on features already extracted, e.g. the authors' first-stage pickles).
        Recipe(
            get_family("magtkd"),
            {
                "text": TextStage(),
                "audio": MediaStage(modalities=("audio",)),
                "video": MediaStage(modalities=("video",)),
                "kd": DistilledMediaStage(),
                "fusion": MAGTKDFusionStage(),
                "features": FeatureFusionStage(),
            },
        ),
    )
}


def get_recipe(model_type: str) -> Recipe:
    """The recipe of ``--model_type``; a clear error listing the known ones."""
    if model_type not in RECIPES:
        raise ValueError(f"--model_type {model_type!r} is not a known model family: choose one of {sorted(RECIPES)}.")
    return RECIPES[model_type]


def register_recipe(recipe: Recipe) -> None:
    """Make ``--model_type recipe.name`` train ``recipe`` (a model family defined outside hf_erc); its family joins
    the model registry too (:func:`hf_erc.models.registry.register_family`), so its checkpoints load and get model
    cards."""
    register_family(recipe.family)
    RECIPES[recipe.name] = recipe
