"""The training stages of ``scripts/train.py``: for one (model type, stage), the model, data view and collator.

:func:`hf_erc.training.run.main` looks the stage up in ``MODEL_REGISTRY`` and calls its ``setup``, which
returns a :class:`StageSetup`: the model to train, the train/validation/test datasets in the form its collator
reads, the collator, and what else the run needs (a live teacher, a step before the final save, objects saved
with the model). The run itself (``ERCTrainer``, best checkpoint on validation weighted F1, results, model card)
is the same for every stage.

TelME (Yun et al., NAACL 2024) trains in three stages, each reading the checkpoints of the one before:

``teacher``
    :class:`~hf_erc.models.TelMETextTeacher` on utterance rows with their dialogue context
    (:func:`~hf_erc.data.dialogues.add_dialogue_context`), batched by
    :class:`~hf_erc.data.collators.UtteranceCollator`; cross-entropy only; optionally a PEFT method
    (``TeacherPeftArguments``), folded back into a plain teacher before the final save. The tokenizer, with the
    speaker tokens ``<s1>``..``<s9>`` added, is saved with the checkpoint.
``student``
    :class:`~hf_erc.models.TelMEAudioStudent` (``--modalities audio``) or
    :class:`~hf_erc.models.TelMEVideoStudent` (``--modalities video``) on the utterances that have that
    modality, their waveform / frames decoded from ``audio_path``/``video_path`` by
    :class:`TelMEMediaCollator` (inside the DataLoader workers), distilled from the frozen teacher
    ``--teacher_model_name_or_path`` by ``ERCTrainer`` (DIST on the logits, similarity KD on
    ``utterance_embeddings``). By default the teacher runs once over the training set before training and the
    student learns from its cached logits and embeddings (``--cache_teacher_outputs false`` runs it on every
    batch, from the text inputs the collator adds under the ``teacher_`` prefix).
``fusion``
    :class:`~hf_erc.models.TelMEForEmotionRecognition` assembled from the three stage checkpoints, the teacher
    and students frozen; their utterance embeddings are computed once for every split (cached on disk, keyed by
    the checkpoints and the data) and the attention-based shifting fusion trains on them
    (:class:`TelMEEmbeddingCollator`). The final checkpoint is the whole model with its processor.

MAGTKD (Li et al., IJCAI 2025) runs the same procedures on its own classes (:data:`MAGTKD_FAMILY`): ``text``
(:func:`setup_text_stage`), ``audio``/``video`` (:func:`setup_media_stage` without a teacher: cross-entropy), ``kd``
(:func:`setup_media_stage` distilled from the frozen text model), then ``fusion`` (:func:`setup_magtkd_fusion`):
the dialogue-level :class:`~hf_erc.models.MAGTKDForEmotionRecognition` over the cached utterance embeddings of the
three stage models, grouped into dialogues and batched by :class:`~hf_erc.data.collators.DialogueCollator`.

Utterances whose media is missing (no path, file absent, ``has_audio``/``has_video`` false) or longer than the
model's ``max_clip_seconds`` are left out of a student stage (counted in ``train_results.json`` and logged); a
file that fails to decode during training is dropped from its batch with a warning naming it. The fusion stage
keeps every utterance and marks a missing modality in ``modality_mask``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import logging

logger = logging.get_logger(__name__)

SPLITS = ("train", "validation", "test")
# Columns of an utterance row the TelME stages read (besides media and cached outputs).
UTTERANCE_COLUMNS = ("dialogue_id", "turn", "speaker", "text", "emotion")
MEDIA_COLUMNS = ("media_path", "media_start", "media_end")
TEACHER_OUTPUT_COLUMNS = ("teacher_logits", "teacher_utterance_embeddings")


@dataclass
class StageContext:
    """Everything a stage's ``setup`` reads: the parsed arguments and the model class the registry chose."""

    model_args: Any
    data_args: Any
    distillation_args: Any
    training_args: Any
    peft_args: Any
    config_class: type
    model_class: type
    preset_builder: Callable[..., Any]


@dataclass
class StageSetup:
    """What a stage trains and on what.

    Args:
        model: the model the Trainer optimises.
        datasets: ``train``/``validation``/``test`` rows, in the form ``data_collator`` reads.
        data_collator: rows -> batch of ``model.forward`` keyword arguments (plus ``labels``).
        teacher_model: a frozen teacher run on every training batch (``None``: no teacher, or cached outputs).
        finalize_model: applied to the trained model before the final save (e.g. ``fold_peft``).
        save_with_model: objects with ``save_pretrained`` written next to the model (tokenizer, processor).
        metrics: numbers about the data view recorded with the training metrics (e.g. skipped utterances).
        unit: what one dataset row is, for messages ("dialogues" or "utterances").
    """

    model: PreTrainedModel
    datasets: Mapping[str, Any]
    data_collator: Callable[[Sequence[Mapping[str, Any]]], dict[str, torch.Tensor]]
    teacher_model: nn.Module | None = None
    finalize_model: Callable[[PreTrainedModel], PreTrainedModel] | None = None
    save_with_model: list[Any] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    unit: str = "utterances"


@dataclass(frozen=True)
class UtteranceModelFamily:
    """The utterance-level stage models of a model family whose stages share one procedure (TelME, MAGTKD): the
    prompted text model and the audio and video models, by class name in ``module``."""

    name: str
    module: str
    text_model: str
    audio_model: str
    video_model: str

    def classes(self) -> dict[str, type]:
        """``{"text": ..., "audio": ..., "video": ...}``: the stage model classes."""
        import importlib

        module = importlib.import_module(self.module)
        names = {"text": self.text_model, "audio": self.audio_model, "video": self.video_model}
        return {modality: getattr(module, name) for modality, name in names.items()}


