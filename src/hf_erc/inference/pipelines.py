"""Inference on raw conversations: utterances (speaker, text, optional audio/video) in, one emotion with its
probabilities per utterance out. A conversation is a JSON file or dict whose utterances name their media files, or
a recording with its subtitles (every cue an utterance; see :mod:`hf_erc.inference.conversations`).

Feature-level checkpoints (SDT, CMATH) record in ``feature_encoders.json`` which frozen encoders made their
training features; :class:`EmotionRecognitionPipeline` loads the same encoders, encodes the conversation, batches it
with the training collator and runs the model. Utterance-level checkpoints saved with a processor (TelME, MAGTKD
stage models) are served by :class:`ProcessorPipeline` through that processor. A medium that cannot be read leaves
its modality masked, and the utterance's ``flags`` say so; they also carry what the subtitles said besides speech
(``sound: laughs``).

Checkpoints load with hf_erc's own classes and safetensors weights only (:mod:`hf_erc.inference.checkpoints`): the code a
checkpoint ships runs only with ``trust_remote_code=True``, for a model type that is not hf_erc's.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from huggingface_hub import snapshot_download

from .checkpoints import (
    PROCESSOR_FILE,
    CheckpointError,
    checkpoint_file,
    load_checkpoint_model,
    load_checkpoint_processor,
    one_line,
    ships_code,
)
from .conversations import Utterance, conversation_from_video, read_conversation
from ..data.collators import DialogueCollator, MediaCollator
from ..data.media import MediaDecodeError
from ..features.encoders import BUNDLED_ENCODER_FOLDERS, AudioEncoder, TextEncoder, VideoEncoder, default_device
from ..features.extract import ENCODERS_FILE, FEATURE_COLUMNS, load_encoder_specs

__all__ = [
    "EmotionRecognitionPipeline",
    "ProcessorPipeline",
    "Utterance",
    "load_checkpoint_model",
    "pipeline",
    "read_conversation",
]


def _is_one_input(item) -> bool:
    """A conversation or a recording, as opposed to a batch of them."""
    if isinstance(item, (str, os.PathLike, dict)):
        return True
    return isinstance(item, list) and all(
        isinstance(entry, Utterance) or (isinstance(entry, dict) and "text" in entry) for entry in item
    )


def _utterances(item) -> list[Utterance]:
    if isinstance(item, list) and item and all(isinstance(entry, Utterance) for entry in item):
        return list(item)  # already read (e.g. cues from speech recognition), with their notes on missing media
    if isinstance(item, dict) and "video" in item and "utterances" not in item:
        if not item.get("subtitles"):
            raise ValueError(f"{item['video']}: a video needs its subtitles ('subtitles': path to .srt or .vtt).")
        return conversation_from_video(item["video"], item["subtitles"])
    return read_conversation(item)


class _ConversationLabeller:
    """What both pipelines share: reading inputs (one conversation, a recording with subtitles, or a list of
    either), reading each utterance's media, and the result rows."""

    modalities: list[str]
    id2label: dict[int, str]

    def __call__(self, inputs=None, *, video=None, subtitles=None):
        """Label ``inputs`` (a conversation dict or JSON path, a list of :class:`Utterance`, a ``{"video",
        "subtitles"}`` dict, or a list of those as a batch) or ``video`` with its ``subtitles``: result rows per
        conversation."""
        if video is not None:
            if inputs is not None:
                raise ValueError("Pass a conversation or video=/subtitles=, not both.")
            inputs = {"video": video, "subtitles": subtitles}
        if inputs is None:
            raise ValueError("Nothing to label: pass a conversation, or video= and subtitles=.")
        if _is_one_input(inputs):
            return self._label(_utterances(inputs))
        return [self._label(_utterances(item)) for item in inputs]

    @torch.inference_mode()
    def stream(self, utterances: Iterable) -> Iterator[dict[str, Any]]:
        """Label utterances one at a time as they arrive (``Utterance`` objects or ``{"speaker", "text", ...}``
        dicts), each from itself and the turns before it; what was read or encoded for earlier turns is reused.
        With a causal checkpoint (``config.causal``) the labels equal those of the whole conversation labelled at
        once; a TelME/MAGTKD stage model reads only the past by construction."""
        history: list[Utterance] = []
        cache: dict = {}
        for item in utterances:
            history.append(item if isinstance(item, Utterance) else read_conversation([item])[0])
            probabilities, flags = self.probabilities(history, cache=cache, last_only=True)
            yield self._row(history[-1], probabilities[-1], flags[-1])

    @staticmethod
    def _read_media(utterances, modality: str, read, cache: dict | None = None) -> tuple[list, list[str | None]]:
        """``read(path, start, end)`` of each utterance's ``modality`` (``None`` where there is none), and why each
        one is missing although a recording was given; ``cache`` keeps what was read, by position."""
        values, reasons = [], []
        for position, utterance in enumerate(utterances):
            if cache is not None and (position, modality) in cache:
                value, reason = cache[position, modality]
            else:
                path = getattr(utterance, modality)
                value, reason = None, utterance.missing.get(modality)
                if path:
                    try:
                        value = read(path, utterance.start, utterance.end)
                    except MediaDecodeError as error:
                        reason = f"{modality} unreadable: {error.reason}"
                if cache is not None:
                    cache[position, modality] = (value, reason)
            values.append(value)
            reasons.append(reason)
        return values, reasons

    def _row(self, utterance: Utterance, row: torch.Tensor, notes: list[str]) -> dict[str, Any]:
        """One result row; its ``flags`` are the notes on unreadable media, then the utterance's own (e.g. the sound
        descriptions taken out of a subtitle cue)."""
        notes = [*notes, *utterance.flags]
        scores = {self.id2label[index]: float(value) for index, value in enumerate(row)}
        best = int(row.argmax())
        result = {
            "speaker": utterance.speaker,
            "text": utterance.text,
            "start": utterance.start,
            "end": utterance.end,
            "emotion": self.id2label[best],
            "score": float(row[best]),
            "probabilities": scores,
        }
        if notes:
            result["flags"] = notes
        return result

    @torch.inference_mode()
    def _label(self, utterances: list[Utterance]) -> list[dict[str, Any]]:
        probabilities, flags = self.probabilities(utterances)
        return [self._row(*item) for item in zip(utterances, probabilities, flags)]

    def probabilities(self, utterances: list[Utterance], cache: dict | None = None, last_only: bool = False):
        """``[utterances, labels]`` probabilities (``last_only``: at least the last row is right) and, per
        utterance, notes on the media it could not read; ``cache`` keeps per-utterance inputs across calls."""
        raise NotImplementedError


