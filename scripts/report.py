"""Mean ± std of a config over several seeds: `python scripts/report.py --config configs/sdt-meld.yaml --seeds 42 1 2`
(any other flag goes to scripts/train.py; see hf_erc.training.report)."""
import sys

from hf_erc.training.report import main

if __name__ == "__main__":
    sys.exit(main())