TELME_FAMILY = UtteranceModelFamily(
    "TelME", "hf_erc.models.telme", "TelMETextTeacher", "TelMEAudioStudent", "TelMEVideoStudent"
)
MAGTKD_FAMILY = UtteranceModelFamily(
    "MAGTKD", "hf_erc.models.magtkd", "MAGTKDTextModel", "MAGTKDAudioModel", "MAGTKDVideoModel"
)


# ---- Utterance views ----------------------------------------------------------------------


def load_utterance_splits(data_args) -> dict[str, Any]:
    """The train/validation/test utterance rows, limited to the first ``max_*_dialogues`` dialogues if asked."""
    from ..data.dialogues import dialogue_boundaries
    from .run import _load_utterances

    utterances = _load_utterances(data_args)
    missing = [split for split in SPLITS if split not in utterances]
    if missing:
        raise ValueError(f"{data_args.data_dir} has no {missing} split(s); found {list(utterances)}.")
    splits = {}
    for split in SPLITS:
        dataset = utterances[split]
        limit = data_args.max_train_dialogues if split == "train" else data_args.max_eval_dialogues
        if limit is not None:
            boundaries = dialogue_boundaries(dataset)
            dataset = dataset.select(range(int(boundaries[min(limit, len(boundaries) - 1)])))
        splits[split] = dataset
    return splits


def with_dialogue_context(dataset, max_context_turns: int | None, extra_columns: Sequence[str] = ()):
    """Utterance rows with ``context_speakers``/``context_texts`` and a ``row`` index, other columns dropped."""
    from ..data.dialogues import add_dialogue_context

    keep = [name for name in (*UTTERANCE_COLUMNS, *extra_columns) if name in dataset.column_names]
    dataset = dataset.select_columns(keep)
    dataset = add_dialogue_context(dataset, max_context_turns=max_context_turns)
    return dataset.add_column("row", np.arange(len(dataset), dtype=np.int64))


def _add_length(dataset, lengths: Sequence[int]):
    """The ``length`` column the length-grouped sampler buckets rows by."""
    return dataset.add_column("length", np.asarray(lengths, dtype=np.int32))


def _token_lengths(dataset, collator) -> list[int]:
    """Tokens per row of a text view as ``collator`` will cut them (prompt and mask included)."""
    columns = ("context_speakers", "context_texts", "speaker", "text")
    view = dataset.select_columns(list(columns))
    texts = [collator.render(row) for row in view]
    encoded = collator.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [min(len(ids) + 1, collator.max_length) for ids in encoded]


# ---- Tokenizer and processor --------------------------------------------------------------


def speaker_tokens(num_speaker_tokens: int, template: str = "<s{index}>") -> list[str]:
    return [template.format(index=index) for index in range(1, num_speaker_tokens + 1)]


def load_teacher_tokenizer(name_or_path: str | None, num_speaker_tokens: int):
    """The text model's tokenizer with the speaker tokens added as special tokens (TelME's and MAGTKD's
    ``<s1>``..)."""
    from transformers import AutoTokenizer

    from ..features.encoders import resolve_encoder_path

    if name_or_path is None:
        raise ValueError(
            "The text model's prompts (and the processor of the audio/video stages) need a tokenizer: pass "
            "--model_name_or_path (a text encoder such as roberta-large, or 'minilm') or --tokenizer_name_or_path "
            "(the text model's tokenizer)."
        )
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path(name_or_path))
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(f"The tokenizer of {name_or_path} has no mask or pad token; the prompt needs both.")
    missing = [token for token in speaker_tokens(num_speaker_tokens) if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
    return tokenizer


def fit_embeddings_to_tokenizer(teacher, tokenizer) -> None:
    """Grow the teacher's word embeddings to the tokenizer's size (the speaker tokens take the new rows)."""
    rows = teacher.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        teacher.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        teacher.config.text_config.vocab_size = len(tokenizer)


def _has_file(name_or_path: str | None, filename: str) -> bool:
    return name_or_path is not None and Path(name_or_path, filename).is_file()


def build_telme_processor(tokenizer, config, max_length: int, audio_source=None, video_source=None):
    """A :class:`~hf_erc.models.TelMEProcessor` for ``config``.

    The feature extractor and image processor come from ``audio_source``/``video_source``: a folder holding a
    saved TelME processor (a student checkpoint) or an encoder's own preprocessor (e.g. the Hub id of
    data2vec-audio-base-960h); failing that, the reference's settings: waveforms normalised to zero mean and
    unit variance, frames resized (shortest edge) and centre-cropped to the encoder's frame size with ImageNet
    mean and standard deviation.
    """
    from transformers import AutoFeatureExtractor, AutoImageProcessor, VideoMAEImageProcessor, Wav2Vec2FeatureExtractor
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from ..models.telme import TelMEProcessor

    def saved_processor(source):
        if _has_file(source, "processor_config.json"):
            return TelMEProcessor.from_pretrained(source)
        return None

    feature_extractor = image_processor = None
    saved = saved_processor(audio_source)
    if saved is not None:
        feature_extractor = saved.feature_extractor
    elif audio_source is not None:
        try:
            feature_extractor = AutoFeatureExtractor.from_pretrained(audio_source)
        except (OSError, ValueError):
            logger.info(f"No feature extractor in {audio_source}: using the reference's audio normalisation.")
    saved = saved_processor(video_source)
    if saved is not None:
        image_processor = saved.image_processor
    elif video_source is not None:
        try:
            image_processor = AutoImageProcessor.from_pretrained(video_source)
        except (OSError, ValueError):
            logger.info(f"No image processor in {video_source}: using the reference's frame processing.")
    if feature_extractor is None:
        feature_extractor = Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=config.audio_sampling_rate,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=True,
        )
    if image_processor is None:
        size = config.video_frame_size
        image_processor = VideoMAEImageProcessor(
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=list(IMAGENET_DEFAULT_MEAN),
            image_std=list(IMAGENET_DEFAULT_STD),
        )
    return TelMEProcessor(
        tokenizer=tokenizer,
        feature_extractor=feature_extractor,
        image_processor=image_processor,
        max_length=max_length,
        num_speaker_tokens=config.num_speaker_tokens,
        audio_sampling_rate=config.audio_sampling_rate,
        max_audio_seconds=config.audio_max_seconds,
        max_clip_seconds=config.max_clip_seconds,
        num_frames=config.video_num_frames,
    )


