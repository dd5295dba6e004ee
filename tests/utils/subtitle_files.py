"""Tiny subtitle files for tests: a writer of ``.srt``/``.vtt`` text and a short two-speaker scene.

Shared by ``tests/test_subtitles.py`` and any test of ``hf-erc predict --subtitles``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SCENE", "srt_text", "vtt_text", "write_subtitles"]

# (start, end, speaker or None, text): the second cue carries the first speaker on.
SCENE = [
    (1.0, 2.5, "JOEY", "How you doin'?"),
    (3.0, 4.0, None, "Seriously, how?"),
    (4.5, 6.0, "Rachel", "Oh, I'm fine."),
]


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    whole, millis = divmod(millis, 1000)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}{separator}{millis:03d}"


def srt_text(cues=SCENE) -> str:
    """SubRip text with numbered cues and ``NAME:`` speakers."""
    blocks = []
    for number, (start, end, speaker, text) in enumerate(cues, start=1):
        line = f"{speaker}: {text}" if speaker else text
        blocks.append(f"{number}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{line}\n")
    return "\n".join(blocks)


def vtt_text(cues=SCENE) -> str:
    """WebVTT text with ``<v NAME>`` voices."""
    blocks = ["WEBVTT\n"]
    for start, end, speaker, text in cues:
        line = f"<v {speaker}>{text}</v>" if speaker else text
        blocks.append(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{line}\n")
    return "\n".join(blocks)


def write_subtitles(path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    """``text`` written to ``path`` with the given encoding and line ends; the path back."""
    path = Path(path)
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path
