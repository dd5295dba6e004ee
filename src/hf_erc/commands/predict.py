"""``hf-erc predict``: label a conversation (JSON), a video with its subtitles, or a folder of videos, and print,
save (``--json``, ``--csv``) or draw (``--plot``) the emotions of every utterance or cue.

Without subtitles, ``--asr MODEL`` (a Whisper checkpoint) makes the cues by speech recognition (speaker
``unknown``). It never replaces subtitles: it cannot go with ``--subtitles``, and in a folder of videos it is used
only for the videos that have no subtitle file beside them.

A long video is read ``--batch-size`` cues at a time (their audio and frames decoded, turned into model inputs and
freed), so memory does not grow with its length; the labels do not depend on the batch size. ``--video FOLDER
--output DIR`` writes each video's rows to ``DIR/<video name>.json`` as soon as it is labelled and skips the videos
already there, so a stopped run resumes; under ``accelerate launch`` or ``torchrun`` the processes share the videos
out, each on its own device."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..distributed import end_process_group, launched_world_size, process_state
from ..features.cache import write_atomically
from ..inference.asr import load_recognizer
from ..inference.conversations import conversation_from_asr, read_conversation, subtitles_beside
from ..inference.pipelines import pipeline
from ..inference.timeline import plot_timeline
from ..locking import OutputFolderLock

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
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1, ... (default: cuda when available; under `accelerate launch`, each process's own).",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        metavar="N",
        help="Cues of a video whose audio and frames are decoded and run through the model together (default 16): "
        "memory follows it, not the video's length; the labels do not depend on it.",
    )
    parser.add_argument("--json", action="store_true", help="Print JSON (one object per utterance) instead of a table.")
    parser.add_argument("--csv", metavar="FILE", help="Also write the rows as CSV.")
    parser.add_argument("--plot", metavar="FILE.png", help="Draw the emotion timeline (a folder: one PNG per video).")
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="With --video FOLDER: write each video's rows to DIR/<video name>.json (JSON, whole or not at all) as "
        "soon as it is labelled, and skip the videos whose file is there already, so a stopped run resumes. Under "
        "`accelerate launch` or `torchrun` the processes share the videos out. Not with --json or --csv.",
    )
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
    folder = args.video is not None and Path(args.video).is_dir()
    if folder and args.subtitles:
        raise ValueError("--subtitles names one file: with a folder of videos, put each video's subtitles beside it.")
    _check_output_options(args, folder)
    if getattr(args, "output", None):
        return _run_folder_to_files(videos_in(Path(args.video)), args)
    labeller = _load_labeller(args, args.device)
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
    if folder:
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


def _check_output_options(args, folder: bool) -> None:
    """``--output`` goes with ``--video FOLDER`` (``folder``) and neither ``--json`` nor ``--csv``; several launched
    processes need it (it is what they share out); ``--batch-size`` is at least 1."""
    if getattr(args, "batch_size", 1) < 1:
        raise ValueError(f"--batch-size {args.batch_size}: expected at least 1 cue.")
    output = getattr(args, "output", None)
    processes = launched_world_size()
    if output is None:
        if processes > 1:
            raise ValueError(
                f"{processes} processes were launched, but only --video FOLDER --output DIR shares work out among "
                "processes (one result file per video): label anything else in one process."
            )
        return
    if not folder:
        raise ValueError(
            f"--output {output} writes one result file per video of a folder: give --video FOLDER (for one video or a "
            "conversation, use --json or --csv)."
        )
    if args.json or args.csv:
        raise ValueError(
            f"--output {output} writes each video's rows to its own JSON file: not with --json or --csv, which print "
            "or write every video's rows at once."
        )


def _load_labeller(args, device):
    """The checkpoint's pipeline, reading a video ``--batch-size`` cues at a time, with a progress bar over them."""
    labeller = pipeline(args.model, device=device, trust_remote_code=args.trust_remote_code)
    labeller.media_chunk_size = getattr(args, "batch_size", labeller.media_chunk_size)
    labeller.progress = args.video is not None
    return labeller


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
    asr = getattr(args, "asr", None)
    subtitles = _subtitles_of(videos, asr)
    loaded = {}  # the --asr model, loaded once at the first video without subtitles
    for video in tqdm(videos, desc="videos", unit="video", file=sys.stderr):
        rows = _label_folder_video(labeller, video, subtitles[video], args.device, asr, loaded)
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


