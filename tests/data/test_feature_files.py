"""Tests for the feature-pickle readers and their restricted unpickler."""

from __future__ import annotations

import builtins
import os
import pickle
import re

import numpy as np
import pytest

from hf_erc.data.errors import DataFormatError
from hf_erc.data.feature_files import (
    MELD_DEV_KEY_OFFSET,
    MELD_TEST_KEY_OFFSET,
    UnsafePickleError,
    feature_file_speaker_vocab,
    load_restricted_pickle,
    read_feature_pickle,
)
from hf_erc.labels import IEMOCAP_EMOTIONS, MELD_EMOTIONS, MELD_SENTIMENTS


TINY_DIMS = {"text": 6, "audio": 5, "video": 4}


class _Payload:
    """Pickles as a call to ``function(*arguments)``, as a hostile file would."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _vectors(rng, count, dim, as_list_of_rows):
    matrix = rng.standard_normal((count, dim)).astype(np.float32)
    return [row for row in matrix] if as_list_of_rows else matrix


def _reference_tuple(dataset, dialogues, train_ids, test_ids, extra=None, dims=TINY_DIMS, seed=0):
    """A tuple in the layout SDT's dataloader.py unpacks (12 items, 13 for MELD)."""
    rng = np.random.default_rng(seed)
    ids, speakers, labels, sentences = {}, {}, {}, {}
    roberta = [{}, {}, {}, {}]
    audio, visual = {}, {}
    for position, (key, dialogue) in enumerate(dialogues.items()):
        count = len(dialogue["labels"])
        ids[key] = [f"{key}_u{turn}" for turn in range(count)]
        speakers[key] = dialogue["speakers"]
        labels[key] = dialogue["labels"]
        sentences[key] = dialogue.get("sentences", [f"{key} says {turn}" for turn in range(count)])
        for layer in range(4):
            # COSMIC stores a list of per-utterance vectors; the other items are sometimes arrays.
            roberta[layer][key] = _vectors(rng, count, dims["text"], as_list_of_rows=True)
        audio[key] = _vectors(rng, count, dims["audio"], as_list_of_rows=position % 2 == 0)
        visual[key] = _vectors(rng, count, dims["video"], as_list_of_rows=position % 2 == 1)
    items = [ids, speakers, labels, *roberta, audio, visual, sentences, train_ids, test_ids]
    if dataset == "meld":
        items.append(extra)
    return tuple(items)


def _write(path, obj):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)
    return path


def _iemocap_dialogues():
    return {
        "Ses01F_impro01": {"speakers": ["F", "M", "F"], "labels": [2, 5, 0]},
        "Ses01M_script02": {"speakers": ["M", "F"], "labels": [1, 3]},
        "Ses02F_impro03": {"speakers": ["M", "M", "F", "F"], "labels": [4, 4, 2, 1]},
        "Ses03M_impro04": {"speakers": ["F"], "labels": [3]},
        "Ses05F_impro01": {"speakers": ["F", "M"], "labels": [0, 5], "sentences": ["Café.", "Itâ\x80\x99s me, cafÃ©."]},
    }


def _one_hot(slots):
    return [np.eye(9, dtype=np.float32)[slot].tolist() for slot in slots]


def _meld_dialogues():
    return {
        0: {"speakers": _one_hot([0, 1, 0]), "labels": [0, 4, 6]},
        2: {"speakers": _one_hot([2, 3]), "labels": [1, 2]},
        MELD_DEV_KEY_OFFSET + 5: {"speakers": _one_hot([4, 4, 8]), "labels": [3, 5, 0]},
        MELD_TEST_KEY_OFFSET + 7: {"speakers": _one_hot([1, 0]), "labels": [6, 0]},
    }


@pytest.fixture
def iemocap_file(tmp_path):
    dialogues = _iemocap_dialogues()
    train = [key for key in dialogues if not key.startswith("Ses05")]
    return _write(tmp_path / "iemocap_multimodal_features.pkl", _reference_tuple("iemocap", dialogues, train, ["Ses05F_impro01"]))


