"""Results as mean ± std over seeds: one config trained (or evaluated) once per seed, then summarised. The command
line is ``hf-erc report`` / ``scripts/report.py`` (:mod:`hf_erc.commands.report`).

:func:`run_seeds` runs every seed S into ``ROOT/seed-S``: in this process it calls :func:`hf_erc.training.train` with
the config's arguments, the overrides, ``seed=S`` and that ``output_dir`` (the run seeds itself before building the
model and the Trainer seeds data order and dropout, so an earlier run leaves nothing behind that changes a later one;
``tests/training/test_report.py`` checks a second seed here matches the same seed in a fresh process). With a
``launcher`` (``"python"``, ``"accelerate launch --multi_gpu --num_processes 4"``) each seed is its own process,
``LAUNCHER -m hf_erc.commands.train --config CONFIG --seed S --output_dir ROOT/seed-S [overrides as flags]``: the way
to train every seed on several GPUs.

A seed's record, ``ROOT/seed-S/report_run.json``, holds what makes the run (the config file's contents, the seed, the
overrides and the launcher) and its metrics; a seed whose record matches is not trained again (``retrain`` forces it).
A seed run that fails stops the report with the seed and the error; the seeds finished before it are reused on the
next try.

:func:`summarize` turns the seeds' metrics into ``{metric: {split: {mean, std, values}}}`` in percent (sample standard
deviation, ddof=1; ``None`` for one seed), which :func:`format_summary_table` and :func:`format_seeds_line` print.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate.state import AcceleratorState

from .arguments import RunArguments, command_line_flags, read_yaml_config
from .run import train

METRICS = (("weighted F1", "weighted_f1"), ("accuracy", "accuracy"), ("macro F1", "macro_f1"))
SPLITS = (("validation", "eval"), ("test", "test"))
RECORD_FILE = "report_run.json"
# What a seed run in its own process writes its metrics to (the Trainer's merged metrics file).
RESULTS_FILE = "all_results.json"
# The module a launcher runs for each seed: `hf-erc train` (``python -m``, ``accelerate launch -m``, ``torchrun -m``).
TRAIN_MODULE = "hf_erc.commands.train"
# Fields the report sets for every seed itself, and the report option that chooses them.
PER_SEED_FIELDS = {"seed": "--seeds", "output_dir": "--output_root"}


class SeedRunError(RuntimeError):
    """A seed's training run failed; the message names the seed and the error."""


@dataclass
class SeedResults:
    """One seed's finished run.

    Args:
        seed: the run's ``--seed``.
        output_dir: its folder (``ROOT/seed-S``).
        metrics: its metrics as ``all_results.json`` holds them (``train_*``, ``eval_*``, ``test_*``).
        reused: whether they come from an earlier run with the same record instead of a run now.
    """

    seed: int
    output_dir: Path
    metrics: dict[str, Any]
    reused: bool


# ---- Running the seeds ----------------------------------------------------------------------------


def default_output_root(config: str | os.PathLike) -> Path:
    """The config's ``output_dir`` (``outputs/<config name>`` if it has none); a config that is not a YAML mapping
    is a one-line :class:`ValueError` (:func:`hf_erc.training.arguments.read_yaml_config`)."""
    path = Path(config)
    output_dir = read_yaml_config(path).get("output_dir")
    return Path(output_dir) if output_dir else Path("outputs") / path.stem


def run_seeds(
    config: str | os.PathLike,
    seeds: Sequence[int],
    output_root: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    retrain: bool = False,
    launcher: str | None = None,
) -> list[SeedResults]:
    """Run (or reuse) every seed in ``output_root/seed-S``, in order; see :func:`run_seed`. Raises
    :class:`SeedRunError` at the first seed that fails."""
    return [
        run_seed(config, seed, Path(output_root) / f"seed-{seed}", overrides, retrain=retrain, launcher=launcher)
        for seed in seeds
    ]


def run_seed(
    config: str | os.PathLike,
    seed: int,
    output_dir: Path,
    overrides: Mapping[str, Any] | None = None,
    retrain: bool = False,
    launcher: str | None = None,
) -> SeedResults:
    """Train (or reuse) one seed's run of ``config`` with ``overrides`` (field name -> value, as
    :meth:`RunArguments.from_config` takes them; ``seed`` and ``output_dir`` are this function's) in ``output_dir``:
    in this process, or with ``launcher``, a command line that runs :data:`TRAIN_MODULE` with ``-m``.

    Raises :class:`SeedRunError` if the run fails.
    """
    overrides = dict(overrides or {})
    reserved = sorted(set(overrides) & set(PER_SEED_FIELDS))
    if reserved:
        raise ValueError(f"{', '.join(reserved)}: set per seed by the report (use {PER_SEED_FIELDS[reserved[0]]}).")
    record = _run_record(config, seed, overrides, launcher)
    if not retrain:
        metrics = _finished_run_metrics(output_dir, record)
        if metrics is not None:
            return SeedResults(seed, output_dir, metrics, reused=True)
    # The Trainer adds to an existing all_results.json: start from none, so no key of an older run remains.
    for name in (RECORD_FILE, RESULTS_FILE):
        (output_dir / name).unlink(missing_ok=True)
    if launcher is None:
        metrics = _train_in_this_process(config, seed, output_dir, overrides)
    else:
        metrics = _train_in_own_process(config, seed, output_dir, overrides, launcher)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RECORD_FILE).write_text(
        json.dumps({**record, "metrics": metrics}, indent=2, default=float) + "\n", encoding="utf-8"
    )
    return SeedResults(seed, output_dir, metrics, reused=False)


