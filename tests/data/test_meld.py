"""MELD builder: the real CSVs (counts, labels, order, text), a tiny raw release with media, bad input."""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict

import pytest

from hf_erc.data.errors import DataFormatError
from hf_erc.data.meld import MELD_CSV_HEADER, MELDBuilder, build_meld, parse_time_stamp, read_meld_csv
from hf_erc.data.planted import write_planted_release
from hf_erc.data.summary import count_media, media_report
from hf_erc.labels import MELD_EMOTIONS, MELD_SENTIMENTS
from tests.utils.media_fixtures import write_corrupt, write_mp4
from tests.utils.meld_files import TINY_ROWS, write_meld_csv

SPLIT_CSV = {"train": "train_sent_emo.csv", "validation": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}


@pytest.fixture(scope="session")
def meld_dataset(meld_csv_dir, tmp_path_factory):
    """The real MELD CSVs built once (text only, they come without clips)."""
    return build_meld(meld_csv_dir, cache_dir=tmp_path_factory.mktemp("meld_cache"))


def read_csv_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- real CSVs


def test_real_split_sizes(meld_dataset):
    assert {split: len(dataset) for split, dataset in meld_dataset.items()} == {
        "train": 9989,
        "validation": 1109,
        "test": 2610,
    }
    assert {split: len(set(dataset["dialogue_id"])) for split, dataset in meld_dataset.items()} == {
        "train": 1038,
        "validation": 114,
        "test": 280,
    }


def test_real_features(meld_dataset):
    features = meld_dataset["train"].features
    assert list(features) == [
        "dialogue_id", "turn", "utterance_id", "speaker", "text", "emotion", "sentiment",
        "audio_path", "video_path", "start", "end", "has_audio", "has_video",
    ]  # fmt: skip
    assert features["emotion"].names == list(MELD_EMOTIONS)
    assert features["sentiment"].names == list(MELD_SENTIMENTS)
    assert (features["turn"].dtype, features["utterance_id"].dtype) == ("int32", "int32")
    assert (features["start"].dtype, features["end"].dtype) == ("float32", "float32")


def test_real_label_counts_match_csv(meld_dataset, meld_csv_dir):
    for split, csv_name in SPLIT_CSV.items():
        rows = read_csv_rows(meld_csv_dir / csv_name)
        dataset = meld_dataset[split]
        emotions = Counter(MELD_EMOTIONS[label] for label in dataset["emotion"])
        sentiments = Counter(MELD_SENTIMENTS[label] for label in dataset["sentiment"])
        assert emotions == Counter(row["Emotion"] for row in rows), split
        assert sentiments == Counter(row["Sentiment"] for row in rows), split
    # Totals checked once by hand against the release.
    train_emotions = Counter(MELD_EMOTIONS[label] for label in meld_dataset["train"]["emotion"])
    assert (train_emotions["neutral"], train_emotions["joy"], train_emotions["fear"]) == (4710, 1743, 268)
    test_emotions = Counter(MELD_EMOTIONS[label] for label in meld_dataset["test"]["emotion"])
    assert (test_emotions["neutral"], test_emotions["anger"]) == (1256, 345)


def test_real_dialogue_order_and_turns(meld_dataset):
    for split, dataset in meld_dataset.items():
        columns = dataset.select_columns(["dialogue_id", "turn", "utterance_id"]).to_dict()
        dialogue_numbers = [int(name.removeprefix("dia")) for name in columns["dialogue_id"]]
        assert dialogue_numbers == sorted(dialogue_numbers), f"{split}: dialogues not in numeric order"
        turns, utterance_ids = defaultdict(list), defaultdict(list)
        for dialogue, turn, utterance_id in zip(dialogue_numbers, columns["turn"], columns["utterance_id"]):
            turns[dialogue].append(turn)
            utterance_ids[dialogue].append(utterance_id)
        for dialogue in turns:
            assert turns[dialogue] == list(range(len(turns[dialogue]))), f"{split} dia{dialogue}"
            assert utterance_ids[dialogue] == sorted(set(utterance_ids[dialogue])), f"{split} dia{dialogue}"
    # Train dialogue 1 skips Utterance_ID 6 and 7 in the release: turns stay contiguous.
    dialogue_1 = meld_dataset["train"].filter(lambda row: row["dialogue_id"] == "dia1")
    assert dialogue_1["utterance_id"][-1] == 8 and dialogue_1["turn"][-1] == 6


