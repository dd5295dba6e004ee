"""MELD (Poria et al., ACL 2019) as an utterance-level ``datasets.DatasetDict``.

Reads the official release layout::

    RAW_DIR/
      train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
      train_splits/dia{D}_utt{U}.mp4
      dev_splits_complete/dia{D}_utt{U}.mp4
      output_repeated_splits_test/dia{D}_utt{U}.mp4

The CSVs alone are enough (a text-only dataset); the media folders add ``audio_path``/
``video_path`` and the ``has_audio``/``has_video`` flags. ``dev`` becomes the
``validation`` split. Text is kept exactly as released (UTF-8, curly quotes included).

Two clips of the real release are unusable: train ``dia125_utt3.mp4`` does not decode (no
moov atom) and dev ``dia110_utt7.mp4`` is absent. Their utterances stay in the dataset,
with the text and the dialogue context, and ``has_audio``/``has_video`` set to ``False``.

Use :func:`build_meld`, or the builder class directly::

    builder = MELDBuilder(data_dir="MELD.Raw", check_media=False, cache_dir="cache")
    builder.download_and_prepare()
    dataset = builder.as_dataset()
"""

from __future__ import annotations

import csv
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets.builder import Key

from ..labels import MELD_EMOTIONS, MELD_SENTIMENTS
from .contract import contract_features
from .errors import DataFormatError, DataNotFoundError
from .export import dataset_card_body
from .fingerprints import release_fingerprint
from .media import MediaDecodeError, probe_media
from .summary import media_report, summarize

logger = logging.getLogger(__name__)

# split name -> (utterance table, media folder) in the official release.
MELD_SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train_sent_emo.csv", "train_splits"),
    "validation": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}
# The header of the release's CSVs, and the columns the builder actually reads.
MELD_CSV_HEADER: tuple[str, ...] = (
    "Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
    "Season", "Episode", "StartTime", "EndTime",
)  # fmt: skip
MELD_REQUIRED_COLUMNS: tuple[str, ...] = (
    "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "StartTime", "EndTime",
)  # fmt: skip

_CLIP_NAME = re.compile(r"dia(\d+)_utt(\d+)\.mp4")
# H:MM:SS,fff -- the fraction is decimal: the release has three digits except in three rows ("00:06:47,28").
_TIME_STAMP = re.compile(r"(\d+):([0-5]\d):([0-5]\d),(\d{1,3})")

MELD_FEATURES = contract_features("meld", utterance_id="int32")


@dataclass
class MELDUtterance:
    """One row of a MELD utterance table, validated."""

    dialogue: int
    utterance: int
    speaker: str
    text: str
    emotion: str
    sentiment: str
    start: float
    end: float


def parse_time_stamp(value: str) -> float:
    """Seconds in a MELD time stamp such as ``"00:16:16,059"`` (``H:MM:SS,fff``, decimal comma)."""
    match = _TIME_STAMP.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a time stamp of the form HH:MM:SS,mmm")
    hours, minutes, seconds, fraction = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction) / 10 ** len(fraction)


def read_meld_csv(csv_path: str | os.PathLike) -> list[MELDUtterance]:
    """Validated rows of one MELD utterance table, in file order.

    Raises :class:`DataFormatError` naming the file, the line and the fix for anything that
    is not a MELD table: empty file, wrong header, missing column, unknown label, bad id or
    time stamp, duplicated utterance.
    """
    csv_path = Path(csv_path)
    try:
        # newline="" lets the csv module own line ends: CRLF terminators go, the fields stay byte-identical.
        with open(csv_path, newline="", encoding="utf-8") as handle:
            return _read_meld_rows(csv.reader(handle), csv_path)
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"{csv_path} is not UTF-8 text ({error}). Use the CSV exactly as shipped in the MELD release."
        ) from error


