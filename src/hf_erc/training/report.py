"""Results as mean ± std over seeds: the code behind ``scripts/report.py``.

    python scripts/report.py --config configs/sdt-meld.yaml --seeds 42 1 2 [--output_root DIR]
        [--markdown FILE] [--json FILE] [--per-class] [--retrain] [any scripts/train.py flag ...]

For each seed S this runs exactly what ``python scripts/train.py --config CONFIG --seed S --output_dir ROOT/seed-S
[flags]`` runs (:func:`hf_erc.training.run.main`, in this process: the run seeds itself before building the model
and the Trainer seeds data order and dropout, so an earlier run leaves nothing behind that changes a later one;
``tests/training/test_report.py`` checks a second seed here matches the same seed in a fresh process). Then it
reads every seed's ``all_results.json`` (the model kept is the best epoch on validation weighted F1, evaluated on
validation and test) and prints a Markdown table of weighted F1, accuracy and macro F1 (``--per-class``: also
each class's F1), validation and test, as ``mean ± std`` in percent (sample standard deviation, ddof=1; one seed
shows ``x ± –``), and the per-seed test weighted F1.

``--launcher "accelerate launch --multi_gpu --num_processes 4"`` runs each seed as its own process instead,
``LAUNCHER scripts/train.py ...`` (``--launcher python`` for plain separate processes): the way to train every seed
on several GPUs. report.py itself is not to be started with ``accelerate launch``: a process group cannot be
reliably torn down and set up again in one process between seeds, so it refuses.

``ROOT`` defaults to the config's ``output_dir``. A seed whose folder holds the results of a finished run made by
this command with the same config file contents, flags and launcher is not trained again (``--retrain`` forces it); the
record of that is ``ROOT/seed-S/report_run.json``. A seed run that fails stops the report with the seed and the
error; the seeds finished before it are reused on the next try.

Evaluation only (``--do_train false --model_name_or_path CHECKPOINT``) is passed through like any train.py flag.
Over seeds it only makes sense where the seed changes something at evaluation time (it does not change the
checkpoint's weights, and evaluation runs in a fixed order without dropout): expect a std of 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import run as train_run

METRICS = (("weighted F1", "weighted_f1"), ("accuracy", "accuracy"), ("macro F1", "macro_f1"))
SPLITS = (("validation", "eval"), ("test", "test"))
RESULTS_FILE = "all_results.json"
RECORD_FILE = "report_run.json"
TRAIN_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "train.py"  # in a source checkout
# Flags report.py sets for every seed itself.
RESERVED_FLAGS = {"--seed": "--seeds", "--output_dir": "--output_root"}


class SeedRunError(RuntimeError):
    """A seed's training run failed; the message names the seed and the error."""


# ---- Arguments ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="report.py",
        allow_abbrev=False,  # `--seed` must not silently mean `--seeds`
        description=(
            "Train (or evaluate) a config over several seeds with scripts/train.py and print mean ± std of "
            "weighted F1, accuracy and macro F1 on validation and test (the best epoch is chosen on validation). "
            "Any other flag is passed to scripts/train.py."
        ),
    )
    parser.add_argument("--config", required=True, help="YAML config of scripts/train.py.")
    parser.add_argument("--seeds", required=True, nargs="+", type=int, help="Seeds to run, e.g. 42 1 2.")
    parser.add_argument(
        "--output_root", default=None, help="Folder of the runs, seed-S per seed (default: the config's output_dir)."
    )
    parser.add_argument("--markdown", default=None, help="Also write the table (and the seeds line) to this file.")
    parser.add_argument("--json", default=None, help="Also write {metric: {split: {mean, std, values}}} (%%) here.")
    parser.add_argument(
        "--per-class", "--per_class", dest="per_class", action="store_true", help="Add one row per class F1."
    )
    parser.add_argument(
        "--launcher",
        default=None,
        help='Run each seed as `LAUNCHER scripts/train.py ...` in its own process, e.g. "python" or '
        '"accelerate launch --multi_gpu --num_processes 4" (default: in this process).',
    )
    parser.add_argument("--retrain", action="store_true", help="Train every seed again, even if its run finished.")
    return parser


