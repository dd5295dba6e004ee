"""scripts/report.py (`hf-erc report`): mean ± std over seeds of training runs, on a tiny synthetic feature dataset."""

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from hf_erc.commands import report
from hf_erc.training import TrainingResults
from hf_erc.training import report as seed_runs
from tests.utils.synthetic_features import write_feature_dataset, write_sdt_config
from tests.utils.training import accelerate_launcher, read_json


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory):
    return write_feature_dataset(tmp_path_factory.mktemp("meld_features"), 8)


def write_config(path, data_dir, output_dir):
    return write_sdt_config(
        path, data_dir, output_dir, num_train_epochs=2, learning_rate=1e-3, save_total_limit=1
    )


def count_train_runs(monkeypatch, fake=None):
    """Record the `RunArguments` of every `train` call the report makes; `fake(arguments)` replaces the training if
    given."""
    calls = []
    original = seed_runs.train

    def train(arguments):
        calls.append(arguments)
        return (fake or original)(arguments)

    monkeypatch.setattr(seed_runs, "train", train)
    return calls


def seeds_of(calls):
    return [arguments.training.seed for arguments in calls]


@pytest.mark.slow
def test_two_seeds_mean_std_files_reuse_and_same_as_separate_processes(tmp_path, feature_dir, monkeypatch, capsys):
    config = write_config(tmp_path / "run.yaml", feature_dir, tmp_path / "unused")
    root = tmp_path / "runs"
    calls = count_train_runs(monkeypatch)
    command = ["--config", str(config), "--seeds", "3", "5", "--output_root", str(root), "--per-class"]
    command += ["--markdown", str(tmp_path / "table.md"), "--json", str(tmp_path / "table.json")]
    command += ["--num_train_epochs", "1"]  # a training flag, beating the config's 2
    assert report.main(command) == 0
    assert seeds_of(calls) == [3, 5]
    assert [arguments.training.num_train_epochs for arguments in calls] == [1.0, 1.0]
    output = capsys.readouterr().out

    results = [read_json(root / f"seed-{seed}" / "all_results.json") for seed in (3, 5)]
    assert [r["epoch"] for r in results] == [1.0, 1.0]
    assert results[0]["train_loss"] != results[1]["train_loss"]  # --seed reached each run
    summary = read_json(tmp_path / "table.json")
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert table in output
    for title, key in (("weighted F1", "weighted_f1"), ("accuracy", "accuracy"), ("macro F1", "macro_f1")):
        cells = []
        for prefix, split in (("eval", "validation"), ("test", "test")):
            values = 100 * np.array([r[f"{prefix}_{key}"] for r in results])
            entry = summary[key][split]
            np.testing.assert_allclose(entry["values"], values)
            assert entry["mean"] == pytest.approx(np.mean(values))
            assert entry["std"] == pytest.approx(np.std(values, ddof=1))
            cells.append(f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}")
        assert f"| {title} | {cells[0]} | {cells[1]} |" in table.splitlines()
    assert table.splitlines()[0] == "| metric | validation | test |"
    assert "| F1 neutral |" in table and "| F1 anger |" in table and "f1_neutral" in summary
    per_seed = ", ".join(f"{s}: {100 * r['test_weighted_f1']:.2f}" for s, r in zip((3, 5), results))
    assert f"Seeds 3, 5 (2 runs); test weighted F1 per seed (%): {per_seed}" in table

    # Run again: both seeds finished with the same config and flags, so nothing trains and nothing is rewritten.
    mtimes = [(root / f"seed-{seed}" / "all_results.json").stat().st_mtime_ns for seed in (3, 5)]
    assert report.main(command) == 0
    assert len(calls) == 2
    assert "reused the finished runs of seed(s) 3, 5" in capsys.readouterr().out
    assert [(root / f"seed-{seed}" / "all_results.json").stat().st_mtime_ns for seed in (3, 5)] == mtimes
    assert read_json(tmp_path / "table.json") == summary

    # The second seed, trained after another run in this process, equals the same seed run by the report's launcher
    # (`accelerate launch ... -m hf_erc.commands.train --config ... --seed S --output_dir ROOT/seed-S [flags]`: the
    # module of the installed package, wherever the checkout is) in a fresh process.
    launcher = shlex.join(accelerate_launcher(1))
    separate = tmp_path / "separate"
    launched = ["--config", str(config), "--seeds", "5", "--output_root", str(separate), "--launcher", launcher]
    assert report.main(launched + ["--num_train_epochs", "1"]) == 0
    assert len(calls) == 2  # not trained in this process
    assert f"{launcher} -m hf_erc.commands.train --config {config} --seed 5" in capsys.readouterr().out
    fresh = read_json(separate / "seed-5" / "all_results.json")
    assert fresh["world_size"] == 1
    for key in ("train_loss", "eval_loss", "eval_weighted_f1", "eval_macro_f1", "test_weighted_f1", "test_accuracy"):
        assert results[1][key] == pytest.approx(fresh[key], rel=1e-5, abs=1e-7), key


