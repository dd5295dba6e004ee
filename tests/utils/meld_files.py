"""A tiny raw MELD release for tests: its CSV rows and a writer of release-formatted CSVs; and a subset of the real
release's CSVs.

Shared by ``tests/data/test_meld.py`` and ``tests/data/test_prepare.py``, which both build it.
"""

from __future__ import annotations

import csv

from hf_erc.data.meld import MELD_CSV_HEADER

__all__ = ["TINY_ROWS", "write_meld_csv", "write_meld_subset"]

# (split csv, Dialogue_ID, Utterance_ID, text, emotion, sentiment), deliberately out of order.
TINY_ROWS = {
    "train_sent_emo.csv": [
        (10, 0, "Ten, zero.", "joy", "positive"),
        (125, 3, "The corrupt one \u2019.", "anger", "negative"),
        (0, 1, "Oh my God!", "surprise", "positive"),
        (125, 0, "Hi.", "neutral", "neutral"),
        (0, 0, "\u201cQuoted\u201d, and a comma.", "neutral", "neutral"),
        (2, 0, "Two.", "sadness", "negative"),
    ],
    "dev_sent_emo.csv": [
        (110, 0, "Fine.", "neutral", "neutral"),
        (110, 7, "Where is my clip?", "fear", "negative"),
    ],
    "test_sent_emo.csv": [
        (0, 0, "Silent clip.", "disgust", "negative"),
        (0, 1, "Normal clip.", "joy", "positive"),
    ],
}


def write_meld_csv(path, rows, header=MELD_CSV_HEADER):
    """A CSV formatted like the release's: UTF-8, CRLF, quoted time stamps."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        for number, (dialogue, utterance, text, emotion, sentiment) in enumerate(rows, start=1):
            start = f"00:00:{utterance:02d},250"
            end = f"00:00:{utterance + 1:02d},500"
            writer.writerow([number, text, "Joey", emotion, sentiment, dialogue, utterance, 1, 1, start, end])
    return path


def write_meld_subset(meld_csv_dir, path, dialogues):
    """The first ``dialogues[csv name]`` dialogues of each of the real release's CSVs in ``meld_csv_dir``, rows as
    released, written to ``path`` (CSVs only, no clips); returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    for csv_name, num_dialogues in dialogues.items():
        with open(meld_csv_dir / csv_name, newline="", encoding="utf-8") as source:
            header, *rows = csv.reader(source)
        dialogue = header.index("Dialogue_ID")
        kept = [row for row in rows if int(row[dialogue]) < num_dialogues]
        with open(path / csv_name, "w", newline="", encoding="utf-8") as target:
            csv.writer(target, lineterminator="\r\n").writerows([header, *kept])
    return path
