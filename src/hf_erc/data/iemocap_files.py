"""Readers of IEMOCAP's text files: the EmoEvaluation label files and the transcriptions, with the turn-id
conventions they share (``Ses01F_impro01_M003``: session, dialogue, speaker letter, turn number)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..labels import IEMOCAP_CODES, IEMOCAP_EXCLUDED_CODES
from .errors import DataFormatError


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