def text_max_length(data_args, config, extra_virtual_tokens: int = 0) -> int:
    """Tokens per teacher input: ``--max_length``, at most what the encoder's positions leave after the virtual
    tokens (folded ones and those a PEFT prompt adds while training)."""
    limit = config.text_max_length - config.text_num_virtual_tokens - extra_virtual_tokens
    if data_args.max_length is None:
        return limit
    if data_args.max_length > limit:
        raise ValueError(
            f"--max_length {data_args.max_length} exceeds the {limit} tokens the text teacher can read "
            f"(text_max_length {config.text_max_length} minus {config.text_num_virtual_tokens + extra_virtual_tokens} "
            "virtual tokens): lower it."
        )
    return data_args.max_length


# ---- Models -------------------------------------------------------------------------------


def _resolved(name_or_path: str) -> str:
    from ..features.encoders import resolve_encoder_path

    return resolve_encoder_path(name_or_path)


def _is_checkpoint_of(name_or_path: str, model_class) -> bool:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name_or_path)
    return getattr(config, "model_type", None) == model_class.config_class.model_type


def build_stage_model(context: StageContext, name_or_path: str | None, **config_fields):
    """A stage model (TelME, MAGTKD): a checkpoint of that stage, or a pretrained encoder with a fresh head
    (``from_encoder_pretrained``), or (no path) the dataset preset with ``--config_overrides``."""
    import hf_erc.models  # noqa: F401  (registers the stage configurations with AutoConfig)

    model_class = context.model_class
    overrides = dict(context.model_args.config_overrides)
    preset = context.model_args.preset or context.data_args.dataset_name
    if name_or_path is None:
        config = context.preset_builder(context.config_class, preset, list(context.data_args.modalities), overrides)
        for name, value in config_fields.items():
            setattr(config.text_config, name, value)
        return model_class(config)
    path = _resolved(name_or_path)
    if _is_checkpoint_of(path, model_class):
        return model_class.from_pretrained(path, **overrides)
    return model_class.from_encoder_pretrained(path, dataset=preset, **overrides)


def _load_stage_checkpoint(path: str | None, model_class, what: str):
    import hf_erc.models  # noqa: F401

    if path is None:
        raise ValueError(f"This stage needs {what}.")
    if not _is_checkpoint_of(path, model_class):
        raise ValueError(
            f"{path} is not a {model_class.__name__} checkpoint ({what}): pass the output_dir of that stage."
        )
    return model_class.from_pretrained(path)


def _check_labels(model, reference, reference_name: str) -> None:
    if dict(model.config.id2label) != dict(reference.config.id2label):
        raise ValueError(
            f"The model predicts {model.config.id2label} but {reference_name} predicts {reference.config.id2label}: "
            "train every stage on the same dataset (--dataset_name)."
        )


# ---- Media --------------------------------------------------------------------------------


def _video_frame_size(path: str, frame_size: int) -> tuple[int, int]:
    """``(height, width)`` with the shortest edge ``frame_size`` and the clip's aspect ratio (the image
    processor then centre-crops, as the reference does after resizing)."""
    import av

    from ..data.media import MediaDecodeError

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise MediaDecodeError(path, "no video stream")
            context = container.streams.video[0].codec_context
            height, width = context.height, context.width
    except MediaDecodeError:
        raise
    except Exception as error:
        raise MediaDecodeError(path, f"{type(error).__name__}: {error}") from error
    if not height or not width:
        return frame_size, frame_size
    if height <= width:
        return frame_size, max(frame_size, round(frame_size * width / height))
    return max(frame_size, round(frame_size * height / width)), frame_size


def decode_utterance_media(row: Mapping[str, Any], modality: str, processor):
    """The waveform (audio) or ``num_frames`` RGB frames (video) of one row of a media view."""
    from ..data.media import decode_audio, decode_video_frames

    path, start, end = row["media_path"], row["media_start"], row["media_end"]
    if modality == "audio":
        return decode_audio(path, processor.audio_sampling_rate, start, end)
    size = _video_frame_size(path, processor.image_processor.crop_size["height"])
    return decode_video_frames(path, processor.num_frames, size, start, end)


