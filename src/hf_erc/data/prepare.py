"""``hf-erc prepare`` and :func:`load_erc_dataset`: one entry point for every supported dataset.

``load_erc_dataset("meld", path)`` accepts either a raw release (MELD.Raw, IEMOCAP_full_release)
or a folder written by ``hf-erc prepare`` (a Parquet dataset repository), and returns the
utterance-level ``DatasetDict`` of the data contract either way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from ..labels import emotion_names
from .errors import DataFormatError
from .iemocap import IEMOCAP_CARD_METADATA, build_iemocap, iemocap_dataset_card
from .meld import MELD_CARD_METADATA, build_meld, meld_dataset_card

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
        return build_meld(data_dir, **options)
    return build_iemocap(data_dir, **options)


def load_prepared(name: str, data_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
    """Load a folder written by ``hf-erc prepare`` back, with its ClassLabel features, and check it is ``name``.

    The Parquet shards are read straight into memory rather than through ``load_dataset``'s cache: no copy is
    made, and none can be stale (folders written by an older hf_erc declare their shards in a ``configs`` block,
    for which ``load_dataset`` keys its cache on the folder's name and shard sizes only). ``cache_dir`` is
    accepted for symmetry with the builders and not needed here.
    """
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
        return meld_dataset_card(dataset_dict), MELD_CARD_METADATA
    return iemocap_dataset_card(dataset_dict), IEMOCAP_CARD_METADATA
