"""``hf-erc predict``: label a conversation (JSON), a video with its subtitles, or a folder of videos, and print,
save (``--json``, ``--csv``) or draw (``--plot``) the emotions of every utterance or cue.

Without subtitles, ``--asr MODEL`` (a Whisper checkpoint) makes the cues by speech recognition (speaker
``unknown``). It never replaces subtitles: it cannot go with ``--subtitles``, and in a folder of videos it is used
only for the videos that have no subtitle file beside them."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..inference.asr import load_recognizer
from ..inference.conversations import conversation_from_asr, read_conversation, subtitles_beside
from ..inference.pipelines import pipeline
from ..inference.timeline import plot_timeline

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")


def format_predictions(predictions: list[dict[str, Any]]) -> str:
    """A plain-text table of labelled utterances (times shown when the utterances have them)."""
    timed = any(item.get("start") is not None for item in predictions)
    header = f"{'start':>8} {'end':>8} " if timed else ""
    lines = [f"{header}{'speaker':<12} {'emotion':<10} {'p':>5}  text"]
    for item in predictions:
        text = item["text"] if len(item["text"]) <= 70 else item["text"][:67] + "..."
        times = f"{_seconds(item.get('start')):>8} {_seconds(item.get('end')):>8} " if timed else ""
        flag = "  [" + "; ".join(item["flags"]) + "]" if item.get("flags") else ""
        lines.append(f"{times}{item['speaker'][:12]:<12} {item['emotion']:<10} {item['score']:>5.2f}  {text}{flag}")
    return "\n".join(lines)


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_csv(rows: list[dict[str, Any]], path: str | Path, labels: list[str]) -> Path:
    """One line per utterance: its source (in folder mode), speaker, text, times, emotion, every label's
    probability, and its flags."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with_source = any("video" in row for row in rows)
    columns = (["video"] if with_source else []) + ["speaker", "text", "start", "end", "emotion", "score"]
    columns += [f"p_{label}" for label in labels] + ["flags"]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for row in rows:
            values = [row.get("video")] if with_source else []
            values += [row["speaker"], row["text"], row.get("start"), row.get("end"), row["emotion"], f"{row['score']:.6f}"]
            values += [f"{row['probabilities'][label]:.6f}" for label in labels]
            values.append("; ".join(row.get("flags", [])))
            writer.writerow(values)
    return path


def videos_in(folder: Path) -> list[Path]:
    """The videos of ``folder``, by name."""
    videos = sorted(path for path in folder.iterdir() if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file())
    if not videos:
        raise FileNotFoundError(f"{folder} holds no video ({', '.join(VIDEO_SUFFIXES)}).")
    return videos


