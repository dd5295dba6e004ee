"""Tests for the reader of MAGTKD's first-stage feature pickles (``first_stage_{train,dev,test}_features.pkl``)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from hf_erc.data.collators import DialogueCollator
from hf_erc.data.dialogues import group_dialogues
from hf_erc.data.errors import DataFormatError, DataNotFoundError
from hf_erc.data.feature_files import UnsafePickleError
from hf_erc.data.magtkd_features import (
    MAGTKD_FEATURE_FILES,
    is_magtkd_feature_folder,
    magtkd_label_mapping,
    magtkd_speaker_vocab,
    read_magtkd_feature_pickles,
)
from hf_erc.labels import IEMOCAP_EMOTIONS, MELD_EMOTIONS
from tests.utils.magtkd_pickles import DIM, FILES, IEMOCAP_SPLITS, MELD_SPLITS
from tests.utils.magtkd_pickles import write_feature_folder as _write_folder


class _Payload:
    """Pickles as a call to ``function(*arguments)``, as a hostile file would."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


class _Opaque:
    """A plain class instance: pickled as a reference to this module's class."""


def test_label_mappings_are_the_hand_computed_ones():
    # MELD: anger, disgust, fear, joy, neutral, sadness, surprise -> neutral 0, surprise 1, fear 2, sadness 3,
    # joy 4, disgust 5, anger 6. IEMOCAP: ang, exc, fru, hap, neu, sad -> happy 0, sad 1, neutral 2, angry 3,
    # excited 4, frustrated 5.
    assert magtkd_label_mapping("meld").tolist() == [6, 5, 2, 4, 0, 3, 1]
    assert magtkd_label_mapping("IEMOCAP").tolist() == [3, 4, 5, 0, 2, 1]
    assert MAGTKD_FEATURE_FILES["validation"] == FILES["dev"]


def test_meld_rows(tmp_path):
    written = _write_folder(tmp_path, MELD_SPLITS)
    splits = read_magtkd_feature_pickles(tmp_path, "meld")
    assert list(splits) == ["train", "validation", "test"]
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    assert train.features["emotion"].names == list(MELD_EMOTIONS)
    assert "sentiment" not in train.column_names
    assert train["dialogue_id"] == ["dia0"] * 3 + ["dia3"] * 2
    assert train["turn"] == [0, 1, 2, 0, 1]
    assert train["utterance_id"] == [0, 1, 2, 0, 2]
    assert train["speaker"] == ["Chandler", "Joey", "Chandler", "Ross", "Doctor Connelly"]
    assert train["emotion"] == [6, 0, 1, 5, 4]
    assert validation["dialogue_id"] == ["dia1", "dia1", "dia0"]  # the file's order, not sorted
    assert validation["speaker"] == ["Rachel", "Monica", "Joey"]
    assert validation["emotion"] == [2, 3, 0]
    assert test["dialogue_id"] == ["dia7", "dia2", "dia2", "dia2"]
    assert test["utterance_id"] == [0, 0, 1, 3]
    assert test["speaker"] == ["Phoebe", "The Interviewer", "Richard\u2019s Date", "The Interviewer"]
    assert test["emotion"] == [1, 0, 6, 4]
    assert test["text"] == [""] * 4
    assert test["audio_path"] == [None] * 4 and test["video_path"] == [None] * 4
    assert test["start"] == [None] * 4 and test["end"] == [None] * 4
    assert test["has_audio"] == [True] * 4 and test["has_video"] == [True] * 4

    # The fusion's inputs on MELD: text, distilled audio, distilled video.
    rows = test.with_format("numpy")
    reference = written["test"]
    for row, (vid, turn) in zip(range(4), [(7, 0), (2, 0), (2, 1), (2, 2)]):
        np.testing.assert_array_equal(rows[row]["text_features"], reference["text"][vid][turn])
        np.testing.assert_array_equal(rows[row]["audio_features"], reference["audio_kd"][vid][turn])
        np.testing.assert_array_equal(rows[row]["video_features"], reference["video_kd"][vid][turn])
    assert rows[0]["text_features"].dtype == np.float32 and rows[0]["text_features"].shape == (DIM,)

    vocab = magtkd_speaker_vocab("meld")
    assert len(vocab) == 304 and [vocab[name] for name in test["speaker"]] == [5, 1, 146, 1]


