"""hf_erc: multimodal Emotion Recognition in Conversation as Hugging Face ``transformers`` models."""

from .labels import IEMOCAP_EMOTIONS, MELD_EMOTIONS, emotion_names, id2label, label2id

__version__ = "0.1.0"

__all__ = [
    "IEMOCAP_EMOTIONS",
    "MELD_EMOTIONS",
    "emotion_names",
    "id2label",
    "label2id",
    "__version__",
]