def with_media(dataset, modality: str, max_clip_seconds: float | None) -> tuple[Any, dict[str, int]]:
    """The rows that have ``modality`` (a path, an existing file, ``has_<modality>`` true, not longer than
    ``max_clip_seconds``), with ``media_path``/``media_start``/``media_end`` (a recording shared by several
    utterances is cut by their times); and how many rows were left out, by reason."""
    from datasets import Value

    from ..features.extract import _media_rows

    rows = _media_rows(dataset, modality)
    with_path = len(rows)
    rows = [row for row in rows if os.path.isfile(row[1])]
    absent = with_path - len(rows)
    too_long = 0
    if max_clip_seconds is not None and "start" in dataset.column_names and "end" in dataset.column_names:
        starts, ends = dataset["start"], dataset["end"]
        kept = []
        for row in rows:
            start, end = starts[row[0]], ends[row[0]]
            if start is not None and end is not None and end - start > max_clip_seconds:
                too_long += 1
            else:
                kept.append(row)
        rows = kept
    # Columns over every row first, then the selection (adding columns to a selection of a table that was
    # itself built by adding columns can fail to line the blocks up in datasets).
    columns = {name: [None] * len(dataset) for name in MEDIA_COLUMNS}
    for index, path, start, end in rows:
        columns["media_path"][index] = path
        columns["media_start"][index] = None if start is None else float(start)
        columns["media_end"][index] = None if end is None else float(end)
    view = dataset
    for name, values in columns.items():
        view = view.add_column(name, values, feature=Value("string") if name == "media_path" else Value("float64"))
    view = view.select([row[0] for row in rows])
    skipped = {
        f"no_{modality}": len(dataset) - with_path,
        f"{modality}_file_missing": absent,
        f"longer_than_{max_clip_seconds:g}s" if max_clip_seconds else "too_long": too_long,
    }
    return view, skipped


@dataclass
class TelMEMediaCollator:
    """Batches of one student's inputs, decoded from the media files of utterance rows (a media view).

    Audio gives ``input_values`` and ``attention_mask`` (the student's forward names), video ``pixel_values``,
    both built by :class:`~hf_erc.models.TelMEProcessor`; plus ``labels`` and ``utterance_index`` (the rows'
    ``row``). With ``teacher_collator`` the teacher's text inputs are added under the ``teacher_`` prefix; rows
    carrying the teacher's cached outputs (``teacher_logits``, ``teacher_utterance_embeddings``) give
    ``cached_teacher_logits`` and ``cached_teacher_utterance_embeddings`` (see ``ERCTrainer``). A row whose file
    does not decode, or whose audio is longer than the processor's ``max_clip_seconds``, is left out of the
    batch with a warning.
    """

    modality: str
    processor: Any
    teacher_collator: Any = None
    label_column: str = "emotion"

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        from ..data.media import MediaDecodeError

        kept, media = [], []
        for row in rows:
            try:
                value = decode_utterance_media(row, self.modality, self.processor)
            except MediaDecodeError as error:
                logger.warning(
                    f"{error} (utterance {row.get('dialogue_id')}/{row.get('turn')}): left out of its batch."
                )
                continue
            limit = self.processor.max_clip_seconds
            if (
                self.modality == "audio"
                and limit is not None
                and len(value) / self.processor.audio_sampling_rate > limit
            ):
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
            inputs, _ = self.processor.encode_video(list(media))
            batch = {"pixel_values": inputs["pixel_values"]}
        batch["utterance_index"] = torch.tensor([int(row["row"]) for row in kept], dtype=torch.long)
        if self.label_column in kept[0]:
            batch["labels"] = torch.tensor([_label(row[self.label_column]) for row in kept], dtype=torch.long)
        if self.teacher_collator is not None:
            teacher_inputs = self.teacher_collator(kept)
            batch.update({f"teacher_{name}": value for name, value in teacher_inputs.items() if name != "labels"})
        for column in TEACHER_OUTPUT_COLUMNS:
            if column in kept[0]:
                values = np.asarray([row[column] for row in kept], dtype=np.float32)
                batch[f"cached_{column}"] = torch.from_numpy(values)
        return batch


def _label(value) -> int:
    return -100 if value is None or value < 0 else int(value)


@dataclass
class TelMEEmbeddingCollator:
    """Batches of cached utterance embeddings for the fusion stage: ``text_embeddings``, ``audio_embeddings`` and
    ``video_embeddings`` (zeros where missing), ``modality_mask`` (text, audio, video) and ``labels``."""

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
                vector = row[f"{modality}_embeddings"]
                if vector is not None:
                    values[index] = torch.as_tensor(vector, dtype=torch.float32)
                    modality_mask[index, channel] = True
            batch[f"{modality}_embeddings"] = values
        batch["modality_mask"] = modality_mask
        if self.label_column in rows[0]:
            batch["labels"] = torch.tensor([_label(row[self.label_column]) for row in rows], dtype=torch.long)
        return batch


# ---- Caching frozen models' outputs -------------------------------------------------------


def embedding_cache_dir(data_args) -> Path:
    if data_args.embedding_cache_dir is not None:
        return Path(data_args.embedding_cache_dir)
    from huggingface_hub.constants import HF_HOME

    return Path(HF_HOME) / "hf_erc" / "embeddings"


