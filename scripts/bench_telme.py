"""Benchmark TelME's training stages and inference, with random weights and random inputs (no download).

For each size (``tiny``: the test configuration; ``real``: the reference sizes, roberta-large, data2vec-audio-base
and TimeSformer-base built from their configurations) and device, it measures:

- per stage, training utterances/s (forward, backward, AdamW step, batch 4 as the reference) and peak memory:
  ``teacher`` (CE), ``audio``/``video`` students (CE + DIST + similarity KD against cached teacher outputs),
  ``fusion-cached`` (the ASF on cached embeddings, what ``--stage fusion`` trains) and ``fusion-uncached`` (the
  reference's loop: the frozen teacher and students re-run on every batch);
- ``inference``: latency per utterance of the whole model on raw text, audio and video (batch 1);
- the fusion stage's epoch time on MELD's 9,989 training utterances, with and without cached embeddings, and the
  one-time cost of building the cache (the three encoders over all 13,708 utterances, batch 4, no gradients).

Inputs: text of ``--real_text_tokens`` tokens (256; tiny 24), 3 s of 16 kHz audio (MELD's mean clip is about 3 s;
tiny 0.2 s), 8 frames of 224x224 (tiny: 2 of 32x32). CUDA runs with bf16 autocast (the students' and fusion's fp16 AMP in the
reference); the teacher stays fp32 as in the reference. Peak memory is CUDA's max allocated, or on CPU the peak
resident set size sampled during the case (above the process's size before it). On a CPU the real-size training
stages of the teacher and students take minutes per step; pass them explicitly with ``--stages`` to run them.

    python scripts/bench_telme.py [--sizes tiny,real] [--devices cpu,cuda] [--stages ...] [--steps 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from contextlib import nullcontext

import torch

from hf_erc.models import TelMEConfig, TelMEForEmotionRecognition
from hf_erc.training.losses import dist_kd_loss, similarity_kd_loss

MELD_TRAIN_UTTERANCES = 9989
MELD_ALL_UTTERANCES = 13708
BATCH_SIZE = 4
ALL_STAGES = ("teacher", "audio", "video", "fusion-cached", "fusion-uncached", "inference")
# Real-size stages that fit a few minutes on a 2-core CPU.
CPU_REAL_STAGES = ("fusion-cached", "fusion-uncached", "inference")

TINY = {
    "text_config": {
        "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 37, "max_position_embeddings": 64, "type_vocab_size": 1, "pad_token_id": 1,
    },
    "audio_config": {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
        "conv_dim": [16, 16], "conv_kernel": [10, 3], "conv_stride": [5, 2], "num_feat_extract_layers": 2,
        "conv_pos_kernel_size": 3, "num_conv_pos_embeddings": 3, "num_conv_pos_embedding_groups": 2,
    },
    "video_config": {
        "image_size": 32, "patch_size": 16, "num_frames": 2, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 37,
    },
    "projection_size": 32, "fusion_hidden_size": 32, "fusion_num_heads": 2, "text_max_length": 48,
}  # fmt: skip


class PeakMemory:
    """Peak memory of a block: CUDA's max allocated, or the sampled peak RSS on CPU (above the start)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            time.sleep(0.005)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._start = self._max = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, self._rss()) - self._start


