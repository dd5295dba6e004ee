"""IEMOCAP builder on a tiny fake ``IEMOCAP_full_release`` written in the release's own formats."""

from __future__ import annotations

import json
import logging
import shutil
from importlib import resources
from pathlib import Path

import datasets
import pytest

from hf_erc.data.errors import DataFormatError, DataNotFoundError
from hf_erc.data.iemocap import (
    IEMOCAPBuilder,
    build_iemocap,
    iemocap_dataset_card,
    reference_test_order,
    reference_validation_dialogues,
    split_dialogue_ids,
)
from hf_erc.data.iemocap_files import parse_transcription, turn_speaker
from hf_erc.data.media import decode_video_frames
from hf_erc.labels import IEMOCAP_CODES, IEMOCAP_EMOTIONS
from tests.utils.iemocap_release import (
    CORRUPT_AVI,
    KEPT,
    MISSING_WAV,
    REFERENCE_VALIDATION,
    RELEASE,
    SHORT_AVI,
    in_transcription_order,
    make_release,
    release_with,
)
from tests.utils.media_fixtures import frame_index
from tests.utils.scripts import load_script

def expected_rows(session_filter, keep_unlabeled=False):
    rows = []
    for session, dialogues in RELEASE.items():
        if not session_filter(session):
            continue
        for dialogue_id, turns in sorted(dialogues.items()):
            kept = [turn for turn in turns if keep_unlabeled or turn[3] in KEPT]
            for turn, (suffix, start, end, code, text) in enumerate(in_transcription_order(dialogue_id, kept)):
                rows.append((dialogue_id, turn, f"{dialogue_id}_{suffix}", suffix[0], text, code))
    return rows


def rows_of(split):
    """``(dialogue_id, turn, utterance_id, speaker, text, code)`` per row, code None when unlabelled."""
    codes = [IEMOCAP_CODES[IEMOCAP_EMOTIONS.index(name)] for name in split.features["emotion"].names]
    columns = ("dialogue_id", "turn", "utterance_id", "speaker", "text")
    return [
        (*(row[column] for column in columns), codes[row["emotion"]] if row["emotion"] >= 0 else None)
        for row in split
    ]


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("iemocap"))


@pytest.fixture(scope="module")
def iemocap(raw_dir, tmp_path_factory):
    return build_iemocap(raw_dir, cache_dir=tmp_path_factory.mktemp("cache"))


# ----------------------------------------------------------------------------- parsing


def test_turn_speaker_is_the_turns_own_letter():
    assert turn_speaker("Ses01M_impro02_F000", "Ses01M_impro02") == "F"
    assert turn_speaker("Ses01F_impro01_M013", "Ses01F_impro01") == "M"
    assert turn_speaker("Ses01F_script01_1_MXX0", "Ses01F_script01_1") is None
    assert turn_speaker("Ses01F_impro01_F000", "Ses01F_impro02") is None


