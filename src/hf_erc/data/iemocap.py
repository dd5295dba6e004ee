"""IEMOCAP builder: the official ``IEMOCAP_full_release`` folder as an utterance-level ``DatasetDict``.

Expected layout (the USC release, unchanged)::

    IEMOCAP_full_release/
      Session{1..5}/
        dialog/EmoEvaluation/<dialogue>.txt      per-turn labels (the "[start - end]\\tturn\\tcode\\t[v, a, d]" lines)
        dialog/transcriptions/<dialogue>.txt     "<turn> [start-end]: text" lines
        dialog/avi/DivX/<dialogue>.avi           the dialogue recording (both actors)
        sentences/wav/<dialogue>/<turn>.wav      one wav per turn

Rows follow the data contract of ``DESIGN.md``: one per labelled turn, dialogues in name
order, turns in start-time order. The six classes are ``hf_erc.labels.IEMOCAP_EMOTIONS``;
turns labelled ``xxx``/``sur``/``fea``/``dis``/``oth`` are dropped, or kept as unlabelled
context (``emotion = -1``) with ``keep_unlabeled=True``. Sessions 1-4 give ``train`` and a
seeded ``validation`` set of whole dialogues, session 5 gives ``test``. A turn's video is
the slice ``[start, end)`` of its dialogue's avi (see ``hf_erc.data.media.decode_video_frames``).

What counts as an error and what is skipped:

* errors (:class:`~hf_erc.data.errors.DataNotFoundError`): no ``Session1``..``Session5``
  folder, a session without ``dialog/EmoEvaluation``, a labelled dialogue without its
  transcription file;
* errors (:class:`~hf_erc.data.errors.DataFormatError`, naming file and line): a label line
  (one starting with ``[``) that does not parse, an emotion code outside the IEMOCAP set, a
  turn id that does not belong to the file's dialogue, a turn labelled twice or transcribed
  twice, a transcription line of a real turn without the ``:`` before its text, and a kept
  turn missing from its dialogue's transcription (names both files);
* skipped silently: evaluator lines (``C-E1:``, ``A-F1:``...), headers, blank lines,
  transcription lines of non-turns (``M: [BREATHING]``, ``..._MXX0``/``_FXX0`` unsegmented
  speech), transcribed turns that have no label, AppleDouble ``._*`` files and other junk;
* logged: dropped turns per code, and how many wav/avi files were missing or undecodable
  (those turns get ``has_audio``/``has_video`` False and a null path when the file is missing).
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..labels import IEMOCAP_CODES, IEMOCAP_EXCLUDED_CODES
from .contract import contract_features
from .errors import DataFormatError, DataNotFoundError
from .media import MediaDecodeError, probe_media

logger = logging.getLogger(__name__)

SESSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)
TEST_SESSIONS: tuple[int, ...] = (5,)
UNLABELED = -1

IEMOCAP_CITATION = """@article{busso2008iemocap,
    title = {{IEMOCAP}: Interactive emotional dyadic motion capture database},
    author = {Busso, Carlos and Bulut, Murtaza and Lee, Chi-Chun and Kazemzadeh, Abe and Mower, Emily and
              Kim, Samuel and Chang, Jeannette N. and Lee, Sungbok and Narayanan, Shrikanth S.},
    journal = {Language Resources and Evaluation},
    volume = {42},
    number = {4},
    pages = {335--359},
    year = {2008},
}"""
_HOMEPAGE = "https://sail.usc.edu/iemocap/"
_LICENSE = "IEMOCAP release agreement (USC SAIL): research use only, no redistribution without USC's permission."
_EXPECTED_LAYOUT = (
    "IEMOCAP_full_release/Session{1..5}/dialog/EmoEvaluation/<dialogue>.txt, "
    "Session*/dialog/transcriptions/<dialogue>.txt, Session*/sentences/wav/<dialogue>/<turn>.wav "
    "and Session*/dialog/avi/DivX/<dialogue>.avi"
)

# "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]"
_LABEL_LINE = re.compile(r"^\[\s*(?P<start>[^\s\]]+)\s*-\s*(?P<end>[^\s\]]+)\s*\]\s+(?P<turn>\S+)\s+(?P<code>\S+)")
# "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me." (the times are not needed, so not required)
_TRANSCRIPTION_LINE = re.compile(r"^(?P<turn>[^\s\[:]+)\s*(?:\[[^\]]*\])?\s*:(?P<text>.*)$")
# A dialogue name as it appears in file names: "Ses01F_impro01", "Ses05M_script01_1b".
_DIALOGUE_NAME = re.compile(r"^Ses\d{2}[FM]_\w+$")
_KNOWN_CODES = IEMOCAP_CODES + IEMOCAP_EXCLUDED_CODES


def turn_speaker(turn_id: str, dialogue_id: str) -> str | None:
    """``"F"``/``"M"`` for a numbered turn of ``dialogue_id`` (``Ses01F_impro01_M003`` -> ``"M"``), else None.

    The letter is the speaker of that turn; the letter after the session number is only the
    actor who wore the motion-capture markers in that recording.
    """
    match = re.fullmatch(re.escape(dialogue_id) + r"_([FM])\d{3}", turn_id)
    return match.group(1) if match else None


@dataclass(frozen=True)
class LabeledTurn:
    """One turn line of an EmoEvaluation file."""

    turn_id: str
    speaker: str
    start: float
    end: float
    code: str
    line_number: int


@dataclass
class Utterance:
    """One output row, before it is written (``emotion`` is a class index or ``UNLABELED``)."""

    utterance_id: str
    speaker: str
    text: str
    emotion: int
    start: float
    end: float
    audio_path: str | None
    video_path: str | None
    has_audio: bool
    has_video: bool


@dataclass
class Dialogue:
    dialogue_id: str
    session: int
    utterances: list[Utterance]


def _read_lines(path: Path) -> list[str]:
    """Lines of a release text file; UTF-8, falling back to Latin-1 for the odd non-UTF-8 byte."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.splitlines()


