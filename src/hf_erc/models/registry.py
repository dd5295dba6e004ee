"""The one table of model families: what hf_erc knows of each model it implements.

A :class:`ModelFamily` holds a family's classes (references, not names to import): its configuration, the final
model users run, the model each training stage writes for one modality (TelME, MAGTKD), the processor that builds
the inputs of those utterance-level models, and its paper. Everything that needs to know the models reads this
table: ``hf_erc.models`` registers every class with the Auto classes from it, checkpoint loading
(:mod:`hf_erc.inference.checkpoints`) knows hf_erc's model types and processors from it, the model cards
(:mod:`hf_erc.hub`) find a checkpoint's paper in it, and the training recipes (:mod:`hf_erc.training.recipes`) add
each family's stages to it.

Adding a model is its folder under ``hf_erc/models``, one :class:`ModelFamily` here and one recipe; a family defined
outside hf_erc joins with :func:`register_family`. This module is not shipped inside checkpoints, so it imports the
model folders like any other module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from transformers import AutoConfig, AutoModel, AutoProcessor, PretrainedConfig, PreTrainedModel, ProcessorMixin

from .cmath import CMATHConfig, CMATHForEmotionRecognition
from .magtkd import (
    MAGTKDAudioModel,
    MAGTKDConfig,
    MAGTKDForEmotionRecognition,
    MAGTKDProcessor,
    MAGTKDTextModel,
    MAGTKDVideoModel,
)
from .papers import CMATH_PAPER, MAGTKD_PAPER, SDT_PAPER, TELME_PAPER, PaperInfo
from .sdt import SDTConfig, SDTForEmotionRecognition
from .telme import (
    TelMEAudioStudent,
    TelMEConfig,
    TelMEForEmotionRecognition,
    TelMEProcessor,
    TelMETextTeacher,
    TelMEVideoStudent,
)


@dataclass(frozen=True)
class ModelFamily:
    """One model family: its classes and its paper.

    Args:
        name: the family's name, the ``--model_type`` of training (``"telme"``).
        config_class: the family's configuration; ``config_class.for_dataset(dataset, modalities, **overrides)``
            gives the paper's setting.
        model_class: the final model (the checkpoint users run).
        paper: what the model card says about the method.
        stage_models: modality -> the utterance-level model a training stage writes for it (TelME's teacher and
            students, MAGTKD's text, audio and video models); each loads through ``AutoModel`` as its own class.
        processor_class: the processor that builds every input of the utterance-level models (``None``: the
            family's models read dialogues of recorded features).
    """

    name: str
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    paper: PaperInfo
    stage_models: Mapping[str, type[PreTrainedModel]] = field(default_factory=dict)
    processor_class: type[ProcessorMixin] | None = None

    @property
    def model_classes(self) -> tuple[type[PreTrainedModel], ...]:
        """The final model and each stage model, without repeats."""
        return tuple(dict.fromkeys((self.model_class, *self.stage_models.values())))

    @property
    def model_types(self) -> tuple[str, ...]:
        """The ``model_type`` of every checkpoint this family writes: the final model and each stage model."""
        return tuple(dict.fromkeys(model_class.config_class.model_type for model_class in self.model_classes))


MODEL_FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily("sdt", SDTConfig, SDTForEmotionRecognition, SDT_PAPER),
        ModelFamily("cmath", CMATHConfig, CMATHForEmotionRecognition, CMATH_PAPER),
        ModelFamily(
            "telme",
            TelMEConfig,
            TelMEForEmotionRecognition,
            TELME_PAPER,
            stage_models={"text": TelMETextTeacher, "audio": TelMEAudioStudent, "video": TelMEVideoStudent},
            processor_class=TelMEProcessor,
        ),
        ModelFamily(
            "magtkd",
            MAGTKDConfig,
            MAGTKDForEmotionRecognition,
            MAGTKD_PAPER,
            stage_models={"text": MAGTKDTextModel, "audio": MAGTKDAudioModel, "video": MAGTKDVideoModel},
            processor_class=MAGTKDProcessor,
        ),
    )
}


def get_family(name: str) -> ModelFamily:
    """The family called ``name``; a clear error listing the known ones."""
    if name not in MODEL_FAMILIES:
        raise ValueError(f"{name!r} is not a known model family: choose one of {sorted(MODEL_FAMILIES)}.")
    return MODEL_FAMILIES[name]


def family_for_model_type(model_type: str) -> ModelFamily | None:
    """The family whose checkpoints have ``config.model_type == model_type`` (stage checkpoints included), or
    ``None`` when no family writes it."""
    return next((family for family in MODEL_FAMILIES.values() if model_type in family.model_types), None)


def known_model_types() -> list[str]:
    """Every ``model_type`` of every family, sorted: the checkpoints hf_erc loads with its own classes."""
    return sorted(model_type for family in MODEL_FAMILIES.values() for model_type in family.model_types)


def register_auto_classes(family: ModelFamily) -> None:
    """Register the family's classes with ``AutoConfig``/``AutoModel`` (and its processor with ``AutoProcessor``),
    so ``AutoModel.from_pretrained`` loads its checkpoints while the family's package is imported, and mark them for
    ``save_pretrained`` to copy their code into each checkpoint and write ``auto_map``, so
    ``AutoModel.from_pretrained(path, trust_remote_code=True)`` loads them where that package is not installed."""
    # exist_ok: registering twice (a reload, or the same classes reached through another path) is harmless.
    for model_class in family.model_classes:
        config_class = model_class.config_class
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModel")
    if family.processor_class is not None:
        AutoProcessor.register(family.config_class, family.processor_class, exist_ok=True)
        family.processor_class.register_for_auto_class("AutoProcessor")


def register_family(family: ModelFamily) -> None:
    """Add a family defined outside hf_erc to the table and register its classes with the Auto classes: its
    checkpoints then load, get model cards and (with a recipe, :func:`hf_erc.training.recipes.register_recipe`)
    train like hf_erc's own."""
    MODEL_FAMILIES[family.name] = family
    register_auto_classes(family)
