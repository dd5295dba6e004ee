"""Benchmark SDT: training steps/s and utterances/s, peak memory, inference dialogues/s.

The paper's configurations (hidden 1024, three modalities, MELD and IEMOCAP feature sizes) and
the text-only one the quickstart trains (384-d MiniLM features), on random inputs shaped like the
datasets; CPU, and CUDA with bf16 when present.

    python scripts/bench_sdt.py [--steps 10] [--cases meld,iemocap,meld-text-384] [--devices cpu,cuda]
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
    sys.exit(main("SDT", CASES, __file__, __doc__))
