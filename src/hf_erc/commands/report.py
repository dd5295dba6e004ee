"""``hf-erc report`` (and ``scripts/report.py``): train a config over several seeds and print mean ± std.

    hf-erc report --config configs/sdt-meld.yaml --seeds 42 1 2 [--output_root DIR] [--markdown FILE] [--json FILE]
        [--per-class] [--retrain] [--launcher LAUNCHER] [any hf-erc train flag ...]

Each seed S runs what ``hf-erc train --config CONFIG --seed S --output_dir ROOT/seed-S [flags]`` runs, in this process
or, with ``--launcher "accelerate launch --multi_gpu --num_processes 4"`` (``--launcher python`` for plain separate
processes), as its own process (:mod:`hf_erc.training.report`). Then it prints a Markdown table of weighted F1,
accuracy and macro F1 (``--per-class``: also each class's F1), validation and test, as ``mean ± std`` in percent (the
model kept is the best epoch on validation weighted F1; sample standard deviation, one seed shows ``x ± –``), and the
per-seed test weighted F1.

``ROOT`` defaults to the config's ``output_dir``. A seed whose folder holds a finished run of this command with the
same config file contents, flags and launcher is not trained again (``--retrain`` forces it). The report itself is not
to be started with ``accelerate launch``: a process group cannot be reliably torn down and set up again in one process
between seeds, so it refuses.

Evaluation only (``--do_train false --model_name_or_path CHECKPOINT``) is passed through like any train flag. Over
seeds it only makes sense where the seed changes something at evaluation time (it does not change the checkpoint's
weights, and evaluation runs in a fixed order without dropout): expect a std of 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..distributed import launched_world_size
from ..training.arguments import parse_command_line_overrides
from ..training.report import (
    PER_SEED_FIELDS,
    SeedRunError,
    default_output_root,
    format_seeds_line,
    format_summary_table,
    label_names,
    run_seeds,
    summarize,
)

DESCRIPTION = (
    "Train (or evaluate) a config over several seeds and print mean ± std of weighted F1, accuracy and macro F1 on "
    "validation and test (the best epoch is chosen on validation). Any other flag is a training flag (`hf-erc train`)."
)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The report's own options; every other flag goes to the training runs."""
    parser.add_argument("--config", required=True, help="YAML config of the training (`hf-erc train --config`).")
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
        help='Run each seed as `LAUNCHER -m hf_erc.commands.train ...` in its own process, e.g. "python" or '
        '"accelerate launch --multi_gpu --num_processes 4" (default: in this process).',
    )
    parser.add_argument("--retrain", action="store_true", help="Train every seed again, even if its run finished.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-erc report``; the CLI hands it the flags it does not know as ``train_flags``."""
    parser = subparsers.add_parser(
        "report",
        allow_abbrev=False,  # `--seed` must not silently mean `--seeds`
        help="Train a config over several seeds and print mean ± std of its metrics.",
        description=DESCRIPTION,
    )
    add_report_arguments(parser)
    parser.set_defaults(func=run_report, train_flags=[])


def run_report(args: argparse.Namespace, prog: str = "hf-erc report") -> int:
    """Run or reuse every seed, then print (and write) the mean ± std table; return the exit status: 2 for a problem
    of the arguments or the config, 1 when a seed's run fails. Messages start with ``prog: error:``."""
    try:
        overrides = parse_command_line_overrides(args.train_flags)
        reserved = sorted(set(overrides) & set(PER_SEED_FIELDS))
        if reserved:
            raise ValueError(f"--{reserved[0]} is set per seed by the report: use {PER_SEED_FIELDS[reserved[0]]}.")
        if len(set(args.seeds)) != len(args.seeds):
            raise ValueError(f"--seeds {' '.join(map(str, args.seeds))}: a seed is repeated.")
        if launched_world_size() > 1:
            raise ValueError(
                "do not start the report with `accelerate launch`; start it with python and pass --launcher "
                '"accelerate launch --multi_gpu --num_processes N" to run each seed on several processes.'
            )
        if not Path(args.config).is_file():
            raise FileNotFoundError(f"Config file {args.config} does not exist.")
        root = Path(args.output_root) if args.output_root is not None else default_output_root(args.config)
    except (OSError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        seeds = run_seeds(args.config, args.seeds, root, overrides, retrain=args.retrain, launcher=args.launcher)
    except SeedRunError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    reused = [seed.seed for seed in seeds if seed.reused]
    if reused:
        print(f"{prog}: reused the finished runs of seed(s) {', '.join(map(str, reused))} (--retrain to redo).")
    metrics = [seed.metrics for seed in seeds]
    classes = label_names(seeds[0].output_dir, metrics[0]) if args.per_class else []
    summary = summarize(metrics, classes)
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


# ---- scripts/report.py ----------------------------------------------------------------------------


def parse_report_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``scripts/report.py``'s command line: the report's options, and the other flags as ``train_flags``."""
    parser = argparse.ArgumentParser(prog="report.py", allow_abbrev=False, description=DESCRIPTION)
    add_report_arguments(parser)
    args, args.train_flags = parser.parse_known_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/report.py``: :func:`run_report` with messages as ``report.py: error:``."""
    return run_report(parse_report_arguments(argv), prog="report.py")
