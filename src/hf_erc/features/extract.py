"""Fill ``text_features`` / ``audio_features`` / ``video_features`` columns with frozen encoders.

Features are computed once per (encoder, data) and cached as ``.npy`` files keyed by a
hash of both, so re-running extraction or training never re-encodes anything; finished
chunks are kept while they are computed, so an interrupted run resumes where it stopped
(:mod:`hf_erc.features.chunks`). An utterance whose media is missing or does not decode
gets ``None`` in that column (the collators turn it into a masked modality), and a log
line counts them.

Under ``accelerate launch`` or ``torchrun`` the utterances are shared out: each process encodes a contiguous
share on its own device, the shares are gathered in order, and the main process alone writes the cache and the
dataset (every utterance once, in the dataset's order). The cache keys do not depend on the number of processes.

    accelerate launch --multi_gpu --num_processes 2 -m hf_erc.cli extract-features meld --data-dir ... --output ...
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from accelerate.utils import gather_object
from datasets import DatasetDict, List, Value

from ..data.export import save_parquet_repo
from ..data.media import MediaDecodeError
from ..data.prepare import load_erc_dataset
from ..data.views import media_rows
from ..distributed import process_state
from .cache import cache_key, cached_dense, cached_optional, file_identity
from .chunks import chunks_dir, discard_chunks, encode_in_chunks
from .encoders import DEFAULT_TEXT_ENCODER, AudioEncoder, EncoderSpec, TextEncoder, VideoEncoder

logger = logging.getLogger(__name__)

FEATURE_COLUMNS = {"text": "text_features", "audio": "audio_features", "video": "video_features"}
ENCODERS_FILE = "feature_encoders.json"


def _in_parallel(state, items: list, encode) -> list:
    """``encode(share)`` of each process's contiguous share of ``items``, concatenated in order on every process.

    ``encode`` returns one result per item of its share (a list, or an array with one row per item).
    """
    with state.split_between_processes(items) as share:
        results = list(encode(share))
    if state.num_processes == 1:
        return results
    return gather_object(results)


def _encode_texts(texts: list[str], encoder, progress: bool, state, chunks: Path | None) -> np.ndarray:
    def encode(chunk: range):
        return _in_parallel(state, texts[chunk.start : chunk.stop], encoder.encode)

    vectors = encode_in_chunks(chunks, len(texts), encode, state, "text features" if progress else None)
    return np.stack(vectors) if vectors else np.zeros((0, encoder.spec.dim), dtype=np.float32)


def _encode_media(split, modality: str, encoder, progress: bool, state, chunks: Path | None) -> list:
    rows = media_rows(split, modality)

    def encode(share):
        encoded = []
        for index, path, start, end in share:
            try:
                encoded.append(encoder.encode_file(path, start, end))
            except MediaDecodeError as error:
                encoded.append(None)
                logger.warning("%s (row %d): %s; its %s is treated as missing.", path, index, error.reason, modality)
        return encoded

    def encode_chunk(chunk: range):
        return _in_parallel(state, rows[chunk.start : chunk.stop], encode)

    values: list = [None] * len(split)
    vectors = encode_in_chunks(chunks, len(rows), encode_chunk, state, f"{modality} features" if progress else None)
    for (index, *_), vector in zip(rows, vectors):
        values[index] = vector
    failures = sum(values[index] is None for index, *_ in rows)
    logger.info("%s features: %d encoded, %d failed to decode, %d without media.", modality, len(rows) - failures, failures, len(split) - len(rows))
    return values


def extract_features(
    dataset_dict,
    text_encoder: str | None = DEFAULT_TEXT_ENCODER,
    audio_encoder: str | None = None,
    video_encoder: str | None = None,
    text_pooling: str = "mean",
    audio_pooling: str = "mean",
    video_pooling: str = "first",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
):
    """Add feature columns to every split of ``dataset_dict``; returns ``(dataset_dict, encoder_specs)``.

    ``encoder_specs`` maps modality to :class:`EncoderSpec` (save it with
    :func:`save_encoder_specs`): a checkpoint trained on these features needs the same
    encoders at inference time. Under several processes each encodes its share of the utterances on its own
    device (``device`` by default) and every process gets the whole result.
    """
    if not (text_encoder or audio_encoder or video_encoder):
        raise ValueError("No encoder given: pass at least one of text_encoder, audio_encoder, video_encoder.")
    state = process_state()
    device = device if device is not None else state.device
    progress = progress and state.is_main_process
    cache = Path(cache_dir) if cache_dir is not None else None
    encoders = {}
    with state.main_process_first():  # one download of each encoder
        if text_encoder:
            encoders["text"] = TextEncoder(text_encoder, pooling=text_pooling, batch_size=batch_size, device=device)
        if audio_encoder:
            encoders["audio"] = AudioEncoder(audio_encoder, pooling=audio_pooling, device=device)
        if video_encoder:
            encoders["video"] = VideoEncoder(video_encoder, pooling=video_pooling, device=device)

    result = {}
    for split_name, split in dataset_dict.items():
        columns = {}
        for modality, encoder in encoders.items():
            spec = encoder.spec
            if modality == "text":
                texts = list(split["text"])  # a list: `datasets` columns print (and would hash) as their first rows
                identity = [] if encoder.weights_identity is None else [encoder.weights_identity]
                key = f"text-{cache_key(spec.to_dict(), *identity, texts)}"
                chunks = chunks_dir(cache, key)
                vectors = cached_dense(cache, key, lambda: _encode_texts(texts, encoder, progress, state, chunks), state)
                columns[FEATURE_COLUMNS[modality]] = [vector for vector in vectors]
            else:
                rows = media_rows(split, modality)
                # The cached list has a value per row: the key holds the row count and where each clip sits.
                identity = [(index, path, start, end, file_identity(path)) for index, path, start, end in rows]
                key = f"{modality}-{cache_key(spec.to_dict(), len(split), identity)}"
                chunks = chunks_dir(cache, key)
                columns[FEATURE_COLUMNS[modality]] = cached_optional(
                    cache, key, lambda: _encode_media(split, modality, encoder, progress, state, chunks), state
                )
            discard_chunks(chunks, state)  # the cache file is written: the chunks that made it are not needed
        for name in columns:
            if name in split.column_names:
                split = split.remove_columns(name)
        for name, values in columns.items():
            split = split.add_column(name, [None if value is None else np.asarray(value, dtype=np.float32) for value in values])
            split = split.cast_column(name, _float_sequence())
        result[split_name] = split
    return DatasetDict(result), {modality: encoder.spec for modality, encoder in encoders.items()}


def _float_sequence():
    return List(Value("float32"))


def save_encoder_specs(specs: dict[str, EncoderSpec], output_dir: str | os.PathLike) -> Path:
    """Write ``feature_encoders.json``: which encoder and pooling produced each feature column."""
    path = Path(output_dir) / ENCODERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({modality: spec.to_dict() for modality, spec in specs.items()}, indent=2) + "\n")
    return path


def load_encoder_specs(directory: str | os.PathLike) -> dict[str, EncoderSpec]:
    """Read ``feature_encoders.json`` from a features folder or a checkpoint; empty when absent."""
    path = Path(directory) / ENCODERS_FILE
    if not path.is_file():
        return {}
    return {modality: EncoderSpec(**spec) for modality, spec in json.loads(path.read_text()).items()}


FEATURES_CARD = """# {name} with frozen-encoder features