def _checkpoint_identity(path: str) -> list:
    """What identifies a checkpoint's weights: its config and the size and time of its weight files."""
    folder = Path(path)
    identity = [str(folder.resolve())]
    for file in sorted(folder.glob("*")):
        if file.suffix in (".safetensors", ".json", ".bin"):
            stat = file.stat()
            identity.append((file.name, stat.st_size, int(stat.st_mtime)))
    return identity


def cache_key(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _rows_identity(dataset, columns: Sequence[str]) -> list:
    present = [name for name in columns if name in dataset.column_names]
    return [present, dataset.select_columns(present).to_dict()]


def _media_identity(dataset) -> list:
    from ..features.extract import _file_identity

    return [(path, start, end, _file_identity(path)) for path, start, end in zip(*(dataset[c] for c in MEDIA_COLUMNS))]


def _processor_identity(processor) -> list:
    """The processor settings that change a student's inputs."""
    return [
        processor.audio_sampling_rate,
        processor.max_audio_seconds,
        processor.max_clip_seconds,
        processor.num_frames,
        processor.feature_extractor.to_dict(),
        processor.image_processor.to_dict(),
    ]


def _device_autocast(training_args):
    device = training_args.device
    if training_args.bf16 and device.type == "cuda":
        return device, torch.autocast("cuda", dtype=torch.bfloat16)
    return device, torch.autocast(device.type, enabled=False)


def _batched_rows(dataset, batch_size: int, collator, num_workers: int):
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collator, num_workers=num_workers
    )
    return loader


@torch.no_grad()
def compute_text_outputs(teacher, dataset, collator, training_args) -> np.ndarray:
    """``[rows, num_labels + projection_size]``: the frozen teacher's logits and utterance embeddings per row."""
    device, autocast = _device_autocast(training_args)
    teacher.to(device).eval()
    outputs = []
    for batch in _batched_rows(dataset, training_args.per_device_eval_batch_size, collator, 0):
        batch = {name: value.to(device) for name, value in batch.items() if name != "labels"}
        with autocast:
            result = teacher(**batch)
        outputs.append(torch.cat([result.logits, result.utterance_embeddings], dim=-1).float().cpu())
    return torch.cat(outputs).numpy()


@torch.no_grad()
def compute_media_embeddings(student, dataset, modality, processor, training_args) -> list:
    """The frozen student's utterance embedding of every row of a media view (``None`` where decoding failed)."""
    device, autocast = _device_autocast(training_args)
    student.to(device).eval()
    embeddings: list = [None] * len(dataset)
    position = {int(row): index for index, row in enumerate(dataset["row"])}
    collator = _SkippingMediaCollator(TelMEMediaCollator(modality, processor))
    loader = _batched_rows(
        dataset, training_args.per_device_eval_batch_size, collator, training_args.dataloader_num_workers
    )
    for batch in loader:
        if batch is None:
            continue
        rows = batch.pop("utterance_index").tolist()
        batch.pop("labels", None)
        with autocast:
            values = student(**{name: value.to(device) for name, value in batch.items()}).utterance_embeddings
        for row, vector in zip(rows, values.float().cpu().numpy()):
            embeddings[position[row]] = vector
    return embeddings


class _SkippingMediaCollator:
    """A media collator that returns ``None`` for a batch none of whose files decode (embedding passes only)."""

    def __init__(self, collator: TelMEMediaCollator):
        self.collator = collator

    def __call__(self, rows):
        from ..data.media import MediaDecodeError

        try:
            return self.collator(rows)
        except MediaDecodeError as error:
            logger.warning(f"{error}: these utterances get no {self.collator.modality} embedding.")
            return None


def _float_lists(values) -> list:
    return [None if value is None else np.asarray(value, dtype=np.float32) for value in values]


def _add_vector_column(dataset, name: str, values):
    from datasets import List, Value

    return dataset.add_column(name, _float_lists(values), feature=List(Value("float32")))


# ---- Stages of the utterance-level families (TelME, MAGTKD) --------------------------------


def setup_text_stage(context: StageContext, family: UtteranceModelFamily = TELME_FAMILY) -> StageSetup:
    """The prompted text model (TelME's teacher, MAGTKD's text model): cross-entropy on dialogue contexts ending in
    the prompt, optionally with a PEFT method (folded into a plain model before the final save)."""
    from ..data.collators import UtteranceCollator
    from ..teachers import PREPENDING_METHODS, apply_peft, fold_peft

    model_args, data_args = context.model_args, context.data_args
    preset_config = None
    if model_args.model_name_or_path is None:
        preset_config = context.preset_builder(
            context.config_class,
            model_args.preset or data_args.dataset_name,
            list(data_args.modalities),
            dict(model_args.config_overrides),
        )
    num_speaker_tokens = (preset_config or context.config_class()).num_speaker_tokens
    tokenizer = load_teacher_tokenizer(
        context.peft_args.tokenizer_name_or_path or model_args.model_name_or_path, num_speaker_tokens
    )
    fields = {}
    if preset_config is not None:
        # A randomly initialised encoder gets one embedding row per token of its tokenizer.
        fields = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    model = build_stage_model(context, model_args.model_name_or_path, **fields)
    fit_embeddings_to_tokenizer(model, tokenizer)
    peft_args = context.peft_args
    prompt_tokens = peft_args.num_virtual_tokens if peft_args.method in PREPENDING_METHODS else 0
    collator = UtteranceCollator(tokenizer, max_length=text_max_length(data_args, model.config, prompt_tokens))
    apply_peft(model, peft_args)

    datasets = {}
    for split, dataset in load_utterance_splits(data_args).items():
        view = with_dialogue_context(dataset, data_args.max_context_turns)
        datasets[split] = _add_length(view, _token_lengths(view, collator))
    return StageSetup(
        model=model, datasets=datasets, data_collator=collator, finalize_model=fold_peft, save_with_model=[tokenizer]
    )