def _is_release_file(path: Path, suffix: str) -> bool:
    """A regular ``<dialogue><suffix>`` file, not an AppleDouble ``._*`` file or other junk."""
    return (
        path.is_file()
        and path.suffix == suffix
        and not path.name.startswith(".")
        and bool(_DIALOGUE_NAME.match(path.stem))
    )


def parse_emo_evaluation(path: str | os.PathLike) -> list[LabeledTurn]:
    """Turn lines of an EmoEvaluation file, in file order.

    Only lines starting with ``[`` are turns; evaluator (``C-E1:``, ``A-E3:``), header and
    blank lines are skipped. Raises :class:`DataFormatError` for a turn line that does not
    parse, an unknown code, a turn of another dialogue, or a turn labelled twice.
    """
    path = Path(path)
    dialogue_id = path.stem
    turns, seen = [], {}
    for line_number, line in enumerate(_read_lines(path), start=1):
        if not line.startswith("["):
            continue
        where = f"{path}, line {line_number}"
        match = _LABEL_LINE.match(line)
        if match is None:
            raise DataFormatError(
                f"{where}: cannot parse label line {line!r}; expected "
                "'[START - END]<TAB>TURN_ID<TAB>CODE<TAB>[V, A, D]'. Re-extract this file from the IEMOCAP release."
            )
        try:
            start, end = float(match["start"]), float(match["end"])
        except ValueError:
            raise DataFormatError(
                f"{where}: times in {line!r} are not numbers (expected '[6.2901 - 8.2357]')."
            ) from None
        if end < start:
            raise DataFormatError(f"{where}: turn ends ({end}) before it starts ({start}) in {line!r}.")
        turn_id, code = match["turn"], match["code"]
        speaker = turn_speaker(turn_id, dialogue_id)
        if speaker is None:
            raise DataFormatError(
                f"{where}: turn id {turn_id!r} is not a turn of dialogue {dialogue_id!r} "
                f"(expected '{dialogue_id}_F000' or '{dialogue_id}_M000' style ids)."
            )
        if code not in _KNOWN_CODES:
            raise DataFormatError(
                f"{where}: unknown emotion code {code!r} for {turn_id}; allowed codes: {', '.join(_KNOWN_CODES)}."
            )
        if turn_id in seen:
            raise DataFormatError(f"{where}: turn {turn_id} is labelled again (first at line {seen[turn_id]}).")
        seen[turn_id] = line_number
        turns.append(LabeledTurn(turn_id, speaker, start, end, code, line_number))
    return turns


