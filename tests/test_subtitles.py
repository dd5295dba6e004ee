"""Subtitle files (.srt, .vtt) read as conversations: cues, speakers, cleaning, encodings and every error; subtitles
as broadcasters write them (dual-speaker cues, sound descriptions) and their flags reaching `hf-erc predict`."""

from __future__ import annotations

import ast
import csv
import json
import re
import sys
from pathlib import Path

import pytest

from hf_erc.cli import main as cli_main
from hf_erc.inference import subtitles
from hf_erc.inference.conversations import read_conversation
from hf_erc.inference.subtitles import Cue, SubtitleError, cues_to_conversation, parse_srt, parse_vtt, read_subtitles
from hf_erc.inference.timeline import build_timeline_figure
from tests.utils.subtitle_files import BROADCAST_SRT, BROADCAST_VTT, SCENE, srt_text, vtt_text, write_subtitles

SPEAKERS_SRT = """1
00:00:01,000 --> 00:00:02,500
Well, hello there.

2
00:00:03,000 --> 00:00:04,000
JOEY: How you doin'?

3
00:00:04,500 --> 00:00:06,000
Still me,
on two lines.

4
00:00:06,000 --> 00:00:07,250
Dr. Ross: hi
"""

SPEAKERS_VTT = """WEBVTT - a scene
Kind: captions
Language: en

NOTE
This is a comment
over two lines.

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.000 align:start position:10%
Before anyone speaks.

2
00:00:02.000 --> 00:00:03.500 line:0
<v Joey>How you <i>doin'</i>?</v>

NOTE one more

00:00:04.000 --> 00:00:05.000
Still Joey &amp; <c.yellow>friends</c>.

00:00:05.000 --> 00:00:06.000
<v.loud Monica Geller>Oh <00:00:05.500>my God!</v>
"""


def test_srt_speakers_come_from_name_prefixes_and_carry_on():
    cues = parse_srt(SPEAKERS_SRT, "talk.srt")
    assert cues == [
        Cue(1, 1.0, 2.5, "unknown", "Well, hello there.", 1),
        Cue(2, 3.0, 4.0, "JOEY", "How you doin'?", 5),
        Cue(3, 4.5, 6.0, "JOEY", "Still me, on two lines.", 9),
        Cue(4, 6.0, 7.25, "Dr. Ross", "hi", 14),
    ]


def test_vtt_voices_notes_identifiers_and_settings():
    cues = parse_vtt(SPEAKERS_VTT, "talk.vtt")
    assert [(c.index, c.start, c.end, c.speaker, c.text, c.line) for c in cues] == [
        (1, 1.0, 2.0, "unknown", "Before anyone speaks.", 12),
        (2, 2.0, 3.5, "Joey", "How you doin'?", 16),
        (3, 4.0, 5.0, "Joey", "Still Joey & friends.", 22),
        (4, 5.0, 6.0, "Monica Geller", "Oh my God!", 25),
    ]


def test_vtt_cues_may_take_name_prefixes_too():
    cues = parse_vtt("WEBVTT\n\n00:01.000 --> 00:02.000\nROSS: We were on a break!\n", "a.vtt")
    assert (cues[0].speaker, cues[0].text) == ("ROSS", "We were on a break!")


@pytest.mark.parametrize(
    "line",
    [
        "Note: the store closes at nine.",
        "See http://example.com for more.",
        "Meet me at 10:30 tomorrow.",
        "So here's the thing: nobody knows.",
        "Look: I know.",
        "and then: nothing",
        "A very long name of five: words",
        "1234: numbers only",
    ],
)
def test_colons_that_are_not_speakers_stay_in_the_text(line):
    text = f"1\n00:00:01,000 --> 00:00:02,000\nJOEY: Hi.\n\n2\n00:00:03,000 --> 00:00:04,000\n{line}\n"
    cue = parse_srt(text, "a.srt")[1]
    assert (cue.speaker, cue.text) == ("JOEY", line)


@pytest.mark.parametrize(
    "line, speaker, text",
    [
        ("- RACHEL: Hi, how are\nyou doing?", "RACHEL", "Hi, how are you doing?"),  # one dash line, wrapped
        ("-Man in Black: Stop.", "Man in Black", "Stop."),
        ("JOEY:\nHow you doin'?", "JOEY", "How you doin'?"),
        ("JOSÉ: Hola.", "JOSÉ", "Hola."),
        ("2ND GUARD: Halt!", "2ND GUARD", "Halt!"),
        ("-5 degrees outside.", "unknown", "-5 degrees outside."),
    ],
)
def test_dialogue_dashes_and_speaker_forms(line, speaker, text):
    cue = parse_srt(f"00:00:01,000 --> 00:00:02,000\n{line}\n", "a.srt")[0]
    assert (cue.speaker, cue.text) == (speaker, text)


