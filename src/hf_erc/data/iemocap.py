"""IEMOCAP builder: the official ``IEMOCAP_full_release`` folder as an utterance-level ``DatasetDict``.

Expected layout (the USC release, unchanged)::

    IEMOCAP_full_release/
      Session{1..5}/
        dialog/EmoEvaluation/<dialogue>.txt      per-turn labels (the "[start - end]\\tturn\\tcode\\t[v, a, d]" lines)
        dialog/transcriptions/<dialogue>.txt     "<turn> [start-end]: text" lines
        dialog/avi/DivX/<dialogue>.avi           the dialogue recording (both actors)
        sentences/wav/<dialogue>/<turn>.wav      one wav per turn

Rows follow the data contract of ``DESIGN.md``: one per labelled turn, dialogues in name
order, turns in the order of their lines in the dialogue's transcription file. That is the release's
own order, the one the community's IEMOCAP features (DialogueRNN/COSMIC) and TelME's and MAGTKD's
CSVs follow (it reproduces every row of theirs); it is not start-time order, since overlapping
turns are transcribed out of it (178 training turns of 46 dialogues). The six classes are ``hf_erc.labels.IEMOCAP_EMOTIONS``;
turns labelled ``xxx``/``sur``/``fea``/``dis``/``oth`` are dropped, or kept as unlabelled
context (``emotion = -1``) with ``keep_unlabeled=True``. Sessions 1-4 give ``train`` and a
``validation`` set of whole dialogues, session 5 gives ``test``. The validation dialogues are a
seeded draw (``validation_split="random"``, the default) or the fixed 12 dialogues of TelME's and
MAGTKD's released code (``validation_split="reference"``, shipped as
``hf_erc/resources/iemocap_reference_split.json``, which also puts the test dialogues in those
authors' order: :func:`reference_test_order`). A turn's video is the slice ``[start, end)`` of
its dialogue's avi (see ``hf_erc.data.media.decode_video_frames``).

What counts as an error and what is skipped:

* errors (:class:`~hf_erc.data.errors.DataNotFoundError`): no ``Session1``..``Session5``
  folder, a session without ``dialog/EmoEvaluation``, a labelled dialogue without its
  transcription file;
* errors (:class:`~hf_erc.data.errors.DataFormatError`): with the reference split, a listed
  validation dialogue that the release lacks (the split would silently differ from the papers');
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

import functools
import json
import logging
import os
import random
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import datasets

from ..labels import IEMOCAP_CODES
from . import iemocap_files
from .contract import contract_features
from .errors import DataFormatError, DataNotFoundError
from .export import dataset_card_body
from .fingerprints import release_fingerprint
from .iemocap_files import _is_release_file, parse_emo_evaluation, parse_transcription
from .media import MediaDecodeError, probe_media
from .summary import media_report, summarize

logger = logging.getLogger(__name__)

SESSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)
TEST_SESSIONS: tuple[int, ...] = (5,)
UNLABELED = -1
# How the session 1-4 dialogues are split into train and validation (see IEMOCAPConfig).
VALIDATION_SPLITS: tuple[str, ...] = ("random", "reference")
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SEED = 42
# Config name of the reference split: it names the cache folder and DatasetInfo.config_name.
REFERENCE_CONFIG_NAME = "reference-split"

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
    """Labels, text and media of one dialogue, turns in the order of the transcription file's lines."""
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
    line_position = {turn_id: position for position, turn_id in enumerate(texts)}
    kept.sort(key=lambda item: line_position[item[0].turn_id])

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


@functools.lru_cache(maxsize=1)
def _reference_split() -> dict:
    path = resources.files("hf_erc") / "resources" / "iemocap_reference_split.json"
    return json.loads(path.read_text(encoding="utf-8"))


def reference_validation_dialogues() -> tuple[str, ...]:
    """The 12 session 1-4 validation dialogues of TelME's and MAGTKD's released code, in name order.

    Shipped as data (``hf_erc/resources/iemocap_reference_split.json``) so that results can be
    compared with the papers' on the same validation set.
    """
    return tuple(sorted(_reference_split()["validation"]))


def reference_test_order() -> tuple[str, ...]:
    """The 31 session 5 dialogues in the order of TelME's and MAGTKD's released test CSVs.

    No rule of the release gives it (their train and validation dialogues are in name order; the
    test order looks like one run's hash-randomised set order), so it is shipped as data with the
    validation list. It matters in reference preprocessing: the authors number a dialogue's first
    speaker against the previous dialogue's speaker table, so the order changes the prompts.
    """
    return tuple(_reference_split()["test_order"])