def parse_transcription(path: str | os.PathLike) -> dict[str, str]:
    """``{turn_id: text}`` for the numbered turns of a transcription file, text as released.

    Lines whose first field is not a numbered turn of the file's dialogue (``M: [BREATHING]``,
    ``Ses01F_script01_1_MXX0 ...`` unsegmented speech, blank lines) are skipped.
    """
    path = Path(path)
    dialogue_id = path.stem
    texts, seen = {}, {}
    for line_number, line in enumerate(_read_lines(path), start=1):
        fields = line.split(maxsplit=1)
        if not fields or turn_speaker(fields[0].rstrip(":"), dialogue_id) is None:
            continue
        where = f"{path}, line {line_number}"
        match = _TRANSCRIPTION_LINE.match(line)
        if match is None:
            raise DataFormatError(
                f"{where}: cannot parse transcription line {line!r}; expected 'TURN_ID [START-END]: TEXT'. "
                "Re-extract this file from the IEMOCAP release."
            )
        turn_id = match["turn"]
        if turn_id in seen:
            raise DataFormatError(f"{where}: turn {turn_id} is transcribed again (first at line {seen[turn_id]}).")
        seen[turn_id] = line_number
        texts[turn_id] = match["text"].strip()
    return texts


def find_session_dirs(raw_dir: str | os.PathLike) -> dict[int, Path]:
    """``{session: folder}`` for the ``Session1``..``Session5`` folders of an IEMOCAP release.

    ``raw_dir`` is ``IEMOCAP_full_release`` itself or the folder that contains it.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataNotFoundError(f"IEMOCAP folder {raw_dir} does not exist. Expected the layout {_EXPECTED_LAYOUT}.")
    for root in (raw_dir, raw_dir / "IEMOCAP_full_release"):
        sessions = {number: root / f"Session{number}" for number in SESSIONS if (root / f"Session{number}").is_dir()}
        if sessions:
            return sessions
    raise DataNotFoundError(
        f"No Session1..Session5 folder in {raw_dir}. Point to the unpacked IEMOCAP_full_release folder: "
        f"expected the layout {_EXPECTED_LAYOUT}."
    )


class _MediaCounts(Counter):
    def summary(self) -> str:
        return (
            f"{self['wav_missing']} of {self['wav']} wav files missing, {self['wav_unusable']} undecodable; "
            f"{self['avi_missing']} of {self['avi']} dialogue avi files missing, {self['avi_unusable']} undecodable"
        )


def _check_media_file(
    path: Path, kind: str, check_media: bool, counts: _MediaCounts
) -> tuple[str | None, bool, float | None]:
    """(resolved path or None if missing, whether it is usable, duration if probed) of a ``kind`` ("wav"/"avi") file.

    Without ``check_media`` an existing file counts as usable; with it, the file must open and
    the first frame of its audio (wav) or video (avi) stream must decode.
    """
    counts[kind] += 1
    if not path.is_file():
        counts[f"{kind}_missing"] += 1
        return None, False, None
    resolved = str(path.resolve())
    if not check_media:
        return resolved, True, None
    try:
        info = probe_media(path)
    except MediaDecodeError as error:
        logger.debug("IEMOCAP: %s", error)
        counts[f"{kind}_unusable"] += 1
        return resolved, False, None
    usable = info.has_audio if kind == "wav" else info.has_video
    if not usable:
        counts[f"{kind}_unusable"] += 1
        logger.debug("IEMOCAP: %s has no decodable %s stream", path, "audio" if kind == "wav" else "video")
    return resolved, usable, info.duration


def read_dialogue(
    session: int,
    session_dir: Path,
    label_file: Path,
    keep_unlabeled: bool,
    check_media: bool,
    media_counts: _MediaCounts,
    dropped: Counter,
) -> Dialogue:
    """Labels, text and media of one dialogue, turns sorted by start time."""
    dialogue_id = label_file.stem
    labeled_turns = parse_emo_evaluation(label_file)
    transcription_file = session_dir / "dialog" / "transcriptions" / f"{dialogue_id}.txt"
    if not transcription_file.is_file():
        raise DataNotFoundError(
            f"{label_file} labels dialogue {dialogue_id} but its transcription {transcription_file} is missing. "
            "Re-extract the dialog/transcriptions folder of the release."
        )
    texts = parse_transcription(transcription_file)

    kept = []
    for labeled in labeled_turns:
        if labeled.code in IEMOCAP_CODES:
            emotion = IEMOCAP_CODES.index(labeled.code)
        elif keep_unlabeled:
            emotion = UNLABELED
        else:
            dropped[labeled.code] += 1
            continue
        if labeled.turn_id not in texts:
            raise DataFormatError(
                f"{label_file}, line {labeled.line_number}: turn {labeled.turn_id} is labelled but has no line "
                f"in {transcription_file}. The two files come from different releases or one is truncated: "
                "re-extract both."
            )
        kept.append((labeled, emotion))
    kept.sort(key=lambda item: (item[0].start, item[0].end, item[0].turn_id))

    video_path, video_usable, video_duration = None, False, None
    if kept:
        avi = session_dir / "dialog" / "avi" / "DivX" / f"{dialogue_id}.avi"
        # One probe per dialogue recording, shared by all its turns.
        video_path, video_usable, video_duration = _check_media_file(avi, "avi", check_media, media_counts)

    utterances = []
    for labeled, emotion in kept:
        wav = session_dir / "sentences" / "wav" / dialogue_id / f"{labeled.turn_id}.wav"
        audio_path, audio_usable, _ = _check_media_file(wav, "wav", check_media, media_counts)
        # A turn that starts after the recording ends has no frames to cut.
        has_video = video_usable and (video_duration is None or labeled.start < video_duration)
        utterances.append(
            Utterance(
                utterance_id=labeled.turn_id,
                speaker=labeled.speaker,
                text=texts[labeled.turn_id],
                emotion=emotion,
                start=labeled.start,
                end=labeled.end,
                audio_path=audio_path,
                video_path=video_path,
                has_audio=audio_usable,
                has_video=has_video,
            )
        )
    return Dialogue(dialogue_id=dialogue_id, session=session, utterances=utterances)


def read_iemocap(
    raw_dir: str | os.PathLike, keep_unlabeled: bool = False, check_media: bool = True
) -> list[Dialogue]:
    """Every dialogue of the release that has at least one kept turn, in dialogue-name order."""
    dialogues = []
    media_counts, dropped = _MediaCounts(), Counter()
    for session, session_dir in sorted(find_session_dirs(raw_dir).items()):
        label_dir = session_dir / "dialog" / "EmoEvaluation"
        if not label_dir.is_dir():
            raise DataNotFoundError(
                f"{label_dir} is missing: every IEMOCAP session needs its labels there. "
                f"Expected the layout {_EXPECTED_LAYOUT}."
            )
        for label_file in sorted(path for path in label_dir.iterdir() if _is_release_file(path, ".txt")):
            dialogue = read_dialogue(
                session, session_dir, label_file, keep_unlabeled, check_media, media_counts, dropped
            )
            if dialogue.utterances:
                dialogues.append(dialogue)
    dialogues.sort(key=lambda dialogue: dialogue.dialogue_id)
    num_utterances = sum(len(dialogue.utterances) for dialogue in dialogues)
    dropped_text = ", ".join(f"{count} {code}" for code, count in sorted(dropped.items())) or "none"
    logger.info(
        "IEMOCAP: %d utterances in %d dialogues from %s; dropped turns outside the 6 classes: %s.",
        num_utterances, len(dialogues), raw_dir, dropped_text,
    )
    problems = sum(media_counts[key] for key in ("wav_missing", "wav_unusable", "avi_missing", "avi_unusable"))
    checked = "decoding checked" if check_media else "existence only, decoding not checked"
    (logger.warning if problems else logger.info)("IEMOCAP media (%s): %s.", checked, media_counts.summary())
    return dialogues


def _check_validation_fraction(validation_fraction: float):
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}.")


def split_dialogue_ids(dialogue_ids: list[str], validation_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, validation) dialogue ids: a seeded ``validation_fraction`` of whole dialogues goes to validation.

    Deterministic for a seed and independent of the input order; at least one dialogue goes to
    validation when the fraction is positive and there are two or more dialogues.
    """
    _check_validation_fraction(validation_fraction)
    ordered = sorted(dialogue_ids)
    num_validation = round(validation_fraction * len(ordered))
    if validation_fraction > 0 and len(ordered) > 1:
        num_validation = min(max(num_validation, 1), len(ordered) - 1)
    validation = set(random.Random(seed).sample(ordered, num_validation))
    return [d for d in ordered if d not in validation], [d for d in ordered if d in validation]