def register(subparsers) -> None:
    """Add ``hf-erc predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="Label every utterance of a conversation (JSON) or every subtitle cue of a video.",
        description=__doc__,
    )
    parser.add_argument(
        "conversation",
        nargs="?",
        help='JSON file: {"utterances": [{"speaker": ..., "text": ..., "audio": path?, "video": path?}]}',
    )
    parser.add_argument("--model", required=True, help="Checkpoint folder or Hub repository.")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Let a checkpoint whose model type is not hf_erc's run the Python code it ships (only for code you "
        "trust). hf_erc's own checkpoints never need it.",
    )
    parser.add_argument("--video", help="A video file, or a folder of videos each with same-named .srt/.vtt subtitles.")
    parser.add_argument("--subtitles", help="The video's .srt or .vtt file (default: the one named like the video).")
    parser.add_argument(
        "--asr",
        metavar="MODEL",
        help="Make the cues by speech recognition with this transformers ASR model (Hub id or folder, e.g. "
        "openai/whisper-small) for a video without subtitles; speakers are 'unknown'. Not with --subtitles; with a "
        "folder, used only for the videos that have no subtitle file beside them.",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="Print JSON (one object per utterance) instead of a table.")
    parser.add_argument("--csv", metavar="FILE", help="Also write the rows as CSV.")
    parser.add_argument("--plot", metavar="FILE.png", help="Draw the emotion timeline (a folder: one PNG per video).")
    parser.add_argument(
        "--online",
        action="store_true",
        help="Label the utterances one at a time as they come, each from the turns up to it (printed as it is "
        "labelled; a causal checkpoint gives the labels of the whole conversation).",
    )
    parser.set_defaults(func=_run_predict)


def _run_predict(args) -> int:
    if (args.conversation is None) == (args.video is None):
        raise ValueError("Give a conversation JSON file or --video (with --subtitles), not both or neither.")
    asr = getattr(args, "asr", None)
    if asr and args.subtitles:
        raise ValueError("--asr makes the cues of a video without subtitles: give --subtitles or --asr, not both.")
    labeller = pipeline(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    labels = [labeller.id2label[index] for index in sorted(labeller.id2label)]
    if args.conversation is not None:
        if args.subtitles or args.plot or asr:
            raise ValueError("--subtitles, --asr and --plot go with --video.")
        if args.online:
            rows = _print_online(labeller.stream(read_conversation(args.conversation)), args.json)
        else:
            rows = labeller(args.conversation)
            _print_rows(rows, args.json)
        _write_csv(rows, args, labels)
        return 0
    if args.online:
        raise ValueError("--online labels a conversation JSON file as it arrives; not with --video.")
    video = Path(args.video)
    if video.is_dir():
        if args.subtitles:
            raise ValueError("--subtitles names one file: with a folder of videos, put each video's subtitles beside it.")
        return _run_folder(labeller, videos_in(video), args, labels)
    if asr:
        rows = _label_by_asr(labeller, video, asr, args.device)
    else:
        subtitles = args.subtitles or subtitles_beside(video)
        rows = labeller(video=str(video), subtitles=str(subtitles))
    _report(rows, args, labels)
    if args.plot:
        _plot(rows, args.plot, title=f"{video.name}: emotions by speaker")
    return 0


def _report(rows, args, labels) -> None:
    _print_rows(rows, args.json)
    _write_csv(rows, args, labels)


def _print_rows(rows, as_json: bool) -> None:
    print(json.dumps(rows, indent=2, ensure_ascii=False) if as_json else format_predictions(rows))


def _write_csv(rows, args, labels) -> None:
    if args.csv:
        print(f"Wrote {write_csv(rows, args.csv, labels)}.", file=sys.stderr)


def _print_online(stream, as_json: bool) -> list[dict[str, Any]]:
    """Print each labelled utterance as soon as it is labelled (a JSON line, or a table row); all rows back."""
    rows = []
    for row in stream:
        rows.append(row)
        line = json.dumps(row, ensure_ascii=False) if as_json else format_predictions([row]).splitlines()[-1]
        if not as_json and len(rows) == 1:
            print(format_predictions([row]).splitlines()[0])
        print(line, flush=True)
    return rows


def _run_folder(labeller, videos: list[Path], args, labels) -> int:
    plot_dir = Path(args.plot) if args.plot else None
    everything, results = [], {}
    recognizer = None  # the --asr model, loaded once at the first video without subtitles
    for video in tqdm(videos, desc="videos", unit="video", file=sys.stderr):
        try:
            subtitles = subtitles_beside(video)
        except FileNotFoundError:
            if not getattr(args, "asr", None):
                raise
            if recognizer is None:
                recognizer = load_recognizer(args.asr, args.device)
            rows = _label_by_asr(labeller, video, recognizer, args.device)
        else:
            rows = labeller(video=str(video), subtitles=str(subtitles))
        results[video.name] = rows
        everything += [{"video": video.name, **row} for row in rows]
        if plot_dir is not None:
            _plot(rows, plot_dir / f"{video.stem}.png", title=f"{video.name}: emotions by speaker")
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for name, rows in results.items():
            print(f"== {name}\n{format_predictions(rows)}\n")
    if args.csv:
        print(f"Wrote {write_csv(everything, args.csv, labels)}.", file=sys.stderr)
    return 0


def _label_by_asr(labeller, video: Path, asr, device) -> list[dict[str, Any]]:
    """Label the cues that speech recognition (``asr``: a model id/folder or a loaded ASR pipeline) finds in
    ``video``; the labeller takes them as a conversation of timed segments of the recording, with their notes on
    missing media."""
    return labeller(conversation_from_asr(video, asr, device=device))


def _plot(rows, path, title: str) -> None:
    print(f"Wrote {plot_timeline(rows, path, title=title)}.", file=sys.stderr)
