"""Train an hf_erc model from a YAML config: `python scripts/train.py --config configs/sdt-meld.yaml` (or
`accelerate launch scripts/train.py ...`); the same as `hf-erc train` (hf_erc.training.run.main)."""
import sys

from hf_erc.training.run import main

if __name__ == "__main__":
    sys.exit(main())