def iemocap_features() -> datasets.Features:
    """Columns of the IEMOCAP ``DatasetDict`` (the data contract plus ``utterance_id``, the release's turn id)."""
    return contract_features("iemocap", utterance_id="string")


@dataclass
class IEMOCAPConfig(datasets.BuilderConfig):
    """Options of :class:`IEMOCAPBuilder`; ``data_dir`` is the ``IEMOCAP_full_release`` folder.

    Args:
        keep_unlabeled: keep turns labelled outside the 6 classes as context, with ``emotion = -1``.
        validation_fraction: share of the session 1-4 dialogues held out for validation.
        seed: seed of the validation draw.
        check_media: probe each wav and each dialogue avi (first frame only) so ``has_audio`` and
            ``has_video`` mean "decodable"; without it they mean "file exists".
    """

    keep_unlabeled: bool = False
    validation_fraction: float = 0.1
    seed: int = 42
    check_media: bool = True

    def __post_init__(self):
        super().__post_init__()
        _check_validation_fraction(self.validation_fraction)


class IEMOCAPBuilder(datasets.GeneratorBasedBuilder):
    """Builds IEMOCAP (6 classes, sessions 1-4 train/validation, session 5 test) from the official release."""

    BUILDER_CONFIG_CLASS = IEMOCAPConfig
    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="IEMOCAP dyadic conversations, one row per turn, for emotion recognition in conversation.",
            features=iemocap_features(),
            homepage=_HOMEPAGE,
            citation=IEMOCAP_CITATION,
            license=_LICENSE,
        )

    def _split_generators(self, dl_manager):
        # Everything is read and checked here, before any split is written: errors raised in
        # _generate_examples would reach the caller wrapped in a DatasetGenerationError.
        if not self.config.data_dir:
            raise DataNotFoundError(f"IEMOCAPBuilder needs data_dir: the folder laid out as {_EXPECTED_LAYOUT}.")
        dialogues = read_iemocap(
            self.config.data_dir, keep_unlabeled=self.config.keep_unlabeled, check_media=self.config.check_media
        )
        training = [dialogue for dialogue in dialogues if dialogue.session not in TEST_SESSIONS]
        train_ids, validation_ids = split_dialogue_ids(
            [dialogue.dialogue_id for dialogue in training], self.config.validation_fraction, self.config.seed
        )
        by_id = {dialogue.dialogue_id: dialogue for dialogue in dialogues}
        test = [dialogue for dialogue in dialogues if dialogue.session in TEST_SESSIONS]
        if not test:
            logger.warning("IEMOCAP: no Session5 dialogues in %s, the test split is empty.", self.config.data_dir)
        splits = {
            datasets.Split.TRAIN: [by_id[i] for i in train_ids],
            datasets.Split.VALIDATION: [by_id[i] for i in validation_ids],
            datasets.Split.TEST: test,
        }
        # `datasets` cannot read back a split with no rows: leave empty ones out (build_iemocap adds them back).
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"dialogues": split_dialogues})
            for name, split_dialogues in splits.items()
            if split_dialogues
        ]

    def _generate_examples(self, dialogues: list[Dialogue]):
        for dialogue in dialogues:
            for turn, utterance in enumerate(dialogue.utterances):
                yield utterance.utterance_id, {
                    "dialogue_id": dialogue.dialogue_id,
                    "turn": turn,
                    "utterance_id": utterance.utterance_id,
                    "speaker": utterance.speaker,
                    "text": utterance.text,
                    "emotion": utterance.emotion,
                    "audio_path": utterance.audio_path,
                    "video_path": utterance.video_path,
                    "start": utterance.start,
                    "end": utterance.end,
                    "has_audio": utterance.has_audio,
                    "has_video": utterance.has_video,
                }


