"""The processes of a launch: how many the launcher started, which device each computes on, and the process group
that joins them. Shared by training (``scripts/train.py``) and feature extraction (``hf-erc extract-features``).

``accelerate launch`` and ``torchrun`` start one process per device and announce it in the environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``). On a machine without an accelerator the processes can only work together
on the CPU over gloo, and Accelerate (hence the ``Trainer``) goes there only when asked to use the CPU: otherwise
each process opens the process group but computes alone.
"""

from __future__ import annotations

import os

import torch
from accelerate import PartialState


def accelerator_available() -> bool:
    """Whether this machine has a device (CUDA, MPS, XPU, ...) that the processes compute on instead of the CPU."""
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def launched_world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``); 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_state():
    """Accelerate's ``PartialState`` of this process (rank, number of processes, device); without an accelerator the
    processes join over gloo on the CPU."""
    return PartialState(cpu=not accelerator_available())


def end_process_group() -> None:
    """Close the default process group if one is open: a rank that exits with it open makes ``accelerate launch``
    exit 1 ("terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
