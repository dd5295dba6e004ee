"""Writers of small but real media files (PyAV/FFmpeg) for tests.

Video frames carry their own index: frame ``i`` has a flat left half of brightness
``LEVELS[i % 16]`` and a flat right half of brightness ``LEVELS[i // 16]``. Flat 16-pixel
blocks survive lossy coding almost exactly, so :func:`frame_index` recovers ``i`` from a
decoded (and even resized) frame and tests can check which frames were sampled. Frame ``i``
is shown at ``i / fps`` seconds.

Audio is a sine of ``frequency`` Hz, by default at amplitude 0.5; stereo files carry the
same sine in both channels.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

__all__ = [
    "AMPLITUDE",
    "LEVELS",
    "MAX_FRAMES",
    "frame_index",
    "frame_pixels",
    "sine",
    "write_avi",
    "write_corrupt",
    "write_mp4",
    "write_wav",
]

# 16 brightness levels, 16 apart, centred in their bins so coding noise up to +-7 is harmless.
LEVELS = np.arange(16) * 16 + 8
MAX_FRAMES = 16 * 16
AMPLITUDE = 0.5


def frame_pixels(index: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 frame ``[height, width, 3]`` that encodes ``index`` (see module docstring)."""
    if not 0 <= index < MAX_FRAMES:
        raise ValueError(f"frame index {index} outside [0, {MAX_FRAMES})")
    height, width = size
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = LEVELS[index % 16]
    frame[:, width // 2 :] = LEVELS[index // 16]
    return frame


def frame_index(frame: np.ndarray) -> int:
    """Index encoded in a decoded RGB frame written by :func:`frame_pixels` (any size >= 4x4)."""
    height, width = frame.shape[:2]
    rows = slice(height // 4, height - height // 4)
    left = frame[rows, width // 8 : width // 2 - width // 8].mean()
    right = frame[rows, width // 2 + width // 8 : width - width // 8].mean()
    low = int(np.clip(np.rint((left - 8) / 16), 0, 15))
    high = int(np.clip(np.rint((right - 8) / 16), 0, 15))
    return high * 16 + low


def sine(
    seconds: float, sampling_rate: int, frequency: float = 440.0, channels: int = 1, amplitude: float = AMPLITUDE
) -> np.ndarray:
    """float32 ``[channels, samples]`` sine, the same in every channel."""
    samples = int(round(seconds * sampling_rate))
    wave = amplitude * np.sin(2 * np.pi * frequency * np.arange(samples) / sampling_rate)
    return np.repeat(wave[None, :], channels, axis=0).astype(np.float32)


def _encode(container, stream, frame):
    for packet in stream.encode(frame):
        container.mux(packet)


def _write_audio(container, stream, waveform: np.ndarray, sampling_rate: int, chunk: int = 1024):
    """Encode a float ``[channels, samples]`` waveform into ``stream`` in ``chunk``-sample frames."""
    import av

    layout = "mono" if waveform.shape[0] == 1 else "stereo"
    sample_format = stream.codec_context.format.name
    for offset in range(0, waveform.shape[1], chunk):
        piece = waveform[:, offset : offset + chunk]
        if sample_format == "s16":
            data = (np.clip(piece, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1)
        elif sample_format == "fltp":
            data = np.ascontiguousarray(piece)
        else:
            raise ValueError(f"unsupported sample format {sample_format}")
        frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout=layout)
        frame.sample_rate = sampling_rate
        frame.pts = offset
        frame.time_base = Fraction(1, sampling_rate)
        _encode(container, stream, frame)
    _encode(container, stream, None)


def _write_video(container, stream, seconds: float, fps: int, size: tuple[int, int]):
    import av

    num_frames = int(round(seconds * fps))
    if num_frames > MAX_FRAMES:
        raise ValueError(f"{num_frames} frames exceed the {MAX_FRAMES} frame indices that can be encoded")
    for index in range(num_frames):
        frame = av.VideoFrame.from_ndarray(frame_pixels(index, size), format="rgb24")
        frame.pts = index
        _encode(container, stream, frame)
    _encode(container, stream, None)


def _add_video_stream(container, codec: str, fps: int, size: tuple[int, int]):
    stream = container.add_stream(codec, rate=fps)
    stream.height, stream.width = size
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    if codec == "libx264":
        stream.options = {"qp": "4", "preset": "ultrafast"}
    else:
        stream.options = {"qscale": "2"}
    return stream


def write_wav(
    path, seconds: float = 1.0, sampling_rate: int = 16000, frequency: float = 440.0, amplitude: float = AMPLITUDE
) -> str:
    """Mono 16-bit PCM wav with a sine; returns the path."""
    import av

    path = os.fspath(path)
    with av.open(path, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=sampling_rate, layout="mono")
        _write_audio(container, stream, sine(seconds, sampling_rate, frequency, amplitude=amplitude), sampling_rate)
    return path


def write_mp4(
    path,
    seconds: float = 1.0,
    with_audio: bool = True,
    with_video: bool = True,
    fps: int = 10,
    size: tuple[int, int] = (32, 32),
    frequency: float = 440.0,
    amplitude: float = AMPLITUDE,
    codec: str = "libx264",
    audio_seconds: float | None = None,
) -> str:
    """mp4 with H.264 (or ``codec="mpeg4"``) video of indexed frames and 44.1 kHz stereo AAC audio (``audio_seconds``
    long, by default as long as the video)."""
    import av

    if not (with_audio or with_video):
        raise ValueError("an mp4 needs at least one stream")
    path = os.fspath(path)
    with av.open(path, "w", format="mp4") as container:
        video = _add_video_stream(container, codec, fps, size) if with_video else None
        audio = container.add_stream("aac", rate=44100, layout="stereo") if with_audio else None
        if video is not None:
            _write_video(container, video, seconds, fps, size)
        if audio is not None:
            audio_length = seconds if audio_seconds is None else audio_seconds
            _write_audio(container, audio, sine(audio_length, 44100, frequency, channels=2, amplitude=amplitude), 44100)
    return path


def write_avi(
    path,
    seconds: float = 1.0,
    fps: int = 10,
    with_audio: bool = True,
    size: tuple[int, int] = (32, 32),
    frequency: float = 440.0,
    amplitude: float = AMPLITUDE,
) -> str:
    """avi with MPEG-4 Part 2 video (as IEMOCAP's DivX recordings) and 22.05 kHz stereo PCM audio."""
    import av

    path = os.fspath(path)
    with av.open(path, "w", format="avi") as container:
        video = _add_video_stream(container, "mpeg4", fps, size)
        audio = container.add_stream("pcm_s16le", rate=22050, layout="stereo") if with_audio else None
        _write_video(container, video, seconds, fps, size)
        if audio is not None:
            _write_audio(container, audio, sine(seconds, 22050, frequency, channels=2, amplitude=amplitude), 22050)
    return path


def write_corrupt(path) -> str:
    """A file named like media that FFmpeg cannot open: an mp4 ``ftyp`` box, then garbage, no ``moov``."""
    path = os.fspath(path)
    header = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    garbage = np.random.default_rng(0).integers(0, 256, size=2048, dtype=np.uint8).tobytes()
    with open(path, "wb") as handle:
        handle.write(header + b"\x00\x00\x08\x08mdat" + garbage)
    return path