def fake_training(values_per_seed, fail_seed=None):
    """A stand-in for `train` that returns `values_per_seed[seed]` for every metric (and writes nothing)."""

    def train(arguments):
        seed = arguments.training.seed
        if seed == fail_seed:
            raise RuntimeError("CUDA out of memory (fake)")
        value = values_per_seed[seed]
        validation = {"eval_weighted_f1": value, "eval_accuracy": value, "eval_macro_f1": value / 2}
        validation["eval_f1_joy"] = value
        test = {"test_weighted_f1": value, "test_accuracy": value, "test_macro_f1": value / 2}
        return TrainingResults(output_dir=Path(arguments.training.output_dir), validation=validation, test=test)

    return train


def test_a_failing_seed_stops_the_report_and_the_finished_seeds_are_reused(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "run.yaml", tmp_path, tmp_path / "config-output")
    calls = count_train_runs(monkeypatch, fake_training({1: 0.5, 2: 0.6, 7: 0.7}, fail_seed=2))
    command = ["--config", str(config), "--seeds", "1", "2", "7", "--json", str(tmp_path / "r.json")]
    assert report.main(command) == 1
    error = capsys.readouterr().err
    assert "report.py: error: seed 2" in error and "RuntimeError: CUDA out of memory (fake)" in error
    assert seeds_of(calls) == [1, 2]  # seed 7 never ran
    assert not (tmp_path / "r.json").exists()
    # The default output root is the config's output_dir.
    assert calls[0].training.output_dir == str(tmp_path / "config-output" / "seed-1")

    # A run that stops on a configuration error is a failure too.
    def misconfigured(arguments):
        raise ValueError(f"--data_dir {arguments.data.data_dir} has no features")

    monkeypatch.setattr(seed_runs, "train", misconfigured)
    assert report.main(command) == 1
    error = capsys.readouterr().err
    assert "report.py: error: seed 2 " in error and "ValueError: --data_dir" in error

    # Fixed: seed 1 is reused, 2 and 7 run.
    calls = count_train_runs(monkeypatch, fake_training({1: 0.5, 2: 0.6, 7: 0.7}))
    assert report.main(command) == 0
    assert seeds_of(calls) == [2, 7]
    summary = read_json(tmp_path / "r.json")
    assert summary["weighted_f1"]["test"]["values"] == pytest.approx([50.0, 60.0, 70.0])
    assert summary["weighted_f1"]["test"]["std"] == pytest.approx(10.0)
    assert summary["macro_f1"]["validation"]["mean"] == pytest.approx(30.0)

    # --retrain runs every seed again; a changed config file or changed flags retrain too.
    assert report.main(command + ["--retrain"]) == 0
    assert len(calls) == 5
    assert report.main(command + ["--learning_rate", "0.1"]) == 0
    assert len(calls) == 8 and calls[-1].training.learning_rate == 0.1
    assert report.main(command + ["--learning_rate", "0.1"]) == 0
    assert len(calls) == 8
    config.write_text(config.read_text(encoding="utf-8") + "warmup_steps: 1\n", encoding="utf-8")
    assert report.main(command + ["--learning_rate", "0.1"]) == 0
    assert len(calls) == 11


