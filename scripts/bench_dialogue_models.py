"""Shared benchmark of dialogue-level models (SDT, CMATH, MAGTKD's fusion): training steps/s and
utterances/s, peak memory, inference dialogues/s.

Random inputs shaped like the datasets (dialogue lengths drawn from the real MELD CSVs when
found, else from a fitted range; IEMOCAP-like lengths of 20–110 turns). Each case runs in its
own process so that peak memory is that case's alone. CPU always; CUDA (bf16 autocast, SDPA)
when a GPU is present. The per-model scripts (``bench_sdt.py``, ``bench_cmath.py``, ...) name
the model and its cases and call :func:`main`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

def meld_dialogue_lengths() -> list[int]:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        path = base.parent / "shared" / "data" / "meld" / "train_sent_emo.csv"
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                return list(Counter(row["Dialogue_ID"] for row in csv.DictReader(handle)).values())
    return list(range(1, 25)) * 40


def _batch(config, lengths, generator, device):
    import torch

    batch_size, turns = len(lengths), max(lengths)
    attention_mask = torch.zeros(batch_size, turns, dtype=torch.long)
    for index, length in enumerate(lengths):
        attention_mask[index, :length] = 1
    inputs = {
        "attention_mask": attention_mask,
        "speaker_ids": torch.randint(0, config.num_speakers, (batch_size, turns), generator=generator),
        "modality_mask": attention_mask.bool().unsqueeze(-1).expand(batch_size, turns, 3).clone(),
        "labels": torch.randint(0, config.num_labels, (batch_size, turns), generator=generator).masked_fill(attention_mask == 0, -100),
    }
    for modality in config.modalities:
        inputs[f"{modality}_features"] = torch.randn(batch_size, turns, config.feature_dim(modality), generator=generator)
    return {key: value.to(device) for key, value in inputs.items()}


def run_case(config_class, model_class, case: tuple, name: str, device_name: str, steps: int) -> dict:
    import numpy as np
    import torch

    preset, modalities, overrides, batch_size = case
    config = config_class.for_dataset(preset, modalities=modalities, **overrides)
    device = torch.device(device_name)
    model = model_class(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-5)
    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    pool = meld_dialogue_lengths() if preset == "meld" else list(range(20, 111))
    batches = [_batch(config, rng.choice(pool, batch_size).tolist(), generator, device) for _ in range(steps + 2)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    for batch in batches[:2]:  # warm-up
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    synchronize()
    start, utterances = time.perf_counter(), 0
    for batch in batches[2:]:
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        utterances += int(batch["attention_mask"].sum())
    synchronize()
    train_seconds = time.perf_counter() - start

    model.eval()
    start, dialogues = time.perf_counter(), 0
    with torch.inference_mode(), autocast:
        for batch in batches[2:]:
            inputs = {key: value for key, value in batch.items() if key != "labels"}
            model(**inputs)
            dialogues += batch["attention_mask"].shape[0]
    synchronize()
    infer_seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {
        "case": name,
        "device": device_name,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": batch_size,
        "train_steps_per_s": steps / train_seconds,
        "train_utt_per_s": utterances / train_seconds,
        "infer_dialogues_per_s": dialogues / infer_seconds,
        "peak_mem_MiB": peak,
        "peak_kind": "GPU allocated" if device.type == "cuda" else "process RSS",
    }


def main(model_name: str, cases: dict[str, tuple], script: str, description: str, argv=None) -> int:
    """Run every case of ``cases`` (name -> (preset, modalities, config overrides, batch size)) of ``model_name``
    (``"SDT"`` -> ``hf_erc.models.SDTConfig``/``SDTForEmotionRecognition``) and print the table."""
    import hf_erc.models

    config_class = getattr(hf_erc.models, f"{model_name}Config")
    model_class = getattr(hf_erc.models, f"{model_name}ForEmotionRecognition")
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cases", default=",".join(cases))
    parser.add_argument("--devices", default=None, help="Default: cpu, plus cuda when available.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        case = cases[args.worker[0]]
        print(json.dumps(run_case(config_class, model_class, case, args.worker[0], args.worker[1], args.steps)))
        return 0
    import torch

    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for case in args.cases.split(","):
            command = [sys.executable, script, "--steps", str(args.steps), "--worker", case, device]
            if args.threads:
                command += ["--threads", str(args.threads)]
            completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if completed.returncode != 0:
                print(f"{case} on {device} failed:\n{completed.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    print(f"{model_name} benchmark")
    header = f"{'case':<16}{'device':<8}{'params(M)':>10}{'batch':>6}{'train step/s':>13}{'train utt/s':>12}{'infer dlg/s':>12}{'peak MiB':>10}  peak of"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['case']:<16}{row['device']:<8}{row['params_M']:>10.1f}{row['batch']:>6}{row['train_steps_per_s']:>13.2f}"
            f"{row['train_utt_per_s']:>12.0f}{row['infer_dialogues_per_s']:>12.1f}{row['peak_mem_MiB']:>10.0f}  {row['peak_kind']}"
        )
    return 0

