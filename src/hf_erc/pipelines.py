"""Inference on raw conversations: utterances (speaker, text, optional audio/video files) in,
one emotion with its probabilities per utterance out.

Feature-level checkpoints (SDT, CMATH) record in ``feature_encoders.json`` which frozen
encoders made their training features; the pipeline loads the same encoders, encodes the
conversation, batches it with the training collator and runs the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data.collators import DialogueCollator
from .data.media import MediaDecodeError
from .features.encoders import AudioEncoder, TextEncoder, VideoEncoder, default_device
from .features.extract import ENCODERS_FILE, FEATURE_COLUMNS, load_encoder_specs


@dataclass
class Utterance:
    """One turn of a conversation to label."""

    speaker: str
    text: str
    audio: str | None = None
    video: str | None = None


def read_conversation(source: str | os.PathLike | dict | list) -> list[Utterance]:
    """A conversation from a JSON file, a ``{"utterances": [...]}`` dict or a list of utterance dicts."""
    where = "conversation"
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise FileNotFoundError(f"Conversation file {where} does not exist.") from error
        except json.JSONDecodeError as error:
            raise ValueError(f"{where} is not valid JSON ({error}); expected {{\"utterances\": [{{\"speaker\": ..., \"text\": ...}}]}}.") from error
    items = source.get("utterances") if isinstance(source, dict) else source
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: expected a non-empty list of utterances (each with 'speaker' and 'text').")
    utterances = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or "speaker" not in item:
            raise ValueError(f"{where}: utterance {index} needs a 'speaker' and a string 'text', got {item!r}.")
        utterances.append(Utterance(str(item["speaker"]), item["text"], item.get("audio"), item.get("video")))
    return utterances


def _checkpoint_file(model_name_or_path: str, filename: str) -> str | None:
    if os.path.isdir(model_name_or_path):
        path = os.path.join(model_name_or_path, filename)
        return path if os.path.isfile(path) else None
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(model_name_or_path, filename)
    except Exception:
        return None


class EmotionRecognitionPipeline:
    """Label every utterance of a conversation with a feature-level ERC checkpoint."""

    def __init__(self, model, encoders: dict[str, Any], device: torch.device | None = None):
        self.device = device or default_device()
        self.model = model.to(self.device).eval()
        self.encoders = encoders
        config = model.config
        modalities = [m for m in getattr(config, "modalities", ["text"]) if m in encoders]
        if "text" not in modalities:
            raise ValueError("The checkpoint has no text encoder in feature_encoders.json; the pipeline needs one.")
        self.modalities = modalities
        self.collator = DialogueCollator(
            modalities=modalities,
            num_speakers=getattr(config, "num_speakers", None),
            speaker_vocab=getattr(config, "speaker_vocab", None),
            unknown_speaker_id=0 if getattr(config, "speaker_vocab", None) else None,
            label_column=None,
        )
        self.id2label = {int(key): value for key, value in config.id2label.items()}

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, device: str | None = None, trust_remote_code: bool = True):
        from transformers import AutoModel

        specs_file = _checkpoint_file(model_name_or_path, ENCODERS_FILE)
        if specs_file is None:
            raise FileNotFoundError(
                f"{model_name_or_path} has no {ENCODERS_FILE}: the pipeline cannot tell which encoders made the "
                "training features. Checkpoints written by scripts/train.py include it."
            )
        specs = load_encoder_specs(os.path.dirname(specs_file))
        device = torch.device(device) if device else default_device()
        model = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        builders = {"text": TextEncoder, "audio": AudioEncoder, "video": VideoEncoder}
        encoders = {}
        for modality, spec in specs.items():
            options = {"max_length": spec.max_length} if modality == "text" and spec.max_length else {}
            encoders[modality] = builders[modality](spec.name_or_path, pooling=spec.pooling, device=device, **options)
        return cls(model, encoders, device)

    def _features(self, utterances: list[Utterance]) -> dict[str, list]:
        row: dict[str, list] = {"speaker": [u.speaker for u in utterances]}
        row[FEATURE_COLUMNS["text"]] = list(self.encoders["text"].encode([u.text for u in utterances]))
        for modality in ("audio", "video"):
            if modality not in self.modalities:
                continue
            encoder, vectors = self.encoders[modality], []
            for utterance in utterances:
                path = getattr(utterance, modality)
                vector = None
                if path:
                    try:
                        vector = encoder.encode_file(path)
                    except MediaDecodeError:
                        vector = None  # predicted from the other modalities, as in training
                vectors.append(vector)
            row[FEATURE_COLUMNS[modality]] = vectors
        return row

    @torch.inference_mode()
    def __call__(self, conversation) -> list[dict[str, Any]]:
        utterances = read_conversation(conversation)
        batch = self.collator([self._features(utterances)])
        batch = {key: value.to(self.device) for key, value in batch.items()}
        probabilities = self.model(**batch).logits.float().softmax(dim=-1)[0].cpu()
        return _labelled(utterances, probabilities, self.id2label)


class ProcessorPipeline:
    """Label every utterance of a conversation with an utterance-level checkpoint (TelME's whole model or a TelME or
    MAGTKD stage model) through the processor saved with it: the processor builds the prompts and chooses the audio
    window and frames, exactly as in training."""

    def __init__(self, model, processor, device: torch.device | None = None):
        import inspect

        from .data.collators import MediaCollator

        self.device = device or default_device()
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.media = {modality: MediaCollator(modality, processor) for modality in ("audio", "video")}
        self.accepted = set(inspect.signature(model.forward).parameters)
        self.id2label = {int(key): value for key, value in model.config.id2label.items()}

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, device: str | None = None, trust_remote_code: bool = True):
        from transformers import AutoModel, AutoProcessor

        device = torch.device(device) if device else default_device()
        model = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        processor = AutoProcessor.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        return cls(model, processor, device)

    def _decode(self, path: str | None, modality: str):
        if not path:
            return None
        try:
            return self.media[modality].decode({"media_path": path, "media_start": None, "media_end": None})
        except MediaDecodeError:
            return None  # predicted from the other modalities, as in training

    @torch.inference_mode()
    def __call__(self, conversation) -> list[dict[str, Any]]:
        utterances = read_conversation(conversation)
        media = {}
        for modality in ("audio", "video"):
            if any(getattr(utterance, modality) for utterance in utterances):
                media[modality] = [self._decode(getattr(utterance, modality), modality) for utterance in utterances]
        inputs = self.processor(
            speakers=[utterance.speaker for utterance in utterances],
            texts=[utterance.text for utterance in utterances],
            audio=media.get("audio"),
            videos=media.get("video"),
            sampling_rate=self.processor.audio_sampling_rate,
        )
        if "input_values" in self.accepted and "input_ids" not in self.accepted and "audio_attention_mask" in inputs:
            inputs["attention_mask"] = inputs.pop("audio_attention_mask")  # an audio model reads its own mask
        batch = {name: value.to(self.device) for name, value in inputs.items() if name in self.accepted}
        probabilities = self.model(**batch).logits.float().softmax(dim=-1).cpu()
        return _labelled(utterances, probabilities, self.id2label)


def _labelled(utterances, probabilities, id2label) -> list[dict[str, Any]]:
    """One result per utterance: the most likely emotion, its probability, and every label's."""
    results = []
    for utterance, row in zip(utterances, probabilities):
        scores = {id2label[index]: float(value) for index, value in enumerate(row)}
        best = int(row.argmax())
        results.append(
            {"speaker": utterance.speaker, "text": utterance.text, "emotion": id2label[best], "score": float(row[best]), "scores": scores}
        )
    return results


