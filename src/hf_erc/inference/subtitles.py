"""Subtitle files (SubRip ``.srt``, WebVTT ``.vtt``) read as conversations to label: every timed cue is one
utterance, its speaker taken from a leading ``NAME:`` or a WebVTT ``<v NAME>`` voice.

Standard library only, so ``hf-erc predict --subtitles`` can check a file before any model is loaded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cue", "SubtitleError", "cues_to_conversation", "parse_srt", "parse_vtt", "read_subtitles"]

FORMATS = {".srt": "SubRip", ".vtt": "WebVTT"}
UNKNOWN_SPEAKER = "unknown"
OVERLAP_TOLERANCE_MS = 100  # overlaps shorter than this are rounding: the previous cue's end is clipped
# A feature film's subtitles are about 100 KB with lines under 100 characters: far larger is not a subtitle file.
MAX_SUBTITLE_BYTES = 16 * 2**20
MAX_LINE_CHARACTERS = 5000

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_LOOKS_TIMED = re.compile(r"^\s*\d+:\d{2}")
_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t]|$)")
_VTT_SKIPPED_BLOCK = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t]|$)")
_VOICE = re.compile(r"<v(?:\.[^\s<>]*)?\s+([^<>]+)>", re.IGNORECASE)  # no '<' inside: linear on any line
_TAG = re.compile(r"</?(?:[a-zA-Z][^<>]*|\d[\d:.]*)>")  # <i>, </font>, <c.red>, <v Joey>, <00:00:01.000>
_ASS_TAG = re.compile(r"\{\\[^{}]*\}")  # {\an8}, {\i1}
_DASH = re.compile(r"^[-\u2013\u2014](?![-\d])\s*")  # a dialogue dash, not "--" or "-5"
_SPEAKER = re.compile(r"^([^:]{1,40}):\s+(.+)$", re.DOTALL)
_PARTICLES = {"of", "the", "and", "in", "de", "da", "di", "del", "der", "van", "von", "la", "le"}
_NOT_SPEAKERS = {
    "note", "nb", "n.b.", "ps", "p.s.", "fyi", "warning", "caution", "reminder", "update", "edit", "tip",
    "source", "subtitles", "captions", "translation", "subject", "re", "http", "https", "www",
    "ok", "okay", "yes", "no", "look", "listen", "well", "so", "now", "wait", "remember",
}  # fmt: skip


class SubtitleError(ValueError):
    """A subtitle file that cannot be read as a conversation; the message names the file, cue and line."""


@dataclass(frozen=True)
class Cue:
    """One timed cue: ``index`` is its 1-based position among the file's cues, ``line`` where it starts."""

    index: int
    start: float
    end: float
    speaker: str
    text: str
    line: int


@dataclass
class _Raw:
    """A cue as scanned: times in integer milliseconds (exact comparisons), text lines still raw."""

    index: int
    line: int
    start: int
    end: int
    lines: list[str]
    speaker: str | None = None
    text: str = ""