class EmotionRecognitionPipeline(_ConversationLabeller):
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
        # A speaker the training vocabulary lacks gets the model's own unknown_speaker_id (MAGTKD's field) when it
        # has one, as in training; otherwise speaker 0.
        unknown_speaker_id = getattr(config, "unknown_speaker_id", None)
        if unknown_speaker_id is None and getattr(config, "speaker_vocab", None):
            unknown_speaker_id = 0
        self.collator = DialogueCollator(
            modalities=modalities,
            num_speakers=getattr(config, "num_speakers", None),
            speaker_vocab=getattr(config, "speaker_vocab", None),
            unknown_speaker_id=unknown_speaker_id,
            label_column=None,
        )
        self.id2label = {int(key): value for key, value in config.id2label.items()}

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, device: str | None = None, trust_remote_code: bool = False):
        model = load_checkpoint_model(model_name_or_path, trust_remote_code)
        specs_file = checkpoint_file(model_name_or_path, ENCODERS_FILE)
        if specs_file is None:
            raise FileNotFoundError(
                f"{model_name_or_path} has no {ENCODERS_FILE}: the pipeline cannot tell which encoders made the "
                "training features. Checkpoints written by scripts/train.py include it."
            )
        device = torch.device(device) if device else default_device()
        return cls(model, _load_encoders(specs_file, device, model_name_or_path), device)

    def probabilities(self, utterances, cache=None, last_only=False):
        row: dict[str, list] = {"speaker": [u.speaker for u in utterances]}
        cache = {} if cache is None else cache
        new = [position for position in range(len(utterances)) if (position, "text") not in cache]
        if new:
            vectors = self.encoders["text"].encode([utterances[position].text for position in new])
            cache.update({(position, "text"): vector for position, vector in zip(new, vectors)})
        row[FEATURE_COLUMNS["text"]] = [cache[position, "text"] for position in range(len(utterances))]
        flags: list[list[str]] = [[] for _ in utterances]
        for modality in ("audio", "video"):
            if modality not in self.modalities:
                continue
            row[FEATURE_COLUMNS[modality]], reasons = self._read_media(
                utterances, modality, self.encoders[modality].encode_file, cache
            )
            for notes, reason in zip(flags, reasons):
                if reason:
                    notes.append(reason)
        batch = {key: value.to(self.device) for key, value in self.collator([row]).items()}
        return self.model(**batch).logits.float().softmax(dim=-1)[0].cpu(), flags