def test_parse_transcription_keeps_only_numbered_turns(raw_dir):
    texts = parse_transcription(raw_dir / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt")
    assert texts == {
        "Ses01F_impro01_F000": "Excuse me.",
        "Ses01F_impro01_M000": "Do you have your forms?",
        "Ses01F_impro01_F001": "Yeah.",
        "Ses01F_impro01_M001": "Let me see them.",
        "Ses01F_impro01_F002": "Café? [LAUGHTER] I waited.",
        "Ses01F_impro01_F099": "(unlabelled)",
    }


# ----------------------------------------------------------------------------- dataset


def test_splits_rows_order_speakers_and_labels(iemocap):
    assert list(iemocap) == ["train", "validation", "test"]
    train_and_validation = sorted(rows_of(iemocap["train"]) + rows_of(iemocap["validation"]))
    assert train_and_validation == sorted(expected_rows(lambda session: session != 5))
    assert rows_of(iemocap["test"]) == expected_rows(lambda session: session == 5)
    # Whole dialogues go to validation; nothing is shared.
    train_dialogues = set(iemocap["train"]["dialogue_id"])
    validation_dialogues = set(iemocap["validation"]["dialogue_id"])
    assert len(validation_dialogues) == 1
    assert not train_dialogues & validation_dialogues
    assert len(train_dialogues | validation_dialogues) == 5
    # Rows are grouped by dialogue (in name order) with turns in the transcription file's order, which is not
    # start-time order where the file says otherwise (what TelME's and MAGTKD's IEMOCAP CSVs follow).
    for split in iemocap.values():
        dialogue_ids = split["dialogue_id"]
        assert dialogue_ids == sorted(dialogue_ids)
        for dialogue_id in set(dialogue_ids):
            rows = split.filter(lambda row: row["dialogue_id"] == dialogue_id)
            assert rows["turn"] == list(range(len(rows)))
    test_rows = iemocap["test"].filter(lambda row: row["dialogue_id"] == "Ses05M_impro02")
    assert [name[-4:] for name in test_rows["utterance_id"]] == ["F000", "M000", "M001"]
    assert test_rows["start"] != sorted(test_rows["start"])
    everything = datasets.concatenate_datasets([iemocap["train"], iemocap["validation"]])
    impro01 = everything.filter(lambda row: row["dialogue_id"] == "Ses01F_impro01")
    assert [name[-4:] for name in impro01["utterance_id"]] == ["F000", "M000", "F002", "M001"]  # F001 is xxx


def test_features_follow_the_data_contract(iemocap):
    features = iemocap["train"].features
    assert features["emotion"].names == list(IEMOCAP_EMOTIONS)
    assert features["turn"].dtype == "int32"
    assert features["start"].dtype == "float32" and features["end"].dtype == "float32"
    assert features["has_audio"].dtype == "bool" and features["has_video"].dtype == "bool"
    row = iemocap["test"][0]
    assert row["dialogue_id"] == "Ses05F_impro01"
    assert row["utterance_id"] == "Ses05F_impro01_F000"
    assert row["speaker"] == "F"
    assert row["text"] == "Next."
    assert iemocap["test"].features["emotion"].int2str(row["emotion"]) == "neutral"
    assert row["start"] == pytest.approx(0.4) and row["end"] == pytest.approx(1.1)


def test_codes_map_to_canonical_names(iemocap):
    names = iemocap["train"].features["emotion"].names
    all_rows = datasets.concatenate_datasets([iemocap["train"], iemocap["validation"]])
    by_id = {row["utterance_id"]: names[row["emotion"]] for row in all_rows}
    assert by_id["Ses01F_impro01_M000"] == "frustrated"
    assert by_id["Ses01F_script01_1_M000"] == "happy"
    assert by_id["Ses01F_script01_1_M001"] == "excited"
    assert by_id["Ses01F_impro01_M001"] == "angry"
    assert by_id["Ses01M_impro02_F000"] == "sad"
    assert "Ses01F_impro01_F001" not in by_id  # xxx
    assert "Ses01F_script01_1_F000" not in by_id  # sur
    assert "Ses01F_impro01_F099" not in by_id  # transcribed, never labelled
    turns = {row["utterance_id"]: row["turn"] for row in all_rows}
    assert turns["Ses01F_impro01_F002"] == 2  # the xxx turn before it is dropped
    assert turns["Ses01F_impro01_M001"] == 3  # transcribed after F002, though it starts earlier


def test_media_flags(iemocap, raw_dir):
    rows = {row["utterance_id"]: row for split in iemocap.values() for row in split}
    missing = rows[MISSING_WAV]
    assert missing["audio_path"] is None and not missing["has_audio"]
    present = rows["Ses01F_impro01_F000"]
    assert present["has_audio"]
    wav = raw_dir / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav"
    assert Path(present["audio_path"]) == wav.resolve()
    assert present["has_video"]
    assert Path(present["video_path"]) == (raw_dir / "Session1/dialog/avi/DivX/Ses01F_impro01.avi").resolve()
    corrupt = rows[f"{CORRUPT_AVI}_F000"]
    assert corrupt["video_path"] is not None and not corrupt["has_video"]
    assert corrupt["has_audio"]
    assert rows[f"{SHORT_AVI}_M000"]["has_video"]
    assert not rows[f"{SHORT_AVI}_M001"]["has_video"]  # starts after the recording ends
    assert sum(not row["has_audio"] for row in rows.values()) == 1


def test_video_segment_of_a_turn_comes_from_its_times(iemocap):
    row = next(row for row in iemocap["test"] if row["utterance_id"] == "Ses05F_impro01_M000")
    frames = decode_video_frames(row["video_path"], num_frames=4, size=(32, 32), start=row["start"], end=row["end"])
    indices = [frame_index(frame) for frame in frames]
    # Frame i is shown at i / FPS seconds: the turn [1.2, 2.0) holds frames 12..19 (frame 12,
    # shown at exactly 1.2 s, may fall out since float32 stores 1.2 as 1.2000000477).
    assert indices == sorted(indices)
    assert all(12 <= index <= 19 for index in indices)
    assert indices[0] in (12, 13) and indices[-1] == 19


def test_keep_unlabeled_keeps_context_turns(raw_dir, tmp_path):
    dataset = build_iemocap(raw_dir, keep_unlabeled=True, cache_dir=tmp_path / "cache")
    train_and_validation = sorted(rows_of(dataset["train"]) + rows_of(dataset["validation"]))
    assert train_and_validation == sorted(
        (*row[:5], row[5] if row[5] in KEPT else None) for row in expected_rows(lambda s: s != 5, keep_unlabeled=True)
    )
    rows = {row["utterance_id"]: row for split in ("train", "validation") for row in dataset[split]}
    assert rows["Ses01F_impro01_F001"]["emotion"] == -1
    assert rows["Ses01F_impro01_F001"]["turn"] == 2
    assert rows["Ses01F_impro01_F002"]["turn"] == 3
    assert rows["Ses01F_impro01_M001"]["turn"] == 4  # the transcription's order
    assert rows["Ses01F_script01_1_F000"]["emotion"] == -1
    # -1 (ClassLabel's missing value) survives a Parquet round trip with the ClassLabel feature.
    split = "train" if "Ses01F_impro01_F001" in dataset["train"]["utterance_id"] else "validation"
    path = tmp_path / "split.parquet"
    dataset[split].to_parquet(path)
    reloaded = datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "parquet_cache"))
    assert reloaded.features["emotion"] == dataset[split].features["emotion"]
    assert reloaded["emotion"] == dataset[split]["emotion"]
    assert -1 in reloaded["emotion"]


