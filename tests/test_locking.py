"""One run per output folder: the lock is exclusive, names its holder, survives no crash and is shared by the ranks
of one data-parallel launch."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from hf_erc import locking
from hf_erc.locking import LOCK_FILE, OutputFolderInUseError, OutputFolderLock
from tests.utils.training import REPO_ROOT, accelerate_launcher, offline_environment

# Loads hf_erc/locking.py alone: importing the hf_erc package (torch, transformers) would take seconds.
HOLD_LOCK = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("locking", sys.argv[1])
locking = importlib.util.module_from_spec(spec)
spec.loader.exec_module(locking)
with locking.OutputFolderLock(sys.argv[2]):
    print("holding", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def _outside_any_launch(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def hold_in_another_process(folder):
    """A child process that holds ``folder``'s lock until its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, locking.__file__, str(folder), "--some-flag"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=offline_environment(),
    )
    assert child.stdout.readline().strip() == "holding"
    return child


def read_lock(folder):
    return json.loads((folder / LOCK_FILE).read_text())


def test_a_second_run_is_refused_with_the_holder_named(tmp_path):
    holder = hold_in_another_process(tmp_path)
    try:
        with pytest.raises(OutputFolderInUseError) as refused:
            OutputFolderLock(tmp_path, option="--output_dir").acquire()
        message = str(refused.value)
        record = read_lock(tmp_path)
        assert record["pid"] == holder.pid and record["hostname"] == socket.gethostname()
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message
        assert f"started {record['started']}" in message and "--some-flag" in message
        assert "Wait for that run to end" in message and "--output_dir" in message and LOCK_FILE in message
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    assert not (tmp_path / LOCK_FILE).exists()  # released when the holder's `with` ended
    with OutputFolderLock(tmp_path) as lock:
        assert read_lock(tmp_path)["pid"] == os.getpid() and lock.held


def test_the_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
    holder = hold_in_another_process(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert read_lock(tmp_path)["pid"] == holder.pid  # SIGKILL runs no cleanup
    with caplog.at_level(logging.WARNING, logger="hf_erc.locking"), OutputFolderLock(tmp_path):
        assert read_lock(tmp_path)["pid"] == os.getpid()
    assert f"the run that held it is gone (pid {holder.pid} on host" in caplog.text
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_reused_pid_or_an_unreadable_lock_does_not_block(tmp_path, caplog):
    # A live process (this one) whose start time is not the holder's: the holder's pid was reused.
    with OutputFolderLock(tmp_path):
        record = read_lock(tmp_path)
    record["process_start_time"] -= 3600
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="hf_erc.locking"), OutputFolderLock(tmp_path):
        assert read_lock(tmp_path)["process_start_time"] == record["process_start_time"] + 3600
    (tmp_path / LOCK_FILE).write_text('{"pid": 12')
    with OutputFolderLock(tmp_path):
        assert read_lock(tmp_path)["pid"] == os.getpid()
    assert caplog.text.count("taking its lock over") == 2


def test_a_live_holder_on_another_host_is_never_taken_over(tmp_path):
    record = {"pid": 1, "hostname": "elsewhere", "started": "2026-01-01T00:00:00+00:00", "command": "train"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(OutputFolderInUseError, match="pid 1 on host elsewhere"):
        OutputFolderLock(tmp_path).acquire()


def test_released_on_normal_exit_and_on_exception(tmp_path):
    with OutputFolderLock(tmp_path / "new" / "folder"):
        assert (tmp_path / "new" / "folder" / LOCK_FILE).is_file()
    assert not (tmp_path / "new" / "folder" / LOCK_FILE).exists()
    with pytest.raises(KeyError), OutputFolderLock(tmp_path):
        raise KeyError("the run failed")
    assert not (tmp_path / LOCK_FILE).exists()
    assert os.listdir(tmp_path) == ["new"]  # no temporary file left either


def test_ranks_of_one_launch_share_the_lock_and_other_launches_are_refused(tmp_path, monkeypatch):
    launch = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "none"}
    for name, value in launch.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RANK", "0")
    main = OutputFolderLock(tmp_path).acquire()
    assert read_lock(tmp_path)["launch"] == {"master": "127.0.0.1:29500", "run_id": "none", "launcher_pid": os.getppid()}

    monkeypatch.setenv("RANK", "1")
    with OutputFolderLock(tmp_path) as other_rank:  # same launch: it works alongside, holding nothing
        assert not other_rank.held
    assert read_lock(tmp_path)["pid"] == os.getpid()  # and leaving the lock to the main process

    monkeypatch.setenv("MASTER_PORT", "29501")  # a rank of another launch
    with pytest.raises(OutputFolderInUseError, match=f"pid {os.getpid()}"):
        OutputFolderLock(tmp_path).acquire()
    monkeypatch.setenv("RANK", "0")  # and its main process
    with pytest.raises(OutputFolderInUseError):
        OutputFolderLock(tmp_path).acquire()
    main.release()
    assert not (tmp_path / LOCK_FILE).exists()


RANK_SCRIPT = """
import os, sys, time
from pathlib import Path
from hf_erc.locking import LOCK_FILE, OutputFolderLock
folder = Path(sys.argv[1])
if os.environ["RANK"] != "0":
    while not (folder / LOCK_FILE).exists():  # check while rank 0 holds it
        time.sleep(0.05)
with OutputFolderLock(folder) as lock:
    (folder / f"rank{os.environ['RANK']}").write_text(str(lock.held))
    while os.environ["RANK"] == "0" and not (folder / "rank1").exists():
        time.sleep(0.05)
"""


@pytest.mark.slow
def test_two_ranks_of_an_accelerate_launch_share_the_lock(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    folder = tmp_path / "out"
    command = accelerate_launcher(2) + [str(script), str(folder)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=offline_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (folder / "rank0").read_text() == "True" and (folder / "rank1").read_text() == "False"
    assert not (folder / LOCK_FILE).exists()