def bundled_encoder_path(checkpoint: str, specs_file: str, name_or_path: str) -> str:
    """Where an encoder named in ``feature_encoders.json`` lives: a folder saved inside the checkpoint
    (``text_encoder``, see :func:`hf_erc.training.results.bundle_local_encoders`) resolves against it, downloaded
    from the Hub when the checkpoint is a repository; any other name is returned as it is."""
    if name_or_path not in BUNDLED_ENCODER_FOLDERS.values():
        return name_or_path
    local = os.path.join(os.path.dirname(specs_file), name_or_path)
    if not os.path.isdir(local) and not os.path.isdir(checkpoint):
        try:
            local = os.path.join(snapshot_download(checkpoint, allow_patterns=[f"{name_or_path}/*"]), name_or_path)
        except Exception as error:  # offline, no such repository: say which encoder could not be fetched
            raise CheckpointError(
                f"{checkpoint}: its {name_or_path}/ folder cannot be downloaded ({type(error).__name__}: {one_line(error)})."
            ) from error
    return local if os.path.isdir(local) else name_or_path


def _load_encoders(specs_file: str, device: torch.device, checkpoint: str) -> dict[str, Any]:
    """The frozen encoders a checkpoint's ``feature_encoders.json`` names; a one-line error naming the record when
    it is malformed, names an encoder that ships code (never run), or an encoder cannot be loaded."""
    builders = {"text": TextEncoder, "audio": AudioEncoder, "video": VideoEncoder}
    try:
        specs = load_encoder_specs(os.path.dirname(specs_file))
    except (ValueError, TypeError, AttributeError, RecursionError) as error:
        problem = f"{type(error).__name__}: {one_line(error)}"
        raise CheckpointError(f"{specs_file} is not a readable encoder record ({problem}).") from error
    unknown = sorted(set(specs) - set(builders))
    if unknown:
        raise CheckpointError(
            f"{specs_file} names encoders for unknown modalities {unknown}: expected {sorted(builders)}."
        )
    encoders = {}
    for modality, spec in specs.items():
        where = f"{specs_file}: its {modality} encoder {spec.name_or_path}"
        spec = dataclasses.replace(spec, name_or_path=bundled_encoder_path(checkpoint, specs_file, spec.name_or_path))
        if ships_code(spec.name_or_path):
            raise CheckpointError(
                f"{where} ships Python code (auto_map in its config.json): encoders load with transformers' own "
                "classes only, never with their code."
            )
        options = {"max_length": spec.max_length} if modality == "text" and spec.max_length else {}
        try:
            encoders[modality] = builders[modality](spec.name_or_path, pooling=spec.pooling, device=device, **options)
        except Exception as error:
            raise CheckpointError(f"{where} cannot be loaded ({type(error).__name__}: {one_line(error)}).") from error
    return encoders


