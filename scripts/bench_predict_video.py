"""Benchmark ``hf-erc predict --video`` on long recordings: wall time, cues per second and peak memory by length.

For each length (default 10 and 60 minutes) it writes, with PyAV (FFmpeg's libraries; no ffmpeg binary needed), a
640x360 H.264 video with AAC audio and its ``.srt``: a cue every 3.6 s (1,000 cues an hour), 2 to 3 s long, three
speakers taking turns. To keep writing an hour of video to about two minutes on a 2-core machine the video has 10
frames per second and is encoded with x264's ``ultrafast`` preset (default keyframe interval: one every 25 s), and
the audio is 16 kHz mono; decoding a cue still seeks and decodes as for any H.264/AAC mp4. Videos already in
``--work-dir`` are reused.

The checkpoint is a small random TelME with its processor, built here (no download): tiny text, audio and video
encoders, but real TelME's video input (8 frames of 224x224 per cue, frames resized from the recording's 640x360)
and up to 25 s of 16 kHz audio per cue, so decoding and preprocessing cost what they cost a real checkpoint while
the encoders cost little. Each video is labelled by ``hf-erc predict --video V --model CKPT --json --device cpu`` in
a child process; the table gives its wall time, cues per second and peak resident memory (the child's
``ru_maxrss``, from ``wait4``). Peak memory that does not grow with the length is what the chunked media reading of
:mod:`hf_erc.inference.pipelines` is for.

    python scripts/bench_predict_video.py [--minutes 10 60] [--work-dir outputs/bench-predict-video] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from transformers import AutoTokenizer

from hf_erc.features.encoders import resolve_encoder_path
from hf_erc.models import TelMEConfig, TelMEForEmotionRecognition, TelMEProcessor

WIDTH, HEIGHT, FPS = 640, 360, 10
SAMPLING_RATE = 16_000
AAC_FRAME = 1024
CUE_EVERY = 3.6  # seconds: 1,000 cues an hour
SPEAKERS = ("Monica", "Chandler", "Phoebe")
LINES = (
    "I can't believe you did that.",
    "Oh my God, this is the best day ever!",
    "Could this BE any more awkward?",
    "I'm fine. Totally fine.",
    "Wait, what are you talking about?",
    "That is so not fair.",
    "Okay, okay, let's just calm down.",
    "I miss her so much.",
)
TEXT_MAX_LENGTH = 128
# Tiny encoders (two layers of width 32), real TelME's media inputs and audio frame rate.
TINY_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def cue_times(minutes: float) -> list[tuple[float, float]]:
    """``(start, end)`` of every cue of a ``minutes``-long recording: one each ``CUE_EVERY`` s, 2 to 3 s long."""
    count = int(minutes * 60 / CUE_EVERY)
    return [(index * CUE_EVERY + 0.3, index * CUE_EVERY + 0.3 + 2.0 + (index % 3) * 0.5) for index in range(count)]


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    whole, millis = divmod(millis, 1000)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d},{millis:03d}"


def write_subtitles(path: Path, minutes: float) -> int:
    """The recording's SubRip file (``NAME: line`` cues); how many cues it has."""
    blocks = [
        f"{index + 1}\n{_clock(start)} --> {_clock(end)}\n{SPEAKERS[index % 3]}: {LINES[index % len(LINES)]}\n"
        for index, (start, end) in enumerate(cue_times(minutes))
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return len(blocks)


def write_recording(path: Path, minutes: float) -> None:
    """A ``minutes``-long 640x360 H.264 + AAC mp4: each second's frames (a grey level per cue, a moving square) and
    audio (a tone per cue) written together, so the streams interleave as in a real file."""
    seconds = int(round(minutes * 60))
    partial = path.with_name(path.name + ".partial")
    with av.open(str(partial), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = Fraction(1, FPS)
        video.options = {"preset": "ultrafast", "crf": "28"}
        audio = container.add_stream("aac", rate=SAMPLING_RATE, layout="mono")
        planes = np.full((HEIGHT * 3 // 2, WIDTH), 128, dtype=np.uint8)  # Y plane, then U and V
        samples = 0  # audio samples written
        for second in range(seconds):
            cue = int(second / CUE_EVERY)
            for index in range(second * FPS, (second + 1) * FPS):
                planes[:HEIGHT] = 40 + (cue * 37) % 180
                left = (index * 6) % (WIDTH - 64)
                planes[140:204, left : left + 64] = 235
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                frame.pts = index
                container.mux(video.encode(frame))
            # The AAC encoder takes frames of 1,024 samples (a shorter one only last).
            end = (second + 1) * SAMPLING_RATE
            while samples + AAC_FRAME <= end or (second == seconds - 1 and samples < end):
                times = (samples + np.arange(min(AAC_FRAME, end - samples))) / SAMPLING_RATE
                frequency = 220 + 40 * ((times // CUE_EVERY) % 7)
                tone = (0.3 * np.sin(2 * np.pi * frequency * times)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                frame.sample_rate, frame.time_base, frame.pts = SAMPLING_RATE, Fraction(1, SAMPLING_RATE), samples
                container.mux(audio.encode(frame))
                samples += tone.shape[1]
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    partial.replace(path)


def write_checkpoint(path: Path) -> Path:
    """A random TelME (tiny encoders; MiniLM's tokenizer, bundled) with its processor, as training saves one."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path("minilm"))
    config = TelMEConfig.for_dataset(
        "meld",
        text_config={"model_type": "bert", "vocab_size": len(tokenizer), "max_position_embeddings": 130, **TINY_SIZES},
        audio_config={  # data2vec-audio's front end (50 frames a second), narrow
            **TINY_SIZES,
            "conv_dim": [16] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
            "num_feat_extract_layers": 7, "conv_pos_kernel_size": 3, "num_conv_pos_embeddings": 3,
            "num_conv_pos_embedding_groups": 2,
        },
        video_config={"image_size": 224, "patch_size": 16, "num_frames": 8, **TINY_SIZES},
        projection_size=32,
        fusion_hidden_size=32,
        fusion_num_heads=2,
        text_max_length=TEXT_MAX_LENGTH,
    )  # fmt: skip
    processor = TelMEProcessor.from_preset("meld", "default", tokenizer, config, max_length=TEXT_MAX_LENGTH)
    config.text_config.vocab_size = len(processor.tokenizer)  # with the speaker tokens the processor added
    torch.manual_seed(0)
    TelMEForEmotionRecognition(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return path


def run_predict(video: Path, checkpoint: Path, batch_size: int | None, log_dir: Path) -> tuple[float, float, int]:
    """``hf-erc predict --video`` in a child process: its wall time (s), peak RSS (MiB) and how many rows it gave."""
    output, errors = log_dir / f"{video.stem}.json", log_dir / f"{video.stem}.stderr"
    command = [sys.executable, "-m", "hf_erc.cli", "predict", "--video", str(video), "--model", str(checkpoint)]
    command += ["--json", "--device", "cpu"] + ([] if batch_size is None else ["--batch-size", str(batch_size)])
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    with open(output, "w") as stdout, open(errors, "w") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=environment)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"hf-erc predict failed on {video} (exit {child.returncode}):\n{errors.read_text()[-3000:]}")
    rows = json.loads(output.read_text(encoding="utf-8"))
    return wall, usage.ru_maxrss / 1024, len(rows)  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60], help="Video lengths (default 10 60).")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/bench-predict-video"))
    parser.add_argument("--batch-size", type=int, help="hf-erc predict --batch-size (cues at a time; default its own).")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = write_checkpoint(args.work_dir / "telme-tiny-224")
    results = []
    for minutes in args.minutes:
        video = args.work_dir / f"talk-{minutes:g}min.mp4"
        cues = write_subtitles(video.with_suffix(".srt"), minutes)
        if not video.is_file():
            started = time.perf_counter()
            write_recording(video, minutes)
            print(f"Wrote {video} ({time.perf_counter() - started:.0f} s).", file=sys.stderr)
        wall, peak, rows = run_predict(video, checkpoint, args.batch_size, args.work_dir)
        if rows != cues:
            raise SystemExit(f"{video}: {rows} rows for {cues} cues.")
        results.append((minutes, cues, wall, peak))
        print(f"{video.name}: {cues} cues in {wall:.1f} s, peak RSS {peak:.0f} MiB.", file=sys.stderr)
    print("| video | cues | wall time (s) | cues/s | peak RSS (MiB) |\n|---|---:|---:|---:|---:|")
    for minutes, cues, wall, peak in results:
        print(f"| {minutes:g} min, {WIDTH}x{HEIGHT}, {FPS} fps | {cues} | {wall:.1f} | {cues / wall:.1f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