def test_formatting_tags_are_stripped():
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\n"
        '{\\an8}<i>Hello</i> <b>there</b>, <u>my</u> <font color="#ff0000">friend</font>.\n'
        "<I>a < b > c</I>\n"
    )
    assert parse_srt(text, "a.srt")[0].text == "Hello there, my friend. a < b > c"


def test_srt_timing_variants_and_missing_counters_or_blank_lines():
    text = (
        "0:00:01.5 --> 0:00:02,000 X1:100 X2:200 Y1:10 Y2:20\nNo counter.\n"
        "2\n00:00:03,000-->00:00:04,000\nNo blank line above.\n\n\n\n"
        "3\n01:00:00,000 --> 01:00:01,000\nFirst part,\n\nafter a blank line.\n"
    )
    cues = parse_srt(text, "a.srt")
    assert [(c.index, c.start, c.end, c.text, c.line) for c in cues] == [
        (1, 1.5, 2.0, "No counter.", 1),
        (2, 3.0, 4.0, "No blank line above.", 3),
        (3, 3600.0, 3601.0, "First part, after a blank line.", 9),
    ]


def test_crlf_and_bom_are_tolerated(tmp_path):
    path = write_subtitles(tmp_path / "talk.srt", srt_text(), encoding="utf-8-sig", newline="\r\n")
    cues = read_subtitles(path)
    assert [(c.speaker, c.text) for c in cues] == [
        ("JOEY", "How you doin'?"),
        ("JOEY", "Seriously, how?"),
        ("Rachel", "Oh, I'm fine."),
    ]
    assert [c.line for c in cues] == [1, 5, 9]
    vtt = write_subtitles(tmp_path / "talk.vtt", vtt_text(), encoding="utf-8-sig", newline="\r\n")
    expected = [(start, end, cue.speaker) for (start, end, *_), cue in zip(SCENE, cues)]
    assert [(c.start, c.end, c.speaker) for c in read_subtitles(vtt)] == expected


@pytest.mark.parametrize(
    "encoding, line, expected",
    [
        ("cp1252", "Caf\u00e9 \u201cquoted\u201d \u2026", "Caf\u00e9 \u201cquoted\u201d \u2026"),
        ("latin-1", "Caf\u00e9 \u0081", "Caf\u00e9 \u0081"),  # 0x81 is undefined in cp1252
        ("utf-16", "Caf\u00e9 \u65e5\u672c", "Caf\u00e9 \u65e5\u672c"),
        ("utf-8", "Caf\u00e9 \u65e5\u672c", "Caf\u00e9 \u65e5\u672c"),
    ],
)
def test_files_in_other_encodings_are_decoded(tmp_path, encoding, line, expected):
    path = write_subtitles(tmp_path / "talk.srt", f"1\n00:00:01,000 --> 00:00:02,000\n{line}\n", encoding=encoding)
    assert read_subtitles(path)[0].text == expected


def test_a_vtt_file_named_srt_is_read_as_webvtt(tmp_path):
    path = write_subtitles(tmp_path / "talk.srt", SPEAKERS_VTT)
    assert [c.speaker for c in read_subtitles(path)] == ["unknown", "Joey", "Joey", "Monica Geller"]


def test_empty_cues_are_skipped_but_keep_their_position():
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\n<i></i>\n\n"
        "2\n00:00:01,500 --> 00:00:01,000\n\n"  # empty, so even its reversed timing is ignored
        "3\n00:00:03,000 --> 00:00:04,000\nHi.\n"
    )
    assert [(c.index, c.line, c.text) for c in parse_srt(text, "a.srt")] == [(3, 8, "Hi.")]


def test_an_overlap_under_a_tenth_of_a_second_clips_the_previous_cue():
    text = "00:00:01,000 --> 00:00:02,040\nOne.\n\n00:00:01,950 --> 00:00:03,000\nTwo.\n"
    cues = parse_srt(text, "a.srt")
    assert [(c.start, c.end) for c in cues] == [(1.0, 1.95), (1.95, 3.0)]