class ProcessorPipeline(_ConversationLabeller):
    """Label every utterance of a conversation with an utterance-level checkpoint (TelME's whole model or a TelME or
    MAGTKD stage model) through the processor saved with it: the processor builds the prompts and chooses the audio
    window and frames, exactly as in training."""

    def __init__(self, model, processor, device: torch.device | None = None):
        self.device = device or default_device()
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.media = {modality: MediaCollator(modality, processor) for modality in ("audio", "video")}
        self.accepted = set(inspect.signature(model.forward).parameters)
        reads = {"text": "input_ids", "audio": "input_values", "video": "pixel_values"}
        configured = getattr(model.config, "modalities", list(reads))
        self.modalities = [m for m, name in reads.items() if name in self.accepted and m in configured]
        self.id2label = {int(key): value for key, value in model.config.id2label.items()}

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, device: str | None = None, trust_remote_code: bool = False):
        device = torch.device(device) if device else default_device()
        model = load_checkpoint_model(model_name_or_path, trust_remote_code)
        processor = load_checkpoint_processor(model_name_or_path, trust_remote_code)
        return cls(model, processor, device)

    def _decoder(self, modality: str):
        collator = self.media[modality]
        return lambda path, start, end: collator.decode({"media_path": path, "media_start": start, "media_end": end})

    def probabilities(self, utterances, cache=None, last_only=False):
        media, flags = {}, [[] for _ in utterances]
        # Each utterance's output reads its own media and the text before it: for the last one alone, only its
        # media need decoding.
        needed = utterances[-1:] if last_only else utterances
        for modality in ("audio", "video"):
            if any(getattr(utterance, modality) or modality in utterance.missing for utterance in needed):
                read = self._read_media(needed, modality, self._decoder(modality), None if last_only else cache)
                media[modality] = [None] * (len(utterances) - len(needed)) + read[0]
                reasons = [None] * (len(utterances) - len(needed)) + read[1]
                for notes, reason in zip(flags, reasons):
                    if reason and modality in self.modalities:
                        notes.append(reason)
        inputs = self.processor(
            speakers=[utterance.speaker for utterance in utterances],
            texts=[utterance.text for utterance in utterances],
            audio=media.get("audio"),
            videos=media.get("video"),
            sampling_rate=self.processor.audio_sampling_rate,
            # The text model's context window, as its text stage trained it (None: every earlier turn).
            max_context_turns=getattr(self.model.config, "text_max_context_turns", None),
        )
        if "input_values" in self.accepted and "input_ids" not in self.accepted and "audio_attention_mask" in inputs:
            inputs["attention_mask"] = inputs.pop("audio_attention_mask")  # an audio model reads its own mask
        rows = slice(len(utterances) - 1, None) if last_only else slice(None)
        batch = {name: value[rows].to(self.device) for name, value in inputs.items() if name in self.accepted}
        probabilities = self.model(**batch).logits.float().softmax(dim=-1).cpu()
        if last_only:  # earlier rows were labelled when they arrived
            probabilities = torch.cat([probabilities.new_zeros(len(utterances) - 1, probabilities.shape[-1]), probabilities])
        return probabilities, flags


def pipeline(model: str, device: str | None = None, trust_remote_code: bool = False):
    """``hf_erc.pipeline("path/or/repo")(conversation)`` -> one emotion and its probabilities per utterance.

    A checkpoint saved with a processor (TelME, MAGTKD stage models) reads raw inputs through it; a feature-level
    checkpoint (SDT, CMATH) through the encoders recorded in its ``feature_encoders.json``. hf_erc's own model
    types never need ``trust_remote_code``; ``True`` lets a checkpoint of another model type run the code it ships.
    """
    if checkpoint_file(model, PROCESSOR_FILE) is not None:
        return ProcessorPipeline.from_pretrained(model, device=device, trust_remote_code=trust_remote_code)
    return EmotionRecognitionPipeline.from_pretrained(model, device=device, trust_remote_code=trust_remote_code)
