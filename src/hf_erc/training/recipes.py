"""The one registry of model families: how ``scripts/train.py``, the model cards and the CLI know each model.

A :class:`Recipe` holds a family's classes (references, not names to import), its training stages in the order
they run, its processor class and its paper. Adding a model is its folder under ``hf_erc/models`` plus one
recipe here; adding a stage is one :class:`~hf_erc.training.stages.Stage` subclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from transformers import PretrainedConfig, PreTrainedModel

from ..models import (
    CMATHConfig,
    CMATHForEmotionRecognition,
    MAGTKDAudioModel,
    MAGTKDConfig,
    MAGTKDForEmotionRecognition,
    MAGTKDTextModel,
    MAGTKDVideoModel,
    SDTConfig,
    SDTForEmotionRecognition,
    TelMEAudioStudent,
    TelMEConfig,
    TelMEForEmotionRecognition,
    TelMEProcessor,
    TelMETextTeacher,
    TelMEVideoStudent,
)
from ..papers import CMATH_PAPER, MAGTKD_PAPER, SDT_PAPER, TELME_PAPER, PaperInfo
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
    """How one model family is built, trained and described.

    Args:
        name: the ``--model_type`` value (``"telme"``).
        config_class: the family's configuration; ``config_class.for_dataset(dataset, modalities, **overrides)``
            gives the paper's setting.
        model_class: the final model (the checkpoint users run).
        stages: ``--stage`` value -> stage, in the order they run (each reads the checkpoints of earlier ones).
        paper: what the model card says about the method.
        stage_models: modality -> the utterance-level model a stage trains for it (TelME, MAGTKD).
        processor_class: the processor that builds every input of the utterance-level models.
    """

    name: str
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    stages: Mapping[str, Stage]
    paper: PaperInfo
    stage_models: Mapping[str, type[PreTrainedModel]] = field(default_factory=dict)
    processor_class: type | None = None

    @property
    def model_types(self) -> tuple[str, ...]:
        """The ``model_type`` of every checkpoint this family writes: the final model and each stage model."""
        classes = (self.model_class, *self.stage_models.values())
        return tuple(dict.fromkeys(model_class.config_class.model_type for model_class in classes))

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
        Recipe("sdt", SDTConfig, SDTForEmotionRecognition, {"full": DialogueStage()}, SDT_PAPER),
        Recipe("cmath", CMATHConfig, CMATHForEmotionRecognition, {"full": DialogueStage()}, CMATH_PAPER),
        Recipe(
            "telme",
            TelMEConfig,
            TelMEForEmotionRecognition,
            {"teacher": TextStage(), "student": DistilledMediaStage(), "fusion": TelMEFusionStage()},
            TELME_PAPER,
            stage_models={"text": TelMETextTeacher, "audio": TelMEAudioStudent, "video": TelMEVideoStudent},
            processor_class=TelMEProcessor,
        ),
        # MAGTKD's stages (Li et al., IJCAI 2025): text, audio and video models (cross-entropy), kd (an audio or
        # video model distilled from the frozen text model), fusion (dialogue-level, over cached embeddings), features
        # (the fusion on features already extracted, e.g. the authors' first-stage pickles).
        # Its utterance-level inputs are built by TelME's processor until MAGTKD has its own.
        Recipe(
            "magtkd",
            MAGTKDConfig,
            MAGTKDForEmotionRecognition,
            {
                "text": TextStage(),
                "audio": MediaStage(modalities=("audio",)),
                "video": MediaStage(modalities=("video",)),
                "kd": DistilledMediaStage(),
                "fusion": MAGTKDFusionStage(),
                "features": FeatureFusionStage(),
            },
            MAGTKD_PAPER,
            stage_models={"text": MAGTKDTextModel, "audio": MAGTKDAudioModel, "video": MAGTKDVideoModel},
            processor_class=TelMEProcessor,
        ),
    )
}


def get_recipe(model_type: str) -> Recipe:
    """The recipe of ``--model_type``; a clear error listing the known ones."""
    if model_type not in RECIPES:
        raise ValueError(f"--model_type {model_type!r} is not a known model family: choose one of {sorted(RECIPES)}.")
    return RECIPES[model_type]


def recipe_for_model_type(model_type: str) -> Recipe | None:
    """The recipe whose checkpoints have ``config.model_type == model_type`` (stage checkpoints included)."""
    return next((recipe for recipe in RECIPES.values() if model_type in recipe.model_types), None)


def register_recipe(recipe: Recipe) -> None:
    """Make ``--model_type recipe.name`` train ``recipe`` (a model family defined outside hf_erc)."""
    RECIPES[recipe.name] = recipe
