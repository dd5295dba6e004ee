"""The on-disk cache of frozen encoders' outputs: features, teacher outputs and utterance embeddings.

Whatever a frozen model computes over a dataset is stored once under a key that hashes what it depends on
(the encoder or checkpoint, its settings, the rows or media files), so re-running extraction or a training
stage never recomputes it. Files are written to a temporary name and renamed, so a run killed half-way
leaves no file that looks complete; a damaged file (truncated by a full disk, copied in part) is reported and
computed again.

Under several processes (``state``: Accelerate's ``PartialState``), every process takes the branch the main process
sees (the file is there or not) and only the main process writes: ``compute`` then runs on every process, shares the
work out itself and returns the whole result everywhere. Keys never depend on the number of processes, so a cache
written by one process serves eight and the other way round.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
from accelerate.utils import broadcast_object_list

from ..data.views import MEDIA_COLUMNS

logger = logging.getLogger(__name__)

T = TypeVar("T")


def cache_key(*parts) -> str:
    """A short hash of ``parts`` (anything JSON can write, other objects by ``str``)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def file_identity(path: str) -> tuple[int, int] | None:
    """Size and modification time of ``path`` (``None`` when it cannot be read): a changed file gets a new key. The
    time counts in nanoseconds, so a file rewritten with the same size within one second (a planted release made
    again, a clip re-encoded) is not taken for the one before."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


def checkpoint_identity(path: str | os.PathLike) -> list:
    """What identifies a checkpoint's weights without reading them: its folder and its files' sizes and times (in
    nanoseconds: a stage retrained into its folder keeps every size)."""
    folder = Path(path)
    identity: list = [str(folder.resolve())]
    for file in sorted(folder.glob("*")):
        if file.suffix in (".safetensors", ".json", ".bin"):
            stat = file.stat()
            identity.append((file.name, stat.st_size, stat.st_mtime_ns))
    return identity


def rows_identity(dataset, columns: Sequence[str]) -> list:
    """The values of ``columns`` (those present) of every row of ``dataset``."""
    present = [name for name in columns if name in dataset.column_names]
    return [present, dataset.select_columns(present).to_dict()]


def media_identity(view) -> list:
    """What a media view's inputs depend on (:func:`hf_erc.data.views.with_media`): each file, its window, its
    size and modification time."""
    columns = (view[name] for name in MEDIA_COLUMNS)
    return [(path, start, end, file_identity(path)) for path, start, end in zip(*columns)]


def main_process_value(value: T, state) -> T:
    """``value`` as the main process has it, on every process (``state``: see the module docstring)."""
    if state is not None and state.num_processes > 1:
        value = broadcast_object_list([value])[0]
    return value


def _is_stored(path: Path | None, state) -> bool:
    """Whether ``path`` exists, as the main process sees it: every process then takes the same branch."""
    return main_process_value(path is not None and path.is_file(), state)


def read_cached(path: Path, read: Callable[[Path], T]) -> T | None:
    """``read(path)``, or ``None`` with a warning when the file is damaged: the caller computes it again."""
    try:
        return read(path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        logger.warning("%s is damaged (%s: %s): computing it again.", path, type(error).__name__, error)
        return None


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """``write(file)`` to a temporary file renamed to ``path`` once complete: an interruption leaves no partial
    ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(temporary, "wb") as file:
        write(file)
    os.replace(temporary, path)


def load_optional_rows(path: Path) -> list:
    """The rows :func:`save_optional_rows` wrote: a vector or ``None`` each; raises if the file is damaged."""
    with np.load(path, allow_pickle=False) as stored:
        values, present = stored["values"], stored["present"]
    if len(values) != len(present):
        raise ValueError(f"{len(values)} rows of values but {len(present)} presence flags")
    return [vector if keep else None for vector, keep in zip(values, present)]


def save_optional_rows(file: IO[bytes], values: list) -> None:
    """A vector or ``None`` per row, as an ``.npz`` of a dense ``values`` array (zeros for ``None``) and ``present``
    flags."""
    present = np.array([value is not None for value in values], dtype=bool)
    dim = next((len(value) for value in values if value is not None), 0)
    dense = np.zeros((len(values), dim), dtype=np.float32)
    for row, value in enumerate(values):
        if value is not None:
            dense[row] = value
    np.savez(file, values=dense, present=present)


def _writes(path: Path | None, state) -> bool:
    """Whether this process writes the cache file: the main one, and only when there is a cache."""
    return path is not None and (state is None or state.is_main_process)


def _load_dense(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def cached_dense(cache_dir: Path | None, key: str, compute: Callable[[], np.ndarray], state=None) -> np.ndarray:
    """``compute()`` (a ``[rows, dim]`` array), stored as ``cache_dir/<key>.npy`` and reused (``state``: see the
    module docstring)."""
    path = None if cache_dir is None else Path(cache_dir) / f"{key}.npy"
    stored = read_cached(path, _load_dense) if _is_stored(path, state) else None
    if stored is not None:
        logger.info("Reusing cached outputs %s", path)
        return stored
    values = compute()
    if _writes(path, state):
        write_atomically(path, lambda file: np.save(file, values))
    return values


def cached_optional(cache_dir: Path | None, key: str, compute: Callable[[], list], state=None) -> list:
    """``compute()`` (a vector or ``None`` per row), stored as ``cache_dir/<key>.npz`` and reused (``state``: see
    the module docstring)."""
    path = None if cache_dir is None else Path(cache_dir) / f"{key}.npz"
    stored = read_cached(path, load_optional_rows) if _is_stored(path, state) else None
    if stored is not None:
        logger.info("Reusing cached outputs %s", path)
        return stored
    values = compute()
    if _writes(path, state):
        write_atomically(path, lambda file: save_optional_rows(file, values))
    return values
