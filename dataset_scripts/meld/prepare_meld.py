#!/usr/bin/env python
"""Turn the official MELD release into a Parquet dataset repository, optionally pushed to the Hub.

    python dataset_scripts/meld/prepare_meld.py MELD.Raw data/meld [--push-to-hub user/meld] [--private]

MELD.Raw is the extracted MELD.Raw.tar.gz: the three ``*_sent_emo.csv`` files, plus the clip
folders ``train_splits/``, ``dev_splits_complete/`` and ``output_repeated_splits_test/`` for media
paths. The output folder holds ``data/{train,validation,test}-00000-of-00001.parquet`` and a
``README.md`` dataset card (text from ``hf_erc.data.meld.meld_dataset_card``); read it back with
``datasets.load_dataset("data/meld")`` or, once pushed, ``datasets.load_dataset("user/meld")``.

This is ``hf-erc prepare meld --raw-dir RAW_DIR --output OUTPUT`` with positional arguments.
"""

from __future__ import annotations

import argparse
import sys

from hf_erc.cli import main as hf_erc_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw_dir", help="Folder of the extracted MELD release (holds train/dev/test_sent_emo.csv).")
    parser.add_argument("output", help="Folder to write the Parquet dataset repository to.")
    parser.add_argument("--no-check-media", action="store_true", help="Only check that clips exist (much faster).")
    parser.add_argument("--cache-dir", default=None, help="Cache folder of `datasets` (default: its own).")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None, help="Dataset repository to upload to.")
    parser.add_argument("--private", action="store_true", help="Create the Hub repository as private.")
    args = parser.parse_args(argv)

    command = ["prepare", "meld", "--raw-dir", args.raw_dir, "--output", args.output]
    if args.no_check_media:
        command.append("--no-check-media")
    if args.cache_dir:
        command += ["--cache-dir", args.cache_dir]
    if args.push_to_hub:
        command += ["--push-to-hub", args.push_to_hub] + (["--private"] if args.private else [])
    return hf_erc_main(command)


if __name__ == "__main__":
    sys.exit(main())