def _train_in_this_process(
    config: str | os.PathLike, seed: int, output_dir: Path, overrides: dict[str, Any]
) -> dict[str, Any]:
    print(f"report: seed {seed}: training {config} into {output_dir}", flush=True)
    # Forget the previous run's accelerate state (a process-wide singleton), so that every run sets it up from its
    # own arguments as a fresh process would.
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        arguments = RunArguments.from_config(config, **overrides, seed=seed, output_dir=str(output_dir))
        return train(arguments).metrics
    except Exception as error:  # noqa: BLE001 - any failure stops the report, naming the seed
        traceback.print_exc()
        raise SeedRunError(f"seed {seed} ({output_dir}) failed: {type(error).__name__}: {error}") from error


def _train_in_own_process(
    config: str | os.PathLike, seed: int, output_dir: Path, overrides: dict[str, Any], launcher: str
) -> dict[str, Any]:
    flags = ["--config", str(config), "--seed", str(seed), "--output_dir", str(output_dir)]
    command = launch_command(launcher) + flags + command_line_flags(overrides)
    print(f"report: seed {seed}: {shlex.join(command)}", flush=True)
    try:
        status = subprocess.run(command, check=False).returncode
    except OSError as error:
        raise SeedRunError(f"seed {seed} ({output_dir}) failed: {shlex.join(command)}: {error}") from error
    if status != 0:
        raise SeedRunError(f"seed {seed} ({output_dir}) failed: the training process exited with status {status}.")
    try:
        return json.loads((output_dir / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SeedRunError(f"seed {seed} ({output_dir}) failed: the run wrote no readable {RESULTS_FILE}.") from None


def launch_command(launcher: str) -> list[str]:
    """``LAUNCHER -m hf_erc.commands.train`` as a list (``python`` is this interpreter)."""
    command = shlex.split(launcher)
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable
    return command + ["-m", TRAIN_MODULE]


def _run_record(
    config: str | os.PathLike, seed: int, overrides: Mapping[str, Any], launcher: str | None
) -> dict[str, Any]:
    """What makes two runs of a seed the same run: the config file's contents, the seed, the overrides and the
    launcher (which may set the number of processes, hence the batch size), as JSON reads them back."""
    record = {
        "config_sha256": hashlib.sha256(Path(config).read_bytes()).hexdigest(),
        "seed": seed,
        "overrides": dict(overrides),
        "launcher": launcher,
    }
    return json.loads(json.dumps(record, default=str))


def _finished_run_metrics(output_dir: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of the finished report run in ``output_dir`` if its record is ``record``; else ``None``."""
    try:
        saved = json.loads((output_dir / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or {key: saved.get(key) for key in record} != record:
        return None
    metrics = saved.get("metrics")
    return metrics if isinstance(metrics, dict) else None


# ---- Summarizing ----------------------------------------------------------------------------


def label_names(output_dir: Path, metrics: Mapping[str, Any]) -> list[str]:
    """The classes in the model's label order (``config.json``), else in the order of the metrics' keys."""
    try:
        id2label = json.loads((Path(output_dir) / "config.json").read_text(encoding="utf-8"))["id2label"]
        return [id2label[key] for key in sorted(id2label, key=int)]
    except (OSError, ValueError, KeyError):
        names = []
        for _, prefix in SPLITS:
            names += [key[len(f"{prefix}_f1_"):] for key in metrics if key.startswith(f"{prefix}_f1_")]
        return list(dict.fromkeys(names))


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; ``None`` for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def summarize(
    metrics_per_seed: Sequence[Mapping[str, Any]], classes: Sequence[str] = ()
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{metric: {split: {"mean", "std", "values"}}}`` in percent, for the metrics every seed reports.

    Metrics are ``weighted_f1``, ``accuracy``, ``macro_f1`` and ``f1_<class>`` for ``classes``; splits are
    ``validation`` and ``test``; ``values`` are in seed order.
    """
    keys = [key for _, key in METRICS] + [f"f1_{name}" for name in classes]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for key in keys:
        for split, prefix in SPLITS:
            values = [metrics.get(f"{prefix}_{key}") for metrics in metrics_per_seed]
            if not values or any(value is None for value in values):
                continue
            values = [100 * float(value) for value in values]
            mean, std = mean_std(values)
            summary.setdefault(key, {})[split] = {"mean": mean, "std": std, "values": values}
    return summary


def format_cell(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "-"
    std = "–" if entry["std"] is None else f"{entry['std']:.2f}"
    return f"{entry['mean']:.2f} ± {std}"


def format_summary_table(summary: dict[str, dict[str, dict[str, Any]]], classes: Sequence[str] = ()) -> str:
    """A Markdown table: rows weighted F1, accuracy, macro F1 (and F1 per class), columns validation and test."""
    splits = [split for split, _ in SPLITS if any(split in summary.get(key, {}) for key in summary)]
    rows = list(METRICS) + [(f"F1 {name}", f"f1_{name}") for name in classes]
    lines = ["| metric | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for title, key in rows:
        cells = [format_cell(summary.get(key, {}).get(split)) for split in splits]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_seeds_line(seeds: Sequence[int], summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The seeds and each seed's test weighted F1 (validation's if the runs were not tested)."""
    split = "test" if "test" in summary.get("weighted_f1", {}) else "validation"
    values = summary.get("weighted_f1", {}).get(split, {}).get("values", [])
    per_seed = ", ".join(f"{seed}: {value:.2f}" for seed, value in zip(seeds, values))
    runs = f"{len(seeds)} run" + ("s" if len(seeds) != 1 else "")
    return f"Seeds {', '.join(map(str, seeds))} ({runs}); {split} weighted F1 per seed (%): {per_seed}"
