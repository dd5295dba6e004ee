"""Benchmark CMATH: training steps/s and utterances/s, peak memory, inference dialogues/s.

The default configurations (three modalities at the MELD and IEMOCAP feature sizes; their sizes are
this implementation's choice, see configuration_cmath.py) and the text-only one of
configs/cmath-meld-text.yaml, on random inputs shaped like the datasets; CPU, and CUDA with bf16
when present.

    python scripts/bench_cmath.py [--steps 10] [--cases meld,iemocap,meld-text-384] [--devices cpu,cuda]
"""

import sys

from bench_dialogue_models import main

CASES = {
    # name: (preset, modalities, config overrides, batch size in dialogues)
    "meld": ("meld", ["text", "audio", "video"], {}, 8),
    "iemocap": ("iemocap", ["text", "audio", "video"], {}, 16),
    "meld-text-384": ("meld", ["text"], {"text_dim": 384, "hidden_size": 256, "num_attention_heads": 4}, 8),
}

if __name__ == "__main__":
    sys.exit(main("CMATH", CASES, __file__, __doc__))
