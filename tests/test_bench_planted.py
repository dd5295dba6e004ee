"""The pure-Python parts of scripts/bench_planted.py: its command line, its stage commands, its table from a results
dict, and the linear probe (hf_erc.training.probe). Nothing is trained here (the benchmark itself runs for minutes)."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from hf_erc.data.planted import write_planted_release
from hf_erc.training.probe import linear_probe, stack_vectors
from tests.utils.scripts import registered_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_planted.py"


@pytest.fixture(scope="module")
def bench():
    with registered_script(SCRIPT) as module:
        yield module


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The CSVs and truth of a small planted release (no clips)."""
    folder = tmp_path_factory.mktemp("planted") / "release"
    write_planted_release(folder, {"train": 4, "dev": 2, "test": 6}, seed=3, media=False)
    return folder


def test_arguments_defaults_and_errors(bench, capsys):
    arguments = bench.parse_arguments([])
    assert arguments.regime == "text-strongest" and arguments.seeds == [0, 1] and not arguments.quick
    assert arguments.work_dir.endswith("text-strongest")
    assert arguments.jobs == max(1, min(4, os.cpu_count() or 1))  # as many stage processes as cores, at most 4
    assert bench.parse_arguments(["--jobs", "1"]).jobs == 1
    quick = bench.parse_arguments(["--quick", "--regime", "equal"])
    assert quick.seeds == [0] and quick.work_dir.endswith("quick")
    assert bench.REGIMES["equal"] == {"text": 0.6, "audio": 0.6, "video": 0.6}
    with pytest.raises(SystemExit):
        bench.parse_arguments(["--stages", "no-such-stage"])
    assert "no-such-stage" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_arguments(["--release", "/nonexistent/release"])
    assert "planted.json" in capsys.readouterr().err


def test_stage_commands_chain_the_stages_and_only_shipped_configs(bench, tmp_path):
    workspace = bench.Workspace(tmp_path, tmp_path / "release")
    specs = {spec.name: spec for spec in bench.stage_specs()}
    for spec in specs.values():
        assert (bench.CONFIG_DIR / spec.config).is_file(), spec.config
        assert all(stage in specs for _, stage in spec.reads)
    order = [spec.name for spec in bench.stage_specs()]
    assert all(order.index(stage) < order.index(spec.name) for spec in specs.values() for _, stage in spec.reads)
    command = bench.stage_command(specs["telme-fusion"], workspace, seed=1, quick=False)
    assert command[1:3] == ["scripts/train.py", "--config"] and command[command.index("--seed") + 1] == "1"
    assert command[command.index("--audio_student_name_or_path") + 1] == str(tmp_path / "seed-1" / "telme-audio")
    assert command[-3:] == ["--blank_modalities", "audio", "video"]
    sdt = bench.stage_command(specs["sdt"], workspace, seed=0, quick=True)
    assert sdt[sdt.index("--data_dir") + 1] == str(workspace.features) and sdt[-2:] == ["--num_train_epochs", "1"]
    no_kd = bench.stage_command(specs["telme-audio-no-kd"], workspace, seed=0, quick=False)
    assert no_kd[no_kd.index("--response_kd_weight") + 1] == "0" and no_kd[no_kd.index("--feature_kd_weight") + 1] == "0"


def test_shipped_configs_parse(bench):
    from hf_erc.training import RunArguments

    for path in sorted(bench.CONFIG_DIR.glob("*.yaml")):
        arguments = RunArguments.from_config(path)
        assert arguments.model.model_type in ("telme", "magtkd", "sdt", "cmath"), path
        assert arguments.model.model_name_or_path is None  # no pretrained weights


def fake_run(weighted_f1, blanks=()):
    test = {"test_weighted_f1": weighted_f1, "test_accuracy": weighted_f1 + 0.01}
    for modality in blanks:
        test[f"test_blank_{modality}_weighted_f1"] = weighted_f1 - 0.2
        test[f"test_blank_{modality}_accuracy"] = weighted_f1 - 0.19
    return {"seconds": 12.0, "test": test}


