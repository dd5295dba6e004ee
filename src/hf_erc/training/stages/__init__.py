"""Training stages: one small class per way of training, shared by the recipes (:mod:`hf_erc.training.recipes`).

| stage | trains | reads |
|---|---|---|
| :class:`DialogueStage` | SDT, CMATH (and any dialogue-level model) | dialogues of utterance features |
| :class:`TextStage` | TelME's teacher, MAGTKD's text model | utterances with their dialogue context |
| :class:`MediaStage` | MAGTKD's audio and video models | utterances' decoded audio or frames |
| :class:`DistilledMediaStage` | TelME's students, MAGTKD's kd stage | the same, plus the frozen text model's outputs |
| :class:`TelMEFusionStage`, :class:`MAGTKDFusionStage` | the fusions | the frozen stage models' cached embeddings |
| :class:`FeatureFusionStage` | MAGTKD's fusion | dialogues of extracted features (the authors' pickles) |
"""

from .base import Stage, StageSetup
from .dialogue import DialogueStage, FeatureFusionStage
from .fusion import FusionStage, MAGTKDFusionStage, TelMEFusionStage
from .media import DistilledMediaStage, MediaStage
from .text import TextStage

__all__ = [
    "DialogueStage",
    "DistilledMediaStage",
    "FeatureFusionStage",
    "FusionStage",
    "MAGTKDFusionStage",
    "MediaStage",
    "Stage",
    "StageSetup",
    "TelMEFusionStage",
    "TextStage",
]
