"""``hf-erc make-planted``: write a planted-signal data set in MELD's release layout (:mod:`hf_erc.data.planted`)."""

from __future__ import annotations

import argparse

from ..data.planted import (
    DEFAULT_DIALOGUES,
    DEFAULT_NUM_EMOTIONS,
    DEFAULT_PERSISTENCE,
    DEFAULT_RELIABILITIES,
    write_planted_release,
)
from ..data.planted_ceilings import ceilings_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-erc make-planted``."""
    defaults = ",".join(f"{modality}={value:g}" for modality, value in DEFAULT_RELIABILITIES.items())
    parser = subparsers.add_parser(
        "make-planted",
        help="Write a synthetic MELD-layout release (real mp4 clips) whose emotion cues are planted with known "
        "reliabilities, with its Bayes-optimal ceilings.",
        description=(
            "Write {train,dev,test}_sent_emo.csv and one mp4 per utterance in MELD's layout, in which the text (a "
            "cue word), the audio (a tone's pitch) and the video (the frames' hue) each show the true emotion with a "
            "chosen reliability, plus the planted truth (planted_*.csv) and a README.md with the best possible scores. "
            "`hf-erc prepare meld --raw-dir OUTPUT` reads it like the real release."
        ),
    )
    parser.add_argument("--output", required=True, help="Folder to write the release to (empty or absent).")
    parser.add_argument(
        "--dialogues",
        default=str(DEFAULT_DIALOGUES),
        help="Dialogues per split: N (N train, N/5 dev, 3N/5 test) or train=N,dev=N,test=N "
        f"(default: {DEFAULT_DIALOGUES}).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of everything drawn (default: 0).")
    parser.add_argument(
        "--reliability",
        default=defaults,
        help="Probability that each modality's cue is the true emotion, in (1/K, 1], as modality=value pairs; "
        f"modalities left out keep their default ({defaults}).",
    )
    parser.add_argument(
        "--persistence",
        type=float,
        default=DEFAULT_PERSISTENCE,
        help="Probability that a speaker's next turn keeps their emotion (otherwise a fresh uniform draw; "
        f"default: {DEFAULT_PERSISTENCE:g}).",
    )
    parser.add_argument(
        "--emotions",
        default=str(DEFAULT_NUM_EMOTIONS),
        help="How many MELD emotions (the first K in label order) or their names, comma-separated "
        f"(default: {DEFAULT_NUM_EMOTIONS}).",
    )
    parser.add_argument(
        "--no-media", dest="media", action="store_false", help="Write the CSVs, truth and card only (no clips)."
    )
    parser.add_argument("--num-workers", type=int, default=1, help="Processes writing clips (default: 1).")
    parser.add_argument("--overwrite", action="store_true", help="Replace a release already in --output.")
    parser.set_defaults(func=run_make_planted)


def parse_pairs(text: str, option: str, value_type: type) -> dict[str, object]:
    """``"a=1,b=2"`` -> ``{"a": 1, "b": 2}``; a one-line ValueError naming ``option`` otherwise."""
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, separator, value = item.partition("=")
        try:
            if not separator or not name.strip():
                raise ValueError
            pairs[name.strip().lower()] = value_type(value)
        except ValueError:
            raise ValueError(f"{option}: expected name=value pairs separated by commas, got {text!r}.") from None
    if not pairs:
        raise ValueError(f"{option}: expected name=value pairs separated by commas, got {text!r}.")
    return pairs


def parse_dialogues(text: str) -> int | dict[str, int]:
    """``--dialogues``: ``"100"`` or ``"train=100,dev=20,test=60"``."""
    return int(text) if text.strip().lstrip("-").isdigit() else parse_pairs(text, "--dialogues", int)


def parse_emotions(text: str) -> int | list[str]:
    """``--emotions``: ``"4"`` or ``"neutral,joy,anger"``."""
    return int(text) if text.strip().lstrip("-").isdigit() else [name for name in text.split(",") if name.strip()]


def run_make_planted(args: argparse.Namespace) -> int:
    """Write the release and print where, its size and its test ceilings; returns the exit code."""
    summary = write_planted_release(
        args.output,
        dialogues=parse_dialogues(args.dialogues),
        seed=args.seed,
        reliabilities=parse_pairs(args.reliability, "--reliability", float),
        persistence=args.persistence,
        emotions=parse_emotions(args.emotions),
        media=args.media,
        num_workers=args.num_workers,
        overwrite=args.overwrite,
    )
    sizes = ", ".join(f"{split} {count}" for split, count in summary.utterances.items())
    print(f"Wrote a planted release to {summary.output_dir} (utterances: {sizes}).")
    print(f"Missing clip: {summary.missing_clip}; corrupt clip: {summary.corrupt_clip}.")
    print("Ceilings on the test split (percent):")
    print(ceilings_table(summary.ceilings))
    return 0
