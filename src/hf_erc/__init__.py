"""hf_erc: multimodal Emotion Recognition in Conversation as Hugging Face ``transformers`` models.

Importing the package registers every model with ``AutoConfig``/``AutoModel``.
"""

from . import models
from .labels import IEMOCAP_EMOTIONS, MELD_EMOTIONS, emotion_names, id2label, label2id
from .models import (
    CMATHConfig,
    CMATHForEmotionRecognition,
    SDTConfig,
    SDTForEmotionRecognition,
)

__version__ = "0.1.0"


def pipeline(model: str, device: str | None = None, trust_remote_code: bool = False):
    """Label conversations with a trained checkpoint: ``hf_erc.pipeline("path/or/repo")(conversation)``, or
    ``(video="talk.mp4", subtitles="talk.srt")``, or a list of either (see :mod:`hf_erc.inference.pipelines`).

    hf_erc's model types load with the package's classes; ``trust_remote_code=True`` lets a checkpoint of another
    model type run the Python code it ships (only for code you trust)."""
    # Imported here, not at the top: hf_erc.inference.pipelines reaches hf_erc.data.meld, which imports this package
    # (its __version__), and it would add datasets, pyarrow and av (~0.5 s) to every `import hf_erc`.
    from .inference.pipelines import pipeline as build_pipeline

    return build_pipeline(model, device=device, trust_remote_code=trust_remote_code)


__all__ = [
    "CMATHConfig",
    "CMATHForEmotionRecognition",
    "IEMOCAP_EMOTIONS",
    "MELD_EMOTIONS",
    "SDTConfig",
    "SDTForEmotionRecognition",
    "emotion_names",
    "id2label",
    "label2id",
    "models",
    "pipeline",
    "__version__",
]