def test_iemocap_rows_and_default_video_key(tmp_path):
    written = _write_folder(tmp_path, IEMOCAP_SPLITS)
    splits = read_magtkd_feature_pickles(tmp_path, "iemocap")
    train, test = splits["train"], splits["test"]
    assert train.features["emotion"].names == list(IEMOCAP_EMOTIONS)
    assert "utterance_id" not in train.column_names and "sentiment" not in train.column_names
    assert train["dialogue_id"] == ["0", "0", "0", "1", "1"]
    assert train["speaker"] == ["speaker_0", "speaker_1", "speaker_0", "speaker_1", "speaker_0"]
    assert train["emotion"] == [3, 4, 5, 0, 2]  # ang, exc, fru, hap, neu
    assert splits["validation"]["emotion"] == [1, 1, 2]  # sad, sad, neu
    assert test["dialogue_id"] == ["0", "1", "1", "2", "2", "2"]  # numeric ids restart in every split
    assert test["emotion"] == [5, 4, 3, 0, 0, 1]

    # The fusion's inputs on IEMOCAP: text, distilled audio, stage-1 (not distilled) video.
    row = test.with_format("numpy")[5]
    np.testing.assert_array_equal(row["text_features"], written["test"]["text"][2][2])
    np.testing.assert_array_equal(row["audio_features"], written["test"]["audio_kd"][2][2])
    np.testing.assert_array_equal(row["video_features"], written["test"]["video"][2][2])

    # The authors' per-dialogue ids survive grouping and collation through the vocabulary.
    collator = DialogueCollator(speaker_vocab=magtkd_speaker_vocab("iemocap"), num_speakers=2)
    batch = collator(list(group_dialogues(splits["train"])))
    assert batch["speaker_ids"].tolist() == [[0, 1, 0], [1, 0, 0]]
    assert batch["labels"].tolist() == [[3, 4, 5], [0, 2, -100]]
    assert tuple(batch["video_features"].shape) == (2, 3, DIM)


@pytest.mark.parametrize(
    "dataset, audio, video, expected",
    [
        ("meld", "audio", "video", ("audio", "video")),
        ("meld", None, None, ("audio_kd", "video_kd")),
        ("iemocap", "audio_kd", "video_kd", ("audio_kd", "video_kd")),
        ("iemocap", "audio", None, ("audio", "video")),
    ],
)
def test_feature_key_choice(tmp_path, dataset, audio, video, expected):
    written = _write_folder(tmp_path, MELD_SPLITS if dataset == "meld" else IEMOCAP_SPLITS)
    row = read_magtkd_feature_pickles(tmp_path, dataset, audio=audio, video=video)["validation"].with_format("numpy")[1]
    reference = written["dev"]
    np.testing.assert_array_equal(row["audio_features"], reference[expected[0]][1 if dataset == "meld" else 0][1])
    np.testing.assert_array_equal(row["video_features"], reference[expected[1]][1 if dataset == "meld" else 0][1])


def test_bad_arguments(tmp_path):
    _write_folder(tmp_path, IEMOCAP_SPLITS)
    with pytest.raises(ValueError, match=r"audio='video_kd': expected one of \('audio', 'audio_kd'\)"):
        read_magtkd_feature_pickles(tmp_path, "iemocap", audio="video_kd")
    with pytest.raises(ValueError, match="video='text'"):
        read_magtkd_feature_pickles(tmp_path, "iemocap", video="text")
    with pytest.raises(ValueError, match="Unknown dataset 'cmu'"):
        read_magtkd_feature_pickles(tmp_path, "cmu")