def in_reference_test_order(dialogue_ids: list[str]) -> list[str]:
    """Session 5 ``dialogue_ids`` in :func:`reference_test_order`; any the list lacks follow, in name order."""
    position = {dialogue: index for index, dialogue in enumerate(reference_test_order())}
    return sorted(dialogue_ids, key=lambda dialogue: (position.get(dialogue, len(position)), dialogue))


def reference_split_dialogue_ids(
    dialogue_ids: list[str], raw_dir: str | os.PathLike | None = None
) -> tuple[list[str], list[str]]:
    """(train, validation) dialogue ids of session 1-4 ``dialogue_ids`` under the reference split.

    Validation is exactly :func:`reference_validation_dialogues`; every other dialogue is train.
    Raises :class:`DataFormatError` naming the listed dialogues absent from ``dialogue_ids`` (and
    the release folder ``raw_dir``): without them the split would silently differ from the papers'.
    """
    reference = reference_validation_dialogues()
    present = set(dialogue_ids)
    missing = [dialogue for dialogue in reference if dialogue not in present]
    if missing:
        where = f"the IEMOCAP release in {raw_dir}" if raw_dir is not None else "the IEMOCAP release"
        raise DataFormatError(
            f"{where} lacks {len(missing)} of the {len(reference)} reference validation dialogues (or has no kept "
            f"turn in them): {', '.join(missing)}. The reference split needs all of them; use the complete "
            "IEMOCAP_full_release or validation_split='random'."
        )
    ordered = sorted(present)
    return [d for d in ordered if d not in reference], [d for d in ordered if d in reference]


def iemocap_release_fingerprint(raw_dir: str | os.PathLike) -> str:
    """The cache key of a build (:func:`hf_erc.data.fingerprints.release_fingerprint`): the contents of every
    session's label files and transcriptions, and the listings of its sentence wavs and dialogue avis."""
    tables, media_dirs = [], []
    for _, session_dir in sorted(find_session_dirs(raw_dir).items()):
        for folder in (session_dir / "dialog" / "EmoEvaluation", session_dir / "dialog" / "transcriptions"):
            tables += sorted(path for path in folder.glob("*.txt") if path.is_file())
        media_dirs += [session_dir / "sentences" / "wav", session_dir / "dialog" / "avi" / "DivX"]
    return release_fingerprint(tables, media_dirs, builder_files=(__file__, iemocap_files.__file__))


def iemocap_features() -> datasets.Features:
    """Columns of the IEMOCAP ``DatasetDict`` (the data contract plus ``utterance_id``, the release's turn id)."""
    return contract_features("iemocap", utterance_id="string")


@dataclass
class IEMOCAPConfig(datasets.BuilderConfig):
    """Options of :class:`IEMOCAPBuilder`; ``data_dir`` is the ``IEMOCAP_full_release`` folder.

    Args:
        keep_unlabeled: keep turns labelled outside the 6 classes as context, with ``emotion = -1``.
        validation_split: ``"random"`` holds out a seeded ``validation_fraction`` of the session 1-4
            dialogues; ``"reference"`` holds out the fixed 12 dialogues of TelME's and MAGTKD's code
            (:func:`reference_validation_dialogues`), where ``validation_fraction`` and ``seed`` do not
            apply, and orders the test dialogues as their CSVs do (:func:`reference_test_order`). The reference config is named ``REFERENCE_CONFIG_NAME``, so the two never share a cache.
        validation_fraction: share of the session 1-4 dialogues held out for validation (random split).
        seed: seed of the validation draw (random split).
        check_media: probe each wav and each dialogue avi (first frame only) so ``has_audio`` and
            ``has_video`` mean "decodable"; without it they mean "file exists".
    """

    keep_unlabeled: bool = False
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    seed: int = DEFAULT_SEED
    check_media: bool = True
    validation_split: str = "random"

    def __post_init__(self):
        if self.validation_split not in VALIDATION_SPLITS:
            raise ValueError(
                f"validation_split must be one of {list(VALIDATION_SPLITS)}, got {self.validation_split!r}."
            )
        if self.validation_split == "reference":
            given = {
                name: value
                for name, value, default in (
                    ("validation_fraction", self.validation_fraction, DEFAULT_VALIDATION_FRACTION),
                    ("seed", self.seed, DEFAULT_SEED),
                )
                if value != default
            }
            if given:
                raise ValueError(
                    f"{', '.join(f'{name}={value!r}' for name, value in given.items())}: only for "
                    "validation_split='random'; the reference split is a fixed list of 12 dialogues."
                )
            if self.name == "default":
                self.name = REFERENCE_CONFIG_NAME
        super().__post_init__()
        _check_validation_fraction(self.validation_fraction)