def test_seeded_validation_is_reproducible(raw_dir, tmp_path):
    ids = [f"dialogue{i:02d}" for i in range(40)]
    train, validation = split_dialogue_ids(ids, 0.1, seed=0)
    assert len(validation) == 4 and sorted(train + validation) == ids
    assert split_dialogue_ids(ids, 0.1, seed=3) == split_dialogue_ids(list(reversed(ids)), 0.1, seed=3)
    assert len({tuple(split_dialogue_ids(ids, 0.1, seed=seed)[1]) for seed in range(5)}) > 1

    training_dialogues = sorted(dialogue for session in (1, 2) for dialogue in RELEASE[session])
    draws = {seed: split_dialogue_ids(training_dialogues, 0.1, seed)[1] for seed in range(10)}
    seed_a = 0
    seed_b = next(seed for seed, validation in draws.items() if validation != draws[seed_a])
    first = build_iemocap(raw_dir, seed=seed_a, check_media=False, cache_dir=tmp_path / "a")
    again = build_iemocap(raw_dir, seed=seed_a, check_media=False, cache_dir=tmp_path / "b")
    other = build_iemocap(raw_dir, seed=seed_b, check_media=False, cache_dir=tmp_path / "c")
    assert first["validation"]["utterance_id"] == again["validation"]["utterance_id"]
    assert sorted(set(first["validation"]["dialogue_id"])) == draws[seed_a]
    assert sorted(set(other["validation"]["dialogue_id"])) == draws[seed_b]
    assert first["validation"]["dialogue_id"] != other["validation"]["dialogue_id"]


