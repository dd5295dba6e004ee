"""Media of the planted-signal release: a tone per emotion in the audio, a hue per emotion in the video.

Each clip of :mod:`hf_erc.data.planted` is a small mp4 (H.264 video, AAC audio) whose audio carries
one emotion as the pitch of a tone and whose video carries one emotion (drawn independently) as the
hue of its frames. Both cues are made deliberately less than trivial, so that a model has to learn
the cue rather than a constant:

- audio: a sine at the emotion's frequency (:data:`TONE_HZ`, pitch jittered by up to 2 %), with a
  random loudness, a slow tremolo, short fades and white noise at a random level;
- video: frames of the emotion's hue (:data:`HUE_DEGREES`, jittered by up to 6 degrees) with a random
  saturation and brightness, a brightness gradient that drifts across the frames, a per-frame flicker
  and per-pixel noise.

The tables cover MELD's seven emotions, whatever subset a release uses, so an emotion's cue does not
depend on which other emotions are in the release. Neighbouring tones are 0.38 octave apart and
neighbouring hues 51 degrees apart, far more than the jitter and the coding loss: :func:`audio_cue` and
:func:`video_cue` recover the planted cue of every clip from its decoded waveform and frames.

Every clip's random variation comes from its own seed, so clips can be written in any order or in
parallel and the same seed writes the same bytes.
"""

from __future__ import annotations

import colorsys
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from ..labels import MELD_EMOTIONS

__all__ = [
    "AUDIO_SAMPLING_RATE",
    "FRAME_SIZE",
    "HUE_DEGREES",
    "TONE_HZ",
    "VIDEO_FPS",
    "ClipSpec",
    "audio_cue",
    "synthesize_frames",
    "synthesize_tone",
    "video_cue",
    "write_clip",
    "write_clips",
]

AUDIO_SAMPLING_RATE = 16_000
VIDEO_FPS = 8
FRAME_SIZE = 64
# Frequencies a factor 1.3 apart (about 4.5 semitones), all well inside what 32 kbit/s AAC keeps.
TONE_HZ: dict[str, float] = dict(zip(MELD_EMOTIONS, (250.0, 330.0, 440.0, 580.0, 770.0, 1020.0, 1350.0)))
# Hues evenly spaced around the colour circle.
HUE_DEGREES: dict[str, float] = {name: index * 360.0 / len(MELD_EMOTIONS) for index, name in enumerate(MELD_EMOTIONS)}

_PITCH_JITTER = 0.02
_HUE_JITTER_DEGREES = 6.0
_PIXEL_NOISE = 4.0  # standard deviation, in 8-bit levels
_AUDIO_CHUNK = 1024  # samples per AAC frame
_AUDIO_BIT_RATE = 32_000
_TONE_SEARCH_HZ = (150.0, 3000.0)


@dataclass(frozen=True)
class ClipSpec:
    """One clip to write: where, how long, which emotion each cue shows, and the seed of its variation.

    ``truncate`` writes the clip and then cuts the file in half, which drops the mp4 index (the
    ``moov`` atom, written last) exactly like the corrupt clip of the real MELD release: FFmpeg then
    refuses to open it.
    """

    path: str
    seconds: float
    audio_emotion: str
    video_emotion: str
    seed: tuple[int, ...]
    truncate: bool = False


def synthesize_tone(emotion: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] at :data:`AUDIO_SAMPLING_RATE` whose dominant pitch is ``emotion``'s tone."""
    samples = max(_AUDIO_CHUNK, int(round(seconds * AUDIO_SAMPLING_RATE)))
    time = np.arange(samples) / AUDIO_SAMPLING_RATE
    frequency = TONE_HZ[emotion] * (1.0 + rng.uniform(-_PITCH_JITTER, _PITCH_JITTER))
    amplitude = rng.uniform(0.15, 0.5)
    tremolo = 1.0 - rng.uniform(0.0, 0.3) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2.0, 5.0) * time))
    fade = np.minimum(1.0, np.minimum(time, time[-1] - time) / 0.02)
    tone = amplitude * tremolo * fade * np.sin(2 * np.pi * frequency * time + rng.uniform(0, 2 * np.pi))
    noise = rng.uniform(0.01, 0.06) * rng.standard_normal(samples)
    return np.clip(tone + noise, -1.0, 1.0).astype(np.float32)


