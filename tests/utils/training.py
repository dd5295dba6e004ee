"""Helpers of the training tests: run scripts as a user does (offline, under `accelerate launch`), watch what a
run loads and computes, and check a checkpoint loads without hf_erc."""

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def offline_environment(**extra):
    """This process's environment for a child process: offline, one OpenMP thread, plus `extra`."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


def run_script(command, timeout=240):
    environment = offline_environment()
    result = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def train_in_process(config_path, **overrides):
    """One run of the YAML file ``config_path`` through ``hf_erc.training.train`` in this process (the typed entry
    that scripts/train.py wraps, without the seconds a new Python process spends importing torch and transformers).
    Returns ``(results, warnings)``: what ``train`` returned, and the text of every warning hf_erc logged."""
    import logging

    from hf_erc.training import RunArguments, train

    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    package_logger = logging.getLogger("hf_erc")
    package_logger.addHandler(handler)
    try:
        results = train(RunArguments.from_config(config_path, **overrides))
    finally:
        package_logger.removeHandler(handler)
    return results, "\n".join(records)


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerate_launcher(num_processes):
    """`accelerate launch` with `num_processes` CPU processes (two or more: gloo ranks through `--multi_gpu`)."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    launcher += ["--multi_gpu"] if num_processes > 1 else ["--cpu"]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return launcher + ["--main_process_port", str(free_port())]


def count_encoder_calls(monkeypatch, model_classes):
    """Count `embed` calls of `model_classes`, split by whether `ERCTrainer.train` is running.

    Returns the live `{"setup": n, "training": n}` dict: encoders that ran only to build a cache show up under
    "setup", any call during training epochs under "training".
    """
    from hf_erc.training import ERCTrainer

    calls = {"setup": 0, "training": 0}
    phase = {"name": "setup"}
    for model_class in model_classes:
        original = model_class.embed

        def counted(self, *args, _original=original, **kwargs):
            calls[phase["name"]] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(model_class, "embed", counted)
    original_train = ERCTrainer.train

    def train(self, *args, **kwargs):
        phase["name"] = "training"
        try:
            return original_train(self, *args, **kwargs)
        finally:
            phase["name"] = "setup"

    monkeypatch.setattr(ERCTrainer, "train", train)
    return calls


def assert_loads_without_hf_erc_and_peft(checkpoint, inputs, workdir):
    """Load `checkpoint` with AutoModel(trust_remote_code=True) in a process where `hf_erc` and `peft` cannot be
    imported, run it on `inputs`, and check its logits equal those of the model loaded here."""
    from transformers import AutoModel

    with torch.no_grad():
        expected = AutoModel.from_pretrained(checkpoint).eval()(**inputs).logits
    torch.save(inputs, workdir / "inputs.pt")
    script = f"""
import sys
sys.modules["hf_erc"] = None
sys.modules["peft"] = None
import torch
from transformers import AutoModel
model = AutoModel.from_pretrained({str(checkpoint)!r}, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    logits = model(**torch.load({str(workdir / "inputs.pt")!r})).logits
torch.save(logits, {str(workdir / "logits.pt")!r})
"""
    environment = offline_environment(HF_MODULES_CACHE=str(workdir / "modules"))
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    torch.testing.assert_close(torch.load(workdir / "logits.pt"), expected)


def count_checkpoint_loads(monkeypatch):
    """Count model loads from disk (`PreTrainedModel.from_pretrained`) per folder, for the rest of the test.

    Returns the live `Counter` of resolved paths: a stage that reads each checkpoint once shows 1 per folder.
    """
    from transformers import PreTrainedModel

    loads = Counter()
    original = PreTrainedModel.from_pretrained.__func__

    def counted(cls, name_or_path, *args, **kwargs):
        path = Path(name_or_path)
        loads[str(path.resolve()) if path.exists() else str(name_or_path)] += 1
        return original(cls, name_or_path, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counted))
    return loads