def test_is_magtkd_feature_folder(tmp_path):
    assert not is_magtkd_feature_folder(tmp_path)
    assert not is_magtkd_feature_folder(tmp_path / "absent")
    _write_folder(tmp_path / "feature", IEMOCAP_SPLITS)
    assert is_magtkd_feature_folder(tmp_path / "feature")
    assert not is_magtkd_feature_folder(tmp_path / "feature" / FILES["train"])


def test_missing_files_are_named_with_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"absent does not exist.*extract_first_stage_features\.py"):
        read_magtkd_feature_pickles(tmp_path / "absent", "meld")
    _write_folder(tmp_path / "feature", MELD_SPLITS)
    with pytest.raises(DataNotFoundError, match=r"They are in .*feature: pass that folder"):
        read_magtkd_feature_pickles(tmp_path, "meld")
    (tmp_path / "feature" / FILES["dev"]).unlink()
    with pytest.raises(DataNotFoundError) as caught:
        read_magtkd_feature_pickles(tmp_path / "feature", "meld")
    message = str(caught.value)
    assert "has no first_stage_dev_features.pkl" in message and FILES["train"] + " (" not in message
    assert "extract_first_stage_features.py" in message
    assert isinstance(caught.value, FileNotFoundError)


def _expect_error(tmp_path, edit, pattern, dataset="meld", splits=None):
    _write_folder(tmp_path, splits or (MELD_SPLITS if dataset == "meld" else IEMOCAP_SPLITS), edit)
    with pytest.raises(DataFormatError, match=pattern):
        read_magtkd_feature_pickles(tmp_path, dataset)


def _on(split, change):
    """An ``edit`` that applies ``change(contents)`` to one split only."""
    return lambda name, contents: change(contents) if name == split else None


def test_layout_errors(tmp_path):
    _expect_error(
        tmp_path / "a", _on("dev", lambda c: [c]), r"first_stage_dev_features\.pkl: expected the dict.*found list"
    )
    _expect_error(
        tmp_path / "b",
        _on("test", lambda c: c.pop("video_kd") and None),
        r"first_stage_test_features\.pkl: the dict has no \['video_kd'\]",
    )
    _expect_error(
        tmp_path / "c",
        _on("train", lambda c: c["audio"].pop(3) and None),
        r"first_stage_train_features\.pkl: 'audio' has no entry for dialogue\(s\) \[3\] listed in 'vids'",
    )
    _expect_error(
        tmp_path / "d",
        _on("train", lambda c: c["labels"].update({99: [4]})),
        r"'labels' has dialogue\(s\) \[99\] that 'vids' does not list",
    )
    _expect_error(
        tmp_path / "e", _on("train", lambda c: c["vids"].append(0)), r"'vids' lists dialogue\(s\) \[0\] more than once"
    )


def test_length_errors(tmp_path):
    _expect_error(
        tmp_path / "a",
        _on("train", lambda c: c["audio_kd"].update({0: c["audio_kd"][0][:2]})),
        r"train_features\.pkl: dialogue 0 has 3 labels but 2 'audio_kd' vectors",
    )
    # A key the fusion does not read is checked too.
    _expect_error(
        tmp_path / "b",
        _on("test", lambda c: c["video"].update({2: c["video"][2] + c["video"][2]})),
        r"test_features\.pkl: dialogue 2 has 3 labels but 6 'video' vectors",
    )
    _expect_error(
        tmp_path / "c",
        _on("dev", lambda c: c["speakers"].update({1: [3]})),
        r"dev_features\.pkl: dialogue 1 has 2 labels but 1 'speakers'",
    )
    _expect_error(
        tmp_path / "d",
        _on("dev", lambda c: c["dia2utt"].update({1: [0, 1, 2]})),
        r"dialogue 1 has 2 labels but 3 'dia2utt'",
    )


