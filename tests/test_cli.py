"""`hf-erc train` and `hf-erc report` on a tiny synthetic feature dataset: the training flags pass through the
sub-command (a report's launcher running `-m hf_erc.commands.train` under `accelerate launch` is in
tests/training/test_report.py)."""

import pytest

from hf_erc.cli import main as cli_main
from tests.utils.synthetic_features import write_feature_dataset, write_sdt_config
from tests.utils.training import read_json

TRAIN_DIALOGUES = 8


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory):
    return write_feature_dataset(tmp_path_factory.mktemp("meld_features"), TRAIN_DIALOGUES)


def write_config(path, data_dir, output_dir):
    return write_sdt_config(path, data_dir, output_dir, num_train_epochs=3, learning_rate=1e-3, save_total_limit=1)


def test_train_takes_the_config_and_any_field_flag(tmp_path, feature_dir, capsys):
    config = write_config(tmp_path / "run.yaml", feature_dir, tmp_path / "run")
    assert cli_main(["train", "--config", str(config), "--num_train_epochs", "1", "--modalities", "text"]) == 0
    results = read_json(tmp_path / "run" / "all_results.json")
    assert results["epoch"] == 1.0 and results["global_step"] == TRAIN_DIALOGUES // 4
    assert read_json(tmp_path / "run" / "config.json")["modalities"] == ["text"]
    assert "| weighted F1 |" in capsys.readouterr().out

    # The training parser checks the flags: errors are train.py's one-line messages and exit statuses.
    assert cli_main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "train.py: error: Config file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--config", str(config), "--num_train_epochs", "many"])
    assert exit_info.value.code == 2 and "invalid float value: 'many'" in capsys.readouterr().err


def test_help_of_train_lists_the_training_fields(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--help"])
    assert exit_info.value.code == 0
    output = capsys.readouterr().out
    assert "--config" in output and "--num_train_epochs" in output and "--teacher_model_name_or_path" in output


def test_other_commands_still_refuse_unknown_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["prepare", "meld", "--raw-dir", "x", "--output", "y", "--num_train_epochs", "1"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --num_train_epochs 1" in capsys.readouterr().err


def test_report_runs_the_seeds_in_process(tmp_path, feature_dir, capsys):
    config = write_config(tmp_path / "run.yaml", feature_dir, tmp_path / "unused")
    command = ["report", "--config", str(config), "--seeds", "7", "--num_train_epochs", "1"]
    assert cli_main(command + ["--output_root", str(tmp_path / "runs"), "--markdown", str(tmp_path / "t.md")]) == 0
    results = read_json(tmp_path / "runs" / "seed-7" / "all_results.json")
    assert results["epoch"] == 1.0
    line = f"Seeds 7 (1 run); test weighted F1 per seed (%): 7: {100 * results['test_weighted_f1']:.2f}"
    assert line in capsys.readouterr().out and line in (tmp_path / "t.md").read_text(encoding="utf-8")

    assert cli_main(["report", "--config", str(config), "--seeds", "7", "--seed", "1"]) == 2
    assert "hf-erc report: error: --seed is set per seed by the report: use --seeds" in capsys.readouterr().err
