"""``hf-erc train``: train and evaluate a model from a YAML config, as ``scripts/train.py`` does.

    hf-erc train --config configs/sdt-meld-text.yaml [--any_field value ...]
    accelerate launch [--multi_gpu --num_processes N] -m hf_erc.commands.train --config configs/sdt-meld.yaml

Every flag after ``train`` goes to :func:`hf_erc.training.run.main`: ``--config`` and the fields of the argument
dataclasses (``hf-erc train --help`` lists them). ``python -m hf_erc.commands.train`` runs the same, which is how a
launcher starts it (``hf-erc report --launcher``): a module of the installed package, wherever the checkout is.
"""

from __future__ import annotations

import argparse
import sys

from ..training.run import main as train_main


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-erc train``; the CLI hands it every flag as ``train_flags`` (``--help`` too)."""
    parser = subparsers.add_parser(
        "train",
        add_help=False,  # `hf-erc train --help` goes to the training parser, which lists every flag
        help="Train and evaluate a model from a YAML config (as scripts/train.py; any config field as a flag).",
    )
    parser.set_defaults(func=run_train, train_flags=[])


def run_train(args: argparse.Namespace) -> int:
    return train_main(args.train_flags)


if __name__ == "__main__":
    sys.exit(train_main())