def _run_folder_to_files(videos: list[Path], args) -> int:
    """``--video FOLDER --output DIR``: each video's rows to ``DIR/<video stem>.json``, written to a temporary name
    and renamed once complete (a killed run leaves no file that counts as done), skipping the videos whose file
    exists. Under a launcher each process labels its share of the videos (Accelerate's split: contiguous, in name
    order) on its own device; one video's rows never depend on which process, or how many, labelled it."""
    output = Path(args.output)
    results = _result_files(videos, output)
    # Every process checks every unlabelled video's subtitles, so a missing file stops them all before any work.
    asr = getattr(args, "asr", None)
    subtitles = _subtitles_of([video for video in videos if not results[video].is_file()], asr)
    state = process_state() if launched_world_size() > 1 else None
    try:
        with OutputFolderLock(output, option="--output"):
            share, description = videos, "videos"
            if state is not None:
                with state.split_between_processes(videos) as share:
                    share = list(share)
                description = f"videos (process {state.process_index + 1}/{state.num_processes})"
            done = [video for video in share if results[video].is_file()]
            if done:
                names = ", ".join(video.name for video in done[:5]) + (", ..." if len(done) > 5 else "")
                print(f"Skipping {len(done)} video(s) whose results are in {output} already: {names}.", file=sys.stderr)
            todo = [video for video in share if video not in done]
            if not todo:
                return 0
            device = args.device or (str(state.device) if state is not None else None)
            labeller = _load_labeller(args, device)
            loaded = {}  # the --asr model, loaded once at the first video without subtitles
            for video in tqdm(todo, desc=description, unit="video", file=sys.stderr):
                rows = _label_folder_video(labeller, video, subtitles[video], device, asr, loaded)
                text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
                write_atomically(results[video], lambda file: file.write(text.encode("utf-8")))
                print(f"Wrote {results[video]} ({len(rows)} rows).", file=sys.stderr)
                if args.plot:
                    _plot(rows, Path(args.plot) / f"{video.stem}.png", title=f"{video.name}: emotions by speaker")
    finally:
        end_process_group()
    return 0


def _result_files(videos: list[Path], output: Path) -> dict[Path, Path]:
    """``output/<video stem>.json`` for each video; two videos of one stem (``a.mp4``, ``a.mkv``) are an error."""
    owners: dict[Path, Path] = {}
    for video in videos:
        result = output / f"{video.stem}.json"
        if result in owners:
            raise ValueError(f"{owners[result]} and {video} would both write {result}: rename one of them.")
        owners[result] = video
    return {video: result for result, video in owners.items()}


def _subtitles_of(videos: list[Path], asr: str | None) -> dict[Path, Path | None]:
    """Each video's subtitles beside it, or ``None`` where the ``--asr`` model makes its cues; a video with neither
    is an error before any video is labelled."""
    found = {}
    for video in videos:
        try:
            found[video] = subtitles_beside(video)
        except FileNotFoundError:
            if not asr:
                raise
            found[video] = None
    return found


def _label_folder_video(
    labeller, video: Path, subtitles: Path | None, device, asr: str | None, loaded: dict
) -> list[dict[str, Any]]:
    """The rows of one video of a folder: from its subtitles, or (``subtitles`` None) from the cues the ``asr``
    model finds on ``device``, loaded at the first such video and kept in ``loaded``."""
    if subtitles is not None:
        return labeller(video=str(video), subtitles=str(subtitles))
    if "asr" not in loaded:
        loaded["asr"] = load_recognizer(asr, device)
    return _label_by_asr(labeller, video, loaded["asr"], device)


def _label_by_asr(labeller, video: Path, asr, device) -> list[dict[str, Any]]:
    """Label the cues that speech recognition (``asr``: a model id/folder or a loaded ASR pipeline) finds in
    ``video``; the labeller takes them as a conversation of timed segments of the recording, with their notes on
    missing media."""
    return labeller(conversation_from_asr(video, asr, device=device))


def _plot(rows, path, title: str) -> None:
    print(f"Wrote {plot_timeline(rows, path, title=title)}.", file=sys.stderr)