def make_inputs(config, batch_size, text_tokens, audio_seconds, device, generator):
    vocab = config.text_config.vocab_size
    frame = config.video_frame_size
    return {
        "input_ids": torch.randint(
            3, vocab - config.num_speaker_tokens, (batch_size, text_tokens), generator=generator
        ).to(device),
        "attention_mask": torch.ones(batch_size, text_tokens, dtype=torch.long, device=device),
        "input_values": torch.randn(batch_size, int(audio_seconds * 16000), generator=generator).to(device),
        "audio_attention_mask": torch.ones(batch_size, int(audio_seconds * 16000), dtype=torch.long, device=device),
        "pixel_values": torch.randn(batch_size, config.video_num_frames, 3, frame, frame, generator=generator).to(
            device
        ),
        "labels": torch.randint(0, config.num_labels, (batch_size,), generator=generator).to(device),
    }


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps, device):
    """Seconds per call of ``step`` (one warm-up call, then the mean of ``steps``)."""
    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def bench_stage(stage, model, config, device, steps, text_tokens, audio_seconds, generator):
    """``(utterances/s or seconds per utterance, peak bytes)`` of one stage."""
    low_precision = device.type == "cuda" and stage != "teacher"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if low_precision else nullcontext()
    batch_size = 1 if stage == "inference" else BATCH_SIZE
    inputs = make_inputs(config, batch_size, text_tokens, audio_seconds, device, generator)
    projection = config.projection_size
    teacher_logits = torch.randn(batch_size, config.num_labels, generator=generator).to(device)
    teacher_embeddings = torch.randn(batch_size, projection, generator=generator).to(device)

    if stage == "inference":
        model.eval()

        def step():
            with torch.inference_mode(), autocast:
                model(**{k: v for k, v in inputs.items() if k != "labels"})

        with PeakMemory(device) as memory:
            seconds = time_steps(step, steps, device)
        return seconds, memory.peak

    if stage in ("teacher", "audio", "video"):
        trained = {"teacher": model.text_teacher, "audio": model.audio_student, "video": model.video_student}[stage]
        trained.train().requires_grad_(True)
        stage_inputs = {
            "teacher": {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]},
            "audio": {"input_values": inputs["input_values"], "attention_mask": inputs["audio_attention_mask"]},
            "video": {"pixel_values": inputs["pixel_values"]},
        }[stage]

        def loss_fn():
            outputs = trained(**stage_inputs, labels=inputs["labels"])
            if stage == "teacher":
                return outputs.loss
            return (
                outputs.loss
                + dist_kd_loss(outputs.logits.float(), teacher_logits, temperature=4.0)
                + similarity_kd_loss(outputs.utterance_embeddings.float(), teacher_embeddings)
            )
    else:
        model.freeze_unimodal_models()
        model.train()
        trained = model.fusion.requires_grad_(True)
        if stage == "fusion-cached":
            # What building the cache costs once: the three frozen encoders over a batch, without gradients.
            def embed():
                with torch.no_grad(), autocast:
                    return model.compute_utterance_embeddings(
                        inputs["input_ids"], inputs["attention_mask"], None, inputs["input_values"],
                        inputs["audio_attention_mask"], inputs["pixel_values"],
                    )  # fmt: skip

            cache_seconds_per_utterance = time_steps(embed, 1, device) / batch_size
            cached = embed()
            fusion_inputs = {f"{m}_embeddings": value for m, value in cached.items()}
        else:
            fusion_inputs = {k: v for k, v in inputs.items() if k != "labels"}

        def loss_fn():
            return model(**fusion_inputs, labels=inputs["labels"]).loss

    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=1e-5)

    def step():
        with autocast:
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with PeakMemory(device) as memory:
        seconds = time_steps(step, steps, device)
    trained.requires_grad_(False)
    if stage == "fusion-cached":
        return (batch_size / seconds, cache_seconds_per_utterance), memory.peak
    return batch_size / seconds, memory.peak


def build(size, device):
    torch.manual_seed(0)
    config = TelMEConfig.for_dataset("meld", **(TINY if size == "tiny" else {}))
    return TelMEForEmotionRecognition(config).to(device), config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,real")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--stages", default=None, help=f"Comma-separated subset of {','.join(ALL_STAGES)}.")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--real_text_tokens", type=int, default=256)
    args = parser.parse_args(argv)

    rows = []
    for device_name in args.devices.split(","):
        device = torch.device(device_name)
        for size in args.sizes.split(","):
            if args.stages is not None:
                stages = args.stages.split(",")
            else:
                stages = CPU_REAL_STAGES if (size == "real" and device.type == "cpu") else ALL_STAGES
            build_start = time.perf_counter()
            model, config = build(size, device)
            build_seconds = time.perf_counter() - build_start
            parameters = sum(p.numel() for p in model.parameters())
            print(
                f"{size} on {device_name}: {parameters / 1e6:.1f}M parameters, built in {build_seconds:.1f} s",
                flush=True,
            )
            text_tokens = args.real_text_tokens if size == "real" else 24
            # The tiny audio encoder downsamples 10x (data2vec: 320x): 0.2 s gives it 320 frames.
            audio_seconds = 3.0 if size == "real" else 0.2
            generator = torch.Generator().manual_seed(0)
            results = {}
            for stage in stages:
                value, peak = bench_stage(
                    stage, model, config, device, args.steps, text_tokens, audio_seconds, generator
                )
                if stage == "fusion-cached":
                    value, results["cache"] = value
                results[stage] = value
                if stage == "inference":
                    rows.append((size, device_name, stage, f"{1000 * value:.1f} ms/utt", peak))
                else:
                    rows.append((size, device_name, stage, f"{value:.2f} utt/s", peak))
                print(f"  {stage}: {rows[-1][3]}, peak {peak / 2**20:.0f} MiB", flush=True)
            if "cache" in results:
                one_time = MELD_ALL_UTTERANCES * results["cache"]
                rows.append((size, device_name, "embedding cache, all MELD splits (once)", f"{one_time:.1f} s", None))
            for kind in ("fusion-cached", "fusion-uncached"):
                if kind in results:
                    epoch = MELD_TRAIN_UTTERANCES / results[kind]
                    rows.append((size, device_name, f"{kind}: one MELD epoch", f"{epoch:.1f} s", None))
            del model

    print("\n| size | device | stage | training throughput / latency | peak memory |")
    print("|---|---|---|---:|---:|")
    for size, device_name, stage, value, peak in rows:
        memory = "-" if peak is None else f"{peak / 2**20:.0f} MiB"
        print(f"| {size} | {device_name} | {stage} | {value} | {memory} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
