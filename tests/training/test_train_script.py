"""scripts/train.py end to end on a tiny synthetic feature dataset (several processes: test_scale_out.py)."""

import sys

import pytest
import torch

from hf_erc.training import run as train_run
from hf_erc.training.results import format_results_table
from hf_erc.training.run import main, parse_arguments
from tests.utils.synthetic_features import AUDIO_DIM, TEXT_DIM, write_feature_dataset, write_sdt_config
from tests.utils.training import read_json, run_script

TRAIN_DIALOGUES = 16  # a multiple of 4 dialogues per step


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory):
    return write_feature_dataset(tmp_path_factory.mktemp("meld_features"), TRAIN_DIALOGUES)


def write_config(path, data_dir, output_dir, **extra):
    fields = {
        "num_train_epochs": 5,
        "learning_rate": "1e-3",  # as YAML 1.1 reads 1e-3: a string, converted like a command-line value
        "adam_l2_regularization": True,
        "weight_decay": 1e-5,
    }
    return write_sdt_config(path, data_dir, output_dir, **{**fields, **extra})


def test_config_file_and_command_line_merge(tmp_path):
    config = write_config(tmp_path / "run.yaml", tmp_path, tmp_path / "out")
    model_args, data_args, distillation_args, training_args = parse_arguments(
        ["--config", str(config), "--num_train_epochs", "2", "--config_overrides", '{"hidden_size": 32}']
    )
    assert training_args.num_train_epochs == 2  # the command line wins
    assert training_args.learning_rate == pytest.approx(1e-3)  # YAML value, converted to float
    assert training_args.per_device_train_batch_size == 4
    assert model_args.config_overrides == {"hidden_size": 32}
    assert data_args.modalities == ["text", "audio"]
    assert training_args.metric_for_best_model == "eval_weighted_f1" and training_args.greater_is_better
    assert distillation_args.teacher_model_name_or_path is None


def test_bad_config_is_reported_with_its_file(tmp_path, capsys):
    config = write_config(tmp_path / "bad.yaml", tmp_path, tmp_path / "out", learning_rat=0.1)
    assert main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "bad.yaml" in error and "learning_rat" in error
    config = write_config(tmp_path / "run.yaml", tmp_path / "missing", tmp_path / "out")
    assert main(["--config", str(config)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_script_end_to_end_then_resume(tmp_path, feature_dir):
    output_dir = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", feature_dir, output_dir)
    result = run_script([sys.executable, "scripts/train.py", "--config", str(config), "--num_train_epochs", "2"])

    results = read_json(output_dir / "all_results.json")
    steps_per_epoch = TRAIN_DIALOGUES // 4
    assert results["global_step"] == 2 * steps_per_epoch  # --num_train_epochs 2 beat the config's 5
    assert results["world_size"] == 1
    for key in ("eval_weighted_f1", "eval_accuracy", "eval_macro_f1", "eval_f1_neutral", "test_weighted_f1"):
        assert 0.0 <= results[key] <= 1.0
    # The saved model is the best checkpoint's, and that is what was evaluated.
    assert results["eval_weighted_f1"] == pytest.approx(results["best_eval_weighted_f1"])
    assert read_json(output_dir / "test_results.json")["test_weighted_f1"] == results["test_weighted_f1"]
    for name in ("model.safetensors", "config.json", "configuration_sdt.py", "modeling_sdt.py"):
        assert (output_dir / name).is_file(), name
    assert not (output_dir / "pytorch_model.bin").exists()
    config_json = read_json(output_dir / "config.json")
    assert config_json["text_dim"] == TEXT_DIM and config_json["audio_dim"] == AUDIO_DIM
    assert config_json["modalities"] == ["text", "audio"] and "auto_map" in config_json
    for split in ("eval", "test"):
        assert (output_dir / f"{split}_confusion_matrix.png").is_file()
        assert (output_dir / f"{split}_confusion_matrix.json").is_file()
    assert "| weighted F1 |" in result.stdout and "| F1 anger |" in result.stdout

    # Resume the same run from its newest checkpoint for one more epoch.
    run_script(
        [sys.executable, "scripts/train.py", "--config", str(config), "--num_train_epochs", "3"]
        + ["--resume_from_checkpoint", "last"]
    )
    resumed = read_json(output_dir / "all_results.json")
    assert resumed["global_step"] == 3 * steps_per_epoch
    state = read_json(output_dir / "trainer_state.json")
    assert [entry["epoch"] for entry in state["log_history"] if "eval_weighted_f1" in entry] == [1.0, 2.0, 3.0]


def test_results_table_lists_every_metric_per_split():
    results = {
        "validation": {"eval_weighted_f1": 0.5, "eval_accuracy": 0.25, "eval_macro_f1": 0.125, "eval_f1_neutral": 1.0},
        "test": {"test_weighted_f1": 0.75},
    }
    table = format_results_table(results, ["neutral"]).splitlines()
    assert table[0] == "| metric | validation | test |"
    assert table[2] == "| weighted F1 | 50.00 | 75.00 |"
    assert table[-1] == "| F1 neutral | 100.00 | - |"


def test_initial_weights_depend_on_the_seed_alone(tmp_path, feature_dir):
    """Whatever used the random generators before (feature extraction, an earlier run), --seed fixes the model."""
    config = write_config(tmp_path / "seeded.yaml", feature_dir, tmp_path / "out")
    states = []
    for noise in (1, 2):
        torch.manual_seed(noise)
        _, _, setup = train_run._setup(["--config", str(config)])
        states.append(setup.model.state_dict())
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        torch.testing.assert_close(states[0][name], states[1][name], msg=name)
