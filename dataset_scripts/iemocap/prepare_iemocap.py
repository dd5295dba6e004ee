#!/usr/bin/env python
"""Turn the official IEMOCAP release into a Parquet dataset repository, optionally pushed (privately) to the Hub.

    python dataset_scripts/iemocap/prepare_iemocap.py IEMOCAP_full_release data/iemocap \\
        [--keep-unlabeled] [--validation-split reference] [--push-to-hub user/iemocap]

RAW_DIR is the extracted ``IEMOCAP_full_release`` folder (``Session1`` .. ``Session5``, see
``hf_erc.data.iemocap`` for the files read). The output folder holds
``data/{train,validation,test}-00000-of-00001.parquet`` and a ``README.md`` dataset card; read it
back with ``datasets.load_dataset("data/iemocap")``.

License: the USC release agreement does not allow redistributing IEMOCAP. ``--push-to-hub``
therefore creates a **private** repository; ``--public`` is only for holders of written
permission from USC.

This is ``hf-erc prepare iemocap --raw-dir RAW_DIR --output OUTPUT`` with positional arguments and
a private push by default.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hf_erc.cli import main as hf_erc_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw_dir", help="The extracted IEMOCAP_full_release folder (holds Session1..Session5).")
    parser.add_argument("output", help="Folder to write the Parquet dataset repository to.")
    parser.add_argument(
        "--keep-unlabeled",
        action="store_true",
        help="Keep turns labelled outside the 6 classes (xxx, sur, fea, dis, oth) as context with emotion -1.",
    )
    # Left unset unless given, so that they can be refused with --validation-split reference.
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=None,
        help="Share of the session 1-4 dialogues held out for validation (default: 0.1; random split only).",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="Seed of the validation draw (default: 42; random split only)."
    )
    parser.add_argument(
        "--validation-split",
        choices=("random", "reference"),
        default="random",
        help="'random' (default): a seeded --validation-fraction of the session 1-4 dialogues; 'reference': the "
        "fixed 12 validation dialogues of TelME's and MAGTKD's released code.",
    )
    parser.add_argument(
        "--no-check-media", action="store_true", help="Only check that wav/avi files exist (much faster)."
    )
    parser.add_argument("--cache-dir", default=None, help="Cache folder of `datasets` (default: its own).")
    parser.add_argument(
        "--push-to-hub", metavar="REPO", default=None, help="Dataset repository to upload to (created private)."
    )
    parser.add_argument(
        "--public",
        action="store_true",
        help="Make the Hub repository public. Only with written permission from USC: the IEMOCAP license "
        "forbids redistribution.",
    )
    args = parser.parse_args(argv)

    command = ["prepare", "iemocap", "--raw-dir", args.raw_dir, "--output", args.output]
    if args.validation_fraction is not None:
        command += ["--validation-fraction", str(args.validation_fraction)]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    command += ["--validation-split", args.validation_split]
    if args.keep_unlabeled:
        command.append("--keep-unlabeled")
    if args.no_check_media:
        command.append("--no-check-media")
    if args.cache_dir:
        command += ["--cache-dir", args.cache_dir]
    if args.push_to_hub:
        command += ["--push-to-hub", args.push_to_hub]
        if args.public:
            command.append("--public")
            print(
                f"Pushing IEMOCAP to a PUBLIC repository {args.push_to_hub}: make sure USC allowed it in writing.",
                file=sys.stderr,
            )
        else:
            command.append("--private")
            print(
                f"Pushing to {args.push_to_hub} as a private repository (IEMOCAP may not be redistributed).",
                file=sys.stderr,
            )
    return hf_erc_main(command)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
