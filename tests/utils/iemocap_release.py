"""A fake ``IEMOCAP_full_release`` written by the tests: label files, transcriptions, sentence wavs and dialogue
avis, with the junk and the broken files the real release has."""

from pathlib import Path

from .media_fixtures import write_avi, write_corrupt, write_wav

FPS = 10

# session -> dialogue -> turns as (turn suffix, start, end, code, text), in the order the
# EmoEvaluation file lists them (deliberately not chronological).
RELEASE = {
    1: {
        "Ses01F_impro01": [
            ("M001", 3.0, 3.8, "ang", "Let me see them."),
            ("F000", 0.5, 1.2, "neu", "Excuse me."),
            ("M000", 1.0, 2.0, "fru", "Do you have your forms?"),
            ("F001", 2.1, 2.9, "xxx", "Yeah."),
            ("F002", 4.0, 4.9, "sad", "Café? [LAUGHTER] I waited."),
        ],
        "Ses01F_script01_1": [
            ("M000", 0.2, 1.0, "hap", "Guess what!"),
            ("F000", 1.1, 1.9, "sur", "What?"),
            ("M001", 2.0, 3.0, "exc", "We won."),
        ],
        # An "M" session whose first turn is spoken by the woman.
        "Ses01M_impro02": [
            ("F000", 0.3, 1.4, "sad", "I lost it."),
            ("M000", 1.5, 2.5, "neu", "Lost what?"),
        ],
    },
    2: {
        "Ses02F_impro01": [
            ("F000", 0.1, 0.9, "ang", "Again?"),
            ("M000", 1.0, 1.9, "fru", "Sorry."),
        ],
        "Ses02M_script01_1b": [
            ("M000", 0.2, 0.8, "hap", "Hi."),
            ("F000", 0.9, 1.6, "exc", "Hello!"),
            ("M001", 1.7, 2.4, "neu", "Ok."),
        ],
    },
    5: {
        "Ses05F_impro01": [
            ("F000", 0.4, 1.1, "neu", "Next."),
            ("M000", 1.2, 2.0, "ang", "No."),
        ],
        "Ses05M_impro02": [
            ("M000", 0.1, 0.9, "sad", "It's over."),
            ("F000", 1.0, 1.8, "hap", "Finally."),
            ("M001", 5.0, 5.5, "neu", "Late line."),  # starts after the (short) recording ends
        ],
    },
}
# Dialogues whose transcription lists turns out of start-time order, as the real files do where speech overlaps
# (Ses03F_impro04 transcribes M003, at 39.55 s, before F004, at 34.67 s): turn suffixes in file order. The builder
# keeps this order; the others are transcribed in start-time order.
TRANSCRIPTION_ORDER = {
    "Ses01F_impro01": ("F000", "M000", "F001", "F002", "M001"),  # F002 (4.0 s) before M001 (3.0 s)
    "Ses05M_impro02": ("F000", "M000", "M001"),  # F000 (1.0 s) before M000 (0.1 s)
}
MISSING_WAV = "Ses01F_impro01_M001"
CORRUPT_AVI = "Ses02F_impro01"
SHORT_AVI = "Ses05M_impro02"
KEPT = {"hap", "sad", "neu", "ang", "exc", "fru"}
# The fixed validation dialogues of TelME's and MAGTKD's released code (hard-coded on purpose).
REFERENCE_VALIDATION = (
    "Ses01M_impro01", "Ses01M_script03_1", "Ses02F_impro02", "Ses02F_impro07", "Ses02M_script01_2",
    "Ses03F_impro01", "Ses03M_impro02", "Ses03M_impro08a", "Ses03M_script02_2", "Ses03M_script03_2",
    "Ses04F_impro07", "Ses04F_script02_1",
)  # fmt: skip


def release_with(dialogue_ids, base=RELEASE):
    """A copy of ``base`` plus two-turn dialogues named ``dialogue_ids`` (in the session their name says)."""
    release = {session: dict(dialogues) for session, dialogues in base.items()}
    for dialogue_id in dialogue_ids:
        release.setdefault(int(dialogue_id[3:5]), {})[dialogue_id] = [
            ("F000", 0.2, 1.0, "neu", "Hello."),
            ("M000", 1.1, 2.0, "hap", f"Hi, {dialogue_id}."),
        ]
    return release