def read_subtitles(path: str | Path, video_duration: float | None = None) -> list[Cue]:
    """The cues of a ``.srt`` or ``.vtt`` file; with ``video_duration`` (seconds) every cue must start in the video."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SubtitleError(
            f"{path}: unsupported subtitle format {suffix or '(no extension)'!r}: "
            "use a SubRip '.srt' or a WebVTT '.vtt' file."
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SubtitleError(f"{path}: no such subtitle file.") from None
    if not path.is_file():
        raise SubtitleError(f"{path} is not a file: pass a '.srt' or '.vtt' subtitle file.")
    if size > MAX_SUBTITLE_BYTES:
        raise SubtitleError(
            f"{path} is {size / 2**20:.0f} MiB: a subtitle file is at most {MAX_SUBTITLE_BYTES // 2**20} MiB; is it "
            "really subtitles?"
        )
    text = _decode(path.read_bytes(), str(path))
    # A WebVTT file saved as .srt still has its header: read it as what it is.
    parse = parse_vtt if suffix == ".vtt" or _VTT_HEADER.match(text.lstrip("\ufeff")) else parse_srt
    return parse(text, str(path), video_duration=video_duration)


def parse_srt(text: str, source: str = "<srt>", video_duration: float | None = None) -> list[Cue]:
    """Cues of SubRip text: blocks of an optional counter, a ``start --> end`` line and text lines."""
    raws = _scan(_lines(text, source), source, "00:00:01,000 --> 00:00:02,500")
    return _finish(raws, source, "00:00:01,000 --> 00:00:02,500", webvtt=False, video_duration=video_duration)


def parse_vtt(text: str, source: str = "<vtt>", video_duration: float | None = None) -> list[Cue]:
    """Cues of WebVTT text: a ``WEBVTT`` header, then cues; NOTE, STYLE and REGION blocks are skipped."""
    lines = _lines(text, source)
    if not lines or not _VTT_HEADER.match(lines[0][1]):
        first = lines[0][1].strip() if lines else ""
        raise SubtitleError(
            f"{source}: not a WebVTT file: its first line must be 'WEBVTT', got {first[:60]!r} "
            "(a SubRip file should be named '.srt')."
        )
    kept, skipping = [], True  # the header block runs to the first blank line (or a timing line)
    for number, line in lines:
        if not line.strip():
            skipping = False
        elif skipping and "-->" in line:
            skipping = False
        elif not skipping and (not kept or not kept[-1][1].strip()) and _VTT_SKIPPED_BLOCK.match(line):
            skipping = True  # blank-line-preceded NOTE/STYLE/REGION: skip to the next blank line
        kept.append((number, "" if skipping else line))
    example = "00:00:01.000 --> 00:00:02.500"
    return _finish(_scan(kept, source, example), source, example, webvtt=True, video_duration=video_duration)


def cues_to_conversation(cues: list[Cue]) -> dict[str, list[dict]]:
    """The ``{"utterances": [...]}`` conversation the pipelines label, one utterance per cue."""
    return {
        "utterances": [
            {"speaker": cue.speaker, "text": cue.text, "start": cue.start, "end": cue.end} for cue in cues
        ]
    }


def _decode(data: bytes, source: str = "<subtitles>") -> str:
    """Text of a subtitle file: UTF-16 with a BOM, else UTF-8 (BOM or not), else cp1252, else latin-1; bytes with
    NULs (a binary file, or UTF-16 without its BOM) are refused."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise SubtitleError(f"{source}: not valid UTF-16 text ({error.reason}): save it as UTF-8.") from None
    if (nul := data.find(b"\x00")) >= 0:
        raise SubtitleError(
            f"{source} is not a subtitle text file: it holds NUL bytes (the first at byte {nul}), as a binary file "
            "or UTF-16 text without its byte-order mark does; save the subtitles as UTF-8 text."
        )
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


def _lines(text: str, source: str) -> list[tuple[int, str]]:
    """(1-based line number, line) pairs; a BOM and CRLF/CR line ends are tolerated, a line over
    ``MAX_LINE_CHARACTERS`` is not."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = list(enumerate(text.split("\n"), start=1))
    for number, line in lines:
        if len(line) > MAX_LINE_CHARACTERS:
            raise SubtitleError(
                f"{source}: line {number} is {len(line):,} characters long; a subtitle line has at most "
                f"{MAX_LINE_CHARACTERS:,}: is this a subtitle file?"
            )
    return lines


def _scan(lines: list[tuple[int, str]], source: str, example: str) -> list[_Raw]:
    """Cues found by their timing lines, so missing or extra blank lines do not lose any; a counter or
    identifier is the line just above a timing line when it opens a block (or is a bare number)."""
    blank = [not line.strip() for _, line in lines]

    def opens_block(position: int) -> bool:
        return position == 0 or blank[position - 1]

    def is_timing(position: int) -> bool:
        line = lines[position][1]
        if "-->" in line:
            return True
        above = position - 1  # a counter followed by something time-like is a (broken) timing line
        return bool(
            above >= 0 and _LOOKS_TIMED.match(line) and lines[above][1].strip().isdigit() and opens_block(above)
        )

    timings = [position for position in range(len(lines)) if not blank[position] and is_timing(position)]
    firsts = []  # where each cue begins: its identifier, else its timing line
    for k, position in enumerate(timings):
        above = position - 1
        floor = timings[k - 1] if k else -1
        identified = above > floor and not blank[above]
        identified = identified and (opens_block(above) or lines[above][1].strip().isdigit())
        firsts.append(above if identified else position)
    raws = []
    for k, position in enumerate(timings):
        number, line = lines[position][0], lines[firsts[k]][0]
        match = _TIMING.match(lines[position][1])
        times = (_milliseconds(match.groups()[:4]), _milliseconds(match.groups()[4:])) if match else (None, None)
        if None in times:
            raise SubtitleError(
                f"{source}: cue {k + 1} (line {line}): cannot read the timing line {lines[position][1].strip()!r} "
                f"(line {number}): write it as 'start --> end', like {example!r}."
            )
        stop = firsts[k + 1] if k + 1 < len(timings) else len(lines)
        text = [lines[p][1] for p in range(position + 1, stop) if not blank[p]]
        raws.append(_Raw(index=k + 1, line=line, start=times[0], end=times[1], lines=text))
    return raws


def _milliseconds(groups: tuple[str | None, ...]) -> int | None:
    """``(hours?, minutes, seconds, fraction)`` as milliseconds; None when minutes or seconds are over 59."""
    hours, minutes, seconds, fraction = groups
    if int(minutes) > 59 or int(seconds) > 59:
        return None
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(fraction.ljust(3, "0"))


def _clock(milliseconds: int) -> str:
    """Milliseconds as ``HH:MM:SS.mmm`` for messages."""
    seconds, millis = divmod(milliseconds, 1000)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{millis:03d}"


def _clean(lines: list[str], webvtt: bool) -> tuple[str | None, str]:
    """(speaker or None, plain text) of a cue's text lines: formatting tags, dialogue dashes and the speaker
    prefix removed, lines joined with a space."""
    voice, parts = None, []
    for line in lines:
        if webvtt and voice is None and (match := _VOICE.search(line)):
            voice = " ".join(html.unescape(match.group(1)).split()) or None
        line = _TAG.sub("", _ASS_TAG.sub("", line))
        line = _DASH.sub("", (html.unescape(line) if webvtt else line).strip())
        if line:
            parts.append(line)
    text = " ".join(" ".join(parts).split())
    if voice:
        return voice, text
    match = _SPEAKER.match(text)
    if match and _is_name(match.group(1).strip()):
        return match.group(1).strip(), match.group(2).strip()
    return None, text


def _is_name(name: str) -> bool:
    """Whether a ``NAME:`` prefix is a speaker: 1-4 capitalised (or all-caps) words of letters, digits and
    ``'-./``, not a word like ``Note`` (URLs and clock times never reach here: their colon has no space after)."""
    words = name.split()
    if not 1 <= len(words) <= 4 or name.lower() in _NOT_SPEAKERS:
        return False
    if not all(ch.isalnum() or ch in " '-./" for ch in name) or not any(ch.isalpha() for ch in name):
        return False
    if name.isupper():
        return True
    return words[0][0].isupper() and all(w[0].isupper() or w[0].isdigit() or w in _PARTICLES for w in words[1:])


