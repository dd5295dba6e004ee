"""``hf-erc prepare`` and :func:`load_erc_dataset`: one entry point for every supported dataset.

``load_erc_dataset("meld", path)`` accepts either a raw release (MELD.Raw, IEMOCAP_full_release)
or a folder written by ``hf-erc prepare`` (a Parquet dataset repository), and returns the
utterance-level ``DatasetDict`` of the data contract either way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import datasets

from ..labels import emotion_names
from .errors import DataFormatError
from .summary import media_report, summarize

logger = logging.getLogger(__name__)

SUPPORTED_DATASETS: tuple[str, ...] = ("meld", "iemocap")
# Options of the raw-release builders; a prepared folder is already built and ignores them.
BUILD_OPTIONS: dict[str, tuple[str, ...]] = {
    "meld": ("check_media",),
    "iemocap": ("keep_unlabeled", "validation_fraction", "seed", "check_media", "validation_split"),
}


def is_prepared_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Parquet dataset repository written by ``hf-erc prepare`` (README.md + data/*.parquet)."""
    path = Path(path)
    return (path / "README.md").is_file() and any((path / "data").glob("*.parquet"))


def load_erc_dataset(name: str, data_dir: str | os.PathLike, **options) -> datasets.DatasetDict:
    """The utterance-level ``DatasetDict`` of dataset ``name`` (``"meld"`` or ``"iemocap"``) found in ``data_dir``.

    Args:
        name: ``"meld"`` or ``"iemocap"``.
        data_dir: a raw release folder, or a folder written by ``hf-erc prepare``.
        **options: ``cache_dir`` for both; for a raw release, the builder's options
            (MELD: ``check_media``; IEMOCAP: ``keep_unlabeled``, ``validation_fraction``, ``seed``,
            ``check_media``, ``validation_split``: ``"random"`` or ``"reference"``, the authors' fixed
            12 validation dialogues).
    """
    key = name.lower()
    if key not in SUPPORTED_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: expected one of {list(SUPPORTED_DATASETS)}.")
    unknown = sorted(set(options) - set(BUILD_OPTIONS[key]) - {"cache_dir"})
    if unknown:
        raise TypeError(f"load_erc_dataset({key!r}) got unknown option(s) {unknown}.")
    data_dir = Path(data_dir)
    if is_prepared_folder(data_dir):
        build_options = sorted(option for option in options if option != "cache_dir")
        if build_options:
            logger.info("%s is already prepared: ignoring the build option(s) %s.", data_dir, build_options)
        return load_prepared(key, data_dir, cache_dir=options.get("cache_dir"))
    if key == "meld":
        from .meld import build_meld

        return build_meld(data_dir, **options)
    from .iemocap import build_iemocap

    return build_iemocap(data_dir, **options)


