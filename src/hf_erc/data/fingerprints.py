"""The cache key of a raw-release build: a hash of the files the builder reads.

``datasets`` keeps a builder's output under its config and its ``data_dir`` path. That alone would hand back the
build of an earlier release whenever another one is written to the same folder (a newer release extracted over it,
a transcript corrected, ``hf-erc make-planted --overwrite``). The MELD and IEMOCAP builders pass
:func:`release_fingerprint` as their ``hash``, so any change of what they read makes a new cache entry. The tables
(CSVs, label files, transcripts: small) are hashed by content, which also catches a change that keeps a file's size
and time (``tar``, ``cp -p`` and ``rsync -t`` restore times); the media folders, too large to read, by their
listings (each file's relative path, size and modification time in nanoseconds). The builder's own source files
are hashed too, so that a version of hf_erc that reads the same release differently (a fixed turn order, say)
builds again rather than hand back what the earlier code built.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from .. import __version__

_READ_BLOCK = 1 << 20


def release_fingerprint(
    tables: Iterable[str | os.PathLike],
    media_dirs: Iterable[str | os.PathLike],
    builder_files: Iterable[str | os.PathLike] = (),
) -> str:
    """A hash of hf_erc's version, the contents of ``builder_files`` (the code that reads the release) and of
    ``tables``, and the listings of ``media_dirs`` (absent ones count as absent); see the module docstring."""
    digest = hashlib.sha256(f"hf_erc {__version__}\0".encode())
    for source in builder_files:
        digest.update(f"code {Path(source).name}\0".encode() + Path(source).read_bytes() + b"\0")
    for table in tables:
        table = Path(table)
        digest.update(f"table {table.name}\0".encode())
        with open(table, "rb") as handle:
            for block in iter(lambda: handle.read(_READ_BLOCK), b""):
                digest.update(block)
        digest.update(b"\0")
    for folder in media_dirs:
        folder = Path(folder)
        digest.update(f"media {folder.name} {folder.is_dir()}\0".encode())
        for relative, size, mtime_ns in _listing(folder):
            digest.update(f"{relative}\0{size}\0{mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of every file under ``folder``, sorted; empty when it is not a folder."""
    entries = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            status = os.stat(path)
            entries.append((os.path.relpath(path, folder), status.st_size, status.st_mtime_ns))
    return sorted(entries)