def test_vector_sizes_must_be_consistent(tmp_path):
    def ragged(contents):
        contents["video"][2][1] = np.zeros(5, dtype=np.float32)

    _expect_error(
        tmp_path / "a",
        _on("test", ragged),
        r"test_features\.pkl: dialogue 2, utterance 1: the 'video' vector has shape \(5,\); expected size 8 like "
        r"the rows before it \(first seen in .*train_features\.pkl, dialogue 0\)",
    )

    def matrix(contents):
        contents["text"][0][0] = np.zeros((1, DIM), dtype=np.float32)

    pattern = r"dialogue 0, utterance 0: the 'text' vector has shape \(1, 8\); expected 1-D"
    _expect_error(tmp_path / "b", _on("train", matrix), pattern)

    # Any size is accepted (the authors' is 768) as long as all rows of a key agree; keys may differ.
    def smaller(name, contents):
        contents["video"] = {vid: [vector[:5] for vector in vectors] for vid, vectors in contents["video"].items()}

    _write_folder(tmp_path / "c", MELD_SPLITS, smaller)
    splits = read_magtkd_feature_pickles(tmp_path / "c", "meld", video="video")
    assert len(splits["test"][0]["video_features"]) == 5 and len(splits["test"][0]["text_features"]) == DIM


def test_unknown_label_and_speaker(tmp_path):
    meld = {**MELD_SPLITS, "test": {7: ([6], [5], [0]), 2: ([4, 7, 3], [1, 146, 1], [0, 1, 3])}}
    _expect_error(
        tmp_path / "a",
        None,
        r"first_stage_test_features\.pkl: dialogue 2, utterance 1 \(Utterance_ID 1\) has label 7; MAGTKD's meld class "
        r"ids are 0 anger, 1 disgust, .*6 surprise",
        splits=meld,
    )
    iemocap = {**IEMOCAP_SPLITS, "dev": {0: ([5, -1], [0, 1], [0, 1])}}
    pattern = r"dev_features\.pkl: dialogue 0, utterance 1 \(Utterance_ID 1\) has label -1"
    _expect_error(tmp_path / "b", None, pattern, "iemocap", iemocap)
    iemocap = {**IEMOCAP_SPLITS, "dev": {0: ([5, 5], [0, 2], [0, 1])}}
    _expect_error(tmp_path / "c", None, r"dialogue 0, utterance 1 has speaker 2; expected 0 or 1", "iemocap", iemocap)
    meld = {**MELD_SPLITS, "dev": {1: ([2, 5], [3, 304], [0, 1])}}
    _expect_error(tmp_path / "d", None, r"utterance 1 has speaker 304; expected the 304 ids", splits=meld)
    _expect_error(
        tmp_path / "e",
        _on("train", lambda c: c["labels"].update({3: ["joy", "anger"]})),
        r"dialogue 3: 'labels' should be a list of integers",
    )


def test_other_objects_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"

    def hostile(contents):
        contents["text"][0][1] = _Payload(os.system, f"touch {marker}")

    _write_folder(tmp_path / "a", MELD_SPLITS, _on("train", hostile))
    with pytest.raises(UnsafePickleError) as caught:
        read_magtkd_feature_pickles(tmp_path / "a", "meld")
    assert f"{os.system.__module__}.system" in str(caught.value)
    assert "first_stage_train_features.pkl" in str(caught.value)
    assert not marker.exists()

    # A hand-written protocol-0 pickle that calls os.system directly, as a crafted file would.
    _write_folder(tmp_path / "b", IEMOCAP_SPLITS)
    crafted = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    (tmp_path / "b" / FILES["dev"]).write_bytes(crafted)
    with pytest.raises(DataFormatError, match=r"first_stage_dev_features\.pkl: refused to load global 'os\.system'"):
        read_magtkd_feature_pickles(tmp_path / "b", "iemocap")
    assert not marker.exists()

    # Any class instance, however harmless, is refused as well.
    _write_folder(tmp_path / "c", IEMOCAP_SPLITS, _on("test", lambda c: c["speakers"].update({0: [_Opaque()]})))
    with pytest.raises(UnsafePickleError, match=re.escape(f"refused to load global '{__name__}._Opaque'")):
        read_magtkd_feature_pickles(tmp_path / "c", "iemocap")
