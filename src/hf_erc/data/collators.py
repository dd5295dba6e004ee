"""Batch builders: padded dialogues for dialogue-level models, prompted contexts for text models, decoded media
for audio and video models, and cached utterance embeddings for utterance-level fusion. Utterance-level models'
inputs are built by their processor (TelME's, MAGTKD's): these collators only hand it the rows."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import DataFormatError
from .media import (
    MediaDecodeError,
    decode_audio,
    decode_frames_at,
    decode_video_frames,
    probe_media,
    resized_frame_size,
    video_frame_rate,
)

logger = logging.getLogger(__name__)


__all__ = [
    "MODALITIES",
    "TELME_SPEAKER_TOKENS",
    "BlankModalities",
    "DialogueCollator",
    "MediaCollator",
    "PromptCollator",
    "UtteranceEmbeddingCollator",
    "first_appearance_ids",
]

# Modality order of ``modality_mask``'s last axis; ``<modality>_features`` are the dataset columns.
MODALITIES: tuple[str, ...] = ("text", "audio", "video")

# The speaker marker tokens TelME adds to the RoBERTa tokenizer (MELD dialogues have at most 9 speakers).
TELME_SPEAKER_TOKENS: tuple[str, ...] = tuple(f"<s{index}>" for index in range(1, 10))

IGNORE_INDEX = -100


def first_appearance_ids(names: Sequence[str]) -> np.ndarray:
    """Speaker ids by order of first appearance: ``["b", "a", "b"]`` -> ``[0, 1, 0]``."""
    if len(names) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(np.asarray(names, dtype=object).astype(str), return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse.reshape(-1)].astype(np.int64)


def _label_ids(values: Sequence[Any]) -> np.ndarray:
    """Labels with ``None`` and negative values (unlabelled turns) set to -100."""
    labels = np.array([IGNORE_INDEX if value is None else value for value in values], dtype=np.int64)
    labels[labels < 0] = IGNORE_INDEX
    return labels


def _round_up(length: int, multiple: int | None) -> int:
    if not multiple:
        return length
    return -(-length // multiple) * multiple


@dataclass
class DialogueCollator:
    """Pad a list of dialogue rows (from :func:`hf_erc.data.dialogues.group_dialogues`) into one batch.

    Output (``B`` dialogues, ``T`` the longest after truncation and rounding):
    ``<modality>_features`` float32 ``[B, T, D]`` (zeros where padded or missing),
    ``attention_mask`` long ``[B, T]``, ``speaker_ids`` long ``[B, T]`` (``speaker_pad_id`` on padding),
    ``modality_mask`` bool ``[B, T, 3]`` in ``MODALITIES`` order (True where the feature exists; always
    False for modalities not collated) and ``labels`` long ``[B, T]`` (-100 on padding and on turns whose
    label is ``None`` or negative; left out when the rows have no ``label_column``).

    Args:
        modalities: which of ``"text"``, ``"audio"``, ``"video"`` to collate; by default every
            ``<modality>_features`` column of the first row.
        feature_dims: expected size per modality; by default the size of the first vector present in
            the batch. Every vector is checked against it.
        speaker_vocab: speaker name -> id (IEMOCAP ``{"M": 0, "F": 1}``, MAGTKD's 304 MELD names,
            :func:`hf_erc.data.feature_files.feature_file_speaker_vocab`). Without it, speakers are
            numbered by first appearance within each dialogue.
        unknown_speaker_id: id of names missing from ``speaker_vocab`` (a model's ``config.unknown_speaker_id``,
            e.g. MAGTKD's); when ``None`` (default) an unknown name is an error naming the dialogue, the turn and
            this setting.
        num_speakers: size of the model's speaker table. First-appearance ids are clamped to
            ``num_speakers - 1`` (SDT on MELD: 9, so the 10th speaker on shares the last id); vocabulary
            ids must be below it.
        speaker_pad_id: speaker id written on padding positions.
        label_column: column holding the per-turn labels.
        max_turns: keep only the first ``max_turns`` turns of longer dialogues (the later turns, and
            their labels, are dropped from the batch: do not use it for evaluation).
        pad_to_multiple_of: round ``T`` up to a multiple of this (tensor-core friendly shapes).
    """

    modalities: Sequence[str] | None = None
    feature_dims: Mapping[str, int] | None = None
    speaker_vocab: Mapping[str, int] | None = None
    unknown_speaker_id: int | None = None
    num_speakers: int | None = None
    speaker_pad_id: int = 0
    label_column: str | None = "emotion"
    max_turns: int | None = None
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if self.modalities is not None:
            unknown = [name for name in self.modalities if name not in MODALITIES]
            if unknown or not self.modalities:
                raise ValueError(f"modalities={list(self.modalities)}: expected a non-empty subset of {MODALITIES}.")
        if self.num_speakers is not None and self.num_speakers < 1:
            raise ValueError(f"num_speakers={self.num_speakers}: expected a positive number.")
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"max_turns={self.max_turns}: expected None or a positive number.")
        if self.speaker_vocab is not None and self.num_speakers is not None:
            ids = list(self.speaker_vocab.values())
            if self.unknown_speaker_id is not None:
                ids.append(self.unknown_speaker_id)
            too_large = [value for value in ids if not 0 <= value < self.num_speakers]
            if too_large:
                raise ValueError(f"speaker ids {too_large[:5]} do not fit num_speakers={self.num_speakers}.")

    def __call__(self, dialogues: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if len(dialogues) == 0:
            raise ValueError("DialogueCollator got an empty list of dialogues.")
        modalities = self._modalities(dialogues[0])
        names = [str(row.get("dialogue_id", f"#{index}")) for index, row in enumerate(dialogues)]
        lengths = [self._length(row, modalities, name) for row, name in zip(dialogues, names)]
        num_turns = _round_up(max(lengths), self.pad_to_multiple_of)
        batch_size = len(dialogues)

        attention_mask = np.zeros((batch_size, num_turns), dtype=np.int64)
        modality_mask = np.zeros((batch_size, num_turns, len(MODALITIES)), dtype=bool)
        speaker_ids = np.full((batch_size, num_turns), self.speaker_pad_id, dtype=np.int64)
        with_labels = self.label_column is not None and self.label_column in dialogues[0]
        labels = np.full((batch_size, num_turns), IGNORE_INDEX, dtype=np.int64)
        for index, (row, name, length) in enumerate(zip(dialogues, names, lengths)):
            attention_mask[index, :length] = 1
            speaker_ids[index, :length] = self._speaker_ids(row, name, length)
            if with_labels:
                labels[index, :length] = _label_ids(row[self.label_column][:length])

        batch = {}
        for modality in modalities:
            dim = self._feature_dim(modality, dialogues, names)
            features = np.zeros((batch_size, num_turns, dim), dtype=np.float32)
            channel = MODALITIES.index(modality)
            for index, (row, name, length) in enumerate(zip(dialogues, names, lengths)):
                present, matrix = self._stack(row, modality, name, length, dim)
                features[index, present] = matrix
                modality_mask[index, present, channel] = True
            batch[f"{modality}_features"] = torch.from_numpy(features)
        batch["attention_mask"] = torch.from_numpy(attention_mask)
        batch["speaker_ids"] = torch.from_numpy(speaker_ids)
        batch["modality_mask"] = torch.from_numpy(modality_mask)
        if with_labels:
            batch["labels"] = torch.from_numpy(labels)
        return batch

    def _modalities(self, row: Mapping[str, Any]) -> list[str]:
        if self.modalities is not None:
            missing = [m for m in self.modalities if f"{m}_features" not in row]
            if missing:
                raise DataFormatError(
                    f"DialogueCollator: modalities {missing} were requested but the rows have no "
                    f"{', '.join(f'{m}_features' for m in missing)} column."
                )
            return [m for m in MODALITIES if m in self.modalities]
        present = [m for m in MODALITIES if f"{m}_features" in row]
        if not present:
            raise DataFormatError(
                "DialogueCollator: the rows have no text_features/audio_features/video_features column; "
                "extract features first (hf-erc extract-features) or read a feature file."
            )
        return present

    def _length(self, row: Mapping[str, Any], modalities: list[str], name: str) -> int:
        lengths = {f"{m}_features": len(row[f"{m}_features"]) for m in modalities}
        if "speaker" in row:
            lengths["speaker"] = len(row["speaker"])
        if self.label_column is not None and self.label_column in row:
            lengths[self.label_column] = len(row[self.label_column])
        if "length" in row:
            lengths["length"] = int(row["length"])
        if len(set(lengths.values())) != 1:
            raise DataFormatError(f"dialogue {name}: its columns disagree on the number of turns: {lengths}.")
        length = next(iter(lengths.values()))
        if length == 0:
            raise DataFormatError(f"dialogue {name} has no turns; drop empty dialogues before batching.")
        return min(length, self.max_turns) if self.max_turns is not None else length

    def _turn(self, row: Mapping[str, Any], position: int) -> Any:
        return row["turn"][position] if "turn" in row else position

    def _speaker_ids(self, row: Mapping[str, Any], name: str, length: int) -> np.ndarray:
        if "speaker" not in row:
            raise DataFormatError(f"dialogue {name} has no 'speaker' column; speaker ids cannot be built.")
        speakers = list(row["speaker"][:length])
        if self.speaker_vocab is None:
            ids = first_appearance_ids(speakers)
            return np.minimum(ids, self.num_speakers - 1) if self.num_speakers is not None else ids
        ids = np.array([self.speaker_vocab.get(speaker, -1) for speaker in speakers], dtype=np.int64)
        unknown = np.flatnonzero(ids < 0)
        if unknown.size:
            if self.unknown_speaker_id is None:
                position = int(unknown[0])
                size = self.num_speakers if self.num_speakers is not None else max(self.speaker_vocab.values()) + 1
                raise DataFormatError(
                    f"dialogue {name}, turn {self._turn(row, position)}: speaker {speakers[position]!r} is not in "
                    f"speaker_vocab ({len(self.speaker_vocab)} names). Set unknown_speaker_id, the speaker id of the "
                    "names it lacks: for a model, its configuration field, e.g. in a training YAML `config_overrides: "
                    f"{{num_speakers: {size + 1}, unknown_speaker_id: {size}}}` (an embedding row of their own); or "
                    "add the name to speaker_vocab."
                )
            ids[unknown] = self.unknown_speaker_id
        return ids

    def _feature_dim(self, modality: str, dialogues: Sequence[Mapping[str, Any]], names: list[str]) -> int:
        if self.feature_dims is not None and modality in self.feature_dims:
            return int(self.feature_dims[modality])
        for row in dialogues:
            for vector in row[f"{modality}_features"]:
                if vector is not None:
                    return int(np.asarray(vector).size)
        raise DataFormatError(
            f"DialogueCollator: no utterance of dialogues {names[:5]} has a {modality} feature, so its size is "
            "unknown; pass feature_dims."
        )

    def _stack(self, row: Mapping[str, Any], modality: str, name: str, length: int, dim: int):
        """Positions that have the feature, and the stacked float32 ``[n_present, dim]`` vectors."""
        values = row[f"{modality}_features"]
        dense = isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim == 2 and values.dtype != object
        if dense:
            matrix = np.asarray(values[:length], dtype=np.float32)
            present = np.arange(len(matrix))
        else:
            values = list(values[:length])
            present = np.array([index for index, vector in enumerate(values) if vector is not None], dtype=np.int64)
            vectors = [values[position] for position in present]
            if not vectors:
                return present, np.zeros((0, dim), dtype=np.float32)
            try:
                matrix = np.asarray(vectors, dtype=np.float32)
            except (ValueError, TypeError):
                self._raise_wrong_size(row, modality, name, vectors, present, dim)
        if matrix.ndim != 2 or matrix.shape[1] != dim:
            self._raise_wrong_size(row, modality, name, list(matrix), present, dim)
        return present, matrix

    def _raise_wrong_size(self, row, modality, name, vectors, present, dim):
        for position, vector in zip(present, vectors):
            size = np.asarray(vector, dtype=object).size
            if size != dim:
                raise DataFormatError(
                    f"dialogue {name}, turn {self._turn(row, int(position))}: {modality} feature has size {size}, "
                    f"expected {dim} like the rest of the batch."
                )
        raise DataFormatError(f"dialogue {name}: {modality} features are not numeric vectors of size {dim}.")


@dataclass
class PromptCollator:
    """Utterance batches for prompted text models (TelME's teacher, MAGTKD's text model): each row's dialogue
    context and prompt, built and tokenized by the model's processor (``render_row``, ``encode_prompts``).

    Rows come from :func:`hf_erc.data.views.with_prompt_context`. Output: the processor's ``input_ids``,
    ``attention_mask`` (left-padded) and ``prompt_positions``, and ``labels`` long ``[B]`` (-100 for unlabelled
    rows; left out when rows have no ``label_column``).
    """

    processor: Any
    label_column: str | None = "emotion"

    @property
    def max_length(self) -> int:
        return self.processor.max_length

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if len(rows) == 0:
            raise ValueError("PromptCollator got an empty list of rows.")
        try:
            prompts = [self.processor.render_row(row) for row in rows]
        except ValueError as error:
            row = rows[0]
            raise DataFormatError(f"dialogue {row.get('dialogue_id')}, turn {row.get('turn')}: {error}") from error
        batch = dict(self.processor.encode_prompts(prompts))
        if self.label_column is not None and self.label_column in rows[0]:
            batch["labels"] = torch.from_numpy(_label_ids([row[self.label_column] for row in rows]))
        return batch


@dataclass
class MediaCollator:
    """Batches of one audio or video model's inputs, decoded from the media files of a media view's rows
    (:func:`hf_erc.data.views.with_media`) and turned into tensors by the model's processor.

    Audio gives ``input_values`` and ``attention_mask`` (the audio model's forward names), video ``pixel_values``;
    plus ``labels`` and ``utterance_index`` (the rows' ``row``). With ``teacher_collator`` the teacher's text
    inputs are added under the ``teacher_`` prefix; rows carrying a teacher's cached outputs
    (``teacher_logits``, ``teacher_utterance_embeddings``) give ``cached_teacher_logits`` and
    ``cached_teacher_utterance_embeddings`` (see ``ERCTrainer``). A row whose file does not decode, or whose
    audio is longer than the processor's ``max_clip_seconds``, is left out of the batch with a warning; a batch
    left empty raises :class:`~hf_erc.data.media.MediaDecodeError`.
    """

    modality: str
    processor: Any
    teacher_collator: Any = None
    label_column: str = "emotion"
    cached_teacher_columns: tuple[str, ...] = ("teacher_logits", "teacher_utterance_embeddings")

    def __post_init__(self):
        if self.modality not in ("audio", "video"):
            raise ValueError(f"MediaCollator decodes audio or video, not {self.modality!r}.")

    def decode(self, row: Mapping[str, Any]):
        """The waveform (audio) or the frames the processor chooses (video) of one media-view row."""
        path, start, end = row["media_path"], row["media_start"], row["media_end"]
        if self.modality == "audio":
            return decode_audio(path, self.processor.audio_sampling_rate, start, end)
        size = resized_frame_size(path, self.processor.image_processor.crop_size["height"])
        if self.processor.reads_recording_frames(start, end):
            # The frames by their positions in the dialogue recording (the authors' OpenCV arithmetic).
            return decode_frames_at(path, self.processor.recording_frame_indices(start, end, video_frame_rate(path)), size)
        start, end = self.processor.video_segment(start, end)
        # The processor's own frame choice over the whole clip: what it picks when served the clip's frames.
        return decode_video_frames(
            path, self.processor.num_frames, size, start, end, frame_indices=self.processor.frame_indices
        )

    def _too_long(self, row, value) -> bool:
        """Whether the clip is over the processor's ``max_clip_seconds``, by the length of its decoded audio for both
        stages, as TelME's authors decide it (one test of the clip's audio zeroes its audio and its frames); a turn cut
        from a recording by its span, a clip without audio by its file's duration."""
        limit = self.processor.max_clip_seconds
        if limit is None:
            return False
        if self.modality == "audio":
            return len(value) / self.processor.audio_sampling_rate > limit
        if row["media_start"] is not None:
            return row["media_end"] - row["media_start"] > limit
        try:
            samples = decode_audio(row["media_path"], self.processor.audio_sampling_rate)
        except MediaDecodeError:
            duration = probe_media(row["media_path"], decode=False).duration
            return duration is not None and duration > limit
        return len(samples) / self.processor.audio_sampling_rate > limit

    @property
    def _long_clips_as_zeros(self) -> bool:
        return getattr(self.processor, "long_clip_inputs", "missing") == "zeros"

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        kept, media, stand_ins = [], [], []
        for row in rows:
            try:
                value = self.decode(row)
                too_long = (self.modality == "audio" or self._long_clips_as_zeros) and self._too_long(row, value)
            except MediaDecodeError as error:
                logger.warning(f"{error} (utterance {row.get('dialogue_id')}/{row.get('turn')}): left out of its batch.")
                continue
            if too_long and self._long_clips_as_zeros:  # the authors' stand-in: zeros, read as present
                value = self.processor.long_clip_audio().numpy() if self.modality == "audio" else None
                stand_ins.append(len(kept))
            elif too_long:
                limit = self.processor.max_clip_seconds
                logger.warning(f"{row['media_path']}: audio longer than {limit} s, left out (the reference's rule).")
                continue
            kept.append(row)
            media.append(value)
        if not kept:
            paths = ", ".join(str(row.get("media_path")) for row in rows)
            raise MediaDecodeError(paths, f"no {self.modality} of this batch could be used")
        if self.modality == "audio":
            inputs, _ = self.processor.encode_audio(media)
            batch = {"input_values": inputs["input_values"], "attention_mask": inputs["audio_attention_mask"]}
        else:
            inputs, _ = self.processor.encode_video(list(media), stand_ins)
            batch = {"pixel_values": inputs["pixel_values"]}
        batch["utterance_index"] = torch.tensor([int(row["row"]) for row in kept], dtype=torch.long)
        if self.label_column in kept[0]:
            batch["labels"] = torch.from_numpy(_label_ids([row[self.label_column] for row in kept]))
        if self.teacher_collator is not None:
            teacher_inputs = self.teacher_collator(kept)
            batch.update({f"teacher_{name}": value for name, value in teacher_inputs.items() if name != "labels"})
        for column in self.cached_teacher_columns:
            if column in kept[0]:
                values = np.asarray([row[column] for row in kept], dtype=np.float32)
                batch[f"cached_{column}"] = torch.from_numpy(values)
        return batch


@dataclass
class UtteranceEmbeddingCollator:
    """Batches of cached utterance embeddings for an utterance-level fusion (TelME's): ``text_embeddings``,
    ``audio_embeddings`` and ``video_embeddings`` (zeros where missing), ``modality_mask`` (text, audio, video)
    and ``labels``."""

    audio_size: int
    video_size: int
    label_column: str = "emotion"

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {"text_embeddings": torch.tensor(np.asarray([row["text_embeddings"] for row in rows], np.float32))}
        modality_mask = torch.zeros(len(rows), 3, dtype=torch.bool)
        modality_mask[:, 0] = True
        for channel, (modality, size) in enumerate((("audio", self.audio_size), ("video", self.video_size)), start=1):
            values = torch.zeros(len(rows), size)
            for index, row in enumerate(rows):
                vector = row.get(f"{modality}_embeddings")
                if vector is not None:
                    values[index] = torch.as_tensor(vector, dtype=torch.float32)
                    modality_mask[index, channel] = True
            batch[f"{modality}_embeddings"] = values
        batch["modality_mask"] = modality_mask
        if self.label_column in rows[0]:
            batch["labels"] = torch.from_numpy(_label_ids([row[self.label_column] for row in rows]))
        return batch


@dataclass
class BlankModalities:
    """A collator whose batches hide ``modalities`` from the model the way a missing clip does: their channel of
    ``modality_mask`` is False for every utterance and their ``<modality>_features``/``<modality>_embeddings`` are
    zeros. An ablation at evaluation time (``--blank_modalities``): what a trained fused model scores without one of
    its inputs. Every fused model reads ``modality_mask`` (SDT, CMATH and MAGTKD's fusion per turn, TelME's per
    utterance), so nothing but the mask and the values changes; batches without a ``modality_mask`` (single-modality
    stage models) are an error.
    """

    collator: Any
    modalities: Sequence[str]

    def __post_init__(self):
        unknown = [name for name in self.modalities if name not in MODALITIES]
        if unknown:
            raise ValueError(f"BlankModalities: {unknown} are not modalities; expected a subset of {MODALITIES}.")

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(rows)
        if batch.get("modality_mask") is None:
            raise DataFormatError(
                f"cannot blank {list(self.modalities)}: the batches of this model have no modality_mask (only models "
                "that read several modalities, e.g. a fusion, SDT or CMATH, can have one blanked)."
            )
        modality_mask = batch["modality_mask"].clone()
        for modality in self.modalities:
            modality_mask[..., MODALITIES.index(modality)] = False
            for key in (f"{modality}_features", f"{modality}_embeddings"):
                if key in batch:
                    batch[key] = torch.zeros_like(batch[key])
        batch["modality_mask"] = modality_mask
        return batch