IEMOCAP_CARD_METADATA = {
    "license": "other",
    "language": ["en"],
    "task_categories": ["text-classification", "audio-classification", "video-classification"],
    "pretty_name": "IEMOCAP (6-class emotion recognition in conversation)",
}

IEMOCAP_LICENSE_NOTICE = (
    "IEMOCAP is distributed by USC SAIL (https://sail.usc.edu/iemocap/) under its release agreement, which "
    "allows research use by the people who signed it and does **not** allow redistribution: this dataset "
    "(transcripts, labels and any media) must not be shared publicly without written permission from USC. "
    "Keep Hub copies private and share them only with people who signed the agreement; "
    "`dataset_scripts/iemocap/prepare_iemocap.py` pushes to a private repository unless told otherwise."
)


def iemocap_dataset_card(dataset_dict: datasets.DatasetDict) -> str:
    """Markdown body of the dataset card of a prepared IEMOCAP folder."""
    from .export import dataset_card_body
    from .summary import media_report, summarize

    report = "\n".join(f"  - {line}" for line in media_report(dataset_dict))
    return dataset_card_body(
        title="IEMOCAP for emotion recognition in conversation",
        summary=(
            "The Interactive Emotional Dyadic Motion Capture database (Busso et al., 2008): five sessions of "
            "dyadic conversations between actors, one dialogue per improvisation or script, each turn labelled "
            "by several annotators. This is the 6-class setting of the ERC literature (happy, sad, neutral, "
            "angry, excited, frustrated): sessions 1-4 give `train` and a seeded share of their dialogues as "
            "`validation`, session 5 is `test`. Prepared from `IEMOCAP_full_release` with `hf-erc prepare iemocap`."
        ),
        dataset_dict=dataset_dict,
        split_table=summarize(dataset_dict),
        notes=(
            "- `emotion` is the release's consensus label (the code on each turn line of "
            "`dialog/EmoEvaluation/<dialogue>.txt`), mapped hap, sad, neu, ang, exc, fru -> happy, sad, neutral, "
            "angry, excited, frustrated. Turns labelled xxx (no agreement), sur, fea, dis or oth are dropped, or "
            "kept as unlabelled context with `emotion = -1` when prepared with `--keep-unlabeled`.\n"
            "- `utterance_id` is the release's turn id (`Ses01F_impro01_F000`); `speaker` is its gender letter, "
            "the speaker of that turn (the letter after the session number only says which actor wore the "
            "motion-capture markers).\n"
            "- `text` is the turn's line of `dialog/transcriptions/<dialogue>.txt`, unchanged (noise tags such "
            "as `[LAUGHTER]` kept). Unsegmented speech (`..._MXX0`) and noise-only lines are not turns.\n"
            "- Rows are in dialogue-name order, turns in start-time order; `turn` counts the kept turns from 0.\n"
            "- `start`/`end` are seconds within the dialogue recording. `audio_path` is the turn's own wav "
            "(`sentences/wav`); `video_path` is the whole dialogue's avi (`dialog/avi/DivX`): cut the turn out of "
            "it with `hf_erc.data.media.decode_video_frames(video_path, start=start, end=end)`.\n"
            "- Media in this copy:\n" + report
        ),
        citation=IEMOCAP_CITATION,
        license_text=IEMOCAP_LICENSE_NOTICE,
    )


def build_iemocap(
    raw_dir: str | os.PathLike,
    *,
    keep_unlabeled: bool = False,
    validation_fraction: float = 0.1,
    seed: int = 42,
    check_media: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """IEMOCAP as a ``DatasetDict`` with ``train``/``validation``/``test`` (see :class:`IEMOCAPConfig`).

    The result is cached under ``cache_dir`` (``datasets``' cache by default) per release path
    and options, so a second call with the same arguments reads the cache.
    """
    builder = IEMOCAPBuilder(
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        data_dir=os.path.abspath(raw_dir),
        keep_unlabeled=keep_unlabeled,
        validation_fraction=validation_fraction,
        seed=seed,
        check_media=check_media,
    )
    builder.download_and_prepare()
    dataset = builder.as_dataset()
    features = builder.info.features
    empty = {name: [] for name in features}
    return datasets.DatasetDict(
        {
            split: dataset[split] if split in dataset else datasets.Dataset.from_dict(empty, features=features)
            for split in ("train", "validation", "test")
        }
    )
