"""Subtitle files (SubRip ``.srt``, WebVTT ``.vtt``) read as conversations to label: every timed cue is one
utterance, its speaker taken from a leading ``NAME:`` or a WebVTT ``<v NAME>`` voice, and carried over to later cues
that name none. Subtitles as people write them (broadcast SDH) hold more than speech; the rules, in short:

Dual-speaker cues. A cue's lines fall into segments: a line that opens with a dialogue dash (``-``, ``–``,
``—``; not ``--`` nor ``-5``) starts a new segment, and so does, in WebVTT, a line with a ``<v NAME>`` voice other
than the current segment's; any other line continues the segment before it (a line wrap). A cue of two or
more segments is one utterance per segment, every one with the cue's own start and end (they share its span). A
first segment without a dash is the broadcast convention "the speaker before goes on, another answers": it keeps
the rules of an ordinary cue (its own ``NAME:``/voice, else the carried-over speaker). A dashed segment's speaker is
its own ``NAME:`` prefix or voice, else ``unknown``: the dash says the speaker changed, so the carried-over name
would be wrong. A cue of one dashed line alone is an ordinary cue (dash dropped, speaker named or carried over).

Speaker carrying. A cue that names no speaker takes the speaker of the utterance before it, which after a
dual-speaker cue is that cue's last utterance's speaker, ``unknown`` when its dash line named nobody. A named
segment of sound descriptions only (``JOEY: (sighs)``) is no utterance but still names the speaker carried on.

Sound descriptions. SDH text that is not speech is kept out of the utterance and reported in its ``flags`` as
``sound: DESCRIPTION`` (brackets dropped, music kept with its notes):

* music: on a line with two or more of ``♪♫♬``, the span from the first to the last; with one,
  from it to the end of the line, or the line up to it when it ends the line (the last line of a song);
* ``[...]`` and ``(...)`` of the SDH shape: at most ``MAX_SOUND_CHARACTERS`` characters, not empty, no ``.!?;``
  inside, and standing at the start of a line (after its dash), right after ``.!?…:`` (``JOEY: [laughs] Hi``,
  ``Got it? [laughs] Yes!``), or at the end of a line; elsewhere (``I (really) mean it``) it is speech and stays.

A segment holding only sound descriptions (``sighs (JOEY)`` when it names its speaker) is no utterance: it flags
the cue's neighbouring utterance (the one before it in the cue, else the one after) with them. A cue holding only
sound descriptions is no utterance either; the utterance before it is flagged
``sound after (cue N, line L): DESCRIPTION``, or, with none before it, the first after it
``sound before (cue N, line L): DESCRIPTION``, so none is lost. Such a cue's timing is not checked, as an empty
cue's is not; a file of nothing else is an error.

Standard library only, so ``hf-erc predict --subtitles`` can check a file before any model is loaded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cue", "SubtitleError", "cues_to_conversation", "parse_srt", "parse_vtt", "read_subtitles"]

FORMATS = {".srt": "SubRip", ".vtt": "WebVTT"}
UNKNOWN_SPEAKER = "unknown"
OVERLAP_TOLERANCE_MS = 100  # overlaps shorter than this are rounding: the previous cue's end is clipped
# A feature film's subtitles are about 100 KB with lines under 100 characters: far larger is not a subtitle file.
MAX_SUBTITLE_BYTES = 16 * 2**20
MAX_LINE_CHARACTERS = 5000
# "[door slams in the distance]" is 28 characters: a longer bracketed span is more likely words than a description.
MAX_SOUND_CHARACTERS = 50

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_LOOKS_TIMED = re.compile(r"^\s*\d+:\d{2}")
_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t]|$)")
_VTT_SKIPPED_BLOCK = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t]|$)")
_VOICE = re.compile(r"<v(?:\.[^\s<>]*)?\s+([^<>]+)>", re.IGNORECASE)  # no '<' inside: linear on any line
_TAG = re.compile(r"</?(?:[a-zA-Z][^<>]*|\d[\d:.]*)>")  # <i>, </font>, <c.red>, <v Joey>, <00:00:01.000>
_ASS_TAG = re.compile(r"\{\\[^{}]*\}")  # {\an8}, {\i1}
_DASH = re.compile(r"^[-\u2013\u2014](?![-\d])\s*")  # a dialogue dash, not "--" or "-5"
_SPEAKER = re.compile(r"^([^:]{1,40}):(?:\s+(.*))?$", re.DOTALL)  # "NAME:" alone: words below
_MUSIC = re.compile("[\u266a\u266b\u266c]")  # ♪ ♫ ♬
_BRACKETED = re.compile(r"\[([^\[\]]*)\]|\(([^()]*)\)")
_SOUND_AFTER = ".!?\u2026:"  # a description right after these (or nothing) opens a sentence: not an aside
_NOT_IN_SOUNDS = ".!?;"  # sentence punctuation: a bracketed sentence is speech
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
    """One utterance of a timed cue: ``index`` is the cue's 1-based position among the file's cues, ``line`` where
    it starts (the utterances of a dual-speaker cue share both, and its times); ``flags`` what was said besides the
    text, such as ``sound: laughs`` (see the module's docstring)."""

    index: int
    start: float
    end: float
    speaker: str
    text: str
    line: int
    flags: tuple[str, ...] = ()


@dataclass
class _Raw:
    """A cue as scanned: times in integer milliseconds (exact comparisons), text lines still raw; once read, its
    utterances as ``[speaker, text, flags]``."""

    index: int
    line: int
    start: int
    end: int
    lines: list[str]
    utterances: list[list] = field(default_factory=list)


@dataclass
class _Segment:
    """One speaker's lines of a cue (tags and the opening dash removed): ``dashed`` when a dialogue dash opens it,
    ``voice`` its WebVTT ``<v NAME>``."""

    dashed: bool
    voice: str | None
    lines: list[str] = field(default_factory=list)


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
    """The ``{"utterances": [...]}`` conversation the pipelines label, one utterance per cue (with its ``flags``
    when it has any)."""
    utterances = []
    for cue in cues:
        utterance = {"speaker": cue.speaker, "text": cue.text, "start": cue.start, "end": cue.end}
        if cue.flags:
            utterance["flags"] = list(cue.flags)
        utterances.append(utterance)
    return {"utterances": utterances}


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


def _segments(lines: list[str], webvtt: bool) -> list[_Segment]:
    """A cue's text lines as segments, one per speaker (see the module's docstring): a dialogue dash, or in WebVTT
    another voice, opens a new one; formatting tags are removed and a line left empty is dropped."""
    segments: list[_Segment] = []
    pending_voice = None  # a voice on a line that is otherwise empty belongs to the next line
    for line in lines:
        voice = pending_voice
        if webvtt and (match := _VOICE.search(line)):
            voice = " ".join(html.unescape(match.group(1)).split()) or None
        line = _TAG.sub("", _ASS_TAG.sub("", line))
        line = (html.unescape(line) if webvtt else line).strip()
        dash = _DASH.match(line)
        if dash:
            line = line[dash.end() :]
        if not line and not dash:
            pending_voice = voice
            continue
        pending_voice = None
        current = segments[-1] if segments else None
        if current is not None and not current.lines and not dash:
            current.voice = current.voice or voice  # the words below a lone dash are that speaker's
        elif current is None or dash or (voice is not None and voice != current.voice):
            if current is not None and not current.lines:
                segments.pop()  # a lone dash with another dash below it: nothing was said
            segments.append(current := _Segment(dashed=bool(dash), voice=voice))
        if line:
            current.lines.append(line)
    return [segment for segment in segments if segment.lines]


def _read_segment(segment: _Segment) -> tuple[str | None, str, list[str]]:
    """(speaker or None, plain text, sound flags) of one segment: a voice, else a ``NAME:`` prefix, names the
    speaker; sound descriptions are taken out of each line; lines are joined with a space."""
    lines = list(segment.lines)
    speaker = segment.voice
    if speaker is None and (match := _SPEAKER.match(lines[0])) and (match.group(2) or len(lines) > 1):
        if _is_name(match.group(1).strip()):
            speaker, lines[0] = match.group(1).strip(), match.group(2) or ""
    texts, flags = [], []
    for line in lines:
        text, sounds = _take_sounds(line)
        texts.append(text)
        flags += [f"sound: {sound}" for sound in sounds]
    return speaker, " ".join(" ".join(texts).split()), flags


def _take_sounds(line: str) -> tuple[str, list[str]]:
    """(``line`` without its sound descriptions, the descriptions in order) by the rules of the module's docstring:
    music between notes, and ``[...]``/``(...)`` of the SDH shape at the start or end of the line or after
    sentence punctuation. Linear in the line's length."""
    spans: list[tuple[int, int, bool]] = []  # (start, end, is music); music is always a description
    notes = [match.start() for match in _MUSIC.finditer(line)]
    if notes:
        first, last = notes[0], notes[-1]
        if len(notes) > 1:
            music = (first, last + 1)
        else:
            music = (first, len(line)) if line[first + 1 :].strip() else (0, first + 1)
        spans.append((*music, True))
    for match in _BRACKETED.finditer(line):
        inner = " ".join((match.group(1) if match.group(1) is not None else match.group(2)).split())
        clear_of_music = not notes or match.end() <= spans[0][0] or match.start() >= spans[0][1]
        shaped = 0 < len(inner) <= MAX_SOUND_CHARACTERS and not any(ch in _NOT_IN_SOUNDS for ch in inner)
        if clear_of_music and shaped:
            spans.append((match.start(), match.end(), False))
    spans.sort()
    taken = [music for _, _, music in spans]
    previous, cursor = "", 0  # the last character of speech before the span, scanning left to right
    for k, (start, end, music) in enumerate(spans):
        if line[cursor:start].strip():
            previous = line[cursor:start].rstrip()[-1]
        if not music:
            taken[k] = not previous or previous in _SOUND_AFTER
            if not taken[k]:
                previous = line[end - 1]
        cursor = end
    clear, cursor = True, len(line)  # whether only descriptions and spaces follow, scanning right to left
    for k in range(len(spans) - 1, -1, -1):
        start, end, _ = spans[k]
        clear = clear and not line[end:cursor].strip()
        taken[k] = taken[k] or clear
        clear = clear and taken[k]
        cursor = start
    kept, sounds, cursor = [], [], 0
    for (start, end, music), take in zip(spans, taken):
        if take:
            kept.append(line[cursor:start])
            sounds.append(" ".join((line[start:end] if music else line[start + 1 : end - 1]).split()))
            cursor = end
    kept.append(line[cursor:])
    return " ".join(" ".join(kept).split()), sounds


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
    """Cleaned, checked cues: each cue read into its utterances (a dual-speaker cue gives several, sharing its
    span), empty ones skipped, sound-only ones reported on a neighbour, speakers carried over, small overlaps and
    ends past the video clipped; reversed, out-of-order, overlapping or after-the-video cues are errors."""
    if not raws:
        raise SubtitleError(f"{source} has no timed cues: expected lines like {example!r}.")
    limit = None if video_duration is None else round(video_duration * 1000)
    kept: list[_Raw] = []
    speaker = UNKNOWN_SPEAKER
    before: list[str] = []  # sound-only cues before the first utterance: flagged on it
    sound_only = []
    for raw in raws:
        utterances, carried = _read_cue(raw.lines, webvtt, speaker)
        if not any(text for _, text, _ in utterances):
            speaker = carried
            sounds = [flag.removeprefix("sound: ") for _, _, flags in utterances for flag in flags]
            if sounds:
                sound_only.append(raw)
                where = "before" if not kept else "after"
                flags = [f"sound {where} (cue {raw.index}, line {raw.line}): {sound}" for sound in sounds]
                (kept[-1].utterances[-1][2] if kept else before).extend(flags)
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
                        "(overlapping cues): one utterance at a time is expected, so shift or merge them; two "
                        "speakers in one cue go on dash lines ('- Hi.' and '- Hello.')."
                    )
                previous.end = raw.start
        if limit is not None:
            if raw.start >= limit:
                raise SubtitleError(
                    f"{where}: starts at {_clock(raw.start)}, at or after the end of the video "
                    f"({_clock(limit)}): check that the subtitles belong to this video."
                )
            raw.end = min(raw.end, limit)
        raw.utterances = _attach_sounds(utterances)
        if not kept:
            raw.utterances[0][2][:0] = before
        speaker = carried
        kept.append(raw)
    if not kept:
        if sound_only:
            raise SubtitleError(
                f"{source}: all {len(raws)} cues are empty or hold only sound descriptions (like cue "
                f"{sound_only[0].index}, line {sound_only[0].line}) once formatting is removed: no speech to label."
            )
        raise SubtitleError(
            f"{source}: all {len(raws)} cues have empty text once formatting is removed: nothing to label."
        )
    return [
        Cue(raw.index, raw.start / 1000, raw.end / 1000, name, text, raw.line, tuple(flags))
        for raw in kept
        for name, text, flags in raw.utterances
    ]