def test_table_from_a_results_dict(bench, release):
    specs = [spec for spec in bench.stage_specs() if spec.name in ("telme-text", "telme-audio-no-kd", "sdt")]
    probe = {"test_accuracy": 0.5, "test_weighted_f1": 0.49}
    results = {
        "seeds": {
            seed: {
                "stages": {
                    "telme-text": fake_run(0.7 + seed / 100),
                    "telme-audio-no-kd": fake_run(0.4),
                    "sdt": fake_run(0.8, blanks=("text", "audio", "video")),
                },
                "probes": {"telme-text": probe, "sdt": probe},
            }
            for seed in (0, 1)
        }
    }
    rows = bench.build_rows(results, release, specs)
    assert [row["stage"] for row in rows] == [
        "telme-text", "telme-audio-no-kd", "sdt", "sdt without text", "sdt without audio", "sdt without video",
    ]  # fmt: skip
    text, no_kd, sdt, sdt_without_text = rows[:4]
    assert text["weighted_f1"][0] == pytest.approx(70.5) and text["weighted_f1"][1] == pytest.approx(0.7071, abs=1e-3)
    assert no_kd["ablation"] and sdt_without_text["ablation"] and not sdt["ablation"]
    assert sdt_without_text["weighted_f1"][0] == pytest.approx(60.0) and sdt_without_text["inputs"] == "audio+video +context"
    assert text["bayes_all_context"] is None and sdt["bayes_all_context"] >= sdt["bayes_all"] - 10
    assert text["chance"] == pytest.approx(25.0) and text["probe_accuracy"] == (50.0, 0.0)
    assert sdt_without_text["own_ceiling"] <= sdt["own_ceiling"]
    table = bench.format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + len(rows) and all(line.count("|") == lines[0].count("|") for line in lines)
    assert "**telme-text**" in table and "↳ sdt without text" in table and "70.5 ± 0.7" in table
    (verdict,) = bench.fusion_verdicts(rows)  # SDT: no single-input SDT stage, so the probe and the ceiling
    assert verdict.startswith("- sdt (test WF1 80.0): at or above the linear probe of its inputs (49.0)")
    assert "points under its Bayes-optimal ceiling" in verdict
    # Below the probe: by how much, against the sampling error of the test split.
    close = {**sdt, "probe_weighted_f1": (80.5, 0.0), "probe_accuracy": (80.0, 0.0)}
    (verdict,) = bench.fusion_verdicts([close])
    assert "0.5 BELOW the linear probe of its inputs (80.5), inside one binomial standard deviation" in verdict
    far = {**close, "probe_weighted_f1": (99.0, 0.0)}
    assert "BEYOND one binomial" in bench.fusion_verdicts([far])[0]


def test_linear_probe_separates_separable_vectors_and_chooses_on_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 4

    def split(n):
        labels = rng.integers(0, 4, size=n)
        return centres[labels] + rng.normal(size=(n, 8)), labels

    result = linear_probe(split(200), split(80), split(120), strengths=(0.1, 1.0))
    assert result.test_accuracy > 0.95 and result.test_weighted_f1 > 0.95 and result.inverse_l2 in (0.1, 1.0)
    assert result.converged
    # Separable training vectors, no L2 to speak of, one iteration: reported, not warned about.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not linear_probe(split(200), split(80), split(120), strengths=(1e4,), max_iter=1).converged
    noise = [(rng.normal(size=(n, 8)), rng.integers(0, 4, size=n)) for n in (200, 80, 400)]
    assert linear_probe(*noise, strengths=(1.0,)).test_accuracy < 0.4  # nothing to read: about chance
    with pytest.raises(ValueError, match="two labels"):
        linear_probe((np.zeros((3, 8)), np.zeros(3)), split(4), split(4))
    stacked = stack_vectors({"a": [[1.0, 2.0], None], "b": [[3.0], [4.0]]}, ["a", "b"])
    np.testing.assert_array_equal(stacked, [[1, 2, 3], [0, 0, 4]])