def parse_report_arguments(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """``(report arguments, flags for scripts/train.py)``."""
    parser = build_parser()
    args, train_flags = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    for flag in train_flags:
        name = flag.split("=", 1)[0]
        if name in RESERVED_FLAGS:
            parser.error(f"{name} is set per seed by report.py: use {RESERVED_FLAGS[name]}.")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: a seed is repeated.")
    return args, train_flags


def default_output_root(config: str | os.PathLike) -> Path:
    """The config's ``output_dir`` (``outputs/<config name>`` if it has none); a config that is not a YAML mapping
    is a one-line :class:`ValueError` (:func:`hf_erc.training.run.read_yaml_config`)."""
    path = Path(config)
    output_dir = train_run.read_yaml_config(path).get("output_dir")
    return Path(output_dir) if output_dir else Path("outputs") / path.stem


def train_argv(config: str, seed: int, output_dir: Path, train_flags: Sequence[str]) -> list[str]:
    """The command line of ``scripts/train.py`` for one seed."""
    return ["--config", str(config), "--seed", str(seed), "--output_dir", str(output_dir), *train_flags]


# ---- Running the seeds ----------------------------------------------------------------------------


def _run_record(config: str, seed: int, train_flags: Sequence[str], launcher: str | None) -> dict[str, Any]:
    """What makes two runs of a seed the same run: the config file's contents, the seed, the flags and the launcher
    (which may set the number of processes, hence the batch size)."""
    contents = Path(config).read_bytes()
    return {
        "config_sha256": hashlib.sha256(contents).hexdigest(),
        "seed": seed,
        "train_flags": list(train_flags),
        "launcher": launcher,
    }


def finished_run(output_dir: Path, record: dict[str, Any]) -> bool:
    """Whether ``output_dir`` holds the results of a finished report run with this ``record``."""
    try:
        saved = json.loads((output_dir / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (output_dir / RESULTS_FILE).is_file() and {key: saved.get(key) for key in record} == record


def _reset_accelerate_state() -> None:
    """Forget the previous run's accelerate state (a process-wide singleton), so that every run sets it up from its
    own arguments as a fresh process would."""
    try:
        from accelerate.state import AcceleratorState
    except ImportError:
        return
    AcceleratorState._reset_state(reset_partial_state=True)


def launch_command(launcher: str, train_script: str | os.PathLike | None = None) -> list[str]:
    """``LAUNCHER train.py`` as a list (``python`` is this interpreter)."""
    command = shlex.split(launcher)
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable
    return command + [str(train_script or TRAIN_SCRIPT)]


def run_seed(
    config: str,
    seed: int,
    output_dir: Path,
    train_flags: Sequence[str],
    retrain: bool = False,
    launcher: str | None = None,
    train_script: str | os.PathLike | None = None,
) -> bool:
    """Train (or reuse) one seed's run in ``output_dir``, in this process or with ``launcher`` (a command line
    that runs ``train_script``, default ``scripts/train.py``); return whether it was reused.

    Raises :class:`SeedRunError` if the run fails.
    """
    record = _run_record(config, seed, train_flags, launcher)
    if not retrain and finished_run(output_dir, record):
        return True
    # The Trainer adds to an existing all_results.json: start from none, so no key of an older run remains.
    for name in (RECORD_FILE, RESULTS_FILE):
        (output_dir / name).unlink(missing_ok=True)
    argv = train_argv(config, seed, output_dir, train_flags)
    if launcher is None:
        print(f"report.py: seed {seed}: python scripts/train.py {shlex.join(argv)}", flush=True)
        _reset_accelerate_state()
        try:
            status = train_run.main(argv)
        except Exception as error:  # noqa: BLE001 - any failure stops the report, naming the seed
            traceback.print_exc()
            raise SeedRunError(f"seed {seed} ({output_dir}) failed: {type(error).__name__}: {error}") from error
    else:
        command = launch_command(launcher, train_script) + argv
        print(f"report.py: seed {seed}: {shlex.join(command)}", flush=True)
        try:
            status = subprocess.run(command, check=False).returncode
        except OSError as error:
            raise SeedRunError(f"seed {seed} ({output_dir}) failed: {shlex.join(command)}: {error}") from error
    if status != 0:
        raise SeedRunError(f"seed {seed} ({output_dir}) failed: scripts/train.py exited with status {status}.")
    if not (output_dir / RESULTS_FILE).is_file():
        raise SeedRunError(f"seed {seed} ({output_dir}) failed: the run wrote no {RESULTS_FILE}.")
    (output_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return False


# ---- Summarizing ----------------------------------------------------------------------------


def read_results(output_dir: Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / RESULTS_FILE).read_text(encoding="utf-8"))


def label_names(output_dir: Path, results: dict[str, Any]) -> list[str]:
    """The classes in the model's label order (``config.json``), else in the order of the results' keys."""
    try:
        id2label = json.loads((Path(output_dir) / "config.json").read_text(encoding="utf-8"))["id2label"]
        return [id2label[key] for key in sorted(id2label, key=int)]
    except (OSError, ValueError, KeyError):
        names = []
        for _, prefix in SPLITS:
            names += [key[len(f"{prefix}_f1_"):] for key in results if key.startswith(f"{prefix}_f1_")]
        return list(dict.fromkeys(names))


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; ``None`` for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def summarize(
    results_per_seed: Sequence[dict[str, Any]], classes: Sequence[str] = ()
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{metric: {split: {"mean", "std", "values"}}}`` in percent, for the metrics every seed reports.

    Metrics are ``weighted_f1``, ``accuracy``, ``macro_f1`` and ``f1_<class>`` for ``classes``; splits are
    ``validation`` and ``test``; ``values`` are in seed order.
    """
    keys = [key for _, key in METRICS] + [f"f1_{name}" for name in classes]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for key in keys:
        for split, prefix in SPLITS:
            values = [results.get(f"{prefix}_{key}") for results in results_per_seed]
            if not values or any(value is None for value in values):
                continue
            values = [100 * float(value) for value in values]
            mean, std = mean_std(values)
            summary.setdefault(key, {})[split] = {"mean": mean, "std": std, "values": values}
    return summary


def format_cell(entry: dict[str, Any] | None) -> str:
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


# ---- Entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, train_script: str | os.PathLike | None = None) -> int:
    """Run or reuse every seed, then print (and write) the mean ± std table; return the exit status.

    ``train_script``: what ``--launcher`` runs (default: ``scripts/train.py`` of this checkout).
    """
    args, train_flags = parse_report_arguments(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print(
            "report.py: error: do not start report.py with `accelerate launch`; start it with python and pass "
            '--launcher "accelerate launch --multi_gpu --num_processes N" to run each seed on several processes.',
            file=sys.stderr,
        )
        return 2
    if not Path(args.config).is_file():
        print(f"report.py: error: Config file {args.config} does not exist.", file=sys.stderr)
        return 2
    if args.launcher is not None and train_script is None and not TRAIN_SCRIPT.is_file():
        print(f"report.py: error: --launcher runs {TRAIN_SCRIPT}, which does not exist.", file=sys.stderr)
        return 2
    try:
        root = Path(args.output_root) if args.output_root is not None else default_output_root(args.config)
    except (OSError, ValueError) as error:
        print(f"report.py: error: {error}", file=sys.stderr)
        return 2
    folders = [root / f"seed-{seed}" for seed in args.seeds]
    reused = []
    for seed, folder in zip(args.seeds, folders):
        try:
            if run_seed(args.config, seed, folder, train_flags, args.retrain, args.launcher, train_script):
                reused.append(seed)
        except SeedRunError as error:
            print(f"report.py: error: {error}", file=sys.stderr)
            return 1
    if reused:
        print(f"report.py: reused the finished runs of seed(s) {', '.join(map(str, reused))} (--retrain to redo).")
    results = [read_results(folder) for folder in folders]
    classes = label_names(folders[0], results[0]) if args.per_class else []
    summary = summarize(results, classes)
    table = format_summary_table(summary, classes)
    seeds_line = format_seeds_line(args.seeds, summary)
    print(f"\nMean ± std over {len(args.seeds)} seed(s) of {args.config}, in {root} (%):\n{table}\n\n{seeds_line}\n")
    if args.markdown:
        _write(args.markdown, f"{table}\n\n{seeds_line}\n")
    if args.json:
        _write(args.json, json.dumps(summary, indent=2) + "\n")
    return 0


def _write(path: str, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