def test_video_duration_clips_a_last_end_and_accepts_cues_inside():
    text = "00:00:01,000 --> 00:00:02,000\nOne.\n\n00:00:05,000 --> 00:00:06,500\nTwo.\n"
    assert [c.end for c in parse_srt(text, "a.srt", video_duration=6.2)] == [2.0, 6.2]
    assert [c.end for c in parse_srt(text, "a.srt", video_duration=60)] == [2.0, 6.5]


def _error(text: str, fmt: str = "srt", **kwargs) -> str:
    parse = parse_srt if fmt == "srt" else parse_vtt
    with pytest.raises(SubtitleError) as info:
        parse(text, f"talk.{fmt}", **kwargs)
    return str(info.value)


def test_a_file_without_timed_cues_is_an_error():
    message = _error("Just some text.\n\nAnd more.\n")
    assert message == "talk.srt has no timed cues: expected lines like '00:00:01,000 --> 00:00:02,500'."
    assert "'00:00:01.000 --> 00:00:02.500'" in _error("WEBVTT\n\nNOTE nothing here\n", "vtt")
    assert "has no timed cues" in _error("")


def test_an_unreadable_timing_line_is_quoted():
    text = "1\n00:00:01,000 --> 00:00:02,000\nOk.\n\n2\n00:00:03,000 --> 00:00:xx,000\nBroken.\n"
    message = _error(text)
    assert message.startswith("talk.srt: cue 2 (line 5): cannot read the timing line '00:00:03,000 --> 00:00:xx,000'")
    assert "like '00:00:01,000 --> 00:00:02,500'" in message
    no_arrow = "1\n00:00:01,000 --> 00:00:02,000\nOk.\n\n2\n00:00:03,000 00:00:04,000\nNo arrow.\n"
    assert "cue 2 (line 5): cannot read the timing line '00:00:03,000 00:00:04,000'" in _error(no_arrow)
    assert "'00:00:61,000 --> 00:01:02,000'" in _error("00:00:61,000 --> 00:01:02,000\nSixty-one seconds.\n")


def test_a_reversed_cue_is_an_error():
    message = _error("1\n00:00:01,000 --> 00:00:02,000\nOk.\n\n2\n00:00:05,000 --> 00:00:04,000\nBack.\n")
    assert message.startswith("talk.srt: cue 2 (line 5): ends at 00:00:04.000, not after its start 00:00:05.000")
    assert "reversed" in message and "fix its timing line" in message
    assert "cue 1 (line 1)" in _error("00:00:05,000 --> 00:00:05,000\nZero length.\n")


def test_cues_out_of_order_are_an_error():
    text = "1\n00:00:05,000 --> 00:00:06,000\nLater.\n\n2\n00:00:01,000 --> 00:00:02,000\nEarlier.\n"
    message = _error(text)
    assert message.startswith("talk.srt: cue 2 (line 5): starts at 00:00:01.000, before cue 1 (line 1)")
    assert "out of order" in message and "sort the cues" in message


def test_overlapping_cues_are_an_error():
    text = "WEBVTT\n\n1\n00:01.000 --> 00:03.000\nOne.\n\n2\n00:02.000 --> 00:04.000\nTwo.\n"
    message = _error(text, "vtt")
    assert message.startswith("talk.vtt: cue 2 (line 7): starts at 00:00:02.000, while cue 1 (line 3) lasts until")
    assert "overlapping" in message and "shift or merge" in message
    # Exactly 0.1 s is no longer rounding; nor is a tiny overlap of two cues starting together.
    assert "overlapping" in _error("00:00:01,000 --> 00:00:02,100\nA.\n\n00:00:02,000 --> 00:00:03,000\nB.\n")
    assert "overlapping" in _error("00:00:01,000 --> 00:00:01,050\nA.\n\n00:00:01,000 --> 00:00:03,000\nB.\n")


def test_a_cue_after_the_end_of_the_video_is_an_error():
    text = "00:00:01,000 --> 00:00:02,000\nOne.\n\n00:00:10,000 --> 00:00:11,000\nTwo.\n"
    message = _error(text, video_duration=10.0)
    assert message.startswith("talk.srt: cue 2 (line 4): starts at 00:00:10.000, at or after the end of the video")
    assert "(00:00:10.000)" in message and "belong to this video" in message
    assert "cue 2 (line 4)" in _error(text, video_duration=9.5)