def test_no_validation_when_fraction_is_zero(raw_dir, tmp_path):
    dataset = build_iemocap(raw_dir, validation_fraction=0.0, check_media=False, cache_dir=tmp_path)
    assert len(dataset["validation"]) == 0
    assert len(dataset["train"]) == len(expected_rows(lambda session: session != 5))
    with pytest.raises(ValueError, match="validation_fraction"):
        build_iemocap(raw_dir, validation_fraction=1.0, cache_dir=tmp_path)


def test_without_media_check_flags_mean_file_exists(raw_dir, tmp_path):
    dataset = build_iemocap(raw_dir, check_media=False, cache_dir=tmp_path)
    rows = {row["utterance_id"]: row for split in dataset.values() for row in split}
    assert rows[f"{CORRUPT_AVI}_F000"]["has_video"]
    assert not rows[MISSING_WAV]["has_audio"] and rows[MISSING_WAV]["audio_path"] is None


def test_summary_logs_missing_and_unusable_media(raw_dir, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="hf_erc.data.iemocap"):
        build_iemocap(raw_dir, cache_dir=tmp_path)
    messages = [record.getMessage() for record in caplog.records if record.name == "hf_erc.data.iemocap"]
    num_turns = sum(
        turn[3] in KEPT for dialogues in RELEASE.values() for turns in dialogues.values() for turn in turns
    )
    assert any(
        f"1 of {num_turns} wav files missing, 0 undecodable; 0 of 7 dialogue avi files missing, 1 undecodable" in m
        for m in messages
    ), messages
    assert any("1 sur, 1 xxx" in message for message in messages), messages


def test_builder_class_is_usable_directly(raw_dir, tmp_path):
    builder = IEMOCAPBuilder(cache_dir=str(tmp_path), data_dir=str(raw_dir), check_media=False, seed=1)
    builder.download_and_prepare()
    dataset = builder.as_dataset()
    assert set(dataset) == {"train", "validation", "test"}
    assert builder.info.license and "redistribut" in builder.info.license


def test_release_folder_parent_is_accepted(raw_dir, tmp_path):
    dataset = build_iemocap(raw_dir.parent, check_media=False, cache_dir=tmp_path)
    assert len(dataset["test"]) == len(expected_rows(lambda session: session == 5))


# ----------------------------------------------------------------------------- reference split


@pytest.fixture(scope="module")
def reference_raw_dir(tmp_path_factory):
    """The fake release plus every reference validation dialogue (sessions 1-4), without media."""
    return make_release(tmp_path_factory.mktemp("iemocap_reference"), release_with(REFERENCE_VALIDATION), media=False)


def test_shipped_reference_list_is_the_papers_12_dialogues():
    data = json.loads((resources.files("hf_erc") / "resources" / "iemocap_reference_split.json").read_text())
    assert sorted(data["validation"]) == sorted(REFERENCE_VALIDATION)
    assert len(data["validation"]) == len(set(data["validation"])) == 12
    assert "yuntaeyang/TelME" in data["source"] and "JieLi-dd/MAGTKD" in data["source"]
    assert reference_validation_dialogues() == tuple(sorted(REFERENCE_VALIDATION))
    # The authors' test CSVs' dialogue order: all 31 session 5 dialogues, not in name order.
    order = reference_test_order()
    assert len(order) == len(set(order)) == 31 and all(name.startswith("Ses05") for name in order)
    assert order[:3] == ("Ses05M_script03_2", "Ses05F_impro02", "Ses05M_impro01") and list(order) != sorted(order)


def test_reference_split_holds_out_exactly_the_listed_dialogues(reference_raw_dir, tmp_path):
    dataset = build_iemocap(
        reference_raw_dir, validation_split="reference", check_media=False, cache_dir=tmp_path / "cache"
    )
    assert sorted(set(dataset["validation"]["dialogue_id"])) == sorted(REFERENCE_VALIDATION)
    assert len(dataset["validation"]) == 2 * len(REFERENCE_VALIDATION)
    training = sorted(dialogue for session in (1, 2) for dialogue in RELEASE[session])
    assert sorted(set(dataset["train"]["dialogue_id"])) == training
    assert rows_of(dataset["train"]) == expected_rows(lambda session: session != 5)
    # Test dialogues in the authors' order: Ses05M_impro02 is 15th of their 31, Ses05F_impro01 20th.
    test_rows = expected_rows(lambda session: session == 5)
    assert rows_of(dataset["test"]) == [row for row in test_rows if row[0] == "Ses05M_impro02"] + [
        row for row in test_rows if row[0] == "Ses05F_impro01"
    ]
    card = iemocap_dataset_card(dataset)
    assert "reference split" in card and "TelME" in card and "MAGTKD" in card
    assert "seeded share" not in card