def test_iemocap_mapping(iemocap_file):
    reference = pickle.load(open(iemocap_file, "rb"), encoding="latin1")
    splits = read_feature_pickle(iemocap_file, "iemocap", feature_dims=TINY_DIMS, validation_fraction=0.25, seed=3)
    assert set(splits) == {"train", "validation", "test"}
    assert splits["train"].features["emotion"].names == list(IEMOCAP_EMOTIONS)
    # 4 train dialogues, a quarter held out, the file's order kept, nothing lost.
    train_ids = list(dict.fromkeys(splits["train"]["dialogue_id"]))
    validation_ids = list(dict.fromkeys(splits["validation"]["dialogue_id"]))
    assert len(validation_ids) == 1 and len(train_ids) == 3
    assert sorted(train_ids + validation_ids) == sorted(reference[10])
    assert train_ids == [key for key in reference[10] if key in train_ids]

    test = splits["test"]
    assert test["dialogue_id"] == ["Ses05F_impro01"] * 2
    assert test["turn"] == [0, 1]
    assert test["speaker"] == ["F", "M"]
    assert test["emotion"] == [0, 5]
    # A Python 2 UTF-8 byte string (decoded as Latin-1) is repaired; a real Latin-1 text is kept.
    assert test["text"] == ["Café.", "It’s me, café."]
    assert test["audio_path"] == [None, None] and test["video_path"] == [None, None]
    assert test["start"] == [None, None] and test["end"] == [None, None]
    assert test["has_audio"] == [True, True] and test["has_video"] == [True, True]
    assert "sentiment" not in test.column_names and "utterance_id" not in test.column_names
    row = test.with_format("numpy")[1]
    np.testing.assert_array_equal(row["text_features"], reference[3]["Ses05F_impro01"][1])
    np.testing.assert_array_equal(row["audio_features"], np.asarray(reference[7]["Ses05F_impro01"])[1])
    np.testing.assert_array_equal(row["video_features"], np.asarray(reference[8]["Ses05F_impro01"])[1])
    assert row["text_features"].dtype == np.float32


def test_validation_split_is_seeded(iemocap_file):
    def held_out(seed):
        splits = read_feature_pickle(iemocap_file, "iemocap", feature_dims=TINY_DIMS, validation_fraction=0.5, seed=seed)
        return sorted(set(splits["validation"]["dialogue_id"]))

    assert held_out(1) == held_out(1)
    assert len(held_out(1)) == 2
    assert len({tuple(held_out(seed)) for seed in range(8)}) > 1
    explicit = read_feature_pickle(iemocap_file, "iemocap", feature_dims=TINY_DIMS, validation_ids=["Ses01M_script02"])
    assert set(explicit["validation"]["dialogue_id"]) == {"Ses01M_script02"}
    assert "Ses01M_script02" not in explicit["train"]["dialogue_id"]


@pytest.mark.parametrize("text_feature", ["roberta1", "roberta3", "mean"])
def test_text_feature_choice(iemocap_file, text_feature):
    reference = pickle.load(open(iemocap_file, "rb"), encoding="latin1")
    splits = read_feature_pickle(iemocap_file, "iemocap", feature_dims=TINY_DIMS, text_feature=text_feature)
    vector = splits["test"].with_format("numpy")[0]["text_features"]
    layers = [np.asarray(reference[index]["Ses05F_impro01"][0]) for index in (3, 4, 5, 6)]
    expected = {"roberta1": layers[0], "roberta3": layers[2], "mean": np.mean(layers, axis=0)}[text_feature]
    np.testing.assert_allclose(vector, expected, rtol=1e-6)


def test_meld_mapping_uses_official_dev_dialogues(tmp_path):
    dialogues = _meld_dialogues()
    sentiments = {key: [index % 3 for index in range(len(d["labels"]))] for key, d in dialogues.items()}
    train = [0, 2, MELD_DEV_KEY_OFFSET + 5]
    path = _write(tmp_path / "meld.pkl", _reference_tuple("meld", dialogues, train, [MELD_TEST_KEY_OFFSET + 7], sentiments))
    splits = read_feature_pickle(path, "meld", feature_dims=TINY_DIMS)

    assert splits["train"].features["emotion"].names == list(MELD_EMOTIONS)
    assert splits["train"].features["sentiment"].names == list(MELD_SENTIMENTS)
    assert list(dict.fromkeys(splits["train"]["dialogue_id"])) == ["dia0", "dia2"]
    assert splits["validation"]["dialogue_id"] == ["dia5"] * 3  # key 1044 = dev Dialogue_ID 5
    assert splits["test"]["dialogue_id"] == ["dia7"] * 2  # key 1160 = test Dialogue_ID 7
    assert splits["train"]["speaker"] == ["speaker_0", "speaker_1", "speaker_0", "speaker_2", "speaker_3"]
    assert splits["validation"]["speaker"] == ["speaker_4", "speaker_4", "speaker_8"]
    assert splits["validation"]["emotion"] == [3, 5, 0]
    assert splits["validation"]["sentiment"] == [0, 1, 2]
    assert splits["test"]["utterance_id"] == [None, None]
    vocab = feature_file_speaker_vocab("meld")
    assert [vocab[name] for name in splits["validation"]["speaker"]] == [4, 4, 8]
    assert feature_file_speaker_vocab("iemocap") == {"M": 0, "F": 1}