def test_a_file_whose_cues_are_all_empty_is_an_error():
    message = _error("1\n00:00:01,000 --> 00:00:02,000\n<i> </i>\n\n2\n00:00:03,000 --> 00:00:04,000\n\n")
    assert message == "talk.srt: all 2 cues have empty text once formatting is removed: nothing to label."


def test_a_vtt_file_needs_its_header():
    message = _error("00:01.000 --> 00:02.000\nHi.\n", "vtt")
    assert message.startswith(
        "talk.vtt: not a WebVTT file: its first line must be 'WEBVTT', got '00:01.000 --> 00:02.000'"
    )
    assert "'.srt'" in message
    assert "first line must be 'WEBVTT'" in _error("WEBVTTX\n\n00:01.000 --> 00:02.000\nHi.\n", "vtt")


def test_read_subtitles_names_the_two_formats_and_missing_files(tmp_path):
    path = write_subtitles(tmp_path / "talk.ass", "whatever")
    expected = f"{path}: unsupported subtitle format '.ass': use a SubRip '.srt' or a WebVTT '.vtt' file."
    with pytest.raises(SubtitleError, match=re.escape(expected)):
        read_subtitles(path)
    with pytest.raises(SubtitleError, match="'\\(no extension\\)'"):
        read_subtitles(write_subtitles(tmp_path / "talk", "whatever"))
    with pytest.raises(SubtitleError, match="no such subtitle file"):
        read_subtitles(tmp_path / "missing.srt")
    with pytest.raises(SubtitleError, match=re.escape(f"{tmp_path / 'talk.vtt'}: not a WebVTT file")):
        read_subtitles(write_subtitles(tmp_path / "talk.vtt", srt_text()))
    assert issubclass(SubtitleError, ValueError)


def test_read_subtitles_errors_name_the_file_path(tmp_path):
    path = write_subtitles(tmp_path / "talk.SRT", "00:00:02,000 --> 00:00:01,000\nBack.\n")
    with pytest.raises(SubtitleError, match=re.escape(f"{path}: cue 1 (line 1): ends at")):
        read_subtitles(path, video_duration=30.0)


def test_cues_to_conversation():
    cues = parse_vtt(vtt_text(), "talk.vtt")
    assert cues_to_conversation(cues) == {
        "utterances": [
            {"speaker": "JOEY", "text": "How you doin'?", "start": 1.0, "end": 2.5},
            {"speaker": "JOEY", "text": "Seriously, how?", "start": 3.0, "end": 4.0},
            {"speaker": "Rachel", "text": "Oh, I'm fine.", "start": 4.5, "end": 6.0},
        ]
    }
    assert cues_to_conversation([]) == {"utterances": []}


def test_the_module_imports_only_the_standard_library():
    tree = ast.parse(Path(subtitles.__file__).read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))
    imported = {alias.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in nodes if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in nodes)



# --- Subtitles as broadcasters write them -----------------------------------------------------------------------
# Worked out by hand from tests/utils/subtitle_files.py: (cue, start, end, speaker, text, line, flags).
DOOR = "sound before (cue 1, line {line}): DOOR SLAMS"
MUSIC = "sound after (cue 4, line {line}): ♪ music ♪"
BROADCAST_CUES = [
    (2, 1.0, 2.0, "JOEY", "Hey! You're back.", 5, (DOOR.format(line=1), "sound: laughs")),
    (3, 2.0, 3.0, "unknown", "Did you get it?", 9, ()),  # a dash line naming nobody: not JOEY carried over
    (3, 2.0, 3.0, "RACHEL", "Yes!", 9, ("sound: laughs", MUSIC.format(line=14))),  # the music-only cue 4
    (5, 3.5, 4.5, "RACHEL", "I (really) mean it, it was a long day.", 18, ("sound: sighs",)),
    (6, 4.5, 5.5, "RACHEL", "Let me sit down.", 24, ()),  # no dash: the speaker before goes on
    (6, 4.5, 5.5, "ROSS", "Here.", 24, ()),
    (7, 5.5, 6.0, "unknown", "Thanks.", 29, ()),
    (7, 5.5, 6.0, "unknown", "Sure.", 29, ("sound: whispering",)),
    (8, 6.0, 6.8, "unknown", "So, coffee?", 34, ()),  # carries the last speaker of cue 7: nobody named
]


def _rows(cues):
    return [(c.index, c.start, c.end, c.speaker, c.text, c.line, c.flags) for c in cues]


