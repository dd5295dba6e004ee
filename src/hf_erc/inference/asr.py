"""Speech recognition for recordings without subtitles: transformers' ASR pipeline (a Whisper-style model that
predicts segment timestamps) turns a video's speech into timed cues, labelled like subtitle cues.

Optional and never a default: it needs an ASR checkpoint, and its cues carry no speaker (``"unknown"``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import pipeline

from ..data.media import MediaDecodeError, decode_audio
from .subtitles import UNKNOWN_SPEAKER, Cue

__all__ = ["SAMPLING_RATE", "cues_from_chunks", "load_recognizer", "transcribe_cues"]

SAMPLING_RATE = 16_000  # what Whisper's feature extractor expects; decode_audio resamples to it


def load_recognizer(model: Any, device: Any = None):
    """A transformers ``automatic-speech-recognition`` pipeline for ``model`` (Hub id or folder); an already-built
    pipeline (or any callable taking ``{"raw", "sampling_rate"}``) is returned as it is.

    Built once per model so a folder of videos loads the model once."""
    if not isinstance(model, (str, os.PathLike)):
        if not callable(model):
            raise TypeError(f"ASR model must be a model id, a folder or a transformers pipeline, got {model!r}.")
        return model
    name = os.fspath(model)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        recognizer = pipeline("automatic-speech-recognition", model=name, device=device)
    except Exception as error:  # missing repo, no processor, not an ASR model, ...: the loaders raise many types
        raise ValueError(
            f"Cannot load the speech recognition model {name!r} ({type(error).__name__}: {error}); give a Hub id or "
            "folder of an ASR checkpoint with its processor (e.g. openai/whisper-small)."
        ) from error
    if getattr(recognizer, "type", None) in {"ctc", "ctc_with_lm"}:
        raise ValueError(
            f"{name!r} is a CTC model, which predicts no segment timestamps: use a Whisper checkpoint for --asr."
        )
    return recognizer


def transcribe_cues(
    video_path: str | os.PathLike, model: Any, device: Any = None, chunk_length_s: float | None = 30
) -> list[Cue]:
    """The speech of ``video_path`` as timed cues (speaker ``"unknown"``), sorted and not overlapping.

    ``model`` is an ASR model id or folder, or a built transformers ASR pipeline. ``chunk_length_s`` cuts long audio
    into windows the pipeline transcribes separately (``None``: the model's own long-form decoding)."""
    path = os.fspath(video_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Video {path} does not exist.")
    try:
        waveform = decode_audio(path, SAMPLING_RATE)
    except MediaDecodeError as error:
        raise ValueError(
            f"{path} has no audio to transcribe ({error.reason}): speech recognition needs an audio stream; give the "
            "video's subtitles instead."
        ) from error
    recognizer = load_recognizer(model, device)
    options: dict[str, Any] = {"return_timestamps": True}
    if chunk_length_s:
        # Chunking is chosen here on purpose; the pipeline's "experimental" warning would only be noise.
        options.update(chunk_length_s=chunk_length_s, ignore_warning=True)
    output = recognizer({"raw": waveform, "sampling_rate": SAMPLING_RATE}, **options)
    return cues_from_chunks(output.get("chunks") or [], duration=len(waveform) / SAMPLING_RATE)


def cues_from_chunks(chunks: list[dict[str, Any]], duration: float | None = None) -> list[Cue]:
    """Cues from the pipeline's ``chunks`` (``{"text", "timestamp": (start, end)}``): empty texts dropped, a missing
    end set to the audio's end, times kept inside the audio, sorted, and overlaps clipped (the earlier cue ends where
    the next starts, or, when both start together, the later one starts where the earlier ends; one that would be
    left without time of its own joins the cue before it)."""
    timed = []
    for chunk in chunks:
        text = " ".join(str(chunk.get("text") or "").split())
        if not text:
            continue
        start, end = (tuple(chunk.get("timestamp") or ()) + (None, None))[:2]
        start = 0.0 if start is None else max(0.0, float(start))
        end = (duration if duration is not None else start) if end is None else float(end)
        if duration is not None:
            start, end = min(start, duration), min(end, duration)
        timed.append([round(start, 3), round(max(start, end), 3), text])
    timed.sort(key=lambda item: (item[0], item[1]))
    merged: list[list] = []
    for start, end, text in timed:
        if merged and start < merged[-1][1]:
            if start > merged[-1][0]:
                merged[-1][1] = start
            elif end <= merged[-1][1]:  # starts with the cue before and ends inside it: nothing left of its own
                merged[-1][2] += " " + text
                continue
            else:
                start = merged[-1][1]
        merged.append([start, end, text])
    # ``line`` 0: a recognised cue comes from no file line.
    return [Cue(index, start, end, UNKNOWN_SPEAKER, text, 0) for index, (start, end, text) in enumerate(merged, 1)]