def _read_meld_rows(reader, csv_path: Path) -> list[MELDUtterance]:
    header = next(reader, None)
    if header is None:
        raise DataFormatError(f"{csv_path} is empty. Re-extract it from the MELD release (MELD.Raw.tar.gz).")
    header = [name.strip().lstrip("\ufeff") for name in header]
    missing = [name for name in MELD_REQUIRED_COLUMNS if name not in header]
    if len(missing) == len(MELD_REQUIRED_COLUMNS):
        raise DataFormatError(
            f"{csv_path} is not a MELD utterance table: its header is {header}, expected {list(MELD_CSV_HEADER)}. "
            "Point the loader at the folder holding the release's train/dev/test_sent_emo.csv."
        )
    if missing:
        raise DataFormatError(
            f"{csv_path} lacks the column(s) {missing} (header: {header}). "
            "Use the CSV exactly as shipped in the MELD release."
        )
    position = {name: header.index(name) for name in MELD_REQUIRED_COLUMNS}

    rows: list[MELDUtterance] = []
    first_line_of = {}
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue
        if len(fields) != len(header):
            raise DataFormatError(
                f"{csv_path}, line {line}: {len(fields)} fields where the header has {len(header)}. "
                "Fix the quoting of that row or re-extract the file from the MELD release."
            )
        value = {name: fields[index] for name, index in position.items()}
        row = MELDUtterance(
            dialogue=_parse_id(value["Dialogue_ID"], "Dialogue_ID", csv_path, line),
            utterance=_parse_id(value["Utterance_ID"], "Utterance_ID", csv_path, line),
            speaker=value["Speaker"],
            text=value["Utterance"],
            emotion=_parse_label(value["Emotion"], "Emotion", MELD_EMOTIONS, csv_path, line),
            sentiment=_parse_label(value["Sentiment"], "Sentiment", MELD_SENTIMENTS, csv_path, line),
            start=_parse_time(value["StartTime"], "StartTime", csv_path, line),
            end=_parse_time(value["EndTime"], "EndTime", csv_path, line),
        )
        key = (row.dialogue, row.utterance)
        if key in first_line_of:
            raise DataFormatError(
                f"{csv_path}, line {line}: Dialogue_ID {row.dialogue}, Utterance_ID {row.utterance} already appears "
                f"on line {first_line_of[key]}. Remove the duplicated row."
            )
        first_line_of[key] = line
        rows.append(row)
    if not rows:
        raise DataFormatError(
            f"{csv_path} has a header but no utterances. Re-extract it from the MELD release (MELD.Raw.tar.gz)."
        )
    return rows


