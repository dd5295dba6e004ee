"""scripts/gpu_check.py: on a machine without CUDA it does nothing and exits 0; its checks run (tiny models, CPU)."""

import importlib.util
import sys

import pytest
import torch

from tests.utils.training import REPO_ROOT


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))  # as `python scripts/gpu_check.py` runs it
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_0(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert "no CUDA device on this machine: nothing was checked" in capsys.readouterr().out


def test_checks_pass_for_tiny_models_on_cpu(gpu_check, capsys):
    """The same checks as on a GPU, on tiny versions of the four models (bf16 autocast on the CPU)."""
    from hf_erc.models import (
        CMATHConfig,
        CMATHForEmotionRecognition,
        MAGTKDConfig,
        MAGTKDForEmotionRecognition,
        SDTConfig,
        SDTForEmotionRecognition,
    )
    from tests.utils.tiny_telme import tiny_config

    cpu = torch.device("cpu")
    small = {"hidden_size": 32, "num_attention_heads": 2}
    cases = [
        gpu_check.dialogue_case("SDT", SDTConfig.for_dataset("meld", **small), SDTForEmotionRecognition, 2, cpu),
        gpu_check.telme_case("TelME", tiny_config(), 2, 12, 0.2, cpu),
        gpu_check.dialogue_case(
            "MAGTKD", MAGTKDConfig.for_dataset("meld", **small), MAGTKDForEmotionRecognition, 2, cpu
        ),
        gpu_check.dialogue_case("CMATH", CMATHConfig.for_dataset("meld", **small), CMATHForEmotionRecognition, 2, cpu),
    ]
    rows = [gpu_check.check(case, cpu, steps=1) for case in cases]
    for row in rows:
        assert row["ok"], row
        assert len(row["losses"]) == 2 and row["train_steps_per_s"] > 0 and row["peak_MiB"] is None
    assert "sdpa" in rows[0]["attention"] and "RobertaModel: sdpa" in rows[1]["attention"]
    gpu_check.print_table(rows)
    table = capsys.readouterr().out
    assert "| SDT |" in table and "| CMATH |" in table and "FAILED" not in table
