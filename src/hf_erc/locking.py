"""One run per output folder: the lock that ``scripts/train.py`` and ``hf-erc extract-features`` take.

Two runs writing the same folder overwrite each other's checkpoints, caches and results without any error. So a
run first takes ``<folder>/.hf_erc.lock``, a JSON record of who holds it (pid, host, start time, command line), and
a second run is refused with that record and what to do about it.

* **Atomic.** The record is written to a private file first and hard-linked to the lock name: the link fails if
  the lock exists (like ``O_CREAT | O_EXCL``), and a reader never sees a half-written record.
* **Stale locks.** A run killed by SIGKILL, the out-of-memory killer or a power cut leaves its lock behind. A lock
  whose holder on this host is gone (no such pid, a zombie, or another process that reused the pid, told apart by
  its start time) is taken over with a warning, so resuming a crashed run just works. A holder on another host
  cannot be checked: the message says which file to delete once that run is known to be dead.
* **Released** on normal exit and on exceptions (``with OutputFolderLock(folder):``).
* **Data-parallel runs share it.** Under ``accelerate launch`` / ``torchrun`` every rank runs the same script.
  Only the global main process (``RANK`` 0) takes the lock; the record keeps the launch's identity (rendezvous
  address ``MASTER_ADDR:MASTER_PORT``, ``TORCHELASTIC_RUN_ID``, and the launcher's pid, the ranks' parent process).
  Every other rank only *checks* the folder: a lock of its own launch (same identity) or none lets it work, a live
  lock of another run stops it with the same message. So a second launch into a busy folder stops on every rank,
  without relying on the launcher to tear down ranks that are waiting for a refused rank 0. Ranks never create or
  delete the lock, so which rank starts first does not matter and the lock lives exactly as long as rank 0.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

LOCK_FILE = ".hf_erc.lock"


class OutputFolderInUseError(RuntimeError):
    """Another live run holds the output folder's lock."""


def _rank() -> int:
    """The global rank of this process in a data-parallel launch (0 when not launched by one)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def _launch_identity() -> dict | None:
    """What all ranks of one ``accelerate launch`` / ``torchrun`` share, or ``None`` outside such a launch."""
    if "MASTER_PORT" not in os.environ:
        return None
    return {
        "master": f"{os.environ.get('MASTER_ADDR', '')}:{os.environ['MASTER_PORT']}",
        "run_id": os.environ.get("TORCHELASTIC_RUN_ID"),
        "launcher_pid": os.getppid(),
    }


def _process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _current_record() -> dict:
    return {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
        "process_start_time": _process_start_time(os.getpid()),
        "launch": _launch_identity(),
    }


def describe_holder(record: dict) -> str:
    """``pid 123 on host gpu1, started 2026-01-01T10:00:00+00:00, command: python scripts/train.py ...``"""
    return (
        f"pid {record.get('pid')} on host {record.get('hostname')}, started {record.get('started')}, "
        f"command: {record.get('command')}"
    )


def holder_is_dead(record: dict) -> bool:
    """Whether the process that wrote ``record`` is known to be gone (only checkable on the same host)."""
    if record.get("pid") is None:
        return True  # an unreadable lock: nobody can be shown to hold it
    if record.get("hostname") != socket.gethostname():
        return False
    try:
        process = psutil.Process(int(record["pid"]))
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        started = record.get("process_start_time")
        # The pid was reused by a process that started later than the holder.
        return started is not None and abs(process.create_time() - started) > 1.0
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def _same_launch(record: dict, launch: dict | None) -> bool:
    """Whether ``record`` was written by the main process of the launch this process belongs to."""
    held = record.get("launch")
    if launch is None or not held:
        return False
    if held.get("master") != launch["master"] or held.get("run_id") != launch["run_id"]:
        return False
    # On this host the ranks of one launch are children of one launcher; other hosts have their own launcher.
    return record.get("hostname") != socket.gethostname() or held.get("launcher_pid") == launch["launcher_pid"]


class OutputFolderLock:
    """Hold ``<folder>/.hf_erc.lock`` for the duration of a run (see the module docstring).

    Use it as a context manager, or call :meth:`acquire` / :meth:`release`. ``acquire`` raises
    :class:`OutputFolderInUseError` naming the holder when another live run has the folder. Re-entering a lock this
    object already holds does nothing.

    Args:
        folder: the output folder (created if needed).
        option: the command-line option that chose ``folder``, named in the refusal (e.g. ``"--output_dir"``).
    """

    def __init__(self, folder: str | os.PathLike, option: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.option = option
        self.record: dict | None = None  # what this process wrote, while it holds the lock

    @property
    def held(self) -> bool:
        return self.record is not None

    def acquire(self) -> OutputFolderLock:
        if self.held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        if _rank() != 0:
            self._check_as_secondary_rank()
            return self
        record = _current_record()
        while not self._create(record):
            holder = self._read()
            if holder is None:
                continue  # released between our attempt and the read: try again
            if not holder_is_dead(holder):
                raise self._in_use_error(holder)
            logger.warning(
                f"{self.folder}: the run that held it is gone ({describe_holder(holder)}); taking its lock over. "
                "What that run left there may be incomplete."
            )
            self._remove_if_unchanged(holder)
        self.record = record
        return self

    def release(self) -> None:
        """Delete the lock if this process holds it (a lock taken over by someone else is left alone)."""
        if self.record is not None:
            self._remove_if_unchanged(self.record)
            self.record = None

    def __enter__(self) -> OutputFolderLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()

    # ---- Internals --------------------------------------------------------------------

    def _create(self, record: dict) -> bool:
        """Write ``record`` under the lock name if nothing is there; whether it was written."""
        private = self.folder / f"{LOCK_FILE}.{uuid.uuid4().hex}.tmp"
        private.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        try:
            os.link(private, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            private.unlink()

    def _read(self) -> dict | None:
        """The current record; ``None`` when there is no lock. An unreadable lock counts as a dead holder's."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            return {"pid": None, "command": f"(unreadable lock file {text[:80]!r})"}
        return record

    def _remove_if_unchanged(self, record: dict) -> None:
        """Delete the lock if it still holds ``record``.

        The lock is first renamed to a private name (atomic), so of two processes taking over the same stale lock
        only one removes it; a live lock caught by mistake is put back.
        """
        aside = self.folder / f"{LOCK_FILE}.{uuid.uuid4().hex}.old"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            current = json.loads(aside.read_text(encoding="utf-8"))
        except ValueError:
            current = None
        if isinstance(current, dict) and current != record:
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink()

    def _check_as_secondary_rank(self) -> None:
        holder = self._read()
        if holder is None or holder_is_dead(holder) or _same_launch(holder, _launch_identity()):
            return
        raise self._in_use_error(holder)

    def _in_use_error(self, holder: dict) -> OutputFolderInUseError:
        where = f"choose another one ({self.option} ...)" if self.option else "choose another output folder"
        return OutputFolderInUseError(
            f"{self.folder} is in use by another run: {describe_holder(holder)}. Two runs in one folder would "
            f"overwrite each other's files. Wait for that run to end or stop it, or {where}. If it is no longer "
            f"running (e.g. its machine crashed), delete {self.path}."
        )
