"""A training run killed with SIGKILL in the middle of an epoch, then resumed with the same command plus
``--resume_from_checkpoint``, ends exactly where a run never interrupted ends: same weights, same metrics.

The shipped configs/sdt-meld-text.yaml (dropout 0.5, so the random generators matter) on a synthetic feature
dataset, with a checkpoint every 3 steps of 5-step epochs: checkpoints fall inside epochs.
"""

import hashlib
import shutil
import signal
import subprocess
import sys

from safetensors.numpy import load_file
import pytest

from hf_erc.locking import LOCK_FILE
from tests.utils.synthetic_features import write_feature_dataset
from tests.utils.training import REPO_ROOT, offline_environment, read_json, run_script

TRAIN_DIALOGUES = 40  # 5 steps of 8 dialogues per epoch
EVERY = "3"  # evaluate and save at steps 3, 6, 9, 12 and 15
KILLED_IN_STEP = 8  # of epoch 2 (steps 6-10), after checkpoint-6


def train_command(feature_dir, output_dir):
    command = [sys.executable, "scripts/train.py", "--config", "configs/sdt-meld-text.yaml", "--use_cpu", "true"]
    command += ["--data_dir", str(feature_dir), "--output_dir", str(output_dir), "--num_train_epochs", "3"]
    command += ["--eval_strategy", "steps", "--eval_steps", EVERY, "--save_strategy", "steps", "--save_steps", EVERY]
    return command + ["--disable_tqdm", "true"]


def weights_digest(checkpoint):
    """SHA-256 of every tensor of ``model.safetensors``, by name."""
    digest = hashlib.sha256()
    for name, array in sorted(load_file(str(checkpoint / "model.safetensors")).items()):
        digest.update(name.encode() + array.tobytes())
    return digest.hexdigest()


def evaluations(output_dir):
    """The validation metrics logged during training, without their timings."""
    history = read_json(output_dir / "trainer_state.json")["log_history"]
    return [
        {key: value for key, value in entry.items() if "runtime" not in key and "per_second" not in key}
        for entry in history
        if "eval_weighted_f1" in entry
    ]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_and_metrics(tmp_path):
    feature_dir = write_feature_dataset(tmp_path / "features", TRAIN_DIALOGUES)
    output_dir = tmp_path / "interrupted"
    command = train_command(feature_dir, output_dir)
    crash = [sys.executable, "-m", "tests.utils.interruptions", "--kill-in-step", str(KILLED_IN_STEP)]
    killed = subprocess.Popen(crash + command[1:], cwd=REPO_ROOT, env=offline_environment(), stderr=subprocess.PIPE, text=True)
    run_script(train_command(feature_dir, tmp_path / "uninterrupted"))  # meanwhile
    _, stderr = killed.communicate(timeout=240)
    assert killed.returncode == -signal.SIGKILL, stderr[-3000:]
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert read_json(output_dir / "checkpoint-6" / "trainer_state.json")["epoch"] == 1.2  # saved mid-epoch
    assert read_json(output_dir / LOCK_FILE)["pid"] == killed.pid  # left behind
    # A checkpoint the kill caught half-written: weights saved, no trainer state yet.
    (output_dir / "checkpoint-9").mkdir()
    shutil.copy(output_dir / "checkpoint-6" / "model.safetensors", output_dir / "checkpoint-9")

    resumed = run_script(command + ["--resume_from_checkpoint"])
    assert "the run that held it is gone" in resumed.stderr  # the killed run's lock did not block
    assert "Skipping checkpoint-9" in resumed.stderr and "Resuming from checkpoint-6" in resumed.stderr
    assert not (output_dir / LOCK_FILE).exists()

    expected, actual = read_json(tmp_path / "uninterrupted" / "all_results.json"), read_json(output_dir / "all_results.json")
    assert weights_digest(output_dir) == weights_digest(tmp_path / "uninterrupted")
    compared = [key for key in expected if key.startswith(("eval_", "test_")) and "runtime" not in key and "per_second" not in key]
    compared += ["global_step", "best_checkpoint", "best_eval_weighted_f1", "weights_sha256_per_rank"]
    assert {key: actual[key] for key in compared} == {key: expected[key] for key in compared}
    assert evaluations(output_dir) == evaluations(tmp_path / "uninterrupted")
