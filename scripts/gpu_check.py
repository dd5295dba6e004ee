"""Check the four models on a CUDA GPU before a long run: training and inference at the paper's size.

For SDT, TelME, MAGTKD (its fusion) and CMATH, each built at the paper's size from a configuration made here
(random weights, nothing downloaded), on random inputs shaped like MELD (``bench_dialogue_models.py`` and
``bench_telme.py`` make them):

- the same batch in eval mode in fp32 and in bf16 autocast: the class probabilities must agree within
  ``PROBABILITY_TOLERANCE`` (bf16 keeps 8 bits of mantissa; through 24 RoBERTa-large layers the probabilities of
  a random model still agree to a few hundredths);
- a few training steps (AdamW) in bf16 autocast: the loss must stay finite;
- a few inference steps in bf16 autocast;

with attention through ``scaled_dot_product_attention`` wherever the model and its encoders support it (the
attention each encoder uses is printed). The table gives training steps/s and utterances/s, inference
utterances/s and peak GPU memory. Under 5 minutes on one large GPU; exits 1 if a check fails. Without CUDA it
prints that it did nothing and exits 0.

    python scripts/gpu_check.py [--models sdt,telme,magtkd,cmath] [--steps 5]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

PROBABILITY_TOLERANCE = 0.05
MODELS = ("sdt", "telme", "magtkd", "cmath")


@dataclass
class Case:
    """A model to check and how to make its batches: ``make_batch(generator)`` -> inputs with ``labels``;
    ``utterances(batch)`` -> how many utterances the batch holds."""

    name: str
    build: Callable[[], torch.nn.Module]
    make_batch: Callable[[torch.Generator], dict]
    utterances: Callable[[dict], int]


def dialogue_case(name, config, model_class, batch_size, device) -> Case:
    """A dialogue-level model (SDT, CMATH, MAGTKD's fusion) on batches of MELD-length dialogues of features."""
    from bench_dialogue_models import _batch as dialogue_batch
    from bench_dialogue_models import meld_dialogue_lengths

    lengths = meld_dialogue_lengths()
    rng = np.random.default_rng(0)

    def make_batch(generator):
        return dialogue_batch(config, rng.choice(lengths, batch_size).tolist(), generator, device)

    return Case(name, lambda: model_class(config), make_batch, lambda batch: int(batch["attention_mask"].sum()))


def telme_case(name, config, batch_size, text_tokens, audio_seconds, device) -> Case:
    """The whole TelME (text teacher, audio and video students, fusion) on raw text, audio and frames."""
    from bench_telme import make_inputs

    from hf_erc.models import TelMEForEmotionRecognition

    def make_batch(generator):
        return make_inputs(config, batch_size, text_tokens, audio_seconds, device, generator)

    return Case(name, lambda: TelMEForEmotionRecognition(config), make_batch, lambda batch: batch["labels"].shape[0])


def paper_cases(device) -> dict[str, Case]:
    """The four models at the paper's MELD size: SDT and CMATH on 1024/300/342-d features, MAGTKD's fusion on
    768-d ones, TelME with RoBERTa-large, data2vec-audio-base and TimeSformer-base (256 tokens, 3 s, 8 frames)."""
    from hf_erc.models import (
        CMATHConfig,
        CMATHForEmotionRecognition,
        MAGTKDConfig,
        MAGTKDForEmotionRecognition,
        SDTConfig,
        SDTForEmotionRecognition,
        TelMEConfig,
    )

    return {
        "sdt": dialogue_case("SDT", SDTConfig.for_dataset("meld"), SDTForEmotionRecognition, 8, device),
        "telme": telme_case("TelME", TelMEConfig.for_dataset("meld"), 4, 256, 3.0, device),
        "magtkd": dialogue_case("MAGTKD", MAGTKDConfig.for_dataset("meld"), MAGTKDForEmotionRecognition, 16, device),
        "cmath": dialogue_case("CMATH", CMATHConfig.for_dataset("meld"), CMATHForEmotionRecognition, 8, device),
    }


def attention_implementations(model: torch.nn.Module) -> str:
    """``Class: implementation`` of the innermost transformers models of ``model`` (the model itself, or its
    encoders): the ones whose attention layers the implementation chooses."""
    used = {}
    for module in model.modules():
        inner = [m for m in module.modules() if m is not module and isinstance(m, PreTrainedModel)]
        if isinstance(module, PreTrainedModel) and not inner:
            used.setdefault(type(module).__name__, module.config._attn_implementation)
    return ", ".join(f"{name}: {implementation}" for name, implementation in used.items())


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def check(case: Case, device: torch.device, steps: int) -> dict:
    """fp32/bf16 agreement, ``steps`` training and inference steps in bf16 autocast; one row of the table."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with torch.device(device):
        model = case.build()
    model.to(device)
    bf16 = torch.autocast(device.type, dtype=torch.bfloat16)
    inputs = {key: value for key, value in case.make_batch(generator).items() if key != "labels"}

    model.eval()
    with torch.inference_mode():
        reference = model(**inputs).logits.float().softmax(-1)
        with bf16:
            low_precision = model(**inputs).logits.float().softmax(-1)
    difference = (low_precision - reference).abs().nan_to_num(nan=math.inf).max().item()

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batches = [case.make_batch(generator) for _ in range(steps + 1)]
    losses = []
    for index, batch in enumerate(batches):
        if index == 1:  # the first step warms up (kernels, allocator)
            _synchronize(device)
            start = time.perf_counter()
        with bf16:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    _synchronize(device)
    train_seconds = time.perf_counter() - start
    train_utterances = sum(case.utterances(batch) for batch in batches[1:])

    model.eval()
    _synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode(), bf16:
        for batch in batches[1:]:
            model(**{key: value for key, value in batch.items() if key != "labels"})
    _synchronize(device)
    infer_seconds = time.perf_counter() - start

    finite = all(math.isfinite(loss) for loss in losses)
    row = {
        "model": case.name,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "attention": attention_implementations(model),
        "train_steps_per_s": steps / train_seconds,
        "train_utt_per_s": train_utterances / train_seconds,
        "infer_utt_per_s": train_utterances / infer_seconds,
        "peak_MiB": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "max_probability_difference": difference,
        "losses": losses,
        "ok": finite and difference <= PROBABILITY_TOLERANCE,
    }
    del model, optimizer
    return row


def print_table(rows: list[dict]) -> None:
    print(f"\nbf16 autocast vs fp32: class probabilities within {PROBABILITY_TOLERANCE}; training loss finite.\n")
    print("| model | params (M) | train steps/s | train utt/s | infer utt/s | peak MiB | max Δp | check |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        peak = "-" if row["peak_MiB"] is None else f"{row['peak_MiB']:.0f}"
        print(
            f"| {row['model']} | {row['params_M']:.1f} | {row['train_steps_per_s']:.2f} | {row['train_utt_per_s']:.0f} "
            f"| {row['infer_utt_per_s']:.0f} | {peak} | {row['max_probability_difference']:.4f} "
            f"| {'ok' if row['ok'] else 'FAILED'} |"
        )
    for row in rows:
        print(f"{row['model']} attention: {row['attention']}; training losses: {', '.join(f'{v:.4f}' for v in row['losses'])}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"Comma-separated subset of {','.join(MODELS)}.")
    parser.add_argument("--steps", type=int, default=5, help="Training and inference steps per model (after one warm-up).")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine: nothing was checked.")
        return 0
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}: choose among {', '.join(MODELS)}.")
    device = torch.device("cuda")
    print(f"gpu_check on {torch.cuda.get_device_name(device)}, torch {torch.__version__}", flush=True)
    cases = paper_cases(device)
    rows = []
    for name in args.models.split(","):
        start = time.perf_counter()
        rows.append(check(cases[name], device, args.steps))
        print(f"{cases[name].name}: {time.perf_counter() - start:.0f} s, {'ok' if rows[-1]['ok'] else 'FAILED'}", flush=True)
    print_table(rows)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
