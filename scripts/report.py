"""Mean ± std of a config over several seeds: `python scripts/report.py --config configs/sdt-meld.yaml --seeds 42 1 2`
(any other flag is a training flag); the same as `hf-erc report` (hf_erc.commands.report)."""
import sys

from hf_erc.commands.report import main

if __name__ == "__main__":
    sys.exit(main())
