"""The on-disk cache of frozen encoders' outputs: features, teacher outputs and utterance embeddings.

Whatever a frozen model computes over a dataset is stored once under a key that hashes what it depends on
(the encoder or checkpoint, its settings, the rows or media files), so re-running extraction or a training
stage never recomputes it. Files are written to a temporary name and renamed, so a run killed half-way
leaves no file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def cache_key(*parts) -> str:
    """A short hash of ``parts`` (anything JSON can write, other objects by ``str``)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def file_identity(path: str) -> tuple[int, int] | None:
    """Size and modification time of ``path`` (``None`` when it cannot be read): a changed file gets a new key."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, int(stat.st_mtime))


def checkpoint_identity(path: str | os.PathLike) -> list:
    """What identifies a checkpoint's weights without reading them: its folder and its files' sizes and times."""
    folder = Path(path)
    identity: list = [str(folder.resolve())]
    for file in sorted(folder.glob("*")):
        if file.suffix in (".safetensors", ".json", ".bin"):
            stat = file.stat()
            identity.append((file.name, stat.st_size, int(stat.st_mtime)))
    return identity


def rows_identity(dataset, columns: Sequence[str]) -> list:
    """The values of ``columns`` (those present) of every row of ``dataset``."""
    present = [name for name in columns if name in dataset.column_names]
    return [present, dataset.select_columns(present).to_dict()]


def media_identity(view) -> list:
    """What a media view's inputs depend on (:func:`hf_erc.data.views.with_media`): each file, its window, its
    size and modification time."""
    from ..data.views import MEDIA_COLUMNS

    columns = (view[name] for name in MEDIA_COLUMNS)
    return [(path, start, end, file_identity(path)) for path, start, end in zip(*columns)]


def cached_dense(cache_dir: Path | None, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` (a ``[rows, dim]`` array), stored as ``cache_dir/<key>.npy`` and reused."""
    path = None if cache_dir is None else Path(cache_dir) / f"{key}.npy"
    if path is not None and path.is_file():
        logger.info("Reusing cached outputs %s", path)
        return np.load(path, allow_pickle=False)
    values = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{key}.partial.npy")
        np.save(temporary, values)
        os.replace(temporary, path)
    return values


def cached_optional(cache_dir: Path | None, key: str, compute: Callable[[], list]) -> list:
    """``compute()`` (a vector or ``None`` per row), stored as ``cache_dir/<key>.npz`` and reused."""
    path = None if cache_dir is None else Path(cache_dir) / f"{key}.npz"
    if path is not None and path.is_file():
        logger.info("Reusing cached outputs %s", path)
        stored = np.load(path, allow_pickle=False)
        return [vector if keep else None for vector, keep in zip(stored["values"], stored["present"])]
    values = compute()
    if path is not None:
        present = np.array([value is not None for value in values], dtype=bool)
        dim = next((len(value) for value in values if value is not None), 0)
        dense = np.zeros((len(values), dim), dtype=np.float32)
        for row, value in enumerate(values):
            if value is not None:
                dense[row] = value
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{key}.partial.npz")
        np.savez(temporary, values=dense, present=present)
        os.replace(temporary, path)
    return values
