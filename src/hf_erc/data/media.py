"""Audio and video decoding with PyAV (FFmpeg), for MELD clips and IEMOCAP recordings.

Audio comes back as 16 kHz mono float32 in [-1, 1]; video as ``num_frames`` RGB frames
sampled uniformly over the clip (or over ``[start, end)``), resized to ``size``.
Any file that cannot be opened or decoded raises :class:`MediaDecodeError`, which names
the file, so a builder can mark the modality missing and a user knows what to fix.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import av
import numpy as np

DEFAULT_SAMPLING_RATE = 16_000
# Seconds of margin around a turn cut from a long recording: decoding starts this much before it and stops this
# much after it (turns that start earlier are decoded from the beginning).
_AUDIO_SEEK_AFTER = 1.0


class MediaDecodeError(RuntimeError):
    """A media file is missing, truncated or otherwise not decodable."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(
            f"Cannot decode media file {self.path}: {reason}. "
            "Check that the file is complete (re-extract it from the release archive), "
            "or drop it so the utterance is treated as having no audio/video."
        )


@dataclass(frozen=True)
class MediaInfo:
    """What a media file contains, as far as decoding is concerned."""

    has_audio: bool
    has_video: bool
    duration: float | None


def _open(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaDecodeError(path, "file not found")
    try:
        return av.open(path)
    except Exception as error:  # PyAV raises several error types (InvalidDataError, OSError, ...)
        raise MediaDecodeError(path, f"{type(error).__name__}: {error}") from error


@contextmanager
def _decoding(path, kind: str):
    """``(container, stream)`` of ``path``'s first ``kind`` (``"audio"``/``"video"``) stream, closed afterwards; a
    missing stream or any decoder failure inside becomes a :class:`MediaDecodeError` naming the file."""
    container = _open(path)
    try:
        streams = container.streams.audio if kind == "audio" else container.streams.video
        if not streams:
            raise MediaDecodeError(path, f"no {kind} stream")
        yield container, streams[0]
    except MediaDecodeError:
        raise
    except Exception as error:  # PyAV raises several error types while decoding
        raise MediaDecodeError(path, f"{kind} decoding failed ({type(error).__name__}: {error})") from error
    finally:
        container.close()


def probe_media(path: str | os.PathLike, decode: bool = True) -> MediaInfo:
    """Which streams ``path`` holds; with ``decode`` also check that a first frame of each decodes."""
    container = _open(path)
    try:
        has_audio = bool(container.streams.audio)
        has_video = bool(container.streams.video)
        duration = None if container.duration is None else container.duration / 1_000_000
        if decode:
            if has_audio:
                has_audio = _first_frame_decodes(container, path, "audio")
            if has_video:
                container.seek(0)
                has_video = _first_frame_decodes(container, path, "video")
    finally:
        container.close()
    return MediaInfo(has_audio=has_audio, has_video=has_video, duration=duration)


def _first_frame_decodes(container, path, kind: str) -> bool:
    stream = getattr(container.streams, kind)[0]
    try:
        for _ in container.decode(stream):
            return True
    except Exception:
        return False
    return False


def decode_audio(
    path: str | os.PathLike,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Mono float32 waveform of ``path`` resampled to ``sampling_rate``, optionally cut to ``[start, end)`` seconds."""
    with _decoding(path, "audio") as (container, stream):
        # Keep the source channels and average them: FFmpeg's own stereo -> mono matrix scales each
        # channel by 0.707 and sums, which leaves [-1, 1] for loud stereo.
        resampler = av.AudioResampler(format="fltp", rate=sampling_rate)
        chunks = []
        # A turn far into a long recording: seek near it instead of decoding from the beginning, and stop after it.
        # The waveform then starts at the first decoded frame's time (`offset`).
        offset = 0.0
        seek = start is not None and start > _AUDIO_SEEK_AFTER and stream.time_base is not None
        if seek:
            container.seek(int((start - _AUDIO_SEEK_AFTER) / stream.time_base), stream=stream, backward=True)
        for index, frame in enumerate(container.decode(stream)):
            if seek and index == 0:
                offset = float(frame.time or 0.0)
            if end is not None and frame.time is not None and frame.time > end + _AUDIO_SEEK_AFTER:
                break
            for resampled in resampler.resample(frame):
                chunks.append(resampled.to_ndarray().mean(axis=0))
        for resampled in resampler.resample(None):
            chunks.append(resampled.to_ndarray().mean(axis=0))
    if not chunks and seek:
        raise MediaDecodeError(path, f"empty audio segment [{start}, {end}) s (the audio ends before it)")
    if not chunks:
        raise MediaDecodeError(path, "audio stream holds no samples")
    # Lossy codecs (AAC) can overshoot full scale slightly.
    waveform = np.clip(np.concatenate(chunks), -1.0, 1.0).astype(np.float32, copy=False)
    if start is not None or end is not None:
        first = 0 if start is None else max(0, int(round((start - offset) * sampling_rate)))
        last = len(waveform) if end is None else min(len(waveform), int(round((end - offset) * sampling_rate)))
        if last <= first:
            raise MediaDecodeError(path, f"empty audio segment [{start}, {end}) s (file has {len(waveform) / sampling_rate:.2f} s)")
        waveform = waveform[first:last]
    return waveform


def _frames_in_window(container, stream, start: float | None, end: float | None):
    """The decoded frames of ``stream`` whose time lies in ``[start, end)`` (all of them without a window)."""
    index = 0
    for frame in container.decode(stream):
        time = frame.time if frame.time is not None else index / float(stream.average_rate or 25)
        index += 1
        if start is not None and time < start:
            continue
        if end is not None and time >= end:
            break
        yield frame


def decode_video_frames(
    path: str | os.PathLike,
    num_frames: int = 8,
    size: tuple[int, int] | None = (224, 224),
    start: float | None = None,
    end: float | None = None,
    frame_indices=None,
) -> np.ndarray:
    """``num_frames`` RGB frames (uint8, ``[num_frames, height, width, 3]``) sampled uniformly over the clip.

    ``start``/``end`` (seconds) restrict sampling to a segment, which is how an IEMOCAP
    turn is cut from its dialogue recording. ``size`` is ``(height, width)``; ``None``
    keeps the source size. ``frame_indices`` (``number of frames -> indices``) replaces the
    uniform choice: a model's processor passes its own rule, so training reads the frames
    serving reads.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    with _decoding(path, "video") as (container, stream):
        if start:
            # Seek near the segment start (in stream time base) so long recordings are not decoded from 0.
            offset = int(start / stream.time_base) if stream.time_base else 0
            container.seek(max(0, offset), stream=stream, backward=True, any_frame=False)
        frames = []
        for frame in _frames_in_window(container, stream, start, end):
            height, width = size if size is not None else (frame.height, frame.width)
            frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
    if not frames:
        where = "" if start is None and end is None else f" in [{start}, {end}) s"
        raise MediaDecodeError(path, f"no decodable video frames{where}")
    if frame_indices is None:
        indices = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    else:
        indices = frame_indices(len(frames))
    return np.stack([frames[index] for index in indices])


def video_frame_rate(path: str | os.PathLike) -> float:
    """Frames per second of ``path``'s video stream as its container states it (what OpenCV's ``CAP_PROP_FPS``
    reports, which the authors' frame arithmetic uses)."""
    with _decoding(path, "video") as (_, stream):
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise MediaDecodeError(path, "the video stream states no frame rate")
    return float(rate)


def decode_frames_at(
    path: str | os.PathLike, indices, size: tuple[int, int] | None = (224, 224)
) -> np.ndarray:
    """RGB frames (uint8, ``[len(indices), height, width, 3]``) at ``indices``, increasing positions (0-based) in the
    recording, as a loop reading it from its first frame numbers them.

    A position past the recording's last frame gets the last frame found before it (so a window the recording ends
    inside repeats its last frame, as the authors' loop does); no frame at all is a :class:`MediaDecodeError`.
    """
    indices = [int(index) for index in indices]
    if not indices or indices != sorted(indices) or indices[0] < 0:
        raise ValueError(f"indices must be increasing positions >= 0, got {indices}")
    wanted = set(indices)
    found = {}
    with _decoding(path, "video") as (container, stream):
        rate = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0) or None
        origin = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        if rate and stream.time_base and indices[0] / rate > 1.0:
            # Seek to a key frame a second before the first wanted frame, so a turn late in a long recording is not
            # decoded from its start; positions then come from the frames' times.
            container.seek(int((indices[0] / rate - 1.0 + origin) / stream.time_base), stream=stream, backward=True)
        for count, frame in enumerate(container.decode(stream)):
            position = count if frame.time is None or not rate else round((frame.time - origin) * rate)
            if position > indices[-1]:
                break
            if position in wanted:
                height, width = size if size is not None else (frame.height, frame.width)
                found[position] = frame.to_ndarray(format="rgb24", width=width, height=height)
    if not found:
        raise MediaDecodeError(path, f"no video frame at positions {indices[0]}-{indices[-1]} (the recording ends before)")
    frames, last = [], found[min(found)]
    for index in indices:
        last = found.get(index, last)
        frames.append(last)
    return np.stack(frames)


def resized_frame_size(path: str | os.PathLike, shortest_edge: int) -> tuple[int, int]:
    """``(height, width)`` of the clip's frames resized to ``shortest_edge`` on their shorter side, aspect kept
    (an image processor then centre-crops, as TelME's reference does after resizing)."""
    with _decoding(path, "video") as (_, stream):
        height, width = stream.codec_context.height, stream.codec_context.width
    if not height or not width:
        return shortest_edge, shortest_edge
    if height <= width:
        return shortest_edge, max(shortest_edge, round(shortest_edge * width / height))
    return max(shortest_edge, round(shortest_edge * height / width)), shortest_edge


def count_video_frames(path: str | os.PathLike, start: float | None = None, end: float | None = None) -> int:
    """How many frames of ``path`` (or of its ``[start, end)`` seconds) decode: what a frame rule chooses among."""
    with _decoding(path, "video") as (container, stream):
        count = sum(1 for _ in _frames_in_window(container, stream, start, end))
    return count
