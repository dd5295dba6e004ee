"""scripts/train.py end to end on a tiny synthetic feature dataset, and the same run through `hf_erc.training.train`
in this process (several processes: test_scale_out.py)."""

import sys

import pytest
import torch

from hf_erc.locking import OutputFolderInUseError, OutputFolderLock
from hf_erc.training import RunArguments, TrainingResults, evaluate, train
from hf_erc.training import run as train_run
from hf_erc.training.arguments import parse_run_arguments
from hf_erc.training.results import format_results_table
from hf_erc.training.run import main
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
    arguments = parse_run_arguments(
        ["--config", str(config), "--num_train_epochs", "2", "--config_overrides", '{"hidden_size": 32}']
    )
    model_args, data_args, distillation_args, training_args = (
        arguments.model, arguments.data, arguments.distillation, arguments.training
    )
    assert training_args.num_train_epochs == 2  # the command line wins
    assert training_args.learning_rate == pytest.approx(1e-3)  # YAML value, converted to float
    assert training_args.per_device_train_batch_size == 4
    assert model_args.config_overrides == {"hidden_size": 32}
    assert data_args.modalities == ["text", "audio"]
    assert training_args.metric_for_best_model == "eval_weighted_f1" and training_args.greater_is_better
    assert distillation_args.teacher_model_name_or_path is None
    # The same values given in Python, as text or as values, make the same arguments.
    assert RunArguments.from_config(config, num_train_epochs=2, config_overrides={"hidden_size": 32}) == arguments
    assert RunArguments.from_config(config, num_train_epochs="2", config_overrides='{"hidden_size": 32}') == arguments


def test_overrides_are_checked_as_config_values(tmp_path):
    config = write_config(tmp_path / "run.yaml", tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match=r"overrides: unknown key\(s\) \['learning_rat'\]"):
        RunArguments.from_config(config, learning_rat=0.1)
    with pytest.raises(ValueError, match="overrides: argument --learning_rate.*invalid float value: 'fast'"):
        RunArguments.from_config(config, learning_rate="fast")
    with pytest.raises(ValueError, match=r"overrides: config_overrides takes a single value or a mapping, got a list"):
        RunArguments.from_config(config, config_overrides=[1])
    with pytest.raises(ValueError, match="--modalities must be a non-empty subset"):
        RunArguments.from_config(config, modalities=["smell"])
    with pytest.raises(FileNotFoundError, match="missing.yaml does not exist"):
        RunArguments.from_config(tmp_path / "missing.yaml")


def test_bad_config_is_reported_with_its_file(tmp_path, capsys):
    config = write_config(tmp_path / "bad.yaml", tmp_path, tmp_path / "out", learning_rat=0.1)
    assert main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "bad.yaml" in error and "learning_rat" in error
    config = write_config(tmp_path / "run.yaml", tmp_path / "missing", tmp_path / "out")
    assert main(["--config", str(config)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def script_run(tmp_path_factory, feature_dir):
    """`python scripts/train.py --config run.yaml --num_train_epochs 2`: the config, the output folder, the printed
    output and the metrics it wrote (read before any later test changes the folder)."""
    folder = tmp_path_factory.mktemp("script_run")
    output_dir = folder / "run"
    config = write_config(folder / "run.yaml", feature_dir, output_dir)
    result = run_script([sys.executable, "scripts/train.py", "--config", str(config), "--num_train_epochs", "2"])
    return config, output_dir, result.stdout, read_json(output_dir / "all_results.json")


def without_timings(metrics):
    return {key: value for key, value in metrics.items() if "runtime" not in key and "per_second" not in key}


def test_train_in_this_process_returns_what_the_script_writes(tmp_path, script_run, capsys):
    """`hf_erc.training.train` on the same config and seed: the returned metrics are the ones scripts/train.py wrote
    (timings aside), and the ones this run wrote."""
    config, _, _, script_metrics = script_run
    output_dir = tmp_path / "in_process"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the script's process (OMP_NUM_THREADS=1): the same sums, to the last bit
    try:
        results = train(RunArguments.from_config(config, num_train_epochs=2, output_dir=output_dir))
    finally:
        torch.set_num_threads(threads)

    assert isinstance(results, TrainingResults) and results.output_dir == output_dir
    assert without_timings(results.metrics) == without_timings(script_metrics)
    assert results.metrics == read_json(output_dir / "all_results.json")
    assert results.validation == read_json(output_dir / "eval_results.json")
    assert results.test == read_json(output_dir / "test_results.json")
    assert results.train["global_step"] == 2 * TRAIN_DIALOGUES // 4
    assert set(results.test) >= {"test_weighted_f1", "test_accuracy", "test_macro_f1", "test_f1_neutral"}
    assert (output_dir / "model.safetensors").is_file() and "| weighted F1 |" in capsys.readouterr().out

    # evaluate: the checkpoint just written, on validation and test, without training (and without changing the
    # arguments it is given); the kept model is the one whose scores train returned.
    arguments = RunArguments.from_config(config, model_name_or_path=output_dir, output_dir=tmp_path / "evaluation")
    evaluation = evaluate(arguments)
    assert arguments.training.do_train and evaluation.train == {}
    for split in ("validation", "test"):
        prefix = "eval" if split == "validation" else split
        for key in (f"{prefix}_{name}" for name in ("weighted_f1", "accuracy", "macro_f1", "f1_fear", "loss")):
            assert getattr(evaluation, split)[key] == pytest.approx(getattr(results, split)[key]), key
    assert not (tmp_path / "evaluation" / "model.safetensors").exists()


def test_train_refuses_a_busy_output_folder_before_training(tmp_path, script_run):
    config, *_ = script_run
    with OutputFolderLock(tmp_path / "busy"):
        with pytest.raises(OutputFolderInUseError):
            train(RunArguments.from_config(config, output_dir=tmp_path / "busy"))
    assert sorted(path.name for path in (tmp_path / "busy").iterdir()) == []


def test_train_script_end_to_end_then_resume(script_run):
    config, output_dir, stdout, results = script_run
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
    assert "| weighted F1 |" in stdout and "| F1 anger |" in stdout

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
        _, setup = train_run._set_up_stage(parse_run_arguments(["--config", str(config)]))
        states.append(setup.model.state_dict())
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        torch.testing.assert_close(states[0][name], states[1][name], msg=name)
