"""Tiny subtitle files for tests: a writer of ``.srt``/``.vtt`` text, a short two-speaker scene, and a scene
written as broadcast (SDH) subtitles are, in SubRip and in WebVTT.

Shared by ``tests/test_subtitles.py`` and any test of ``hf-erc predict --subtitles``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BROADCAST_SRT", "BROADCAST_VTT", "SCENE", "srt_text", "vtt_text", "write_subtitles"]

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


# A scene written the way broadcast subtitles for the deaf and hard of hearing are (all inside the 7 s of the tests'
# talk.mp4): numbered cues, {\an8} positioning, italics, a sound-only first cue, [laughs] inside a line, two speakers
# on dash lines with NAME: on one of them, a cue of music only, a (sighs) line above a wrapped line with real-speech
# parentheses, the "first speaker goes on, second answers" form, and an un-named cue after a dual one.
BROADCAST_SRT = """1
00:00:00,500 --> 00:00:01,000
{\\an8}<i>[DOOR SLAMS]</i>

2
00:00:01,000 --> 00:00:02,000
JOEY: <i>Hey!</i> [laughs] You're back.

3
00:00:02,000 --> 00:00:03,000
- Did you get it?
- RACHEL: Yes! <i>(laughs)</i>

4
00:00:03,000 --> 00:00:03,500
♪ music ♪

5
00:00:03,500 --> 00:00:04,500
(sighs)
I (really) mean it, it was
a long day.

6
00:00:04,500 --> 00:00:05,500
Let me sit down.
- ROSS: Here.

7
00:00:05,500 --> 00:00:06,000
{\\an8}- Thanks.
- [whispering] Sure.

8
00:00:06,000 --> 00:00:06,800
So, coffee?
"""

# The same scene in WebVTT: <v NAME> voices instead of NAME:, cue 6's two speakers told apart by their voices.
BROADCAST_VTT = """WEBVTT

1
00:00:00.500 --> 00:00:01.000 line:0
<i>[DOOR SLAMS]</i>

2
00:00:01.000 --> 00:00:02.000
<v Joey><i>Hey!</i> [laughs] You're back.</v>

3
00:00:02.000 --> 00:00:03.000
- Did you get it?
<v Rachel>- Yes! <i>(laughs)</i></v>

4
00:00:03.000 --> 00:00:03.500
♪ music ♪

5
00:00:03.500 --> 00:00:04.500
(sighs)
I (really) mean it, it was
a long day.

6
00:00:04.500 --> 00:00:05.500
<v Rachel>Let me sit down.</v>
<v Ross>Here.</v>

7
00:00:05.500 --> 00:00:06.000
- Thanks.
- [whispering] Sure.

8
00:00:06.000 --> 00:00:06.800
So, coffee?
"""