def synthesize_frames(emotion: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 frames ``[num_frames, FRAME_SIZE, FRAME_SIZE, 3]`` at :data:`VIDEO_FPS`, of ``emotion``'s mean hue."""
    num_frames = max(1, int(round(seconds * VIDEO_FPS)))
    hue = (HUE_DEGREES[emotion] + rng.uniform(-_HUE_JITTER_DEGREES, _HUE_JITTER_DEGREES)) % 360.0
    colour = np.array(colorsys.hsv_to_rgb(hue / 360.0, rng.uniform(0.6, 0.9), 1.0))
    brightness = rng.uniform(0.5, 0.85)
    # A left-to-right brightness ramp whose phase drifts from frame to frame, and a per-frame flicker:
    # scaling all three channels together changes the brightness and keeps the hue.
    columns = np.arange(FRAME_SIZE) / FRAME_SIZE
    phases = rng.uniform(0, 2 * np.pi) + np.arange(num_frames) * rng.uniform(0.2, 0.6)
    ramp = 1.0 + 0.15 * np.sin(2 * np.pi * columns[None, :] + phases[:, None])  # [frames, width]
    flicker = 1.0 + rng.uniform(-0.05, 0.05, size=num_frames)
    level = brightness * ramp * flicker[:, None]  # [frames, width]
    frames = (255.0 * level[:, None, :, None] * colour[None, None, None, :]).astype(np.float32)
    noise = rng.standard_normal((num_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.float32)
    frames = frames + _PIXEL_NOISE * noise
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8)


def write_clip(spec: ClipSpec) -> str:
    """Write the mp4 of ``spec`` (H.264 video, AAC 16 kHz mono audio); returns its path."""
    rng = np.random.default_rng(list(spec.seed))
    frames = synthesize_frames(spec.video_emotion, spec.seconds, rng)
    waveform = synthesize_tone(spec.audio_emotion, spec.seconds, rng)
    with av.open(spec.path, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width = video.height = FRAME_SIZE
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, VIDEO_FPS)
        video.options = {"preset": "ultrafast", "crf": "26"}
        video.codec_context.thread_count = 1  # tiny frames: threads only cost, and one thread is deterministic
        audio = container.add_stream("aac", rate=AUDIO_SAMPLING_RATE, layout="mono")
        audio.bit_rate = _AUDIO_BIT_RATE
        audio.options = {"aac_coder": "fast"}  # half the time of the default coder, same recovered pitch
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for offset in range(0, len(waveform), _AUDIO_CHUNK):
            chunk = waveform[None, offset : offset + _AUDIO_CHUNK]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = AUDIO_SAMPLING_RATE
            frame.pts = offset
            frame.time_base = Fraction(1, AUDIO_SAMPLING_RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    if spec.truncate:
        os.truncate(spec.path, os.path.getsize(spec.path) // 2)
    return spec.path


def write_clips(specs: Sequence[ClipSpec], num_workers: int = 1) -> None:
    """Write every clip of ``specs``, in ``num_workers`` processes when more than one.

    Processes rather than threads: the encoders hold the GIL for most of their work. Workers are forked where
    the platform can, so that they do not import the package again.
    """
    if num_workers <= 1 or len(specs) < 2:
        for spec in specs:
            write_clip(spec)
        return
    chunk = max(1, len(specs) // (4 * num_workers))
    start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=num_workers, mp_context=multiprocessing.get_context(start_method)) as pool:
        for _ in pool.map(write_clip, specs, chunksize=chunk):
            pass


def audio_cue(waveform: np.ndarray, emotions: Sequence[str], sampling_rate: int = AUDIO_SAMPLING_RATE) -> str:
    """The emotion among ``emotions`` whose tone is nearest (in pitch) to the dominant frequency of ``waveform``."""
    spectrum = np.abs(np.fft.rfft(np.asarray(waveform, dtype=np.float64)))
    frequencies = np.fft.rfftfreq(len(waveform), d=1.0 / sampling_rate)
    band = (frequencies >= _TONE_SEARCH_HZ[0]) & (frequencies <= _TONE_SEARCH_HZ[1])
    peak = frequencies[band][np.argmax(spectrum[band])]
    distances = [abs(np.log2(peak / TONE_HZ[name])) for name in emotions]
    return emotions[int(np.argmin(distances))]


def video_cue(frames: np.ndarray, emotions: Sequence[str]) -> str:
    """The emotion among ``emotions`` whose hue is nearest (around the colour circle) to ``frames``' mean colour."""
    red, green, blue = np.asarray(frames, dtype=np.float64).reshape(-1, 3).mean(axis=0) / 255.0
    hue = colorsys.rgb_to_hsv(red, green, blue)[0] * 360.0
    distances = [min(abs(hue - HUE_DEGREES[name]), 360.0 - abs(hue - HUE_DEGREES[name])) for name in emotions]
    return emotions[int(np.argmin(distances))]