def test_a_broadcast_srt_file_gives_one_utterance_per_speaker_and_flags_its_sounds(tmp_path):
    path = write_subtitles(tmp_path / "talk.srt", BROADCAST_SRT, encoding="utf-8-sig", newline="\r\n")
    assert _rows(read_subtitles(path, video_duration=7.0)) == BROADCAST_CUES


def test_the_same_scene_in_webvtt_takes_speakers_from_voices(tmp_path):
    names = {"JOEY": "Joey", "RACHEL": "Rachel", "ROSS": "Ross"}
    moved = {DOOR.format(line=1): DOOR.format(line=3), MUSIC.format(line=14): MUSIC.format(line=16)}
    expected = [
        (cue, start, end, names.get(speaker, speaker), text, line + 2, tuple(moved.get(f, f) for f in flags))
        for cue, start, end, speaker, text, line, flags in BROADCAST_CUES
    ]  # two lines further down (the header), speakers as the voices spell them
    path = write_subtitles(tmp_path / "talk.vtt", BROADCAST_VTT, newline="\r\n")
    assert _rows(read_subtitles(path)) == expected


@pytest.mark.parametrize(
    "lines, expected",
    [
        ("- Did you get it?\n- Yes!", [("unknown", "Did you get it?"), ("unknown", "Yes!")]),
        ("\u2013 MONICA: Hi.\n\u2014 Hello.", [("MONICA", "Hi."), ("unknown", "Hello.")]),
        ("-I told you\nI'd be late.\n-You did.", [("unknown", "I told you I'd be late."), ("unknown", "You did.")]),
        ("I was saying\n- Stop.", [("JOEY", "I was saying"), ("unknown", "Stop.")]),
        ("- Hello?", [("JOEY", "Hello?")]),  # one dash line alone: an ordinary cue
        ("Hello,\n-- I said.", [("JOEY", "Hello, -- I said.")]),  # "--" is no dialogue dash
        ("- (sighs)\n- What's wrong?", [("unknown", "What's wrong?", "sound: sighs")]),
        ("- What's wrong?\n- (sighs)", [("unknown", "What's wrong?", "sound: sighs")]),
    ],
)
def test_dual_speaker_cues_share_their_span(lines, expected):
    text = f"00:00:01,000 --> 00:00:02,000\nJOEY: Hi.\n\n00:00:02,000 --> 00:00:03,500\n{lines}\n"
    cues = parse_srt(text, "a.srt")[1:]
    assert [(c.speaker, c.text, *c.flags) for c in cues] == expected
    assert {(c.index, c.start, c.end, c.line) for c in cues} == {(2, 2.0, 3.5, 4)}


def test_after_a_dual_cue_an_unnamed_cue_carries_its_last_speaker():
    text = (
        "00:00:01,000 --> 00:00:02,000\n- JOEY: Hi.\n- RACHEL: Hello.\n\n"
        "00:00:02,000 --> 00:00:03,000\nHow are you?\n\n"
        "00:00:03,000 --> 00:00:04,000\n- Fine.\n- ROSS: Good.\n\n"
        "00:00:04,000 --> 00:00:05,000\n- Me too.\n- Great.\n\n"
        "00:00:05,000 --> 00:00:06,000\nWho said that?\n"
    )
    assert [c.speaker for c in parse_srt(text, "a.srt")] == [
        "JOEY", "RACHEL", "RACHEL", "unknown", "ROSS", "unknown", "unknown", "unknown"
    ]  # fmt: skip


def test_a_named_cue_of_sounds_only_flags_its_neighbour_and_carries_its_speaker():
    text = (
        "00:00:01,000 --> 00:00:02,000\nROSS: Hi.\n\n00:00:02,000 --> 00:00:03,000\nJOEY: (sighs)\n\n"
        "00:00:03,000 --> 00:00:04,000\nI'm tired.\n\n00:00:04,000 --> 00:00:05,000\n- ROSS: Why?\n- MONICA: [groans]\n"
    )
    assert [(c.speaker, c.text, c.flags) for c in parse_srt(text, "a.srt")] == [
        ("ROSS", "Hi.", ("sound after (cue 2, line 4): sighs (JOEY)",)),
        ("JOEY", "I'm tired.", ()),
        ("ROSS", "Why?", ("sound: groans (MONICA)",)),
    ]


