"""The ``hf-erc`` command.

Each sub-command lives beside the code it drives and registers itself here through a
``register(subparsers)`` function, so this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .locking import OutputFolderInUseError

# Modules that define a ``register(subparsers)`` function adding one sub-command.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "hf_erc.data.prepare",
    "hf_erc.demo",
    "hf_erc.features.extract",
    "hf_erc.features.finetune",
    "hf_erc.inputs",
    "hf_erc.predict",
    "hf_erc.quickstart",
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
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (FileNotFoundError, ValueError, OutputFolderInUseError) as error:
        # Data errors carry the file/row and the fix in their message, a busy output folder its run: no traceback.
        print(f"hf-erc {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