def _media_modality(data_args, stage: str) -> str:
    modalities = [modality for modality in data_args.modalities if modality != "text"]
    if len(modalities) != 1 or len(data_args.modalities) != 1:
        raise ValueError(
            f"--stage {stage} trains one audio or video model: pass --modalities audio or --modalities video (got "
            f"{data_args.modalities})."
        )
    return modalities[0]


def _teacher_text_view(teacher, tokenizer, data_args):
    from ..data.collators import UtteranceCollator

    return UtteranceCollator(tokenizer, max_length=text_max_length(data_args, teacher.config))


def _media_views(data_args, modality: str, max_clip_seconds, context_turns: bool):
    """Per split, the utterance rows that have ``modality`` (media columns added); and how many were skipped."""
    datasets, metrics = {}, {}
    media_columns = (f"{modality}_path", f"has_{modality}", "start", "end")
    for split, dataset in load_utterance_splits(data_args).items():
        if context_turns:
            view = with_dialogue_context(dataset, data_args.max_context_turns, extra_columns=media_columns)
        else:
            keep = [name for name in (*UTTERANCE_COLUMNS, *media_columns) if name in dataset.column_names]
            view = dataset.select_columns(keep).add_column("row", np.arange(len(dataset), dtype=np.int64))
        view, skipped = with_media(view, modality, max_clip_seconds)
        total = sum(skipped.values())
        metrics[f"{split}_utterances_skipped"] = total
        if split == "train":
            metrics.update({f"train_skipped_{reason}": count for reason, count in skipped.items()})
        logger.warning(
            f"{modality} model, {split}: {len(view)} utterances with {modality}, {total} skipped "
            f"({', '.join(f'{reason}: {count}' for reason, count in skipped.items())})."
        )
        if len(view) == 0:
            raise ValueError(
                f"No {split} utterance of {data_args.data_dir} has usable {modality}: point --data_dir to a release "
                f"with the media files, or train the {modality} model on another dataset."
            )
        if modality == "audio" and "start" in view.column_names:
            # Bucket clips of similar duration (less padding); video clips all give the same number of frames.
            durations = [
                0 if a is None or b is None else int(100 * (b - a)) for a, b in zip(view["start"], view["end"])
            ]
            if any(durations):
                view = _add_length(view, durations)
        datasets[split] = view.remove_columns([c for c in media_columns if c in view.column_names])
    return datasets, metrics


def setup_media_stage(
    context: StageContext, family: UtteranceModelFamily = TELME_FAMILY, distil: bool = True
) -> StageSetup:
    """One audio or video model on the utterances that have that modality, decoded from the media files.

    ``distil`` (TelME's ``student``, MAGTKD's ``kd``): distilled from the family's frozen text model
    ``--teacher_model_name_or_path`` by ``ERCTrainer`` (response KD on the logits, feature KD on
    ``utterance_embeddings``, weights from ``DistillationArguments``), from its cached outputs by default.
    Otherwise (MAGTKD's ``audio``/``video``): the model's own cross-entropy only; the tokenizer of the processor
    saved with the model comes from ``--tokenizer_name_or_path``.
    """
    from ..features.extract import _cached_dense

    model_args, data_args, distillation_args = (context.model_args, context.data_args, context.distillation_args)
    modality = _media_modality(data_args, model_args.stage)
    model = build_stage_model(context, model_args.model_name_or_path)
    teacher_path = distillation_args.teacher_model_name_or_path
    teacher = None
    if distil:
        teacher = _load_stage_checkpoint(
            teacher_path, family.classes()["text"], "--teacher_model_name_or_path (a trained text model)"
        )
        _check_labels(model, teacher, f"the teacher {teacher_path}")
        student_size = getattr(model.config, f"{modality}_config").hidden_size
        if distillation_args.feature_kd_weight and student_size != teacher.config.projection_size:
            raise ValueError(
                f"Feature KD compares the {modality} model's {student_size}-d embeddings with the teacher's "
                f"{teacher.config.projection_size}-d ones: train the teacher with projection_size={student_size}."
            )
    elif teacher_path is not None:
        raise ValueError(
            f"--stage {model_args.stage} trains with cross-entropy only: drop --teacher_model_name_or_path (the "
            "distillation stage reads it)."
        )
    tokenizer = load_teacher_tokenizer(
        context.peft_args.tokenizer_name_or_path or teacher_path,
        (teacher or model).config.num_speaker_tokens,
    )
    text_collator = _teacher_text_view(teacher or model, tokenizer, data_args)
    source = model_args.processor_name_or_path or (
        _resolved(model_args.model_name_or_path) if model_args.model_name_or_path else None
    )
    processor = build_telme_processor(
        tokenizer,
        model.config,
        text_collator.max_length,
        audio_source=source if modality == "audio" else None,
        video_source=source if modality == "video" else None,
    )
    datasets, metrics = _media_views(data_args, modality, model.config.max_clip_seconds, context_turns=distil)

    live_teacher = None
    collator = TelMEMediaCollator(modality, processor)
    if distil and distillation_args.cache_teacher_outputs:
        train = datasets["train"]
        key = "teacher-" + cache_key(
            _checkpoint_identity(teacher_path),
            text_collator.max_length,
            _rows_identity(train, ("dialogue_id", "turn", "speaker", "text", "context_speakers", "context_texts")),
        )
        with context.training_args.main_process_first(desc="teacher outputs"):
            outputs = _cached_dense(
                embedding_cache_dir(data_args),
                key,
                lambda: compute_text_outputs(teacher, train, text_collator, context.training_args),
            )
        num_labels = teacher.config.num_labels
        train = _add_vector_column(train, "teacher_logits", list(outputs[:, :num_labels]))
        datasets["train"] = _add_vector_column(train, "teacher_utterance_embeddings", list(outputs[:, num_labels:]))
    elif distil:
        live_teacher = teacher
        collator = TelMEMediaCollator(modality, processor, teacher_collator=text_collator)
    return StageSetup(
        model=model,
        datasets=datasets,
        data_collator=collator,
        teacher_model=live_teacher,
        save_with_model=[processor],
        metrics=metrics,
    )