def test_meld_without_official_numbering_uses_extra_ids_or_fraction(tmp_path):
    dialogues = {f"d{index}": {"speakers": _one_hot([index % 9]), "labels": [index % 7]} for index in range(6)}
    train, test = ["d0", "d1", "d2", "d3", "d4"], ["d5"]
    with_ids = _write(tmp_path / "a.pkl", _reference_tuple("meld", dialogues, train, test, extra=["d1", "d3"]))
    splits = read_feature_pickle(with_ids, "meld", feature_dims=TINY_DIMS)
    assert splits["validation"]["dialogue_id"] == ["d1", "d3"]
    assert splits["train"]["dialogue_id"] == ["d0", "d2", "d4"]

    without = _write(tmp_path / "b.pkl", _reference_tuple("meld", dialogues, train, test, extra=None))
    splits = read_feature_pickle(without, "meld", feature_dims=TINY_DIMS, validation_fraction=0.4, seed=0)
    assert splits["validation"].num_rows == 2 and splits["train"].num_rows == 3
    assert "sentiment" not in splits["train"].column_names


def test_numpy1_pickles_load(tmp_path):
    """Files written under numpy 1 name ``numpy.core.multiarray``; they must load under numpy 2."""
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = pickle.dumps({"x": array, "y": np.float32(2.5)}, protocol=2).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    loaded = load_restricted_pickle(path)
    np.testing.assert_array_equal(loaded["x"], array)
    assert loaded["y"] == np.float32(2.5)


def test_refuses_code_execution_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pkl", ("ids", _Payload(os.system, f"touch {marker}")))
    with pytest.raises(UnsafePickleError) as caught:
        load_restricted_pickle(path)
    assert f"{os.system.__module__}.system" in str(caught.value)
    assert str(path) in str(caught.value)
    assert not marker.exists()
    # The reader goes through the same unpickler, and the error is a ValueError for the CLI.
    with pytest.raises(DataFormatError):
        read_feature_pickle(path, "iemocap")
    assert not marker.exists()
    assert isinstance(caught.value, pickle.UnpicklingError)


@pytest.mark.parametrize(
    "payload, name",
    [
        (_Payload(builtins.eval, "__import__('os').getcwd()"), "builtins.eval"),
        (_Payload(builtins.exec, "import os"), "builtins.exec"),
        (_Payload(builtins.getattr, "text", "upper"), "builtins.getattr"),
        (_Payload(builtins.__import__, "os"), "builtins.__import__"),
    ],
)
def test_refuses_dangerous_builtins(tmp_path, payload, name):
    path = _write(tmp_path / "evil.pkl", [payload])
    with pytest.raises(UnsafePickleError, match=re.escape(name)):
        load_restricted_pickle(path)


def test_feature_count_mismatch_names_dialogue(tmp_path):
    dialogues = _iemocap_dialogues()
    reference = list(_reference_tuple("iemocap", dialogues, list(dialogues)[:4], ["Ses05F_impro01"]))
    reference[7]["Ses01M_script02"] = reference[7]["Ses01M_script02"][:1]
    path = _write(tmp_path / "short.pkl", tuple(reference))
    with pytest.raises(DataFormatError, match=r"short\.pkl.*'Ses01M_script02'.*audio.*expected 2 vectors of size 5"):
        read_feature_pickle(path, "iemocap", feature_dims=TINY_DIMS)


def test_wrong_feature_dim_names_dialogue(tmp_path):
    dialogues = _iemocap_dialogues()
    path = _write(tmp_path / "dims.pkl", _reference_tuple("iemocap", dialogues, list(dialogues)[:4], ["Ses05F_impro01"]))
    with pytest.raises(DataFormatError, match=r"dims\.pkl.*'Ses01F_impro01'.*expected 3 vectors of size 1024"):
        read_feature_pickle(path, "iemocap")  # published dims: text is 1024, the file has 6

    reference = list(_reference_tuple("iemocap", dialogues, list(dialogues)[:4], ["Ses05F_impro01"]))
    reference[8]["Ses01M_script02"][1] = np.zeros(7, dtype=np.float32)  # one ragged visual vector
    path = _write(tmp_path / "ragged.pkl", tuple(reference))
    with pytest.raises(DataFormatError, match=r"'Ses01M_script02'.*video feature of utterance 1 has size 7"):
        read_feature_pickle(path, "iemocap", feature_dims=TINY_DIMS)


def test_wrong_layout_and_labels(tmp_path):
    path = _write(tmp_path / "nine.pkl", tuple({} for _ in range(9)))
    with pytest.raises(DataFormatError, match="12 items.*found a tuple of 9 items"):
        read_feature_pickle(path, "iemocap")
    dialogues = _iemocap_dialogues()
    dialogues["Ses01F_impro01"]["labels"] = [2, 6, 0]
    path = _write(tmp_path / "labels.pkl", _reference_tuple("iemocap", dialogues, list(dialogues)[:4], ["Ses05F_impro01"]))
    with pytest.raises(DataFormatError, match="'Ses01F_impro01' has label 6"):
        read_feature_pickle(path, "iemocap", feature_dims=TINY_DIMS)
    with pytest.raises(FileNotFoundError):
        read_feature_pickle(tmp_path / "missing.pkl", "meld")
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps(list(range(100)), protocol=2)[:50])
    with pytest.raises(DataFormatError, match=r"cut\.pkl: not a readable feature pickle"):
        read_feature_pickle(tmp_path / "cut.pkl", "meld")