def load_prepared(name: str, data_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
    """Load a folder written by ``hf-erc prepare`` back, with its ClassLabel features, and check it is ``name``.

    The Parquet shards are read straight into memory rather than through ``load_dataset``'s
    cache: that cache is keyed on file names and sizes, so a re-prepared folder (or another
    folder with same-sized shards) could come back as a stale copy. ``cache_dir`` is accepted for
    symmetry with the builders and not needed here.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    data_dir = Path(data_dir)
    shards: dict[str, list[Path]] = {}
    for path in sorted((data_dir / "data").glob("*.parquet")):
        split = path.name.split("-", 1)[0]
        shards.setdefault(split, []).append(path)
    if not shards:
        raise DataFormatError(f"{data_dir / 'data'} holds no Parquet shard; re-run `hf-erc prepare {name}`.")
    dataset_dict = datasets.DatasetDict(
        {
            split: datasets.Dataset(pa.concat_tables([pq.read_table(path) for path in paths]), split=split)
            for split, paths in shards.items()
        }
    )
    expected = list(emotion_names(name))
    for split, dataset in dataset_dict.items():
        emotion = dataset.features.get("emotion")
        found = getattr(emotion, "names", None)
        if found != expected:
            raise DataFormatError(
                f"{data_dir} (split {split!r}) does not hold {name} data: its emotion column has labels {found}, "
                f"expected {expected}. Check the dataset name or re-run `hf-erc prepare {name}`."
            )
    return dataset_dict


def dataset_card(name: str, dataset_dict: datasets.DatasetDict) -> tuple[str, dict]:
    """``(card body, card metadata)`` for a prepared dataset: the text and YAML fields of its README.md."""
    if name == "meld":
        from .meld import MELD_CARD_METADATA, meld_dataset_card

        return meld_dataset_card(dataset_dict), MELD_CARD_METADATA
    from .iemocap import IEMOCAP_CARD_METADATA, iemocap_dataset_card

    return iemocap_dataset_card(dataset_dict), IEMOCAP_CARD_METADATA


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-erc prepare``."""
    parser = subparsers.add_parser(
        "prepare",
        help="Turn a raw MELD/IEMOCAP release into a Parquet dataset repository with a dataset card.",
        description=(
            "Build the utterance-level dataset from a raw release, print a summary table, and write it as a "
            "Parquet dataset repository (data/*.parquet + README.md) that `datasets.load_dataset(OUTPUT)` reads."
        ),
    )
    parser.add_argument("dataset", choices=SUPPORTED_DATASETS, help="Which dataset the release is.")
    parser.add_argument("--raw-dir", required=True, help="Folder of the extracted official release.")
    parser.add_argument("--output", required=True, help="Folder to write the Parquet dataset repository to.")
    parser.add_argument(
        "--no-check-media",
        dest="check_media",
        action="store_false",
        help="Only check that media files exist instead of decoding them (much faster).",
    )
    # IEMOCAP options default to None so that build_iemocap's own defaults apply.
    parser.add_argument(
        "--keep-unlabeled",
        action="store_true",
        default=None,
        help="IEMOCAP: keep utterances outside the 6 classes as unlabeled context.",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=None,
        help="IEMOCAP: fraction of the session 1-4 dialogues held out for validation (default: 0.1).",
    )
    parser.add_argument("--seed", type=int, default=None, help="IEMOCAP: seed of the validation split (default: 42).")
    parser.add_argument(
        "--validation-split",
        choices=("random", "reference"),
        default=None,
        help="IEMOCAP: 'random' (default) holds out a seeded --validation-fraction of the session 1-4 dialogues; "
        "'reference' holds out the fixed 12 dialogues of TelME's and MAGTKD's released code.",
    )
    parser.add_argument("--cache-dir", default=None, help="Cache folder of `datasets` (default: its own).")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None, help="Also upload the folder to this Hub repo.")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private", action="store_true", default=None, help="Create the Hub repository as private (default for IEMOCAP)."
    )
    visibility.add_argument(
        "--public",
        dest="private",
        action="store_false",
        help="Create the Hub repository as public (default for MELD). IEMOCAP's license forbids public redistribution "
        "without USC's permission.",
    )
    parser.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    """Build, summarize, save (and push) one dataset; returns the exit code."""
    from .export import PushError, push_parquet_repo, save_parquet_repo

    options = {"check_media": args.check_media, "cache_dir": args.cache_dir}
    iemocap_options = {
        name: getattr(args, name)
        for name in ("keep_unlabeled", "validation_fraction", "seed", "validation_split")
        if getattr(args, name) is not None
    }
    if iemocap_options and args.dataset != "iemocap":
        flags = ", ".join("--" + name.replace("_", "-") for name in iemocap_options)
        raise ValueError(f"{flags}: only for iemocap, not {args.dataset}.")
    random_only = [name for name in ("validation_fraction", "seed") if name in iemocap_options]
    if iemocap_options.get("validation_split") == "reference" and random_only:
        flags = ", ".join("--" + name.replace("_", "-") for name in random_only)
        raise ValueError(
            f"{flags}: only for --validation-split random; the reference split is a fixed list of 12 dialogues."
        )
    options.update(iemocap_options)
    if is_prepared_folder(args.raw_dir):
        raise ValueError(f"{args.raw_dir} is already a prepared dataset; pass the raw release as --raw-dir.")
    dataset_dict = load_erc_dataset(args.dataset, args.raw_dir, **options)
    table = summarize(dataset_dict)
    print(table)
    for line in media_report(dataset_dict):
        print(line)
    card_text, card_metadata = dataset_card(args.dataset, dataset_dict)
    save_parquet_repo(dataset_dict, args.output, card_text, **card_metadata)
    print(f"Wrote {args.output} (load it with datasets.load_dataset({os.fspath(args.output)!r})).")
    if args.push_to_hub:
        # IEMOCAP's release agreement does not allow public redistribution: private unless asked otherwise.
        private = args.private if args.private is not None else args.dataset == "iemocap"
        print(f"Pushing to {args.push_to_hub} as a {'private' if private else 'public'} dataset repository.")
        try:
            url = push_parquet_repo(args.output, args.push_to_hub, private=private)
        except PushError as error:
            print(f"hf-erc prepare: error: {error}", file=sys.stderr)
            return 1
        print(f"Pushed to {url}")
    return 0