def _no_encoder_overrides(model_args, what: str) -> None:
    encoder_overrides = sorted(set(model_args.config_overrides) & {"text_config", "audio_config", "video_config"})
    if encoder_overrides:
        raise ValueError(
            f"--config_overrides sets {encoder_overrides}, but the fusion stage takes the encoders from the stage "
            f"checkpoints: override only fusion settings ({what})."
        )


def utterance_embedding_columns(context, view, split, text_model, media_models, text_collator, processor, checkpoints):
    """``{"text_embeddings": [...], "<m>_embeddings": [...]}`` over the rows of an utterance view (with dialogue
    context and media columns): the frozen models' utterance embeddings, computed once and cached on disk (keyed by
    the checkpoints and the data); ``None`` where an utterance has no usable medium. Returns the columns and the
    number of utterances with each medium."""
    from ..features.extract import _cached_dense, _cached_optional

    cache_dir = embedding_cache_dir(context.data_args)
    text_key = "text-" + cache_key(
        checkpoints["text"], text_collator.max_length,
        _rows_identity(view, ("dialogue_id", "turn", "speaker", "text", "context_speakers", "context_texts")),
    )  # fmt: skip
    counts = {}
    with context.training_args.main_process_first(desc=f"{split} embeddings"):
        text = _cached_dense(
            cache_dir,
            text_key,
            lambda: compute_text_outputs(text_model, view, text_collator, context.training_args),
        )[:, text_model.config.num_labels :]
        columns = {"text_embeddings": list(text)}
        for modality, model in media_models.items():
            media, _ = with_media(view, modality, model.config.max_clip_seconds)
            key = f"{modality}-" + cache_key(
                checkpoints[modality], _media_identity(media), _processor_identity(processor)
            )
            computed = _cached_optional(
                cache_dir,
                key,
                lambda model=model, media=media, modality=modality: compute_media_embeddings(
                    model, media, modality, processor, context.training_args
                ),
            )
            values: list = [None] * len(view)
            for row, vector in zip(media["row"], computed):
                values[int(row)] = vector
            columns[f"{modality}_embeddings"] = values
            counts[modality] = sum(vector is not None for vector in values)
    return columns, counts


_MEDIA_COLUMNS_OF_FUSION = ("audio_path", "has_audio", "video_path", "has_video", "start", "end")


def setup_telme_fusion(context: StageContext) -> StageSetup:
    """TelME stage 3: the fusion over the frozen teacher's and students' embeddings, computed once and cached."""
    from ..data.collators import UtteranceCollator

    model_args, data_args = context.model_args, context.data_args
    paths = {
        "text": context.distillation_args.teacher_model_name_or_path,
        "audio": model_args.audio_student_name_or_path,
        "video": model_args.video_student_name_or_path,
    }
    _check_stage_paths(paths, TELME_FAMILY)
    _no_encoder_overrides(model_args, "fusion_beta_shift, fusion_dropout, ...")
    model = context.model_class.from_stage_checkpoints(
        paths["text"], paths["audio"], paths["video"], **dict(model_args.config_overrides)
    )
    model.freeze_unimodal_models()
    tokenizer = load_teacher_tokenizer(
        context.peft_args.tokenizer_name_or_path or paths["text"], model.config.num_speaker_tokens
    )
    text_collator = UtteranceCollator(tokenizer, max_length=text_max_length(data_args, model.config))
    processor = build_telme_processor(
        tokenizer, model.config, text_collator.max_length, audio_source=paths["audio"], video_source=paths["video"]
    )
    checkpoints = {modality: _checkpoint_identity(path) for modality, path in paths.items()}
    students = {"audio": model.audio_student, "video": model.video_student}

    datasets, metrics = {}, {}
    for split, dataset in load_utterance_splits(data_args).items():
        view = with_dialogue_context(dataset, data_args.max_context_turns, extra_columns=_MEDIA_COLUMNS_OF_FUSION)
        columns, counts = utterance_embedding_columns(
            context, view, split, model.text_teacher, students, text_collator, processor, checkpoints
        )
        metrics.update({f"{split}_utterances_with_{modality}": count for modality, count in counts.items()})
        view = view.select_columns(["dialogue_id", "turn", "emotion", "row"])
        for name, values in columns.items():
            view = _add_vector_column(view, name, values)
        datasets[split] = view
    collator = TelMEEmbeddingCollator(
        audio_size=model.config.audio_config.hidden_size, video_size=model.config.video_config.hidden_size
    )
    return StageSetup(
        model=model, datasets=datasets, data_collator=collator, save_with_model=[processor], metrics=metrics
    )