def test_one_seed_evaluation_only_flags_pass_through(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "run.yaml", tmp_path, tmp_path / "unused")
    calls = count_train_runs(monkeypatch, fake_training({42: 0.5}))
    command = ["--config", str(config), "--seeds", "42", "--output_root", str(tmp_path / "eval"), "--per_class"]
    command += ["--do_train", "false", "--model_name_or_path", "some/checkpoint", "--markdown", str(tmp_path / "t.md")]
    assert report.main(command) == 0
    [arguments] = calls
    assert (arguments.training.seed, arguments.training.output_dir) == (42, str(tmp_path / "eval" / "seed-42"))
    assert arguments.training.do_train is False and arguments.model.model_name_or_path == "some/checkpoint"
    assert arguments.training.num_train_epochs == 2  # the rest from the config
    lines = (tmp_path / "t.md").read_text(encoding="utf-8").splitlines()
    assert lines[2] == "| weighted F1 | 50.00 ± – | 50.00 ± – |"
    assert lines[4] == "| macro F1 | 25.00 ± – | 25.00 ± – |"
    assert lines[5] == "| F1 joy | 50.00 ± – | - |"  # no config.json: the classes found in the results
    assert lines[-1] == "Seeds 42 (1 run); test weighted F1 per seed (%): 42: 50.00"
    capsys.readouterr()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", "1"], "--seed is set per seed by the report: use --seeds"),
        (["--output_dir=x"], "--output_dir is set per seed by the report: use --output_root"),
        (["--seeds", "1", "1"], "a seed is repeated"),
        (["--num_train_epoch", "1", "--learning_rte", "1"], "unrecognized training arguments: --learning_rte 1"),
        (["--dataset_name", "meldd"], "invalid choice: 'meldd'"),
    ],
)
def test_flags_set_per_seed_or_unknown_are_refused_before_any_run(tmp_path, flags, message, monkeypatch, capsys):
    calls = count_train_runs(monkeypatch, fake_training({}))
    config = write_config(tmp_path / "run.yaml", tmp_path, tmp_path / "out")
    assert report.main(["--config", str(config), "--seeds", "1", *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("report.py: error:") and message in error
    assert calls == []


def test_a_missing_config_is_reported(tmp_path, capsys):
    assert report.main(["--config", str(tmp_path / "none.yaml"), "--seeds", "1", "--output_root", str(tmp_path)]) == 2
    assert "none.yaml does not exist" in capsys.readouterr().err


FAKE_TRAIN_MODULE = """
import json, sys
from pathlib import Path
argv = sys.argv[1:]
seed, output_dir = int(argv[argv.index("--seed") + 1]), Path(argv[argv.index("--output_dir") + 1])
if seed == 9:
    sys.exit(3)
output_dir.mkdir(parents=True, exist_ok=True)
(output_dir / "all_results.json").write_text(json.dumps({"eval_weighted_f1": seed / 10, "test_weighted_f1": seed / 20}))
(output_dir / "argv.json").write_text(json.dumps(argv))
"""


def test_launcher_runs_each_seed_in_its_own_process(tmp_path, capsys, monkeypatch):
    """`--launcher python` runs `python -m hf_erc.commands.train ...` per seed: here a stand-in module of that name,
    found first on PYTHONPATH, that writes its command line and metrics."""
    fake_package = tmp_path / "fake" / "hf_erc" / "commands"
    fake_package.mkdir(parents=True)
    (fake_package.parent / "__init__.py").write_text("", encoding="utf-8")
    (fake_package / "__init__.py").write_text("", encoding="utf-8")
    (fake_package / "train.py").write_text(FAKE_TRAIN_MODULE, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    config = write_config(tmp_path / "run.yaml", tmp_path, tmp_path / "unused")
    root = tmp_path / "runs"
    command = ["--config", str(config), "--seeds", "2", "4", "--output_root", str(root), "--launcher", "python"]
    command += ["--json", str(tmp_path / "r.json"), "--num_train_epochs", "1"]
    assert report.main(command) == 0
    assert read_json(root / "seed-4" / "argv.json") == [
        "--config", str(config), "--seed", "4", "--output_dir", str(root / "seed-4"), "--num_train_epochs", "1"
    ]
    summary = read_json(tmp_path / "r.json")
    assert summary["weighted_f1"]["validation"]["values"] == pytest.approx([20.0, 40.0])
    assert summary["weighted_f1"]["test"]["mean"] == pytest.approx(15.0)
    output = capsys.readouterr().out
    assert "accuracy" not in summary and "| accuracy | - | - |" in output
    assert f"{sys.executable} -m hf_erc.commands.train --config" in output
    # Another launcher is another run: the seeds train again.
    mtime = (root / "seed-2" / "all_results.json").stat().st_mtime_ns
    assert report.main(command[:-2] + ["--launcher", "python3", "--num_train_epochs", "1"]) == 0
    assert (root / "seed-2" / "all_results.json").stat().st_mtime_ns != mtime

    assert report.main(command[:4] + ["9"] + command[5:]) == 1
    assert "report.py: error: seed 9 " in capsys.readouterr().err

    monkeypatch.setenv("WORLD_SIZE", "2")  # started with `accelerate launch`
    assert report.main(command) == 2
    assert "--launcher" in capsys.readouterr().err
