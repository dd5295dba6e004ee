"""Resuming an interrupted run: which checkpoint ``--resume_from_checkpoint`` (bare, ``last`` or ``true``) means.

A run killed while saving leaves a ``checkpoint-N`` folder without all its files. The Trainer writes
``trainer_state.json`` last (after the weights, optimizer, scheduler and random generator states), and resuming from
a folder without it would silently restart the step count. So the newest checkpoint *with* a trainer state is the
one to resume from; the newer, incomplete ones are named in a warning (the resumed run saves over them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

logger = logging.get_logger(__name__)

_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` folder of ``output_dir`` that holds a trainer state; ``None`` if there is none."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = sorted(
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if path.is_dir() and (match := _CHECKPOINT.match(path.name))
    )
    incomplete = []
    for _, path in reversed(steps):
        if (path / TRAINER_STATE_NAME).is_file():
            if incomplete:
                logger.warning(
                    f"Skipping {', '.join(incomplete)} in {folder}: written only in part (no {TRAINER_STATE_NAME}), "
                    f"the run was stopped while saving. Resuming from {path.name}."
                )
            return str(path)
        incomplete.append(path.name)
    return None