def _check_stage_paths(paths: Mapping[str, str | None], family: UtteranceModelFamily) -> dict[str, Any]:
    """Each stage checkpoint loaded as its family's class (a clear error when a path is missing or of another
    stage)."""
    classes = family.classes()
    options = {
        "text": "--teacher_model_name_or_path",
        "audio": "--audio_student_name_or_path",
        "video": "--video_student_name_or_path",
    }
    return {
        modality: _load_stage_checkpoint(path, classes[modality], f"{options[modality]} (the trained {modality} stage)")
        for modality, path in paths.items()
    }


# Settings of MAGTKD's unimodal stages that the fusion's configuration records from the text model.
_MAGTKD_STAGE_FIELDS = (
    "projection_size",
    "text_num_virtual_tokens",
    "num_speaker_tokens",
    "text_max_length",
    "audio_sampling_rate",
    "audio_max_seconds",
    "max_clip_seconds",
)


def setup_magtkd_fusion(context: StageContext) -> StageSetup:
    """MAGTKD's fusion: the dialogue-level anchor gated transformer over cached 768-d utterance embeddings of the
    frozen text model and the (distilled) audio and video models, computed once per split and cached on disk."""
    from ..data.collators import DialogueCollator, UtteranceCollator
    from ..data.dialogues import group_dialogues

    model_args, data_args = context.model_args, context.data_args
    modalities = list(data_args.modalities)
    if "text" not in modalities:
        raise ValueError(f"MAGTKD's fusion is anchored on text: --modalities must include text (got {modalities}).")
    paths = {"text": context.distillation_args.teacher_model_name_or_path}
    paths.update({m: getattr(model_args, f"{m}_student_name_or_path") for m in modalities if m != "text"})
    stage_models = _check_stage_paths(paths, MAGTKD_FAMILY)
    text_model = stage_models["text"]
    for modality, stage_model in stage_models.items():
        if modality != "text":
            _check_labels(stage_model, text_model, f"the text model {paths['text']}")
        stage_model.requires_grad_(False).eval()
    _no_encoder_overrides(model_args, "hidden_size, dropout, loss weights, ...")
    # The fusion's configuration records the encoders it was trained over (it has no input projection).
    encoders = {f"{m}_config": getattr(stage_models.get(m, text_model).config, f"{m}_config") for m in ("text", "audio", "video")}
    stage_fields = {name: getattr(text_model.config, name) for name in _MAGTKD_STAGE_FIELDS}
    config = context.config_class.for_dataset(
        model_args.preset or data_args.dataset_name,
        modalities=modalities,
        **{**stage_fields, **encoders, **dict(model_args.config_overrides)},
    )
    sizes = {"text": text_model.config.projection_size}
    sizes.update({m: getattr(stage_models[m].config, f"{m}_config").hidden_size for m in modalities if m != "text"})
    wrong = {m: size for m, size in sizes.items() if size != config.hidden_size}
    if wrong:
        raise ValueError(
            f"MAGTKD's fusion reads {config.hidden_size}-d utterance features (hidden_size, no input projection) but "
            f"the stage models give {wrong}: set config_overrides hidden_size to their size."
        )
    model = context.model_class(config)

    tokenizer = load_teacher_tokenizer(
        context.peft_args.tokenizer_name_or_path or paths["text"], text_model.config.num_speaker_tokens
    )
    text_collator = UtteranceCollator(tokenizer, max_length=text_max_length(data_args, text_model.config))
    media_models = {m: stage_models[m] for m in modalities if m != "text"}
    processor = build_telme_processor(
        tokenizer, text_model.config, text_collator.max_length,
        audio_source=paths.get("audio"), video_source=paths.get("video"),
    )  # fmt: skip
    checkpoints = {modality: _checkpoint_identity(path) for modality, path in paths.items()}

    datasets, metrics = {}, {}
    for split, dataset in load_utterance_splits(data_args).items():
        view = with_dialogue_context(dataset, data_args.max_context_turns, extra_columns=_MEDIA_COLUMNS_OF_FUSION)
        columns, counts = utterance_embedding_columns(
            context, view, split, text_model, media_models, text_collator, processor, checkpoints
        )
        metrics.update({f"{split}_utterances_with_{modality}": count for modality, count in counts.items()})
        metrics[f"{split}_utterances"] = len(view)
        view = view.select_columns(["dialogue_id", "turn", "speaker", "emotion"])
        for name, values in columns.items():
            view = _add_vector_column(view, name.replace("_embeddings", "_features"), values)
        columns = ["dialogue_id", "turn", "speaker", "emotion", *(f"{m}_features" for m in modalities)]
        datasets[split] = group_dialogues(view, columns=columns)
    collator = DialogueCollator(
        modalities=modalities,
        feature_dims=sizes,
        speaker_vocab=config.speaker_vocab,
        num_speakers=config.num_speakers,
    )
    return StageSetup(model=model, datasets=datasets, data_collator=collator, metrics=metrics, unit="dialogues")


def stage_preset(config_class, preset: str, modalities: Sequence[str], overrides: Mapping[str, Any]):
    """The dataset preset of an utterance-level stage model (TelME, MAGTKD): its configuration has no modality
    field to set (each stage model reads its own modality)."""
    return config_class.for_dataset(preset, **overrides)