Utterance-level {name} (the `hf_erc` data contract) plus one feature vector per utterance
and modality, computed once by frozen encoders:

{encoders}

Feature columns hold `null` where an utterance has no usable audio/video; models mask
those modalities. Made with `hf-erc extract-features`.
"""


def extract_features_to_disk(
    dataset_name: str,
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    **encoder_options,
):
    """Load ``dataset_name`` from ``data_dir``, add feature columns and write a Parquet dataset folder to ``output``.

    Under several processes they share the encoding and the main process alone writes ``output``.
    """
    state = process_state()
    with state.main_process_first():  # a raw release is built once, then read from the `datasets` cache
        dataset_dict = load_erc_dataset(dataset_name, data_dir)
    cache = Path(cache_dir) if cache_dir is not None else Path(output) / ".feature_cache"
    dataset_dict, specs = extract_features(dataset_dict, cache_dir=cache, **encoder_options)
    if state.is_main_process:
        encoders = "\n".join(
            f"- `{FEATURE_COLUMNS[m]}`: {spec.dim}-d, `{spec.name_or_path}`, {spec.pooling} pooling"
            for m, spec in specs.items()
        )
        save_parquet_repo(dataset_dict, output, FEATURES_CARD.format(name=dataset_name.upper(), encoders=encoders))
        save_encoder_specs(specs, output)
    state.wait_for_everyone()
    return dataset_dict, specs
