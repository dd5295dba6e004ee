"""The repository's scripts (``scripts/``, ``dataset_scripts/``) imported as modules: they are files, not a package."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType


def load_script(path: Path) -> ModuleType:
    """The script at ``path`` as a module named after its file, executed once, not registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def registered_script(path: Path) -> Iterator[ModuleType]:
    """The script at ``path`` as a module registered in ``sys.modules`` while the block runs (its dataclasses look
    their module up there), removed after."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]