def _read_cue(lines: list[str], webvtt: bool, carried: str) -> tuple[list[list], str]:
    """``[speaker, text, flags]`` per segment of a cue (text empty for a segment of sound descriptions only), by
    the speaker rules of the module's docstring, and the speaker to carry on; ``carried`` is the one carried to
    this cue. A named segment of sounds only (``JOEY: (sighs)``) names its sounds ``sighs (JOEY)`` and carries its
    speaker on."""
    segments = _segments(lines, webvtt)
    utterances = []
    for segment in segments:
        named, text, flags = _read_segment(segment)
        if named:
            speaker = named
        elif len(segments) > 1 and segment.dashed:
            speaker = UNKNOWN_SPEAKER  # a dash marks another speaker: the one before is not this one
        else:
            speaker = carried
        if named and not text:
            flags = [f"{flag} ({named})" for flag in flags]
        utterances.append([speaker, text, flags])
        if text or named:
            carried = speaker
    return utterances, carried


def _attach_sounds(utterances: list[list]) -> list[list]:
    """The utterances with text, each segment of only sound descriptions handed to the one before it in the cue
    (the first one takes those before it)."""
    spoken, waiting = [], []
    for speaker, text, flags in utterances:
        if not text:
            (spoken[-1][2] if spoken else waiting).extend(flags)
            continue
        spoken.append([speaker, text, waiting + flags])
        waiting = []
    return spoken