def _finish(
    raws: list[_Raw], source: str, example: str, webvtt: bool, video_duration: float | None
) -> list[Cue]:
    """Cleaned, checked cues: empty ones skipped, speakers carried over, small overlaps and ends past the
    video clipped; reversed, out-of-order, overlapping or after-the-video cues are errors."""
    if not raws:
        raise SubtitleError(f"{source} has no timed cues: expected lines like {example!r}.")
    limit = None if video_duration is None else round(video_duration * 1000)
    kept: list[_Raw] = []
    speaker = UNKNOWN_SPEAKER
    for raw in raws:
        named, raw.text = _clean(raw.lines, webvtt)
        if not raw.text:
            continue
        where = f"{source}: cue {raw.index} (line {raw.line})"
        if raw.end <= raw.start:
            raise SubtitleError(
                f"{where}: ends at {_clock(raw.end)}, not after its start {_clock(raw.start)} (a reversed cue): "
                "fix its timing line so that the end comes after the start."
            )
        if kept:
            previous = kept[-1]
            other = f"cue {previous.index} (line {previous.line})"
            if raw.start < previous.start:
                raise SubtitleError(
                    f"{where}: starts at {_clock(raw.start)}, before {other} which starts at "
                    f"{_clock(previous.start)} (cues out of order): sort the cues by start time."
                )
            if raw.start < previous.end:
                if previous.end - raw.start >= OVERLAP_TOLERANCE_MS or raw.start == previous.start:
                    raise SubtitleError(
                        f"{where}: starts at {_clock(raw.start)}, while {other} lasts until {_clock(previous.end)} "
                        "(overlapping cues): one utterance at a time is expected, so shift or merge them."
                    )
                previous.end = raw.start
        if limit is not None:
            if raw.start >= limit:
                raise SubtitleError(
                    f"{where}: starts at {_clock(raw.start)}, at or after the end of the video "
                    f"({_clock(limit)}): check that the subtitles belong to this video."
                )
            raw.end = min(raw.end, limit)
        speaker = raw.speaker = named or speaker
        kept.append(raw)
    if not kept:
        raise SubtitleError(
            f"{source}: all {len(raws)} cues have empty text once formatting is removed: nothing to label."
        )
    return [Cue(r.index, r.start / 1000, r.end / 1000, r.speaker, r.text, r.line) for r in kept]