def label_file_text(dialogue_id, turns):
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for suffix, start, end, code, _ in turns:
        lines += [
            f"[{start:.4f} - {end:.4f}]\t{dialogue_id}_{suffix}\t{code}\t[2.5000, 3.0000, 2.5000]",
            "C-E2:\tNeutral state;\t()",
            "C-E3:\tFrustration; Anger;\t()",
            "C-F1:\tNeutral state;\t(a bit bored)",
            "A-E3:\tval 3; act 2; dom  2;\t()",
            "A-F1:\tval 3; act 3; dom  3;\t()",
            "",
        ]
    return "\n".join(lines) + "\n"


def in_transcription_order(dialogue_id, turns):
    """``turns`` in the order the dialogue's transcription file lists them (:data:`TRANSCRIPTION_ORDER`, else by start
    time)."""
    order = TRANSCRIPTION_ORDER.get(dialogue_id)
    if order is None:
        return sorted(turns, key=lambda turn: turn[1])
    return sorted(turns, key=lambda turn: order.index(turn[0]))


def transcription_text(dialogue_id, turns):
    lines = []
    for suffix, start, end, _, text in in_transcription_order(dialogue_id, turns):
        lines.append(f"{dialogue_id}_{suffix} [{start:08.4f}-{end:08.4f}]: {text}")
    # Non-turns found in the real release: unnumbered speech and speaker-only noise lines.
    lines.insert(1, f"{dialogue_id}_MXX0 [000.0000-000.3000]: [BREATHING]")
    lines.append("M: [BREATHING]")
    lines.append("F: [LAUGHTER]")
    lines.append(f"{dialogue_id}_FXX1 [009.0000-009.5000]: Mm-hmm.")
    # A numbered turn that the evaluators never labelled.
    lines.append(f"{dialogue_id}_F099 [010.0000-010.5000]: (unlabelled)")
    return "\r\n".join(lines) + "\r\n"


def make_release(root: Path, release=RELEASE, media=True) -> Path:
    """Write a fake ``IEMOCAP_full_release`` under ``root`` and return its path."""
    raw_dir = root / "IEMOCAP_full_release"
    for session, dialogues in release.items():
        session_dir = raw_dir / f"Session{session}"
        label_dir = session_dir / "dialog" / "EmoEvaluation"
        transcription_dir = session_dir / "dialog" / "transcriptions"
        avi_dir = session_dir / "dialog" / "avi" / "DivX"
        for folder in (label_dir / "Categorical", transcription_dir, avi_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Junk that must be ignored.
        (label_dir / "Categorical" / "junk_cat.txt").write_text("[1 - 2]\tnot a turn\n")
        (label_dir / ".DS_Store").write_bytes(b"\x00\x01junk")
        for dialogue_id, turns in dialogues.items():
            (label_dir / f"{dialogue_id}.txt").write_text(label_file_text(dialogue_id, turns), encoding="utf-8")
            (label_dir / f"._{dialogue_id}.txt").write_bytes(b"\x00\x05\x16\x07[ binary AppleDouble")
            (label_dir / f"{dialogue_id}.anvil").write_text("<annotation/>")
            (transcription_dir / f"{dialogue_id}.txt").write_text(
                transcription_text(dialogue_id, turns), encoding="utf-8", newline=""
            )
            (transcription_dir / f"._{dialogue_id}.txt").write_bytes(b"\x00\x05\x16\x07")
            if not media:
                continue
            wav_dir = session_dir / "sentences" / "wav" / dialogue_id
            wav_dir.mkdir(parents=True, exist_ok=True)
            for suffix, start, end, _, _ in turns:
                turn_id = f"{dialogue_id}_{suffix}"
                if turn_id != MISSING_WAV:
                    write_wav(wav_dir / f"{turn_id}.wav", seconds=0.1)
            (wav_dir / f"._{dialogue_id}_F000.wav").write_bytes(b"\x00\x05\x16\x07")
            avi = avi_dir / f"{dialogue_id}.avi"
            if dialogue_id == CORRUPT_AVI:
                write_corrupt(avi)
            else:
                seconds = 2.0 if dialogue_id == SHORT_AVI else max(turn[2] for turn in turns) + 0.5
                write_avi(avi, seconds=seconds, fps=FPS, with_audio=False)
            (avi_dir / f"._{dialogue_id}.avi").write_bytes(b"\x00\x05\x16\x07")
    return raw_dir