def test_random_split_is_unchanged_and_never_shares_the_reference_cache(reference_raw_dir, tmp_path):
    cache = tmp_path / "cache"
    reference = build_iemocap(reference_raw_dir, validation_split="reference", check_media=False, cache_dir=cache)
    default = build_iemocap(reference_raw_dir, check_media=False, cache_dir=cache)
    explicit = build_iemocap(reference_raw_dir, validation_split="random", check_media=False, cache_dir=cache)
    training = sorted(
        dialogue for session, dialogues in release_with(REFERENCE_VALIDATION).items() if session != 5
        for dialogue in dialogues
    )  # fmt: skip
    expected_train, expected_validation = split_dialogue_ids(training, 0.1, 42)
    for random_split in (default, explicit):
        assert sorted(set(random_split["validation"]["dialogue_id"])) == expected_validation
        assert sorted(set(random_split["train"]["dialogue_id"])) == expected_train
    assert sorted(set(reference["validation"]["dialogue_id"])) == sorted(REFERENCE_VALIDATION)
    assert "random split" in iemocap_dataset_card(default) and "reference split" not in iemocap_dataset_card(default)
    # The choice is part of the builder config name and id, hence of the cache folder.
    kwargs = {"cache_dir": str(cache), "data_dir": str(reference_raw_dir), "check_media": False}
    reference_builder = IEMOCAPBuilder(validation_split="reference", **kwargs)
    random_builder = IEMOCAPBuilder(validation_split="random", **kwargs)
    assert reference_builder.config.name == "reference-split" and random_builder.config.name == "default"
    assert reference_builder.config_id != random_builder.config_id
    assert reference_builder.cache_dir != random_builder.cache_dir


