"""Encode rows chunk by chunk, each chunk kept on disk as soon as it is done, so an interrupted extraction resumes.

Extracting the audio or video features of a dataset takes hours; a run killed half-way (out of memory, preempted, a
power cut) would otherwise start again from the first utterance. While :mod:`hf_erc.features.cache` computes a
cache file, the rows are encoded :data:`CHUNK_SIZE` at a time and every finished chunk is written, atomically, to
``<cache file>.chunks/rows-<start>-<stop>.npz``. The next run reads the finished chunks back, encodes only the
others, and so loses at most the chunk it was in; a damaged chunk file is reported and encoded again. Once the cache
file is written, :func:`discard_chunks` deletes the chunks.

Under several processes each chunk is shared out by ``encode`` itself, the main process alone reads and writes chunk
files, and every process gets what the main process read.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .cache import load_optional_rows, main_process_value, read_cached, save_optional_rows, write_atomically

# Rows encoded between two saves: an interruption loses at most this many (seconds of text, minutes of video).
CHUNK_SIZE = 512


def chunks_dir(cache_dir: Path | None, key: str) -> Path | None:
    """Where the chunks of the cache file ``key`` are kept while it is computed (``None`` without a cache)."""
    return None if cache_dir is None else Path(cache_dir) / f"{key}.chunks"


def encode_in_chunks(
    folder: Path | None,
    num_rows: int,
    encode: Callable[[range], Sequence],
    state=None,
    progress: str | None = None,
) -> list:
    """``encode(rows)`` over ``range(num_rows)``, :data:`CHUNK_SIZE` rows at a time, with finished chunks kept in
    ``folder`` and read back instead of encoded again.

    ``encode`` returns one vector (or ``None``) per row of the range it gets, on every process. ``progress`` is
    the description of a progress bar over the rows, shown by the main process.
    """
    is_main = state is None or state.is_main_process
    bar = None
    if progress is not None and is_main:
        bar = tqdm(total=num_rows, desc=progress, unit="utt")
    values: list = []
    for start in range(0, num_rows, CHUNK_SIZE):
        rows = range(start, min(start + CHUNK_SIZE, num_rows))
        path = None if folder is None else folder / f"rows-{rows.start:07d}-{rows.stop:07d}.npz"
        stored = _read_chunk(path, len(rows)) if path is not None and is_main and path.is_file() else None
        chunk = main_process_value(stored, state)
        if chunk is None:
            chunk = list(encode(rows))
            if path is not None and is_main:
                write_atomically(path, lambda file: save_optional_rows(file, chunk))
        values.extend(chunk)
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    return values


def _read_chunk(path: Path, num_rows: int) -> list | None:
    def read(path: Path) -> list:
        rows = load_optional_rows(path)
        if len(rows) != num_rows:
            raise ValueError(f"{len(rows)} rows instead of {num_rows}")
        return rows

    return read_cached(path, read)


def discard_chunks(folder: Path | None, state=None) -> None:
    """Delete the chunks once the cache file they made is written (by the main process; a no-op without chunks)."""
    if folder is not None and (state is None or state.is_main_process):
        shutil.rmtree(folder, ignore_errors=True)
