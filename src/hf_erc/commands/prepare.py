"""``hf-erc prepare``: an official MELD or IEMOCAP release -> a Parquet dataset repository with its card."""

from __future__ import annotations

import argparse
import os
import sys

from ..data.export import PushError, push_parquet_repo, save_parquet_repo
from ..data.prepare import SUPPORTED_DATASETS, dataset_card, is_prepared_folder, load_erc_dataset
from ..data.summary import media_report, summarize


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-erc prepare``."""
    parser = subparsers.add_parser(
        "prepare",
        help="Turn a raw MELD/IEMOCAP release into a Parquet dataset repository with a dataset card.",
        description=(
            "Build the utterance-level dataset from a raw release, print a summary table, and write it as a "
            "Parquet dataset repository (data/*.parquet + README.md) that `datasets.load_dataset(OUTPUT)` reads."
        ),
    )
    parser.add_argument("dataset", choices=SUPPORTED_DATASETS, help="Which dataset the release is.")
    parser.add_argument("--raw-dir", required=True, help="Folder of the extracted official release.")
    parser.add_argument("--output", required=True, help="Folder to write the Parquet dataset repository to.")
    parser.add_argument(
        "--no-check-media",
        dest="check_media",
        action="store_false",
        help="Only check that media files exist instead of decoding them (much faster).",
    )
    # IEMOCAP options default to None so that build_iemocap's own defaults apply.
    parser.add_argument(
        "--keep-unlabeled",
        action="store_true",
        default=None,
        help="IEMOCAP: keep utterances outside the 6 classes as unlabeled context.",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=None,
        help="IEMOCAP: fraction of the session 1-4 dialogues held out for validation (default: 0.1).",
    )
    parser.add_argument("--seed", type=int, default=None, help="IEMOCAP: seed of the validation split (default: 42).")
    parser.add_argument(
        "--validation-split",
        choices=("random", "reference"),
        default=None,
        help="IEMOCAP: 'random' (default) holds out a seeded --validation-fraction of the session 1-4 dialogues; "
        "'reference' holds out the fixed 12 dialogues of TelME's and MAGTKD's released code.",
    )
    parser.add_argument("--cache-dir", default=None, help="Cache folder of `datasets` (default: its own).")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None, help="Also upload the folder to this Hub repo.")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private", action="store_true", default=None, help="Create the Hub repository as private (default for IEMOCAP)."
    )
    visibility.add_argument(
        "--public",
        dest="private",
        action="store_false",
        help="Create the Hub repository as public (default for MELD). IEMOCAP's license forbids public redistribution "
        "without USC's permission.",
    )
    parser.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    """Build, summarize, save (and push) one dataset; returns the exit code."""
    options = {"check_media": args.check_media, "cache_dir": args.cache_dir}
    iemocap_options = {
        name: getattr(args, name)
        for name in ("keep_unlabeled", "validation_fraction", "seed", "validation_split")
        if getattr(args, name) is not None
    }
    if iemocap_options and args.dataset != "iemocap":
        flags = ", ".join("--" + name.replace("_", "-") for name in iemocap_options)
        raise ValueError(f"{flags}: only for iemocap, not {args.dataset}.")
    random_only = [name for name in ("validation_fraction", "seed") if name in iemocap_options]
    if iemocap_options.get("validation_split") == "reference" and random_only:
        flags = ", ".join("--" + name.replace("_", "-") for name in random_only)
        raise ValueError(
            f"{flags}: only for --validation-split random; the reference split is a fixed list of 12 dialogues."
        )
    options.update(iemocap_options)
    if is_prepared_folder(args.raw_dir):
        raise ValueError(f"{args.raw_dir} is already a prepared dataset; pass the raw release as --raw-dir.")
    dataset_dict = load_erc_dataset(args.dataset, args.raw_dir, **options)
    table = summarize(dataset_dict)
    print(table)
    for line in media_report(dataset_dict):
        print(line)
    card_text, card_metadata = dataset_card(args.dataset, dataset_dict)
    save_parquet_repo(dataset_dict, args.output, card_text, **card_metadata)
    print(f"Wrote {args.output} (load it with datasets.load_dataset({os.fspath(args.output)!r})).")
    if args.push_to_hub:
        # IEMOCAP's release agreement does not allow public redistribution: private unless asked otherwise.
        private = args.private if args.private is not None else args.dataset == "iemocap"
        print(f"Pushing to {args.push_to_hub} as a {'private' if private else 'public'} dataset repository.")
        try:
            url = push_parquet_repo(args.output, args.push_to_hub, private=private)
        except PushError as error:
            print(f"hf-erc prepare: error: {error}", file=sys.stderr)
            return 1
        print(f"Pushed to {url}")
    return 0

