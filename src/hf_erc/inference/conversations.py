"""Conversations to label: from JSON (utterances naming their own media files) or from a recording and its
subtitles (every cue an utterance, a dual-speaker cue one per speaker, its audio and frames cut from the recording
by the cue's times; sound descriptions become the utterance's ``flags``), or, without subtitles, from the speech an
ASR model recognises in the recording (:mod:`hf_erc.inference.asr`)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..data.media import MediaDecodeError, probe_media
from .asr import transcribe_cues
from .subtitles import read_subtitles

SUBTITLE_SUFFIXES = (".srt", ".vtt")
# A conversation names its media files; hours of dialogue as JSON are a few MiB.
MAX_CONVERSATION_BYTES = 64 * 2**20
CONVERSATION_EXAMPLE = '{"utterances": [{"speaker": ..., "text": ...}]}'


@dataclass
class Utterance:
    """One turn of a conversation to label; ``start``/``end`` (seconds) cut it from a longer recording."""

    speaker: str
    text: str
    audio: str | None = None
    video: str | None = None
    start: float | None = None
    end: float | None = None
    # Why a modality is missing although the recording was given (e.g. the video has no audio stream).
    missing: dict[str, str] = field(default_factory=dict)
    # What its source said besides the text (subtitles' "sound: laughs"): passed on to the result's flags.
    flags: list[str] = field(default_factory=list)


def read_conversation(source: str | os.PathLike | dict | list) -> list[Utterance]:
    """A conversation from a JSON file, a ``{"utterances": [...]}`` dict or a list of utterance dicts; anything
    else (not JSON, too large or deep, wrong types) is a ``ValueError`` naming the file and the utterance."""
    where = "conversation"
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        source = _read_json(Path(source))
    items = source.get("utterances") if isinstance(source, dict) else source
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: expected a non-empty list of utterances (each with 'speaker' and 'text').")
    return [_utterance(item, f"{where}: utterance {index}") for index, item in enumerate(items)]


def _read_json(path: Path):
    """The JSON value of a conversation file, after checking that it is a readable, not oversized UTF-8 file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as error:
        raise FileNotFoundError(f"Conversation file {path} does not exist.") from error
    if not path.is_file():
        raise ValueError(f"{path} is not a file: pass a conversation JSON file.")
    if size > MAX_CONVERSATION_BYTES:
        raise ValueError(
            f"{path} is {size / 2**20:.0f} MiB: a conversation file is at most {MAX_CONVERSATION_BYTES // 2**20} MiB "
            "(utterances name their media files rather than holding them)."
        )
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        problem = f"{error.reason} at byte {error.start}"
        raise ValueError(f"{path} is not UTF-8 text ({problem}): save it as UTF-8.") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); expected {CONVERSATION_EXAMPLE}.") from error
    except RecursionError:  # not chained: its traceback would be thousands of lines
        raise ValueError(f"{path} is nested too deeply for a conversation: expected {CONVERSATION_EXAMPLE}.") from None


def _utterance(item, where: str) -> Utterance:
    """One utterance dict, its fields checked: a string ``text``, a ``speaker`` name, media paths, times and
    optional ``flags`` (a list of strings, as :func:`hf_erc.inference.subtitles.cues_to_conversation` writes)."""
    if not isinstance(item, dict) or not isinstance(item.get("text"), str) or "speaker" not in item:
        raise ValueError(f"{where} needs a 'speaker' and a string 'text', got {short_repr(item)}.")
    speaker = item["speaker"]
    if isinstance(speaker, bool) or not isinstance(speaker, (str, int)):
        raise ValueError(f"{where}: 'speaker' must be a name (a string), got {short_repr(speaker)}.")
    for name in ("audio", "video"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise ValueError(f"{where}: '{name}' must be the path of a media file, got {short_repr(item[name])}.")
    times = [item.get(name) for name in ("start", "end")]
    for name, value in zip(("start", "end"), times):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where} has '{name}' {short_repr(value)}: expected seconds, a number >= 0.")
    if None not in times and times[1] <= times[0]:
        raise ValueError(f"{where} ends at {times[1]} s, not after its start {times[0]} s.")
    flags = item.get("flags") or []
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        raise ValueError(f"{where}: 'flags' must be a list of strings, got {short_repr(flags)}.")
    return Utterance(str(speaker), item["text"], item.get("audio"), item.get("video"), *times, flags=list(flags))


