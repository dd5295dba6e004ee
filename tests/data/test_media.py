"""Decoding real wav/mp4/avi files written by ``tests.utils.media_fixtures`` with ``hf_erc.data.media``."""

from __future__ import annotations

import numpy as np
import pytest

from hf_erc.data.media import (
    DEFAULT_SAMPLING_RATE,
    MediaDecodeError,
    decode_audio,
    decode_frames_at,
    decode_video_frames,
    probe_media,
    video_frame_rate,
)
from tests.utils.media_fixtures import AMPLITUDE, frame_index, write_avi, write_corrupt, write_mp4, write_wav

# AAC adds encoder priming and pads its last frame: allow a few tens of milliseconds.
AAC_LENGTH_TOLERANCE = int(0.05 * DEFAULT_SAMPLING_RATE)


def dominant_frequency(waveform: np.ndarray, sampling_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / sampling_rate)[spectrum.argmax()])


def frame_indices(frames: np.ndarray) -> list[int]:
    return [frame_index(frame) for frame in frames]


# ----------------------------------------------------------------------------- audio


def test_wav_audio_is_16khz_mono_float32(tmp_path):
    path = write_wav(tmp_path / "a.wav", seconds=1.0, sampling_rate=16000, frequency=440.0)
    waveform = decode_audio(path)
    assert waveform.dtype == np.float32
    assert waveform.ndim == 1
    assert len(waveform) == 16000
    np.testing.assert_allclose(np.abs(waveform).max(), AMPLITUDE, atol=1e-3)
    assert dominant_frequency(waveform, 16000) == pytest.approx(440.0, abs=2.0)


def test_wav_at_other_rate_is_resampled(tmp_path):
    path = write_wav(tmp_path / "a.wav", seconds=0.5, sampling_rate=22050, frequency=1000.0)
    waveform = decode_audio(path)
    assert abs(len(waveform) - 8000) <= 2
    assert dominant_frequency(waveform, DEFAULT_SAMPLING_RATE) == pytest.approx(1000.0, abs=4.0)
    waveform_8k = decode_audio(path, sampling_rate=8000)
    assert abs(len(waveform_8k) - 4000) <= 2


