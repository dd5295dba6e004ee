"""ERC metrics against numbers worked out by hand, and the confusion-matrix files."""

import json

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_erc.training.metrics import ERCMetrics, compute_erc_metrics, save_confusion_matrix

LABELS = ["neutral", "joy", "anger"]

# Two dialogues of up to 4 turns; -100 marks padding (second dialogue) and an unlabelled turn.
LABEL_IDS = np.array([[0, 0, 1, -100], [2, 1, 0, -100]])
PREDICTED_IDS = np.array([[0, 1, 1, 2], [2, 0, 0, 1]])
# Labelled pairs (true, predicted): (0,0) (0,1) (1,1) (2,2) (1,0) (0,0)
# confusion (rows true): neutral [2,1,0], joy [1,1,0], anger [0,0,1]
# F1 = 2TP / (support + predicted): neutral 4/(3+3)=2/3, joy 2/(2+2)=1/2, anger 2/(1+1)=1
# weighted = (3*2/3 + 2*1/2 + 1*1) / 6 = 4/6; accuracy = 4/6; macro = (2/3 + 1/2 + 1) / 3 = 13/18


def _logits_from_ids(ids, num_labels=3):
    logits = np.full(ids.shape + (num_labels,), -1.0, dtype=np.float32)
    np.put_along_axis(logits, ids[..., None], 2.0, axis=-1)
    return logits


def test_hand_computed_case_from_ids_and_from_logits():
    for predictions in (PREDICTED_IDS, _logits_from_ids(PREDICTED_IDS)):
        metrics = compute_erc_metrics(predictions, LABEL_IDS, LABELS)
        assert metrics["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
        assert metrics["weighted_f1"] == pytest.approx(4 / 6)
        assert metrics["accuracy"] == pytest.approx(4 / 6)
        assert metrics["macro_f1"] == pytest.approx(13 / 18)
        assert metrics["f1_neutral"] == pytest.approx(2 / 3)
        assert metrics["f1_joy"] == pytest.approx(1 / 2)
        assert metrics["f1_anger"] == pytest.approx(1.0)
        assert metrics["num_utterances"] == 6


def test_absent_class_has_zero_f1_and_is_left_out_of_macro():
    # true: 0 0 1 1, predicted: 0 1 1 1; class 2 never occurs.
    metrics = compute_erc_metrics(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]), LABELS)
    # neutral: 2*1/(2+1) = 2/3; joy: 2*2/(2+3) = 4/5
    assert metrics["f1_anger"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert metrics["weighted_f1"] == pytest.approx((2 * 2 / 3 + 2 * 4 / 5) / 4)


def test_erc_metrics_takes_logits_from_tuple_or_dict_with_trainer_padding():
    logits = _logits_from_ids(PREDICTED_IDS)
    # The Trainer pads shorter batches with -100 in logits and labels: those rows must not count.
    padded_logits = np.concatenate([logits, np.full((2, 2, 3), -100.0, dtype=np.float32)], axis=1)
    padded_labels = np.concatenate([LABEL_IDS, np.full((2, 2), -100)], axis=1)
    metric = ERCMetrics(LABELS)
    for predictions in (padded_logits, (padded_logits, np.zeros(1)), {"logits": padded_logits}):
        metrics = metric(EvalPrediction(predictions=predictions, label_ids=padded_labels))
        assert metrics["weighted_f1"] == pytest.approx(4 / 6)


def test_bad_shapes_and_ids_are_reported():
    with pytest.raises(ValueError, match="do not match labels"):
        compute_erc_metrics(np.zeros((2, 5, 3)), np.zeros((2, 4), dtype=int), LABELS)
    with pytest.raises(ValueError, match="outside"):
        compute_erc_metrics(np.array([0, 3]), np.array([0, 1]), LABELS)


def test_save_confusion_matrix_writes_counts_and_normalised_rates(tmp_path):
    png, path_json = tmp_path / "cm.png", tmp_path / "cm.json"
    save_confusion_matrix([[2, 1, 0], [1, 1, 0], [0, 0, 0]], LABELS, png, path_json)
    content = json.loads(path_json.read_text())
    assert content["labels"] == LABELS
    assert content["counts"] == [[2, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert content["normalized"][0] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert content["normalized"][2] == [0.0, 0.0, 0.0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
