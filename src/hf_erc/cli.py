"""The ``hf-erc`` command.

Each sub-command is one module of :mod:`hf_erc.commands` with a ``register(subparsers)`` function that adds
it; this file only lists them, hands the training flags to the commands that take them, and turns data errors into
one-line messages.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .locking import OutputFolderInUseError

# Modules that define a ``register(subparsers)`` function adding one sub-command.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "hf_erc.commands.prepare",
    "hf_erc.commands.make_planted",
    "hf_erc.commands.extract_features",
    "hf_erc.commands.fine_tune_text",
    "hf_erc.commands.train",
    "hf_erc.commands.report",
    "hf_erc.commands.show_inputs",
    "hf_erc.commands.predict",
    "hf_erc.commands.demo",
    "hf_erc.commands.quickstart",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-erc",
        description="Multimodal emotion recognition in conversation: data preparation, features, training, prediction.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # `train` and `report` take any training flag (a field of the argument dataclasses): their parsers declare
        # `train_flags`, and the training parser checks the flags. Other commands know all their options.
        if not hasattr(args, "train_flags"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.train_flags = unknown
    try:
        result = args.func(args)
    except (FileNotFoundError, ValueError, OutputFolderInUseError) as error:
        # Data errors carry the file/row and the fix in their message, a busy output folder its run: no traceback.
        print(f"hf-erc {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