def _parse_id(value: str, column: str, csv_path: Path, line: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise DataFormatError(f"{csv_path}, line {line}: {column} {value!r} is not a non-negative integer.")
    return number


def _parse_label(value: str, column: str, allowed: tuple[str, ...], csv_path: Path, line: int) -> str:
    label = value.strip().lower()
    if label not in allowed:
        raise DataFormatError(
            f"{csv_path}, line {line}: unknown {column} {value!r}; allowed values are {list(allowed)}. "
            "Correct the label or remove the row."
        )
    return label


def _parse_time(value: str, column: str, csv_path: Path, line: int) -> float:
    try:
        return parse_time_stamp(value)
    except ValueError as error:
        raise DataFormatError(f"{csv_path}, line {line}: {column}: {error} (e.g. '00:16:16,059').") from error


def find_media_folder(raw_dir: str | os.PathLike, folder_name: str) -> Path | None:
    """The media folder ``folder_name`` in ``raw_dir``, or one level down (``raw_dir/train/train_splits``), if any."""
    raw_dir = Path(raw_dir)
    candidates = [raw_dir / folder_name] + [raw_dir / archive / folder_name for archive in ("train", "dev", "test")]
    return next((candidate for candidate in candidates if candidate.is_dir()), None)


def index_clips(media_dir: str | os.PathLike) -> dict[tuple[int, int], str]:
    """``{(dialogue, utterance): path}`` for the ``dia{D}_utt{U}.mp4`` clips of a media folder.

    Hidden files (macOS AppleDouble ``._dia0_utt0.mp4``, ``.DS_Store``) and any other name
    are ignored.
    """
    clips = {}
    ignored = 0
    with os.scandir(media_dir) as entries:
        for entry in entries:
            match = None if entry.name.startswith(".") else _CLIP_NAME.fullmatch(entry.name)
            if match is None or not entry.is_file():
                ignored += 1
                continue
            clips[(int(match.group(1)), int(match.group(2)))] = os.path.abspath(entry.path)
    if ignored:
        logger.debug("Ignored %d entries of %s that are not dia{D}_utt{U}.mp4 clips.", ignored, media_dir)
    return clips


def clip_streams(path: str, check_media: bool = True) -> tuple[bool, bool]:
    """``(has_audio, has_video)`` of a clip; without ``check_media`` only a non-empty file is required."""
    if not check_media:
        return (True, True) if os.path.getsize(path) > 0 else (False, False)
    try:
        info = probe_media(path, decode=True)
    except MediaDecodeError as error:
        logger.debug("%s", error)
        return False, False
    return info.has_audio, info.has_video


class MELDConfig(datasets.BuilderConfig):
    """BuilderConfig for MELD.

    Args:
        check_media (`bool`, defaults to `True`):
            Decode the first audio and video frame of every clip to set ``has_audio``/``has_video``.
            ``False`` only checks that the clip file exists and is not empty (much faster).
        num_probe_workers (`int`, *optional*):
            Threads probing clips in parallel (default: the number of CPUs).
        **kwargs: `BuilderConfig` arguments; ``data_dir`` is the raw release folder.
    """

    def __init__(self, check_media: bool = True, num_probe_workers: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.check_media = check_media
        self.num_probe_workers = num_probe_workers


class MELDBuilder(datasets.GeneratorBasedBuilder):
    """MELD utterances from a raw release folder (``data_dir``), rows in dialogue order."""

    BUILDER_CONFIG_CLASS = MELDConfig
    BUILDER_CONFIGS = [MELDConfig(name="default", version=datasets.Version("1.0.0"))]
    DEFAULT_CONFIG_NAME = "default"

    def __init__(self, *args, data_dir: str | os.PathLike | None = None, hash: str | None = None, **kwargs):
        if data_dir is None:
            raise ValueError("MELDBuilder needs data_dir=<folder of the MELD release holding *_sent_emo.csv>.")
        data_dir = os.path.abspath(os.fspath(data_dir))
        check_release_folder(data_dir)
        # The cache key follows the release files, so a CSV edited or replaced, or clips added, rebuild it.
        super().__init__(*args, data_dir=data_dir, hash=hash or _release_fingerprint(data_dir), **kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="MELD: Multimodal EmotionLines Dataset (utterances of Friends dialogues).",
            features=MELD_FEATURES,
            homepage="https://affective-meld.github.io/",
            citation=MELD_CITATION,
            license="gpl-3.0",
        )

    def _split_generators(self, dl_manager):
        # The CSVs are parsed here, before any writing starts, so a format error reaches the
        # caller as the DataFormatError it is rather than wrapped in a generation error.
        generators = []
        for split, (csv_name, media_name) in MELD_SPLIT_FILES.items():
            rows = read_meld_csv(os.path.join(self.config.data_dir, csv_name))
            media_dir = find_media_folder(self.config.data_dir, media_name)
            if media_dir is None:
                logger.info("MELD %s: no %s/ in %s, building text only.", split, media_name, self.config.data_dir)
            generators.append(
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={"rows": tuple(rows), "media_dir": None if media_dir is None else str(media_dir)},
                )
            )
        return generators

    def _generate_examples(self, rows, media_dir):
        ordered = sorted(rows, key=lambda row: (row.dialogue, row.utterance))
        clips = index_clips(media_dir) if media_dir is not None else {}
        paths = [clips.get((row.dialogue, row.utterance)) for row in ordered]
        with ThreadPoolExecutor(max_workers=self.config.num_probe_workers or os.cpu_count()) as pool:
            streams = list(
                pool.map(
                    lambda path: (False, False) if path is None else clip_streams(path, self.config.check_media),
                    paths,
                )
            )
        turn, previous_dialogue = 0, None
        for index, (row, path, (has_audio, has_video)) in enumerate(zip(ordered, paths, streams)):
            turn = turn + 1 if row.dialogue == previous_dialogue else 0
            previous_dialogue = row.dialogue
            yield Key(0, index), {
                "dialogue_id": f"dia{row.dialogue}",
                "turn": turn,
                "utterance_id": row.utterance,
                "speaker": row.speaker,
                "text": row.text,
                "emotion": row.emotion,
                "sentiment": row.sentiment,
                "audio_path": path,
                "video_path": path,
                "start": row.start,
                "end": row.end,
                "has_audio": has_audio,
                "has_video": has_video,
            }


def check_release_folder(raw_dir: str | os.PathLike) -> None:
    """Raise :class:`DataNotFoundError` unless ``raw_dir`` holds the three MELD utterance tables."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataNotFoundError(
            f"MELD folder {raw_dir} does not exist. Download MELD.Raw.tar.gz from https://affective-meld.github.io/, "
            "extract it and pass the folder holding train/dev/test_sent_emo.csv."
        )
    expected = [csv_name for csv_name, _ in MELD_SPLIT_FILES.values()]
    missing = [name for name in expected if not (raw_dir / name).is_file()]
    if len(missing) == len(expected):
        raise DataNotFoundError(
            f"{raw_dir} holds none of the MELD utterance tables {expected}. "
            "Pass the folder of the extracted MELD release (MELD.Raw) that contains them."
        )
    if missing:
        raise DataNotFoundError(
            f"{raw_dir} lacks {missing} (found the other MELD tables). Extract the complete MELD release there."
        )


def _release_fingerprint(raw_dir: str) -> str:
    """The cache key of a build (:func:`hf_erc.data.fingerprints.release_fingerprint`): the CSVs' contents and the
    media folders' listings."""
    tables = [os.path.join(raw_dir, csv_name) for csv_name, _ in MELD_SPLIT_FILES.values()]
    media_dirs = [find_media_folder(raw_dir, media_name) for _, media_name in MELD_SPLIT_FILES.values()]
    return release_fingerprint(tables, [folder for folder in media_dirs if folder is not None], builder_files=(__file__,))


def build_meld(
    raw_dir: str | os.PathLike,
    *,
    check_media: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """MELD as a ``DatasetDict`` (train/validation/test) from the raw release in ``raw_dir``.

    Args:
        raw_dir: folder holding ``{train,dev,test}_sent_emo.csv`` and, optionally, the clip folders.
        check_media: decode each clip to set ``has_audio``/``has_video`` (``False``: existence only).
        cache_dir: where ``datasets`` keeps the prepared Arrow files (default: its own cache).

    A line per split on missing and unusable clips is logged at INFO level
    (:func:`hf_erc.data.summary.media_report` gives the same lines).
    """
    builder = MELDBuilder(
        data_dir=raw_dir,
        check_media=check_media,
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
    )
    builder.download_and_prepare()
    dataset_dict = builder.as_dataset()
    dataset_dict = datasets.DatasetDict({split: dataset_dict[split] for split in MELD_SPLIT_FILES})
    for line in media_report(dataset_dict):
        logger.info("MELD %s", line)
    return dataset_dict


MELD_CARD_METADATA = {
    "license": "gpl-3.0",
    "language": ["en"],
    "task_categories": ["text-classification", "audio-classification", "video-classification"],
    "pretty_name": "MELD (Multimodal EmotionLines Dataset)",
}


def meld_dataset_card(dataset_dict: datasets.DatasetDict) -> str:
    """Markdown body of the dataset card of a prepared MELD folder."""
    report = "\n".join(f"- {line}" for line in media_report(dataset_dict))
    return dataset_card_body(
        title="MELD: Multimodal EmotionLines Dataset",
        summary=(
            "MELD (Poria et al., ACL 2019) holds about 13,000 utterances from 1,400 dialogues of the TV series "
            "*Friends*, each labelled with one of seven emotions and a sentiment, with the video clip of every "
            "utterance. This is the official release's train/dev/test split (dev is `validation` here), one row "
            "per utterance in dialogue order, prepared with `hf-erc prepare meld`."
        ),
        dataset_dict=dataset_dict,
        split_table=summarize(dataset_dict),
        notes=(
            "- `text` is the release's transcript unchanged (UTF-8, curly quotes kept).\n"
            "- `turn` counts utterances within a dialogue from 0; `utterance_id` is the release's "
            "Utterance_ID, which skips numbers where the authors removed utterances.\n"
            "- `start`/`end` are the clip's times in the episode, in seconds.\n"
            "- Two clips of the official release are unusable: train `dia125_utt3.mp4` is corrupt (no moov atom, "
            "it does not decode) and dev `dia110_utt7.mp4` is absent. Their utterances are kept, with "
            "`has_audio`/`has_video` false.\n"
            "- Media in this copy:\n" + "\n".join(f"  {line}" for line in report.splitlines())
        ),
        citation=MELD_CITATION,
        license_text=(
            "GPL-3.0, as the MELD release (https://github.com/declare-lab/MELD). The dialogues come from the TV "
            "series *Friends*; the clips are for research use."
        ),
    )


MELD_CITATION = """@inproceedings{poria-etal-2019-meld,
    title = "{MELD}: A Multimodal Multi-Party Dataset for Emotion Recognition in Conversations",
    author = "Poria, Soujanya and Hazarika, Devamanyu and Majumder, Navonil and Naik, Gautam and
              Cambria, Erik and Mihalcea, Rada",
    booktitle = "Proceedings of the 57th Annual Meeting of the Association for Computational Linguistics",
    year = "2019",
    address = "Florence, Italy",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/P19-1050",
    doi = "10.18653/v1/P19-1050",
    pages = "527--536",
}"""
