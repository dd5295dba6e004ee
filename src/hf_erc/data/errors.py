"""Errors raised when a dataset release does not look the way a builder expects.

They subclass ``ValueError``/``FileNotFoundError`` so the ``hf-erc`` command prints their
message (which names the file, the row and the fix) without a traceback.
"""

from __future__ import annotations


class DataFormatError(ValueError):
    """A release file exists but its content is not what the builder expects (header, label, time stamp...)."""


class DataNotFoundError(FileNotFoundError):
    """A release folder or one of its required files is not where the builder looks for it."""
