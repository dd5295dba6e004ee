"""The utterance-level data contract (DESIGN.md): one schema for every builder and reader."""

from __future__ import annotations

from datasets import ClassLabel, Features, List, Value

from ..labels import MELD_SENTIMENTS, emotion_names

FEATURE_VECTOR_COLUMNS: tuple[str, ...] = ("text_features", "audio_features", "video_features")


def contract_features(
    dataset: str,
    *,
    with_sentiment: bool | None = None,
    utterance_id: str | None = None,
    with_feature_vectors: bool = False,
) -> Features:
    """The columns of ``dataset``'s ``DatasetDict``, in contract order.

    Args:
        dataset: ``"meld"`` or ``"iemocap"`` (sets the emotion label names).
        with_sentiment: add MELD's ``sentiment`` ClassLabel (default: for MELD).
        utterance_id: dtype of the release's own utterance id column (``"int32"`` for MELD,
            ``"string"`` for IEMOCAP turn ids), or ``None`` for no such column.
        with_feature_vectors: add ``text_features``/``audio_features``/``video_features``.
    """
    columns = {
        "dialogue_id": Value("string"),
        "turn": Value("int32"),
    }
    if utterance_id is not None:
        columns["utterance_id"] = Value(utterance_id)
    columns.update(
        {
            "speaker": Value("string"),
            "text": Value("string"),
            "emotion": ClassLabel(names=list(emotion_names(dataset))),
        }
    )
    if with_sentiment if with_sentiment is not None else dataset.lower() == "meld":
        columns["sentiment"] = ClassLabel(names=list(MELD_SENTIMENTS))
    columns.update(
        {
            "audio_path": Value("string"),
            "video_path": Value("string"),
            "start": Value("float32"),
            "end": Value("float32"),
            "has_audio": Value("bool"),
            "has_video": Value("bool"),
        }
    )
    if with_feature_vectors:
        columns.update({name: List(Value("float32")) for name in FEATURE_VECTOR_COLUMNS})
    return Features(columns)