def test_mp4_stereo_44k_audio_is_16khz_mono_in_range(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", seconds=1.0, frequency=440.0)
    waveform = decode_audio(path)
    assert waveform.dtype == np.float32
    assert waveform.ndim == 1
    assert abs(len(waveform) - DEFAULT_SAMPLING_RATE) <= AAC_LENGTH_TOLERANCE
    assert np.abs(waveform).max() <= 1.0
    assert dominant_frequency(waveform, DEFAULT_SAMPLING_RATE) == pytest.approx(440.0, abs=4.0)


@pytest.mark.parametrize("writer", [write_mp4, write_avi], ids=["mp4-aac", "avi-pcm"])
def test_loud_stereo_audio_stays_in_range(tmp_path, writer):
    # Both channels near full scale: a downmix that sums channels (FFmpeg's default
    # stereo -> mono matrix scales each by 0.707) would reach about 1.4.
    path = writer(tmp_path / f"loud.{writer.__name__[-3:]}", seconds=0.5, amplitude=0.99)
    waveform = decode_audio(path)
    assert np.abs(waveform).max() <= 1.0
    assert np.abs(waveform).max() > 0.9


def test_avi_audio(tmp_path):
    path = write_avi(tmp_path / "dialogue.avi", seconds=2.0, fps=10)
    waveform = decode_audio(path)
    assert abs(len(waveform) - 2 * DEFAULT_SAMPLING_RATE) <= 2
    assert dominant_frequency(waveform, DEFAULT_SAMPLING_RATE) == pytest.approx(440.0, abs=2.0)


def test_audio_segment_by_start_end(tmp_path):
    path = write_wav(tmp_path / "a.wav", seconds=1.0)
    full = decode_audio(path)
    segment = decode_audio(path, start=0.25, end=0.75)
    assert len(segment) == 8000
    np.testing.assert_array_equal(segment, full[4000:12000])
    np.testing.assert_array_equal(decode_audio(path, start=0.5), full[8000:])
    np.testing.assert_array_equal(decode_audio(path, end=0.1), full[:1600])


def test_audio_segment_outside_file_raises(tmp_path):
    path = write_wav(tmp_path / "a.wav", seconds=1.0)
    with pytest.raises(MediaDecodeError, match="empty audio segment"):
        decode_audio(path, start=2.0, end=3.0)


# ----------------------------------------------------------------------------- video


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_mp4_video_frames_are_uniformly_sampled_rgb(tmp_path, codec):
    path = write_mp4(tmp_path / "clip.mp4", seconds=1.0, fps=10, size=(32, 32), codec=codec)
    frames = decode_video_frames(path, num_frames=4, size=(24, 20))
    assert frames.shape == (4, 24, 20, 3)
    assert frames.dtype == np.uint8
    # 10 frames, 4 samples spread evenly from the first to the last.
    assert frame_indices(frames) == [0, 3, 6, 9]


def test_video_keeps_source_size_when_size_is_none(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", seconds=0.5, fps=10, size=(32, 48))
    frames = decode_video_frames(path, num_frames=5, size=None)
    assert frames.shape == (5, 32, 48, 3)
    assert frame_indices(frames) == [0, 1, 2, 3, 4]


def test_more_frames_than_the_clip_has_repeats_frames(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", seconds=0.3, fps=10)
    frames = decode_video_frames(path, num_frames=6, size=(16, 16))
    assert frames.shape == (6, 16, 16, 3)
    assert frame_indices(frames) == sorted(frame_indices(frames))
    assert set(frame_indices(frames)) == {0, 1, 2}


def test_video_segment_by_start_end(tmp_path):
    # IEMOCAP: a turn is cut from the dialogue's avi by its start/end times.
    path = write_avi(tmp_path / "dialogue.avi", seconds=4.0, fps=10)
    frames = decode_video_frames(path, num_frames=4, size=(16, 16), start=1.0, end=2.0)
    assert frames.shape == (4, 16, 16, 3)
    # Frames shown at 1.0 .. 1.9 s are indices 10 .. 19.
    assert frame_indices(frames) == [10, 13, 16, 19]
    tail = decode_video_frames(path, num_frames=3, size=(16, 16), start=3.05)
    assert frame_indices(tail) == [31, 35, 39]
    head = decode_video_frames(path, num_frames=2, size=(16, 16), end=0.5)
    assert frame_indices(head) == [0, 4]


def test_frames_at_positions_of_the_recording(tmp_path):
    """Frames picked by their position in a recording (the authors' IEMOCAP loop numbers them from its first frame);
    past its end the last frame found repeats."""
    path = write_avi(tmp_path / "dialogue.avi", seconds=4.0, fps=10)  # frames 0..39
    assert video_frame_rate(path) == 10.0
    assert frame_indices(decode_frames_at(path, [2, 5, 8], size=(16, 16))) == [2, 5, 8]
    assert frame_indices(decode_frames_at(path, [21, 30], size=(16, 16))) == [21, 30]  # after a seek
    assert frame_indices(decode_frames_at(path, [36, 39, 42, 45], size=(16, 16))) == [36, 39, 39, 39]
    with pytest.raises(MediaDecodeError, match="no video frame at positions 50-60"):
        decode_frames_at(path, [50, 60], size=(16, 16))
    with pytest.raises(ValueError, match="increasing positions"):
        decode_frames_at(path, [5, 2])


def test_video_segment_with_h264_seek(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", seconds=3.0, fps=10)
    frames = decode_video_frames(path, num_frames=3, size=(16, 16), start=2.0, end=2.5)
    assert frame_indices(frames) == [20, 22, 24]


def test_video_segment_outside_file_raises(tmp_path):
    path = write_avi(tmp_path / "dialogue.avi", seconds=1.0, fps=10)
    with pytest.raises(MediaDecodeError, match="no decodable video frames"):
        decode_video_frames(path, start=5.0, end=6.0)


def test_num_frames_must_be_positive(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="num_frames"):
        decode_video_frames(path, num_frames=0)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "decode", [decode_audio, decode_video_frames, probe_media], ids=["audio", "video", "probe"]
)
def test_corrupt_file_raises_naming_the_path(tmp_path, decode):
    path = write_corrupt(tmp_path / "broken.mp4")
    with pytest.raises(MediaDecodeError) as error:
        decode(path)
    assert error.value.path == str(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    "decode", [decode_audio, decode_video_frames, probe_media], ids=["audio", "video", "probe"]
)
def test_truncated_mp4_raises(tmp_path, decode):
    path = write_mp4(tmp_path / "cut.mp4", seconds=1.0)
    data = (tmp_path / "cut.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the moov atom is at the end
    with pytest.raises(MediaDecodeError) as error:
        decode(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    "decode", [decode_audio, decode_video_frames, probe_media], ids=["audio", "video", "probe"]
)
def test_missing_file_raises_naming_the_path(tmp_path, decode):
    path = tmp_path / "nowhere" / "missing.mp4"
    with pytest.raises(MediaDecodeError, match="not found") as error:
        decode(path)
    assert error.value.path == str(path)
    assert str(path) in str(error.value)


def test_missing_stream_raises(tmp_path):
    audio_only = write_mp4(tmp_path / "audio_only.mp4", with_video=False)
    video_only = write_mp4(tmp_path / "video_only.mp4", with_audio=False)
    wav = write_wav(tmp_path / "a.wav")
    with pytest.raises(MediaDecodeError, match="no video stream"):
        decode_video_frames(audio_only)
    with pytest.raises(MediaDecodeError, match="no video stream"):
        decode_video_frames(wav)
    with pytest.raises(MediaDecodeError, match="no audio stream"):
        decode_audio(video_only)


# ----------------------------------------------------------------------------- probing


@pytest.mark.parametrize("decode", [True, False])
def test_probe_media_flags(tmp_path, decode):
    cases = {
        "both": (write_mp4(tmp_path / "both.mp4", seconds=1.0), True, True),
        "audio_only": (write_mp4(tmp_path / "audio_only.mp4", with_video=False), True, False),
        "video_only": (write_mp4(tmp_path / "video_only.mp4", with_audio=False), False, True),
        "wav": (write_wav(tmp_path / "a.wav", seconds=1.0), True, False),
        "avi": (write_avi(tmp_path / "d.avi", seconds=2.0), True, True),
        "avi_silent": (write_avi(tmp_path / "silent.avi", seconds=1.0, with_audio=False), False, True),
    }
    for name, (path, has_audio, has_video) in cases.items():
        info = probe_media(path, decode=decode)
        assert (info.has_audio, info.has_video) == (has_audio, has_video), name
    assert probe_media(cases["wav"][0]).duration == pytest.approx(1.0, abs=0.01)
    assert probe_media(cases["avi"][0]).duration == pytest.approx(2.0, abs=0.15)


def test_a_turn_far_into_a_long_recording_is_cut_by_seeking(tmp_path):
    """Turns after the first second are decoded from just before them, not from the start of the recording: the
    same samples as cutting the whole decoded waveform, up to the resampler's few edge samples."""
    path = write_wav(tmp_path / "long.wav", seconds=6.0, frequency=440.0)
    full = decode_audio(path)
    segment = decode_audio(path, start=4.0, end=5.0)
    assert abs(len(segment) - 16000) <= 1
    np.testing.assert_allclose(segment[100:-100], full[64000 + 100 : 64000 + len(segment) - 100], atol=1e-3)