def test_real_rows_match_csv(meld_dataset, meld_csv_dir):
    """Every row is the CSV row with the same ids: text byte-identical, speaker, labels and times."""
    for split, csv_name in SPLIT_CSV.items():
        by_key = {(int(row["Dialogue_ID"]), int(row["Utterance_ID"])): row for row in read_csv_rows(meld_csv_dir / csv_name)}
        dataset = meld_dataset[split]
        assert len(by_key) == len(dataset)
        for example in dataset:
            row = by_key[(int(example["dialogue_id"][3:]), example["utterance_id"])]
            assert example["text"].encode("utf-8") == row["Utterance"].encode("utf-8")
            assert example["speaker"] == row["Speaker"]
            assert MELD_EMOTIONS[example["emotion"]] == row["Emotion"]
            assert MELD_SENTIMENTS[example["sentiment"]] == row["Sentiment"]
            assert example["start"] == pytest.approx(parse_time_stamp(row["StartTime"]), abs=1e-3)
            assert example["end"] == pytest.approx(parse_time_stamp(row["EndTime"]), abs=1e-3)


def test_real_text_keeps_curly_quotes_and_no_line_ends(meld_dataset, meld_csv_dir):
    raw = (meld_csv_dir / "train_sent_emo.csv").read_bytes()
    texts = meld_dataset["train"]["text"]
    # The release's first utterance, with its right single quotation mark (U+2019), as bytes in the file.
    assert texts[0] == "also I was the point person on my company\u2019s transition from the KL-5 to GR-6 system."
    assert texts[0].encode("utf-8") in raw
    assert sum("\u2019" in text for text in texts) == sum("\u2019" in row["Utterance"] for row in read_csv_rows(meld_csv_dir / "train_sent_emo.csv"))
    assert sum("\u2019" in text for text in texts) > 1000
    assert not any("\r" in text or "\n" in text for text in texts)


def test_real_time_stamps(meld_dataset):
    first = meld_dataset["train"][0]
    assert first["start"] == pytest.approx(16 * 60 + 16.059, abs=1e-3)
    assert first["end"] == pytest.approx(16 * 60 + 21.731, abs=1e-3)
    # Three rows of the release have two fraction digits ("00:06:47,28" = 47.28 s).
    assert parse_time_stamp("00:06:47,28") == pytest.approx(407.28)
    assert parse_time_stamp("0:00:01,5") == pytest.approx(1.5)


def test_real_csvs_build_text_only(meld_dataset):
    for split, dataset in meld_dataset.items():
        counts = count_media(dataset)
        assert counts.text_only and counts.usable == {"audio": 0, "video": 0}
    assert all(line.endswith("utterances)") and "text only" in line for line in media_report(meld_dataset))


def test_builder_class_used_directly(meld_csv_dir, tmp_path):
    builder = MELDBuilder(data_dir=meld_csv_dir, check_media=False, cache_dir=str(tmp_path))
    assert builder.config.check_media is False
    builder.download_and_prepare()
    dataset = builder.as_dataset(split="validation")
    assert len(dataset) == 1109 and dataset[0]["dialogue_id"] == "dia0"


# ---------------------------------------------------------------- a tiny raw release with media

