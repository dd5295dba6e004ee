"""A planted-signal data set in MELD's release layout: real mp4 clips whose answer is known.

Real MELD/IEMOCAP media are out of reach here, so nothing shows that a multimodal fusion really
combines modalities. This module writes a release that the MELD builder reads unchanged
(``{train,dev,test}_sent_emo.csv`` plus one ``dia{D}_utt{U}.mp4`` per utterance in
``train_splits/``, ``dev_splits_complete/`` and ``output_repeated_splits_test/``) in which each
modality carries the emotion with a chosen reliability, and records the truth so that the best
possible scores (the Bayes-optimal ceilings of :mod:`hf_erc.data.planted_ceilings`) can be printed
next to a model's.

The generative model, per split:

- a dialogue has 4-10 turns and 2-3 speakers, drawn from MELD's six main characters and eight
  names that never occur in MELD (as a user's own data would have); each speaker talks first once
  in a random order, after which every turn goes to one of the speakers who did not just talk;
- a speaker's first emotion in a dialogue is uniform over the release's K emotions; each later turn
  of the same speaker keeps the previous emotion with probability ``persistence`` and is otherwise a
  fresh uniform draw (so the emotion repeats with probability ``persistence + (1 - persistence) / K``);
- each modality ``m`` independently shows a cue: the true emotion with probability ``r_m``, otherwise
  one of the other K-1 emotions, uniformly (so a cue's accuracy is ``r_m`` in expectation);
- text: the cue is one word (:data:`CUE_WORDS`: ordinary English nouns with no emotional meaning,
  so a pretrained encoder brings no sentiment of its own) among 3-8 random filler words
  (:data:`FILLER_WORDS`); audio: a tone whose pitch is the cue; video: frames whose hue is the cue
  (see :mod:`hf_erc.data.planted_media`); clips last 1-3 s;
- the ``Sentiment`` column follows the true emotion (joy and surprise positive, neutral neutral,
  the rest negative).

As in the real release, one training clip is absent and one is corrupt (no ``moov`` atom); their
utterances keep ``has_audio``/``has_video`` false in the built dataset. The same seed writes the same
files, byte for byte, and ``media=False`` writes the same CSVs and truth without any clip.

Files besides the release: ``planted_{train,dev,test}.csv`` (the truth: emotion and each cue per
utterance), ``planted.json`` (the generator's arguments) and ``README.md`` (a card with the ceilings
on the test split).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .meld import MELD_CSV_HEADER, MELD_SPLIT_FILES
from .planted_ceilings import (
    UNOBSERVED,
    PlantedSplit,
    ceilings_table,
    expected_utterance_accuracy,
    planted_ceilings,
)
from .planted_config import (
    DEFAULT_DIALOGUES,
    DEFAULT_NUM_EMOTIONS,
    DEFAULT_PERSISTENCE,
    DEFAULT_RELIABILITIES,
    MODALITIES,
    PlantedConfig,
)
from .planted_media import HUE_DEGREES, TONE_HZ, ClipSpec, write_clips

# The arguments (PlantedConfig, the defaults) live in planted_config and are re-exported here.
__all__ = [
    "CUE_WORDS",
    "DEFAULT_DIALOGUES",
    "DEFAULT_NUM_EMOTIONS",
    "DEFAULT_PERSISTENCE",
    "DEFAULT_RELIABILITIES",
    "FILLER_WORDS",
    "MODALITIES",
    "PlantedConfig",
    "PlantedReleaseSummary",
    "PlantedUtterance",
    "read_planted_config",
    "read_planted_truth",
    "release_ceilings",
    "sample_planted_release",
    "write_planted_release",
]


# The official MELD release layout, keyed by the release's own split names (planted_config.RELEASE_SPLITS):
# split -> (utterance table, clip folder), read from the MELD builder so that the two cannot drift apart.
RELEASE_FILES: dict[str, tuple[str, str]] = {
    "train": MELD_SPLIT_FILES["train"],
    "dev": MELD_SPLIT_FILES["validation"],
    "test": MELD_SPLIT_FILES["test"],
}
TRUTH_COLUMNS: tuple[str, ...] = (
    "Dialogue_ID", "Utterance_ID", "Speaker", "emotion", "text_cue", "audio_cue", "video_cue", "clip",
)  # fmt: skip
CONFIG_FILE = "planted.json"

CUE_WORDS: dict[str, str] = {
    "neutral": "table", "surprise": "river", "fear": "pencil", "sadness": "window",
    "joy": "garden", "disgust": "bottle", "anger": "ladder",
}  # fmt: skip
FILLER_WORDS: tuple[str, ...] = (
    "the", "a", "of", "and", "to", "in", "on", "it\u2019s", "that", "with", "for", "this", "was", "there",
    "then", "about", "some", "over", "near", "under", "seven", "twelve", "paper", "corner", "street",
    "morning", "Tuesday", "box", "chair", "door", "wall", "bus", "coffee", "lamp", "shelf", "yard", "road",
    "blue", "green", "square", "left", "again", "maybe", "just", "still", "also",
)  # fmt: skip
MELD_SPEAKERS: tuple[str, ...] = ("Ross", "Rachel", "Monica", "Chandler", "Joey", "Phoebe")
NEW_SPEAKERS: tuple[str, ...] = ("Amara", "Kenji", "Zoë", "Dr. Lindqvist", "Priya", "Mateo", "Oluwaseun", "Sofía")
SENTIMENT_OF: dict[str, str] = {
    "neutral": "neutral", "surprise": "positive", "joy": "positive",
    "fear": "negative", "sadness": "negative", "disgust": "negative", "anger": "negative",
}  # fmt: skip
TURNS_PER_DIALOGUE = (4, 10)
SPEAKERS_PER_DIALOGUE = (2, 3)
CLIP_MILLISECONDS = (1000, 3000)


@dataclass
class PlantedUtterance:
    """One utterance of a planted release: what the CSV shows and the truth behind it."""

    dialogue: int
    utterance: int
    speaker: str
    text: str
    emotion: str
    cues: dict[str, str]  # modality -> the emotion its cue shows
    season: int
    episode: int
    start_ms: int
    duration_ms: int
    clip: str = "ok"  # "ok", "missing" (no file) or "corrupt" (a file that does not decode)

    @property
    def clip_name(self) -> str:
        return f"dia{self.dialogue}_utt{self.utterance}.mp4"


def sample_planted_release(config: PlantedConfig) -> dict[str, list[PlantedUtterance]]:
    """Draw every utterance of every split (no files written): split -> utterances in dialogue order.

    Each split has its own random stream (seeded by ``(seed, split)``), so the dev and test dialogues
    do not change when only the number of training dialogues does.
    """
    release = {
        split: _sample_split(config, config.dialogues[split], np.random.default_rng([config.seed, number]))
        for number, split in enumerate(RELEASE_FILES)
    }
    # As in the real MELD release: one training clip absent, another corrupt.
    chooser = np.random.default_rng([config.seed, len(RELEASE_FILES)])
    missing, corrupt = chooser.choice(len(release["train"]), size=2, replace=False)
    release["train"][missing].clip = "missing"
    release["train"][corrupt].clip = "corrupt"
    return release


def _sample_split(config: PlantedConfig, num_dialogues: int, rng: np.random.Generator) -> list[PlantedUtterance]:
    num_emotions = len(config.emotions)
    speaker_pool = MELD_SPEAKERS + NEW_SPEAKERS
    utterances = []
    for dialogue in range(num_dialogues):
        season, episode = int(rng.integers(1, 11)), int(rng.integers(1, 25))
        clock_ms = int(rng.integers(0, 20 * 60 * 1000))
        num_turns = int(rng.integers(TURNS_PER_DIALOGUE[0], TURNS_PER_DIALOGUE[1] + 1))
        num_speakers = int(rng.integers(SPEAKERS_PER_DIALOGUE[0], SPEAKERS_PER_DIALOGUE[1] + 1))
        speakers = [speaker_pool[index] for index in rng.choice(len(speaker_pool), size=num_speakers, replace=False)]
        last_emotion: dict[str, int] = {}
        previous = None
        for turn in range(num_turns):
            if turn < num_speakers:
                speaker = speakers[turn]
            else:
                others = [name for name in speakers if name != previous]
                speaker = others[int(rng.integers(len(others)))]
            previous = speaker
            keeps = speaker in last_emotion and rng.random() < config.persistence
            emotion = last_emotion[speaker] if keeps else int(rng.integers(num_emotions))
            last_emotion[speaker] = emotion
            cues = {}
            for modality in MODALITIES:
                shows_truth = rng.random() < config.reliabilities[modality]
                cue = emotion if shows_truth else (emotion + int(rng.integers(1, num_emotions))) % num_emotions
                cues[modality] = config.emotions[cue]
            duration_ms = int(rng.integers(CLIP_MILLISECONDS[0], CLIP_MILLISECONDS[1] + 1))
            utterances.append(
                PlantedUtterance(
                    dialogue=dialogue,
                    utterance=turn,
                    speaker=speaker,
                    text=_utterance_text(CUE_WORDS[cues["text"]], rng),
                    emotion=config.emotions[emotion],
                    cues=cues,
                    season=season,
                    episode=episode,
                    start_ms=clock_ms,
                    duration_ms=duration_ms,
                )
            )
            clock_ms += duration_ms + int(rng.integers(100, 1000))
    return utterances


def _utterance_text(cue_word: str, rng: np.random.Generator) -> str:
    """3-8 filler words with ``cue_word`` at a random place, capitalised and punctuated."""
    words = [FILLER_WORDS[index] for index in rng.integers(len(FILLER_WORDS), size=int(rng.integers(3, 9)))]
    words.insert(int(rng.integers(len(words) + 1)), cue_word)
    text = " ".join(words)
    return text[0].upper() + text[1:] + (".", "?", ", right?")[int(rng.integers(3))]


def _time_stamp(milliseconds: int) -> str:
    """MELD's ``HH:MM:SS,mmm``."""
    seconds, millis = divmod(milliseconds, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"


@dataclass
class PlantedReleaseSummary:
    """What :func:`write_planted_release` wrote.

    ``missing_clip``/``corrupt_clip`` are paths relative to the release folder; ``ceilings`` are the
    test split's (see :func:`~hf_erc.data.planted_ceilings.planted_ceilings`).
    """

    output_dir: Path
    config: PlantedConfig
    media: bool
    utterances: dict[str, int]
    missing_clip: str
    corrupt_clip: str
    ceilings: dict[str, dict[str, float]]


def write_planted_release(
    output_dir: str | os.PathLike,
    dialogues: int | Mapping[str, int] = DEFAULT_DIALOGUES,
    seed: int = 0,
    reliabilities: Mapping[str, float] | None = None,
    persistence: float = DEFAULT_PERSISTENCE,
    emotions: int | Sequence[str] = DEFAULT_NUM_EMOTIONS,
    *,
    media: bool = True,
    num_workers: int = 1,
    overwrite: bool = False,
) -> PlantedReleaseSummary:
    """Write a planted-signal release in MELD's layout to ``output_dir``; see the module docstring.

    Args:
        output_dir: the release folder; it must be empty or absent unless ``overwrite``.
        dialogues, seed, reliabilities, persistence, emotions: see :meth:`PlantedConfig.create`.
        media: write the mp4 clips (``False``: CSVs, truth and card only, identical to the media release's).
        num_workers: processes writing clips.
        overwrite: replace a previous release's files in ``output_dir`` (other files are left alone).
    """
    config = PlantedConfig.create(dialogues, seed, reliabilities, persistence, emotions)
    output_dir = Path(output_dir)
    _prepare_folder(output_dir, overwrite)
    release = sample_planted_release(config)
    specs = []
    for number, (split, utterances) in enumerate(release.items()):
        csv_name, media_folder = RELEASE_FILES[split]
        _write_meld_csv(output_dir / csv_name, utterances)
        _write_truth(output_dir / f"planted_{split}.csv", utterances)
        if media:
            (output_dir / media_folder).mkdir()
            specs.extend(
                ClipSpec(
                    path=str(output_dir / media_folder / row.clip_name),
                    seconds=row.duration_ms / 1000,
                    audio_emotion=row.cues["audio"],
                    video_emotion=row.cues["video"],
                    seed=(config.seed, number, row.dialogue, row.utterance),
                    truncate=row.clip == "corrupt",
                )
                for row in utterances
                if row.clip != "missing"
            )
    write_clips(specs, num_workers=num_workers)
    clip_of = {row.clip: f"{RELEASE_FILES['train'][1]}/{row.clip_name}" for row in release["train"] if row.clip != "ok"}
    test_truth = _planted_split(_truth_rows(release["test"]), config.emotions)
    ceilings = planted_ceilings(test_truth, config.reliabilities, config.persistence)
    summary = PlantedReleaseSummary(
        output_dir=output_dir,
        config=config,
        media=media,
        utterances={split: len(rows) for split, rows in release.items()},
        missing_clip=clip_of["missing"],
        corrupt_clip=clip_of["corrupt"],
        ceilings=ceilings,
    )
    _write_config(output_dir / CONFIG_FILE, summary)
    (output_dir / "README.md").write_text(_release_card(summary), encoding="utf-8")
    return summary


def _prepare_folder(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{output_dir} exists and is not a folder; choose another --output.")
    ours = [csv_name for csv_name, _ in RELEASE_FILES.values()] + [f"planted_{split}.csv" for split in RELEASE_FILES]
    ours += [CONFIG_FILE, "README.md"]
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise ValueError(f"{output_dir} is not empty; choose an empty folder or pass overwrite=True (--overwrite).")
        for name in ours:
            (output_dir / name).unlink(missing_ok=True)
        for _, media_folder in RELEASE_FILES.values():
            shutil.rmtree(output_dir / media_folder, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)


def _write_meld_csv(path: Path, utterances: Sequence[PlantedUtterance]) -> None:
    """The utterance table as the release writes it: UTF-8, CRLF line ends, time stamps quoted (they hold a comma)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(MELD_CSV_HEADER)
        for number, row in enumerate(utterances, start=1):
            writer.writerow([
                number, row.text, row.speaker, row.emotion, SENTIMENT_OF[row.emotion], row.dialogue, row.utterance,
                row.season, row.episode, _time_stamp(row.start_ms), _time_stamp(row.start_ms + row.duration_ms),
            ])  # fmt: skip


def _truth_rows(utterances: Sequence[PlantedUtterance]) -> list[dict[str, str | int]]:
    """The rows of ``planted_{split}.csv``."""
    return [
        {
            "Dialogue_ID": row.dialogue, "Utterance_ID": row.utterance, "Speaker": row.speaker, "emotion": row.emotion,
            "text_cue": row.cues["text"], "audio_cue": row.cues["audio"], "video_cue": row.cues["video"],
            "clip": row.clip,
        }  # fmt: skip
        for row in utterances
    ]


def _write_truth(path: Path, utterances: Sequence[PlantedUtterance]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, TRUTH_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_truth_rows(utterances))


def _write_config(path: Path, summary: PlantedReleaseSummary) -> None:
    config = summary.config
    record = {
        "generator": "hf_erc.data.planted",
        "emotions": list(config.emotions),
        "reliabilities": config.reliabilities,
        "persistence": config.persistence,
        "dialogues": config.dialogues,
        "seed": config.seed,
        "media": summary.media,
        "missing_clip": summary.missing_clip,
        "corrupt_clip": summary.corrupt_clip,
        "cue_words": {name: CUE_WORDS[name] for name in config.emotions},
        "tone_hz": {name: TONE_HZ[name] for name in config.emotions},
        "hue_degrees": {name: round(HUE_DEGREES[name], 3) for name in config.emotions},
    }
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _planted_split(truth_rows: Sequence[Mapping[str, str | int]], emotions: Sequence[str]) -> PlantedSplit:
    """The truth as arrays; the audio and video cues of a missing or corrupt clip are unobserved."""
    index = {name: position for position, name in enumerate(emotions)}
    cues = {
        modality: np.array(
            [
                UNOBSERVED if modality != "text" and row["clip"] != "ok" else index[row[f"{modality}_cue"]]
                for row in truth_rows
            ],
            dtype=np.int64,
        )
        for modality in MODALITIES
    }
    return PlantedSplit(
        emotions=tuple(emotions),
        dialogue=np.array([int(row["Dialogue_ID"]) for row in truth_rows], dtype=np.int64),
        speaker=[row["Speaker"] for row in truth_rows],
        emotion=np.array([index[row["emotion"]] for row in truth_rows], dtype=np.int64),
        cues=cues,
    )


def read_planted_config(release_dir: str | os.PathLike) -> PlantedConfig:
    """The arguments a planted release was written with (from its ``planted.json``)."""
    path = Path(release_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {release_dir} is not a release written by hf-erc make-planted.")
    record = json.loads(path.read_text(encoding="utf-8"))
    return PlantedConfig.create(
        dialogues=record["dialogues"],
        seed=record["seed"],
        reliabilities=record["reliabilities"],
        persistence=record["persistence"],
        emotions=record["emotions"],
    )


def read_planted_truth(release_dir: str | os.PathLike, split: str = "test") -> PlantedSplit:
    """The planted truth of ``split`` (``train``, ``dev``/``validation`` or ``test``) of a planted release.

    Rows are in the release's order, which is the built dataset's order (dialogue, then utterance).
    """
    release_split = "dev" if split == "validation" else split
    if release_split not in RELEASE_FILES:
        raise ValueError(f"split must be one of train, dev (validation), test; got {split!r}.")
    config = read_planted_config(release_dir)
    path = Path(release_dir) / f"planted_{release_split}.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != TRUTH_COLUMNS:
            raise ValueError(f"{path}: header {reader.fieldnames} is not {list(TRUTH_COLUMNS)}; rewrite the release.")
        truth_rows = list(reader)
    return _planted_split(truth_rows, config.emotions)


def release_ceilings(release_dir: str | os.PathLike, split: str = "test") -> dict[str, dict[str, float]]:
    """The Bayes ceilings of ``split`` of a planted release: key -> ``{"accuracy", "weighted_f1"}`` (fractions)."""
    config = read_planted_config(release_dir)
    return planted_ceilings(read_planted_truth(release_dir, split), config.reliabilities, config.persistence)


def _release_card(summary: PlantedReleaseSummary) -> str:
    """The release's README.md: how it was made, its cues and its test ceilings."""
    config = summary.config
    counts = " / ".join(f"{summary.utterances[split]} ({config.dialogues[split]} dialogues)" for split in RELEASE_FILES)
    cue_rows = "\n".join(
        f"| {name} | {CUE_WORDS[name]} | {TONE_HZ[name]:g} | {HUE_DEGREES[name]:.0f} | {SENTIMENT_OF[name]} |"
        for name in config.emotions
    )
    reliability_rows = "\n".join(f"| {modality} | {value:g} |" for modality, value in config.reliabilities.items())
    num_emotions = len(config.emotions)
    return f"""# Planted-signal release (MELD layout)

A synthetic data set whose answer is known, written by `hf_erc.data.planted.write_planted_release`.
Each utterance has a true emotion; each modality shows it with a chosen reliability. It is laid out as
the official MELD release, so `hf_erc.data.load_erc_dataset("meld", "<this folder>")` and
`hf-erc prepare meld --raw-dir <this folder> --output OUT` read it unchanged.

Regenerate it (same bytes) with:

    {config.command_line()}{"" if summary.media else " --no-media"}

## Arguments

- emotions (K = {num_emotions}): {", ".join(config.emotions)}
- persistence: {config.persistence:g} (a speaker's next turn keeps their emotion with this probability,
  otherwise a fresh uniform draw; the emotion repeats with probability
  {config.persistence + (1 - config.persistence) / num_emotions:.3g})
- seed: {config.seed}
- utterances train / dev / test: {counts}
- media: {"one mp4 per utterance (H.264 64x64 at 8 fps, AAC 16 kHz mono, 1-3 s)" if summary.media else
  "none (CSVs and truth only; the ceilings still count the planted audio and video cues)"}

| modality | reliability (P(cue = true emotion)) |
|---|---:|
{reliability_rows}

A cue that is not the true emotion is one of the other {num_emotions - 1} emotions, uniformly.

## Cues

| emotion | text cue word | audio tone (Hz) | video hue (degrees) | sentiment column |
|---|---|---:|---:|---|
{cue_rows}

- text: the cue word among 3-8 filler words (ordinary words with no emotional meaning);
- audio: a tone at the cue's pitch (jittered by up to 2 %), random loudness, tremolo and white noise;
- video: frames of the cue's hue (jittered by up to 6 degrees), random saturation and brightness, a
  drifting brightness ramp, flicker and pixel noise.

Dialogues: 4-10 turns, 2-3 speakers (MELD's main characters and names absent from MELD). The truth of
every utterance (emotion, each cue, clip state) is in `planted_{{train,dev,test}}.csv`; the arguments in
`{CONFIG_FILE}`.

As in the real MELD release, one training clip is absent (`{summary.missing_clip}`) and one is corrupt
(`{summary.corrupt_clip}`, cut before its index): their utterances have `has_audio`/`has_video` false,
and the ceilings count their audio and video cues as unobserved.

## Ceilings on the test split

What a perfect model could score ({summary.utterances["test"]} test utterances). A single cue's
ceiling is the cue itself; "Bayes" is the argmax of the exact posterior under the generative model:
per utterance, prior x product of P(cue | emotion); with dialogue context, forward-backward over each
speaker's turns. Scores in percent.

{ceilings_table(summary.ceilings)}

These are the test split's own numbers. Over infinitely many utterances each cue's accuracy is its
reliability and the per-utterance Bayes accuracy is
{100 * expected_utterance_accuracy(config.reliabilities, num_emotions):.1f} % (the most any fusion of one
utterance's cues can reach); the context ceilings have no closed form.

Recompute them, for any split, with `hf_erc.data.planted.release_ceilings("<this folder>", split)`.
"""