def test_reference_split_names_missing_dialogues_and_release(tmp_path):
    present, missing = REFERENCE_VALIDATION[:10], REFERENCE_VALIDATION[10:]
    raw_dir = make_release(tmp_path / "raw", release_with(present), media=False)
    with pytest.raises(DataFormatError) as error:
        build_iemocap(raw_dir, validation_split="reference", check_media=False, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert str(raw_dir) in message
    assert "2 of the 12 reference validation dialogues" in message
    assert all(dialogue in message for dialogue in missing)
    assert not any(dialogue in message for dialogue in present)
    # The random split does not need them.
    dataset = build_iemocap(raw_dir, check_media=False, cache_dir=tmp_path / "cache")
    assert len(set(dataset["train"]["dialogue_id"]) | set(dataset["validation"]["dialogue_id"])) == 15


def test_reference_split_refuses_random_split_options(raw_dir, tmp_path):
    with pytest.raises(ValueError, match=r"validation_fraction=0\.2: only for validation_split='random'"):
        build_iemocap(raw_dir, validation_split="reference", validation_fraction=0.2, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="seed=3: only for validation_split='random'"):
        build_iemocap(raw_dir, validation_split="reference", seed=3, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"validation_split must be one of \['random', 'reference'\], got 'fixed'"):
        build_iemocap(raw_dir, validation_split="fixed", cache_dir=tmp_path)


# ----------------------------------------------------------------------------- bad input


SMALL = {1: {"Ses01F_impro01": RELEASE[1]["Ses01F_impro01"]}}


def small_release(tmp_path):
    return make_release(tmp_path, SMALL, media=False)


def label_path(raw_dir):
    return raw_dir / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"


def replace_line(path, old, new):
    text = path.read_bytes().decode("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8", newline="")


def line_number_of(path, fragment):
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_raw_dir_without_sessions(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="Session1") as error:
        build_iemocap(tmp_path / "empty", cache_dir=tmp_path / "cache")
    assert "EmoEvaluation" in str(error.value) and str(tmp_path / "empty") in str(error.value)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        build_iemocap(tmp_path / "nowhere", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    "bad_line",
    [
        "[0.5000 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]",
        "[zero - 1.2000]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]",
    ],
)
def test_unparseable_label_line_names_file_and_line(tmp_path, bad_line):
    raw_dir = small_release(tmp_path)
    path = label_path(raw_dir)
    replace_line(path, "[0.5000 - 1.2000]\tSes01F_impro01_F000\tneu\t[2.5000, 3.0000, 2.5000]", bad_line)
    line = line_number_of(path, bad_line)
    with pytest.raises(DataFormatError) as error:
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")
    assert f"{path}, line {line}" in str(error.value)


def test_unknown_code_names_file_line_and_allowed_codes(tmp_path):
    raw_dir = small_release(tmp_path)
    path = label_path(raw_dir)
    replace_line(path, "Ses01F_impro01_M000\tfru", "Ses01F_impro01_M000\tjoy")
    line = line_number_of(path, "\tjoy\t")
    with pytest.raises(DataFormatError) as error:
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert f"{path}, line {line}" in message and "'joy'" in message
    assert "hap, sad, neu, ang, exc, fru, xxx, sur, fea, dis, oth" in message


def test_turn_of_another_dialogue_is_an_error(tmp_path):
    raw_dir = small_release(tmp_path)
    path = label_path(raw_dir)
    replace_line(path, "\tSes01F_impro01_M000\t", "\tSes01F_impro09_M000\t")
    with pytest.raises(DataFormatError, match="not a turn of dialogue 'Ses01F_impro01'") as error:
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")
    assert f"{path}, line {line_number_of(path, 'impro09')}" in str(error.value)


def test_labelled_turn_without_transcription_names_both_files(tmp_path):
    raw_dir = small_release(tmp_path)
    path = label_path(raw_dir)
    transcription = raw_dir / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt"
    replace_line(transcription, "Ses01F_impro01_M000 [001.0000-002.0000]: Do you have your forms?\r\n", "")
    with pytest.raises(DataFormatError) as error:
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert f"{path}, line {line_number_of(path, 'Ses01F_impro01_M000')}" in message
    assert str(transcription) in message


def test_dropped_turn_needs_no_transcription(tmp_path):
    raw_dir = small_release(tmp_path)
    transcription = raw_dir / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt"
    replace_line(transcription, "Ses01F_impro01_F001 [002.1000-002.9000]: Yeah.\r\n", "")
    dataset = build_iemocap(raw_dir, check_media=False, cache_dir=tmp_path / "cache")
    assert len(dataset["train"]) + len(dataset["validation"]) == 4
    with pytest.raises(DataFormatError, match="Ses01F_impro01_F001"):
        build_iemocap(raw_dir, keep_unlabeled=True, check_media=False, cache_dir=tmp_path / "cache")


def test_missing_transcription_file_names_both_files(tmp_path):
    raw_dir = small_release(tmp_path)
    transcription = raw_dir / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt"
    transcription.unlink()
    with pytest.raises(DataNotFoundError) as error:
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")
    assert str(transcription) in str(error.value) and str(label_path(raw_dir)) in str(error.value)


def test_duplicate_label_is_an_error(tmp_path):
    raw_dir = small_release(tmp_path)
    path = label_path(raw_dir)
    with path.open("a") as handle:
        handle.write("[5.0000 - 6.0000]\tSes01F_impro01_F000\tneu\t[2.5000, 3.0000, 2.5000]\n")
    with pytest.raises(DataFormatError, match="labelled again"):
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")


def test_session_without_emo_evaluation(tmp_path):
    raw_dir = small_release(tmp_path)
    shutil.rmtree(raw_dir / "Session1" / "dialog" / "EmoEvaluation")
    with pytest.raises(DataNotFoundError, match="EmoEvaluation"):
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- script


def load_prepare_script():
    return load_script(Path(__file__).resolve().parents[2] / "dataset_scripts" / "iemocap" / "prepare_iemocap.py")


def test_prepare_script_writes_a_loadable_parquet_repo(raw_dir, tmp_path):
    output = tmp_path / "iemocap"
    script = load_prepare_script()
    args = [str(raw_dir), str(output), "--keep-unlabeled", "--seed", "3", "--cache-dir", str(tmp_path / "cache")]
    assert script.main(args) == 0
    assert sorted(path.name for path in (output / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet",
    ]  # fmt: skip
    card = (output / "README.md").read_text()
    assert "redistribut" in card
    reloaded = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "load_cache"))
    built = build_iemocap(raw_dir, keep_unlabeled=True, seed=3, cache_dir=tmp_path / "cache")
    for split in ("train", "validation", "test"):
        assert reloaded[split].features["emotion"].names == list(IEMOCAP_EMOTIONS)
        assert reloaded[split].to_list() == built[split].to_list()
    assert -1 in list(reloaded["train"]["emotion"]) + list(reloaded["validation"]["emotion"])