@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
    raw = tmp_path_factory.mktemp("MELD.Raw")
    for csv_name, rows in TINY_ROWS.items():
        write_meld_csv(raw / csv_name, rows)
    train, dev, test = raw / "train_splits", raw / "dev_splits_complete", raw / "output_repeated_splits_test"
    for folder in (train, dev, test):
        folder.mkdir()
    for name in ("dia0_utt0", "dia0_utt1", "dia2_utt0", "dia10_utt0", "dia125_utt0"):
        write_mp4(train / f"{name}.mp4", seconds=0.3)
    write_corrupt(train / "dia125_utt3.mp4")
    write_corrupt(train / "._dia0_utt0.mp4")  # macOS AppleDouble junk next to a real clip
    (train / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (train / "notes.txt").write_text("not a clip")
    write_mp4(dev / "dia110_utt0.mp4", seconds=0.3)  # dia110_utt7.mp4 is absent, as in the release
    write_mp4(test / "dia0_utt0.mp4", seconds=0.3, with_audio=False)
    write_mp4(test / "dia0_utt1.mp4", seconds=0.3)
    return raw


@pytest.fixture(scope="module")
def tiny_dataset(tiny_release, tmp_path_factory):
    return build_meld(tiny_release, cache_dir=tmp_path_factory.mktemp("tiny_cache"))


def rows_by_name(dataset):
    return {f"{example['dialogue_id']}_utt{example['utterance_id']}": example for example in dataset}


def test_tiny_release_order(tiny_dataset):
    train = tiny_dataset["train"]
    assert train["dialogue_id"] == ["dia0", "dia0", "dia2", "dia10", "dia125", "dia125"]
    assert train["turn"] == [0, 1, 0, 0, 0, 1]
    assert train["utterance_id"] == [0, 1, 0, 0, 0, 3]
    assert train["text"][0] == "\u201cQuoted\u201d, and a comma."


def test_tiny_release_media_flags(tiny_release, tiny_dataset):
    train = rows_by_name(tiny_dataset["train"])
    for name in ("dia0_utt0", "dia0_utt1", "dia2_utt0", "dia10_utt0", "dia125_utt0"):
        assert train[name]["has_audio"] and train[name]["has_video"], name
        assert train[name]["video_path"] == train[name]["audio_path"] == str(tiny_release / "train_splits" / f"{name}.mp4")
    corrupt = train["dia125_utt3"]
    assert corrupt["video_path"] == str(tiny_release / "train_splits" / "dia125_utt3.mp4")
    assert not corrupt["has_audio"] and not corrupt["has_video"]
    assert corrupt["text"] == "The corrupt one \u2019." and MELD_EMOTIONS[corrupt["emotion"]] == "anger"

    dev = rows_by_name(tiny_dataset["validation"])
    missing = dev["dia110_utt7"]
    assert missing["video_path"] is None and missing["audio_path"] is None
    assert not missing["has_audio"] and not missing["has_video"]
    assert missing["text"] == "Where is my clip?" and missing["turn"] == 1
    assert dev["dia110_utt0"]["has_video"]

    test = rows_by_name(tiny_dataset["test"])
    assert test["dia0_utt0"]["has_video"] and not test["dia0_utt0"]["has_audio"]
    assert test["dia0_utt1"]["has_audio"] and test["dia0_utt1"]["has_video"]


def test_tiny_release_summary(tiny_dataset):
    counts = {split: count_media(dataset) for split, dataset in tiny_dataset.items()}
    train, validation, test = counts["train"], counts["validation"], counts["test"]
    assert train.usable == {"audio": 5, "video": 5}
    assert train.missing == {"audio": [], "video": []}
    assert train.unusable == {"audio": ["dia125_utt3.mp4"], "video": ["dia125_utt3.mp4"]}
    assert validation.usable == {"audio": 1, "video": 1}
    assert validation.missing == {"audio": ["dia110_utt7"], "video": ["dia110_utt7"]}
    assert test.usable == {"audio": 1, "video": 2}
    assert test.unusable == {"audio": ["dia0_utt0.mp4"], "video": []}
    assert not any(count.text_only for count in counts.values())
    assert media_report(tiny_dataset) == [
        "train: 6 utterances, audio usable for 5, video for 5; unusable audio/video: 1 (dia125_utt3.mp4)",
        "validation: 2 utterances, audio usable for 1, video for 1; missing audio/video: 1 (dia110_utt7)",
        "test: 2 utterances, audio usable for 1, video for 2; unusable audio: 1 (dia0_utt0.mp4)",
    ]


def test_build_logs_media_summary(tiny_release, tmp_path, caplog):
    with caplog.at_level("INFO", logger="hf_erc.data.meld"):
        build_meld(tiny_release, cache_dir=tmp_path)
    assert "MELD train: 6 utterances, audio usable for 5, video for 5; unusable audio/video: 1 (dia125_utt3.mp4)" in caplog.text
    assert "MELD validation: 2 utterances, audio usable for 1, video for 1; missing audio/video: 1 (dia110_utt7)" in caplog.text


def test_no_check_media_only_checks_existence(tiny_release, tmp_path):
    dataset = build_meld(tiny_release, check_media=False, cache_dir=tmp_path)
    train = rows_by_name(dataset["train"])
    # Without decoding, the corrupt clip counts as present; the missing one is still missing.
    assert train["dia125_utt3"]["has_video"] and train["dia125_utt3"]["has_audio"]
    assert rows_by_name(dataset["validation"])["dia110_utt7"]["video_path"] is None


def test_media_folders_one_level_down(tmp_path):
    """Archives unpacked into their own folder (MELD.Raw/test/output_repeated_splits_test/) are found too."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for csv_name, rows in TINY_ROWS.items():
        write_meld_csv(raw / csv_name, rows)
    (raw / "test" / "output_repeated_splits_test").mkdir(parents=True)
    write_mp4(raw / "test" / "output_repeated_splits_test" / "dia0_utt1.mp4", seconds=0.3)
    dataset = build_meld(raw, check_media=False, cache_dir=tmp_path / "cache")
    assert dataset["test"]["has_video"] == [False, True]
    assert count_media(dataset["train"]).text_only


# ---------------------------------------------------------------- bad input


@pytest.fixture
def release_with(tmp_path):
    """A tiny release whose ``train`` CSV is replaced by ``text`` (written verbatim)."""

    def make(text: str):
        raw = tmp_path / "raw"
        raw.mkdir(exist_ok=True)
        for csv_name, rows in TINY_ROWS.items():
            write_meld_csv(raw / csv_name, rows)
        (raw / "train_sent_emo.csv").write_bytes(text.encode("utf-8"))
        return raw

    return make


HEADER = ",".join(MELD_CSV_HEADER)


def good_row(number=1, dialogue=0, utterance=0, emotion="neutral", sentiment="neutral", start="00:00:01,000"):
    return f'{number},Hello.,Ross,{emotion},{sentiment},{dialogue},{utterance},1,1,"{start}","00:00:02,000"'


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([HEADER, good_row(1), good_row(2, utterance=1, emotion="happiness")],
         ["line 3", "unknown Emotion 'happiness'", "neutral", "anger"]),
        ([HEADER, good_row(1, sentiment="mixed")], ["line 2", "unknown Sentiment 'mixed'", "positive"]),
        ([HEADER, good_row(1), good_row(2, start="16:16.059")], ["line 3", "StartTime", "'16:16.059'", "HH:MM:SS"]),
        ([HEADER.replace(",Emotion", ""), "1,Hi.,Ross,neutral,0,0,1,1,x,y"], ["lacks the column(s) ['Emotion']"]),
        (["id,sentence,label", "1,hello,happy"], ["is not a MELD utterance table", "Sr No."]),
        ([HEADER], ["has a header but no utterances"]),
        ([], ["is empty"]),
        ([HEADER, good_row(1), good_row(2)], ["line 3", "already appears on line 2"]),
        ([HEADER, good_row(1, dialogue="x7")], ["line 2", "Dialogue_ID 'x7'"]),
        ([HEADER, good_row(1) + ",extra"], ["line 2", "12 fields where the header has 11"]),
    ],
    ids=["emotion", "sentiment", "time", "missing-column", "wrong-header", "no-rows", "empty", "duplicate", "bad-id", "fields"],
)  # fmt: skip
def test_bad_csv_names_file_and_line(release_with, tmp_path, lines, expected):
    raw = release_with("\r\n".join(lines) + ("\r\n" if lines else ""))
    with pytest.raises(DataFormatError) as error:
        build_meld(raw, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert str(raw / "train_sent_emo.csv") in message
    for part in expected:
        assert part in message


def test_bad_encoding(tmp_path):
    path = tmp_path / "train_sent_emo.csv"
    path.write_bytes((HEADER + "\r\n" + good_row(1).replace("Hello.", "Caf\xe9.") + "\r\n").encode("latin-1"))
    with pytest.raises(DataFormatError, match="is not UTF-8"):
        read_meld_csv(path)


def test_missing_folder_and_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_meld(tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds none of the MELD utterance tables"):
        build_meld(tmp_path / "empty", cache_dir=tmp_path / "cache")
    partial = tmp_path / "partial"
    partial.mkdir()
    write_meld_csv(partial / "train_sent_emo.csv", TINY_ROWS["train_sent_emo.csv"])
    with pytest.raises(FileNotFoundError, match=r"lacks \['dev_sent_emo.csv', 'test_sent_emo.csv'\]"):
        build_meld(partial, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- a release rewritten in place

def test_a_release_rewritten_in_place_is_built_again(tmp_path):
    """`build_meld` on a folder whose release was replaced (another planted release, then one transcript fixed with
    the same length and the file's time restored, as `tar`, `cp -p` or `rsync -t` leave it) builds the new rows
    rather than handing back the cached build of the earlier release at the same path."""
    raw, cache = tmp_path / "MELD.Raw", tmp_path / "cache"
    texts = []
    for seed in (1, 2):
        write_planted_release(raw, dialogues={"train": 3, "dev": 2, "test": 2}, seed=seed, media=False, overwrite=True)
        texts.append(build_meld(raw, check_media=False, cache_dir=cache)["train"]["text"])
        assert sorted(texts[-1]) == sorted(row["Utterance"] for row in read_csv_rows(raw / "train_sent_emo.csv"))
    assert texts[0] != texts[1]

    csv_path = raw / "train_sent_emo.csv"
    status = csv_path.stat()
    with open(csv_path, newline="", encoding="utf-8") as handle:
        header, *rows = csv.reader(handle)
    column = header.index("Utterance")
    old = rows[0][column]
    rows[0][column] = fixed = "".join("x" if character.isalpha() else character for character in old)
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows([header, *rows])
    os.utime(csv_path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert csv_path.stat().st_size == status.st_size
    rebuilt = build_meld(raw, check_media=False, cache_dir=cache)["train"]["text"]
    assert fixed in rebuilt and old not in rebuilt
