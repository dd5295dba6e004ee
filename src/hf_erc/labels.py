"""Emotion label sets of the supported datasets, in the canonical order.

The order is the one the published feature files and the papers use, so that class
index ``i`` means the same emotion here, in the feature pickles and in released
checkpoints.
"""

from __future__ import annotations

MELD_EMOTIONS: tuple[str, ...] = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
MELD_SENTIMENTS: tuple[str, ...] = ("neutral", "positive", "negative")

IEMOCAP_EMOTIONS: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "excited", "frustrated")
# The three-letter codes used in IEMOCAP's EmoEvaluation files, in the same order.
IEMOCAP_CODES: tuple[str, ...] = ("hap", "sad", "neu", "ang", "exc", "fru")
# Codes that exist in IEMOCAP but are outside the 6-class setting used by the papers.
IEMOCAP_EXCLUDED_CODES: tuple[str, ...] = ("xxx", "sur", "fea", "dis", "oth")

DATASET_EMOTIONS: dict[str, tuple[str, ...]] = {
    "meld": MELD_EMOTIONS,
    "iemocap": IEMOCAP_EMOTIONS,
}


def emotion_names(dataset: str) -> tuple[str, ...]:
    """Label names of ``dataset`` (``"meld"`` or ``"iemocap"``) in canonical order."""
    key = dataset.lower()
    if key not in DATASET_EMOTIONS:
        raise ValueError(f"Unknown dataset {dataset!r}: expected one of {sorted(DATASET_EMOTIONS)}.")
    return DATASET_EMOTIONS[key]


def id2label(dataset: str) -> dict[int, str]:
    """``{index: name}`` for ``dataset``, as stored in a model config."""
    return dict(enumerate(emotion_names(dataset)))


def label2id(dataset: str) -> dict[str, int]:
    """``{name: index}`` for ``dataset``, as stored in a model config."""
    return {name: index for index, name in enumerate(emotion_names(dataset))}