class IEMOCAPBuilder(datasets.GeneratorBasedBuilder):
    """Builds IEMOCAP (6 classes, sessions 1-4 train/validation, session 5 test) from the official release."""

    BUILDER_CONFIG_CLASS = IEMOCAPConfig
    VERSION = datasets.Version("1.0.0")

    def __init__(self, *args, hash: str | None = None, **kwargs):
        # The cache key follows the release files (iemocap_release_fingerprint): a release rewritten in place, or
        # a transcript corrected, is built again rather than read back from the earlier build's cache.
        if hash is None and kwargs.get("data_dir"):
            hash = iemocap_release_fingerprint(kwargs["data_dir"])
        super().__init__(*args, hash=hash, **kwargs)

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
        training_ids = [dialogue.dialogue_id for dialogue in dialogues if dialogue.session not in TEST_SESSIONS]
        if self.config.validation_split == "reference":
            train_ids, validation_ids = reference_split_dialogue_ids(training_ids, self.config.data_dir)
        else:
            train_ids, validation_ids = split_dialogue_ids(
                training_ids, self.config.validation_fraction, self.config.seed
            )
        by_id = {dialogue.dialogue_id: dialogue for dialogue in dialogues}
        test = [dialogue for dialogue in dialogues if dialogue.session in TEST_SESSIONS]
        if self.config.validation_split == "reference":  # the authors' split, in their order
            test = [by_id[i] for i in in_reference_test_order([dialogue.dialogue_id for dialogue in test])]
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


def _built_validation_split(dataset_dict: datasets.DatasetDict) -> str:
    """``"reference"`` if the splits were built with the reference config (its ``config_name``), else ``"random"``."""
    names = {split.info.config_name for split in dataset_dict.values()}
    return "reference" if REFERENCE_CONFIG_NAME in names else "random"


def iemocap_dataset_card(dataset_dict: datasets.DatasetDict, validation_split: str | None = None) -> str:
    """Markdown body of the dataset card of a prepared IEMOCAP folder.

    ``validation_split`` (``"random"``/``"reference"``) says how validation was drawn; by default it
    is read from the builder config the splits came from.
    """
    if validation_split is None:
        validation_split = _built_validation_split(dataset_dict)
    if validation_split == "reference":
        validation_text = (
            "the fixed 12 dialogues of TelME's and MAGTKD's released code (github.com/yuntaeyang/TelME, "
            "github.com/JieLi-dd/MAGTKD) as `validation` (reference split, `--validation-split reference`)"
        )
    else:
        validation_text = (
            "a seeded share of their dialogues as `validation` (random split, `--validation-split random`)"
        )
    report = "\n".join(f"  - {line}" for line in media_report(dataset_dict))
    return dataset_card_body(
        title="IEMOCAP for emotion recognition in conversation",
        summary=(
            "The Interactive Emotional Dyadic Motion Capture database (Busso et al., 2008): five sessions of "
            "dyadic conversations between actors, one dialogue per improvisation or script, each turn labelled "
            "by several annotators. This is the 6-class setting of the ERC literature (happy, sad, neutral, "
            f"angry, excited, frustrated): sessions 1-4 give `train` and {validation_text}, session 5 is `test`. "
            "Prepared from `IEMOCAP_full_release` with `hf-erc prepare iemocap`."
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
            "- Rows are in dialogue-name order, turns in the order of the transcription files (the release's own, which "
            "the community's features and TelME's/MAGTKD's code follow; not always start-time order); `turn` counts "
            "the kept turns from 0.\n"
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
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SEED,
    check_media: bool = True,
    validation_split: str = "random",
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """IEMOCAP as a ``DatasetDict`` with ``train``/``validation``/``test`` (see :class:`IEMOCAPConfig`).

    The result is cached under ``cache_dir`` (``datasets``' cache by default) per release path, options and
    release files (:func:`iemocap_release_fingerprint`), so a second call on the same files reads the cache and a
    release rewritten in place is built again.
    """
    builder = IEMOCAPBuilder(
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        data_dir=os.path.abspath(raw_dir),
        keep_unlabeled=keep_unlabeled,
        validation_fraction=validation_fraction,
        seed=seed,
        check_media=check_media,
        validation_split=validation_split,
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