def pipeline(model: str, device: str | None = None, trust_remote_code: bool = True):
    """``hf_erc.pipeline("path/or/repo")(conversation)`` -> one emotion and its probabilities per utterance.

    A checkpoint saved with a processor (TelME, MAGTKD stage models) reads raw inputs through it; a feature-level
    checkpoint (SDT, CMATH) through the encoders recorded in its ``feature_encoders.json``.
    """
    if _checkpoint_file(model, "processor_config.json") is not None:
        return ProcessorPipeline.from_pretrained(model, device=device, trust_remote_code=trust_remote_code)
    return EmotionRecognitionPipeline.from_pretrained(model, device=device, trust_remote_code=trust_remote_code)


def format_predictions(predictions: list[dict[str, Any]]) -> str:
    """A plain-text table of pipeline output."""
    lines = [f"{'speaker':<12} {'emotion':<10} {'p':>5}  text"]
    for item in predictions:
        text = item["text"] if len(item["text"]) <= 70 else item["text"][:67] + "..."
        lines.append(f"{item['speaker'][:12]:<12} {item['emotion']:<10} {item['score']:>5.2f}  {text}")
    return "\n".join(lines)


def register(subparsers) -> None:
    """Add ``hf-erc predict``."""
    parser = subparsers.add_parser("predict", help="Label every utterance of a conversation (JSON) with a trained checkpoint.")
    parser.add_argument("conversation", help='JSON file: {"utterances": [{"speaker": ..., "text": ..., "audio": path?, "video": path?}]}')
    parser.add_argument("--model", required=True, help="Checkpoint folder or Hub repository.")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.set_defaults(func=_run_predict)


def _run_predict(args) -> int:
    predictions = pipeline(args.model, device=args.device)(args.conversation)
    print(json.dumps(predictions, indent=2, ensure_ascii=False) if args.json else format_predictions(predictions))
    return 0