def test_overlapping_different_cues_are_still_an_error_after_a_dual_cue():
    text = "00:00:01,000 --> 00:00:03,000\n- A.\n- B.\n\n00:00:02,000 --> 00:00:04,000\nC.\n"
    message = _error(text)
    assert message.startswith("talk.srt: cue 2 (line 5): starts at 00:00:02.000, while cue 1 (line 1) lasts until")
    assert "two speakers in one cue go on dash lines" in message


@pytest.mark.parametrize(
    "line, text, sounds",
    [
        ("[laughs] Over here.", "Over here.", ["laughs"]),
        ("Did you get it? [laughs] Yes!", "Did you get it? Yes!", ["laughs"]),
        ("It was great. (CHUCKLES)", "It was great.", ["CHUCKLES"]),
        ("<i>(whispering)</i> (to Ross) Come here.", "Come here.", ["whispering", "to Ross"]),
        ("[Music] ♪ Hello, it's me ♪ Stop singing!", "Stop singing!", ["Music", "♪ Hello, it's me ♪"]),
        ("♫ la la la", "", ["♫ la la la"]),
        ("I (really) mean it.", "I (really) mean it.", []),  # in mid-sentence: speech
        ("Oh (sighs) fine.", "Oh (sighs) fine.", []),
        ("(Mr. Geller) is here.", "(Mr. Geller) is here.", []),  # sentence punctuation inside: speech
        ("Wait [what?] no.", "Wait [what?] no.", []),
        (f"[{'a' * 51}] Hi.", f"[{'a' * 51}] Hi.", []),  # longer than a description
        ("The list is [] empty", "The list is [] empty", []),
    ],
)
def test_sound_descriptions_of_the_sdh_shape_leave_the_text(line, text, sounds):
    cues = parse_srt(f"00:00:01,000 --> 00:00:02,000\n{line}\n\n00:00:03,000 --> 00:00:04,000\nNext.\n", "a.srt")
    flags = tuple(f"sound: {sound}" for sound in sounds)
    if text:
        assert (cues[0].text, cues[0].flags) == (text, flags)
    else:  # nothing but sounds: reported on the next utterance, the cue's number and line given
        assert [(c.text, c.flags) for c in cues] == [("Next.", ("sound before (cue 1, line 1): ♫ la la la",))]


def test_a_file_of_sound_descriptions_only_is_an_error():
    message = _error("00:00:01,000 --> 00:00:02,000\n[Music]\n\n00:00:03,000 --> 00:00:04,000\n<i></i>\n")
    assert message == (
        "talk.srt: all 2 cues are empty or hold only sound descriptions (like cue 1, line 1) once formatting is "
        "removed: no speech to label."
    )


def test_flags_go_through_conversations_and_back():
    cues = parse_srt(BROADCAST_SRT, "talk.srt")
    conversation = cues_to_conversation(cues)
    assert conversation["utterances"][1] == {"speaker": "unknown", "text": "Did you get it?", "start": 2.0, "end": 3.0}
    assert conversation["utterances"][3]["flags"] == ["sound: sighs"]
    assert [u.flags for u in read_conversation(conversation)] == [list(c.flags) for c in cues]
    with pytest.raises(ValueError, match="utterance 0: 'flags' must be a list of strings, got 'sound: x'"):
        read_conversation([{"speaker": "A", "text": "hi", "flags": "sound: x"}])


def test_predict_reports_dual_cues_and_sounds_in_json_csv_and_timeline(text_only_checkpoint, talk, tmp_path, capsys):
    subtitles = write_subtitles(tmp_path / "talk.srt", BROADCAST_SRT, newline="\r\n")
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(talk / "talk.mp4")]
    arguments += ["--subtitles", str(subtitles), "--json", "--csv", str(tmp_path / "cues.csv"), "--device", "cpu"]
    assert cli_main(arguments) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = [(speaker, text, start, end, list(flags)) for _, start, end, speaker, text, _, flags in BROADCAST_CUES]
    assert [(r["speaker"], r["text"], r["start"], r["end"], r.get("flags", [])) for r in rows] == expected
    assert (rows[1]["start"], rows[1]["end"]) == (rows[2]["start"], rows[2]["end"]) == (2.0, 3.0)
    with open(tmp_path / "cues.csv", newline="", encoding="utf-8") as file:
        assert [line["flags"] for line in csv.DictReader(file)] == ["; ".join(flags) for *_, flags in expected]
    ax = build_timeline_figure(rows).axes[0]
    assert [bool(band.get_hatch()) for band in ax.patches] == [bool(flags) for *_, flags in expected]