def test_prepare_script_pushes_privately_by_default(raw_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    script = load_prepare_script()
    common = [str(raw_dir), str(tmp_path / "out"), "--no-check-media", "--cache-dir", str(tmp_path / "cache")]
    assert script.main(common + ["--push-to-hub", "someone/iemocap"]) == 1  # offline: the push fails cleanly
    error = capsys.readouterr().err
    assert "private repository" in error
    assert "--private" in error  # the command it suggests for a later push keeps the repository private
    assert script.main(common + ["--push-to-hub", "someone/iemocap", "--public"]) == 1
    error = capsys.readouterr().err
    assert "PUBLIC" in error and "--private" not in error


def test_prepare_script_passes_the_reference_split(reference_raw_dir, tmp_path):
    output = tmp_path / "iemocap"
    script = load_prepare_script()
    common = [str(reference_raw_dir), str(output), "--no-check-media", "--cache-dir", str(tmp_path / "cache")]
    assert script.main(common + ["--validation-split", "reference"]) == 0
    reloaded = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "load_cache"))
    assert sorted(set(reloaded["validation"]["dialogue_id"])) == sorted(REFERENCE_VALIDATION)
    assert "reference split" in (output / "README.md").read_text()
    assert script.main(common + ["--validation-split", "reference", "--seed", "3"]) == 2


def test_unparseable_transcription_line_names_file_and_line(tmp_path):
    raw_dir = small_release(tmp_path)
    transcription = raw_dir / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt"
    line = "Ses01F_impro01_F000 [000.5000-001.2000]: Excuse me."
    replace_line(transcription, line, "Ses01F_impro01_F000 Excuse me.")
    with pytest.raises(DataFormatError, match="cannot parse transcription line") as error:
        build_iemocap(raw_dir, cache_dir=tmp_path / "cache")
    assert f"{transcription}, line 1" in str(error.value)


def test_a_release_rewritten_in_place_is_built_again(tmp_path):
    """`build_iemocap` on a release folder whose files were replaced (a transcript corrected, a dialogue added)
    builds the new rows rather than handing back the cached build of the earlier release at the same path."""
    cache = tmp_path / "cache"
    raw_dir = make_release(tmp_path / "raw", media=False)
    first = build_iemocap(raw_dir, check_media=False, cache_dir=cache)
    corrected = {
        session: {
            dialogue_id: [(suffix, start, end, code, text.replace("Next.", "Nest.")) for suffix, start, end, code, text in turns]
            for dialogue_id, turns in dialogues.items()
        }
        for session, dialogues in RELEASE.items()
    }
    shutil.rmtree(raw_dir)
    make_release(tmp_path / "raw", release_with(["Ses05F_impro03"], corrected), media=False)
    second = build_iemocap(raw_dir, check_media=False, cache_dir=cache)
    assert "Next." in first["test"]["text"] and "Nest." not in first["test"]["text"]
    assert "Nest." in second["test"]["text"] and "Next." not in second["test"]["text"]
    assert "Ses05F_impro03" in second["test"]["dialogue_id"] and "Ses05F_impro03" not in first["test"]["dialogue_id"]
