"""Benchmark MAGTKD's fusion (the dialogue-level anchor gated transformer over 768-d utterance features):
training steps/s and utterances/s, peak memory, inference dialogues/s.

The paper's configurations (hidden 768, three modalities, MELD: 304 speakers, IEMOCAP: 2) and a text+audio one,
on random inputs shaped like the datasets; CPU, and CUDA with bf16 when present. The unimodal stages are the
TelME encoders (RoBERTa-large, data2vec-audio, TimeSformer): see ``scripts/bench_telme.py`` for their throughput.

    python scripts/bench_magtkd.py [--steps 10] [--cases meld,iemocap,meld-text-audio] [--devices cpu,cuda]
"""

import sys

from bench_dialogue_models import main

CASES = {
    # name: (preset, modalities, config overrides, batch size in dialogues)
    "meld": ("meld", ["text", "audio", "video"], {}, 16),
    "iemocap": ("iemocap", ["text", "audio", "video"], {}, 16),
    "meld-text-audio": ("meld", ["text", "audio"], {}, 16),
}

if __name__ == "__main__":
    sys.exit(main("MAGTKD", CASES, __file__, __doc__))
