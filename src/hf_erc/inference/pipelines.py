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
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from huggingface_hub import snapshot_download
from tqdm.auto import tqdm

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
from ..features.encoders import (
    BUNDLED_ENCODER_FOLDERS,
    AudioEncoder,
    TextEncoder,
    VideoEncoder,
    default_device,
    length_sorted_batches,
)
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
    either), reading each utterance's media, and the result rows.

    Media are read ``media_chunk_size`` utterances at a time (:meth:`_media_in_chunks`), and each chunk's audio and
    frames become features or model inputs before the next chunk is decoded: an hour of video with a thousand cues
    holds one chunk's decoded media, not the recording's. The model's context stays the whole conversation, so no
    label depends on the chunk size. ``progress`` shows a bar over the utterances on stderr while they are read
    (``hf-erc predict`` turns it on).
    """

    modalities: list[str]
    id2label: dict[int, str]
    # Utterances whose media are decoded and turned into inputs together: peak memory follows it, not the length.
    media_chunk_size: int = 16
    progress: bool = False

    def __call__(self, inputs=None, *, video=None, subtitles=None):
        """Label ``inputs`` (a conversation dict or JSON path, a list of :class:`Utterance`, a ``{"video",
        "subtitles"}`` dict, or a list of those as a batch) or ``video`` with its ``subtitles``: result rows per
        conversation. A batch is labelled together where the pipeline can (:meth:`batch_probabilities`), with the
        labels each conversation gets alone."""
        if video is not None:
            if inputs is not None:
                raise ValueError("Pass a conversation or video=/subtitles=, not both.")
            inputs = {"video": video, "subtitles": subtitles}
        if inputs is None:
            raise ValueError("Nothing to label: pass a conversation, or video= and subtitles=.")
        if _is_one_input(inputs):
            return self._label([_utterances(inputs)])[0]
        return self._label([_utterances(item) for item in inputs])

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
    def _read_media(
        utterances, modality: str, read, cache: dict | None = None, first: int = 0
    ) -> tuple[list, list[str | None]]:
        """``read(path, start, end)`` of each utterance's ``modality`` (``None`` where there is none), and why each
        one is missing although a recording was given; ``cache`` keeps what was read, by position in the
        conversation (``utterances[0]`` is at ``first``)."""
        values, reasons = [], []
        for position, utterance in enumerate(utterances, start=first):
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

    def _media_in_chunks(
        self, utterances, read: dict, cache: dict | None = None, first: int = 0
    ) -> Iterator[tuple[range, dict[str, tuple[list, list[str | None]]]]]:
        """The utterances from position ``first`` on, ``media_chunk_size`` at a time, each chunk with its media read:
        ``(positions, {modality: (values, reasons)})``, ``read`` mapping each modality to its reader (see
        :meth:`_read_media`). The caller turns a chunk into features or model inputs before asking for the next, so
        only one chunk's decoded audio and frames are held; with ``progress`` a bar on stderr counts the
        utterances."""
        progress = {"desc": "cues", "unit": "cue", "file": sys.stderr, "leave": False, "disable": not self.progress}
        with tqdm(total=len(utterances) - first, **progress) as bar:
            for begin in range(first, len(utterances), self.media_chunk_size):
                positions = range(begin, min(begin + self.media_chunk_size, len(utterances)))
                chunk = utterances[positions.start : positions.stop]
                yield positions, {
                    modality: self._read_media(chunk, modality, reader, cache, first=begin)
                    for modality, reader in read.items()
                }
                bar.update(len(positions))

    def _row(self, utterance: Utterance, row: torch.Tensor, notes: list[str]) -> dict[str, Any]:
        """One result row; its ``flags`` are the notes on unreadable media, then the utterance's own (e.g. the sound
        descriptions taken out of a subtitle cue)."""
        notes = [*notes, *utterance.flags]
        values = row.tolist()  # one conversion, not one per label: thousands of rows are formatted per batch
        scores = {self.id2label[index]: value for index, value in enumerate(values)}
        best = max(range(len(values)), key=values.__getitem__)  # the first of equal maxima, as argmax
        result = {
            "speaker": utterance.speaker,
            "text": utterance.text,
            "start": utterance.start,
            "end": utterance.end,
            "emotion": self.id2label[best],
            "score": values[best],
            "probabilities": scores,
        }
        if notes:
            result["flags"] = notes
        return result

    @torch.inference_mode()
    def _label(self, conversations: list[list[Utterance]]) -> list[list[dict[str, Any]]]:
        """The result rows of each conversation."""
        return [
            [self._row(*item) for item in zip(utterances, probabilities, flags)]
            for utterances, (probabilities, flags) in zip(conversations, self.batch_probabilities(conversations))
        ]

    def batch_probabilities(self, conversations: list[list[Utterance]]) -> list[tuple[torch.Tensor, list[list[str]]]]:
        """:meth:`probabilities` of each conversation: here one conversation at a time (a TelME/MAGTKD model already
        reads a conversation's utterances as one batch); :class:`EmotionRecognitionPipeline` labels them together."""
        return [self.probabilities(utterances) for utterances in conversations]

    def probabilities(self, utterances: list[Utterance], cache: dict | None = None, last_only: bool = False):
        """``[utterances, labels]`` probabilities (``last_only``: at least the last row is right) and, per
        utterance, notes on the media it could not read; ``cache`` keeps per-utterance inputs across calls."""
        raise NotImplementedError


class EmotionRecognitionPipeline(_ConversationLabeller):
    """Label every utterance of a conversation with a feature-level ERC checkpoint."""

    # Conversations the dialogue model reads in one padded batch, those of about the same number of turns together.
    dialogue_batch_size: int = 32

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
        """As :meth:`_ConversationLabeller.probabilities`: :meth:`batch_probabilities` of this conversation alone."""
        return self.batch_probabilities([utterances], [{} if cache is None else cache])[0]

    def batch_probabilities(self, conversations, caches: list[dict] | None = None):
        """``(probabilities, flags)`` of each conversation, those it gets alone (to float rounding): the texts of all
        conversations are encoded in one call of the text encoder, which batches them by token count as extraction
        batches a split's; each conversation's media are read as it is (:meth:`_features`); the dialogue model reads
        padded batches of conversations through the training collator. ``caches``: one per conversation, as the
        ``cache`` of :meth:`probabilities`."""
        caches = [{} for _ in conversations] if caches is None else caches
        self._encode_texts(conversations, caches)
        features = [self._features(utterances, cache) for utterances, cache in zip(conversations, caches)]
        probabilities = self._dialogue_probabilities([row for row, _ in features])
        return [(values, flags) for values, (_, flags) in zip(probabilities, features)]

    def _encode_texts(self, conversations: list[list[Utterance]], caches: list[dict]) -> None:
        """Put the text vector of every utterance in its conversation's cache, encoding those not there yet in one
        call of the text encoder (one length-sorted batching across all conversations, not one per conversation)."""
        missing = [
            (cache, position, utterance.text)
            for utterances, cache in zip(conversations, caches)
            for position, utterance in enumerate(utterances)
            if (position, "text") not in cache
        ]
        if missing:
            vectors = self.encoders["text"].encode([text for _, _, text in missing])
            for (cache, position, _), vector in zip(missing, vectors):
                cache[position, "text"] = vector

    def _features(self, utterances: list[Utterance], cache: dict) -> tuple[dict[str, list], list[list[str]]]:
        """One conversation as the dialogue collator reads it (speakers, the text vectors in ``cache``, media vectors),
        and per utterance the notes on the media it could not read."""
        row: dict[str, list] = {"speaker": [u.speaker for u in utterances]}
        row[FEATURE_COLUMNS["text"]] = [cache[position, "text"] for position in range(len(utterances))]
        flags: list[list[str]] = [[] for _ in utterances]
        # Each utterance's media become one vector per modality as they are read; the model then reads the vectors of
        # the whole conversation.
        media_modalities = [modality for modality in ("audio", "video") if modality in self.modalities]
        read = {modality: self.encoders[modality].encode_file for modality in media_modalities}
        for modality in read:
            row[FEATURE_COLUMNS[modality]] = []
        if read:
            for positions, media in self._media_in_chunks(utterances, read, cache):
                for modality, (vectors, reasons) in media.items():
                    row[FEATURE_COLUMNS[modality]] += vectors
                    for position, reason in zip(positions, reasons):
                        if reason:
                            flags[position].append(reason)
        return row, flags

    def _dialogue_probabilities(self, rows: list[dict[str, list]]) -> list[torch.Tensor]:
        """``[turns, labels]`` probabilities of each conversation (a :meth:`_features` row): conversations of about
        the same number of turns are padded together, ``dialogue_batch_size`` at a time (:func:`length_sorted_batches`),
        and the model masks the padding."""
        lengths = [len(row["speaker"]) for row in rows]
        probabilities: list[torch.Tensor] = [torch.empty(0)] * len(rows)
        for index in length_sorted_batches(lengths, self.dialogue_batch_size):
            batch = {key: value.to(self.device) for key, value in self.collator([rows[i] for i in index]).items()}
            output = self.model(**batch).logits.float().softmax(dim=-1).cpu()
            for slot, position in enumerate(index):
                probabilities[position] = output[slot, : lengths[position]]
        return probabilities


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
        """As :meth:`_ConversationLabeller.probabilities`. Every output reads its own utterance's media and its prompt
        (the turns before it, from the whole conversation), so the rows are computed ``media_chunk_size`` utterances
        at a time: a chunk's media are decoded, turned into inputs and run through the model, then freed. ``cache``
        is not used: decoded media are not kept."""
        flags = [[] for _ in utterances]
        speakers, texts = [utterance.speaker for utterance in utterances], [utterance.text for utterance in utterances]
        # The text inputs of every turn, each prompt built from the whole conversation before it (token ids: small).
        prompts = self.processor(
            speakers=speakers,
            texts=texts,
            # The text model's context window, as its text stage trained it (None: every earlier turn).
            max_context_turns=getattr(self.model.config, "text_max_context_turns", None),
        )
        text_inputs = {name: value for name, value in prompts.items() if name != "modality_mask"}
        # For the last utterance alone (streaming), only its media need decoding.
        first = len(utterances) - 1 if last_only else 0
        read = {
            modality: self._decoder(modality)
            for modality in ("audio", "video")
            if any(getattr(utterance, modality) or modality in utterance.missing for utterance in utterances[first:])
        }
        chunks = []
        for positions, media in self._media_in_chunks(utterances, read, first=first):
            rows = slice(positions.start, positions.stop)
            for modality, (_, reasons) in media.items():
                for position, reason in zip(positions, reasons):
                    if reason and modality in self.modalities:
                        flags[position].append(reason)
            # The processor on the chunk gives its media inputs and modality mask; its text rows are the whole
            # conversation's, so a turn's inputs do not depend on the chunk it is read in.
            inputs = self.processor(
                speakers=speakers[rows],
                texts=texts[rows],
                audio=media["audio"][0] if "audio" in media else None,
                videos=media["video"][0] if "video" in media else None,
                sampling_rate=self.processor.audio_sampling_rate,
            )
            inputs.update({name: value[rows] for name, value in text_inputs.items()})
            if "input_values" in self.accepted and "input_ids" not in self.accepted and "audio_attention_mask" in inputs:
                inputs["attention_mask"] = inputs.pop("audio_attention_mask")  # an audio model reads its own mask
            batch = {name: value.to(self.device) for name, value in inputs.items() if name in self.accepted}
            chunks.append(self.model(**batch).logits.float().softmax(dim=-1).cpu())
            del media, inputs, batch  # freed before the next chunk is decoded, not after
        probabilities = torch.cat(chunks)
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
