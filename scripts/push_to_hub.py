"""Publish a trained checkpoint: model card with the measured results, weights, config, code and the Inference
Endpoints handler (handler.py, requirements.txt).

    python scripts/push_to_hub.py outputs/sdt-meld-text user/sdt-meld-text [--private] [--dataset meld]
"""

from __future__ import annotations

import argparse
import sys

from hf_erc.hub import HubUploadError, push_checkpoint, write_model_card


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="Folder written by training (save_pretrained output).")
    parser.add_argument("repo_id", help="Hub repository, e.g. user/sdt-meld.")
    parser.add_argument("--dataset", default=None, choices=["meld", "iemocap"], help="Dataset the model was trained on (default: from config.json).")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--card-only", action="store_true", help="Only write README.md; do not upload.")
    args = parser.parse_args(argv)
    try:
        if args.card_only:
            print(f"Wrote {write_model_card(args.checkpoint, args.repo_id, dataset_name=args.dataset)}")
            return 0
        url = push_checkpoint(args.checkpoint, args.repo_id, private=args.private, dataset_name=args.dataset)
    except (HubUploadError, FileNotFoundError, ValueError) as error:  # the message names the folder and the fix
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Pushed {args.checkpoint} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