def short_repr(value, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Recording:
    """What a video file holds, as far as labelling its cues needs."""

    path: str
    duration: float | None
    has_audio: bool
    has_video: bool


def probe_recording(path: str | os.PathLike) -> Recording:
    """Open ``path`` and check it decodes; a clear error naming the file when it does not."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Video {path} does not exist.")
    try:
        info = probe_media(path, decode=True)
    except MediaDecodeError as error:
        raise ValueError(f"Video {path} cannot be decoded ({error.reason}): re-encode it (e.g. to H.264/AAC mp4).") from error
    if not info.has_audio and not info.has_video:
        raise ValueError(f"{path} holds neither an audio nor a video stream that decodes.")
    return Recording(path, info.duration, info.has_audio, info.has_video)


def conversation_from_video(video: str | os.PathLike, subtitles: str | os.PathLike) -> list[Utterance]:
    """Every subtitle cue of ``video`` as an utterance (speaker from ``NAME:`` or ``<v NAME>``; a dual-speaker cue
    gives one per speaker, sharing the cue's times), its audio and frames cut from ``video`` by the cue's times and
    its sound descriptions in ``flags`` (see :mod:`hf_erc.inference.subtitles`)."""
    recording = probe_recording(video)
    return utterances_from_cues(recording, read_subtitles(subtitles, video_duration=recording.duration))


def conversation_from_asr(
    video: str | os.PathLike, model, device=None, chunk_length_s: float | None = 30
) -> list[Utterance]:
    """Every stretch of speech that the ASR ``model`` (id, folder or built transformers pipeline; see
    :func:`hf_erc.inference.asr.transcribe_cues`) finds in ``video`` as an utterance of speaker ``"unknown"``, for recordings
    without subtitles; audio and frames are cut from ``video`` as for subtitle cues."""
    recording = probe_recording(video)
    if not recording.has_audio:
        raise ValueError(
            f"{recording.path} has no audio stream that decodes: speech recognition needs one; give the video's "
            "subtitles instead."
        )
    cues = transcribe_cues(recording.path, model, device=device, chunk_length_s=chunk_length_s)
    if not cues:
        name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
        raise ValueError(f"Speech recognition ({name}) found no speech in {recording.path}: nothing to label.")
    return utterances_from_cues(recording, cues)


def utterances_from_cues(recording: Recording, cues) -> list[Utterance]:
    """One utterance per timed cue (subtitle or recognised speech) of ``recording``, its audio and frames cut by the
    cue's times and the cue's ``flags`` kept; a stream the recording lacks is left out and the reason kept in
    ``missing``."""
    missing = {
        modality: f"{recording.path} has no {modality} stream that decodes"
        for modality, present in (("audio", recording.has_audio), ("video", recording.has_video))
        if not present
    }
    return [
        Utterance(
            cue.speaker,
            cue.text,
            None if "audio" in missing else recording.path,
            None if "video" in missing else recording.path,
            cue.start,
            cue.end,
            dict(missing),
            list(getattr(cue, "flags", ())),
        )
        for cue in cues
    ]


def subtitles_beside(video: str | os.PathLike) -> Path:
    """The subtitle file named like ``video`` (``talk.mp4`` -> ``talk.srt`` or ``talk.vtt``)."""
    video = Path(video)
    for suffix in SUBTITLE_SUFFIXES:
        candidate = video.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"No subtitles for {video}: expected {video.with_suffix('.srt').name} or {video.with_suffix('.vtt').name} "
        "beside it (or pass --subtitles, or --asr MODEL to transcribe it)."
    )
