"""Training under a launcher that starts several processes: what the README says to run trains one model across them
(two gloo ranks on this CPU-only machine), a launch that would not is refused, and a rank whose batches lack a
modality does not stall the others."""

import re
import shlex
import sys

import numpy as np
import pytest
from datasets import DatasetDict

from hf_erc.data.export import save_parquet_repo
from hf_erc.training import arguments as training_arguments
from hf_erc.training.arguments import parse_run_arguments
from hf_erc.training.run import main
from tests.utils.synthetic_features import synthetic_split, write_feature_dataset, write_sdt_config
from tests.utils.training import REPO_ROOT, free_port, read_json, run_script

TRAIN_DIALOGUES = 32  # configs/sdt-meld-text.yaml: 8 dialogues per process and step
README_COMMAND_PREFIX = "accelerate launch --multi_gpu --num_processes 2"


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory):
    return write_feature_dataset(tmp_path_factory.mktemp("meld_features"), TRAIN_DIALOGUES)


def readme_command(prefix):
    """The one command of the README that starts with ``prefix`` (continuation lines joined, comment dropped)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith(prefix)]
    assert len(commands) == 1, f"expected one README command starting with {prefix!r}, found {commands}"
    return shlex.split(commands[0], comments=True)


def output_files(output_dir):
    """Relative paths under ``output_dir``: checkpoint folders numbered by their order instead of their step, the
    per-rank random states of a checkpoint (``rng_state.pth``, ``rng_state_<rank>.pth``) as one name."""
    checkpoints = sorted((path.name for path in output_dir.glob("checkpoint-*")), key=lambda name: int(name.split("-")[1]))
    renamed = {name: f"checkpoint-#{index}" for index, name in enumerate(checkpoints)}
    files = set()
    for path in output_dir.rglob("*"):
        parts = path.relative_to(output_dir).parts
        name = re.sub(r"rng_state(_\d+)?\.pth$", "rng_state*.pth", "/".join(parts[1:]))
        files.add("/".join(filter(None, (renamed.get(parts[0], parts[0]), name))))
    return files


@pytest.mark.slow
def test_readme_command_trains_one_model_on_two_cpu_processes(tmp_path, feature_dir):
    """The README's two-process command, literally, with a shipped config: one model trained by two gloo ranks."""
    command = readme_command(README_COMMAND_PREFIX)
    assert command[:2] == ["accelerate", "launch"] and "--config" in command
    script = command.index("scripts/train.py")
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", str(free_port())]
    overrides = ["--data_dir", str(feature_dir), "--num_train_epochs", "2"]
    two = run_script(launcher + command[2:] + overrides + ["--output_dir", str(tmp_path / "two")])
    run_script([sys.executable] + command[script:] + overrides + ["--output_dir", str(tmp_path / "one")])

    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in two.stderr
    results_one, results_two = read_json(tmp_path / "one" / "all_results.json"), read_json(tmp_path / "two" / "all_results.json")
    assert results_one["world_size"] == 1 and results_two["world_size"] == 2
    # Each optimizer step takes 8 dialogues per process: two processes take half the steps of one.
    assert results_one["global_step"] == 2 * TRAIN_DIALOGUES // 8
    assert results_two["global_step"] == results_one["global_step"] // 2
    fingerprints = results_two["weights_sha256_per_rank"].split(",")
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    # Evaluation gathers both ranks' predictions without duplicates: every labelled validation turn once.
    assert results_two["eval_num_utterances"] == results_one["eval_num_utterances"] == len(synthetic_split(6, 1, "v"))
    # One set of output files, those of a one-process run, written once (one results table printed).
    assert output_files(tmp_path / "two") == output_files(tmp_path / "one")
    assert two.stdout.count("| weighted F1 |") == 1
    assert read_json(tmp_path / "two" / "training_summary.json")["processes"] == 2


def test_launch_that_would_train_one_model_per_process_is_refused(tmp_path, feature_dir, monkeypatch, capsys):
    """WORLD_SIZE=2 from a launcher, but a Trainer that is not distributed: a clear error and nothing written."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    output_dir = tmp_path / "out"
    arguments = ["--config", str(REPO_ROOT / "configs" / "sdt-meld-text.yaml"), "--data_dir", str(feature_dir)]
    arguments += ["--output_dir", str(output_dir), "--use_cpu", "false"]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "The launcher started 2 processes, but the Trainer would not train one model across them" in error
    assert "Nothing was written" in error and str(output_dir) in error
    assert not output_dir.exists()


@pytest.mark.parametrize("accelerator", [False, True])
def test_use_cpu_defaults_to_the_machine_and_a_config_wins(tmp_path, monkeypatch, accelerator):
    monkeypatch.setattr(training_arguments, "accelerator_available", lambda: accelerator)
    config = write_sdt_config(tmp_path / "run.yaml", tmp_path, tmp_path / "out")
    assert parse_run_arguments(["--config", str(config)]).training.use_cpu is not accelerator
    assert parse_run_arguments(["--config", str(config), "--use_cpu", "true"]).training.use_cpu is True
    pinned = write_sdt_config(tmp_path / "pinned.yaml", tmp_path, tmp_path / "out", use_cpu=accelerator)
    assert parse_run_arguments(["--config", str(pinned)]).training.use_cpu is accelerator


def write_rank_without_audio(path):
    """Features whose training dialogues 4-7 and 12-15 (the batches of rank 1 of 2, four dialogues per process,
    sequential order) have no audio at all, while rank 0's dialogues have it."""
    train = synthetic_split(16, 0, "train")
    rank_one = {f"dia{index}" for index in range(16) if (index // 4) % 2 == 1}
    train = train.map(
        lambda row: {"audio_features": None if row["dialogue_id"] in rank_one else (row["audio_features"] or [0.5] * 5)}
    )
    splits = {"train": train, "validation": synthetic_split(4, 1, "validation"), "test": synthetic_split(4, 2, "test")}
    save_parquet_repo(DatasetDict(splits), path, "# Synthetic features, audio missing on one rank\n")
    has_audio = {dialogue: audio is not None for dialogue, audio in zip(train["dialogue_id"], train["audio_features"])}
    assert [has_audio[f"dia{index}"] for index in range(16)] == [(index // 4) % 2 == 0 for index in range(16)]
    return path


@pytest.mark.slow
def test_a_rank_without_audio_does_not_stall_the_other(tmp_path):
    """Two gloo ranks train a text+audio SDT; every batch of rank 1 lacks audio. DDP looks for unused parameters
    (set by train.py for a multimodal model) and the run completes with identical weights on both ranks."""
    data_dir = write_rank_without_audio(tmp_path / "features")
    output_dir = tmp_path / "run"
    config = write_sdt_config(
        tmp_path / "run.yaml", data_dir, output_dir, num_train_epochs=2, train_sampling_strategy="sequential"
    )
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launcher += ["--main_process_port", str(free_port())]
    run_script(launcher + ["scripts/train.py", "--config", str(config)], timeout=120)

    results = read_json(output_dir / "all_results.json")
    assert results["world_size"] == 2 and results["global_step"] == 2 * 16 // 8
    fingerprints = results["weights_sha256_per_rank"].split(",")
    assert fingerprints[0] == fingerprints[1]
    assert read_json(output_dir / "training_args.json")["ddp_find_unused_parameters"] is True
    assert np.isfinite(results["train_loss"])
