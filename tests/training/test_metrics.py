"""ERC metrics against numbers worked out by hand, the ``evaluate`` module, and the confusion-matrix files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_erc.training.metrics import (
    ERCMetrics,
    compute_erc_metrics,
    erc_metric_path,
    load_erc_metric,
    save_confusion_matrix,
)

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


def test_hand_computed_case_with_a_predicted_only_class_and_an_absent_class():
    labels4 = ["neutral", "joy", "anger", "sadness"]
    # Pairs (true, predicted): (0,0) (0,0) (0,1) (1,1) (1,1) (1,2); anger is only predicted, sadness never occurs.
    # confusion (rows true): neutral [2,1,0,0], joy [0,2,1,0], anger [0,0,0,0], sadness [0,0,0,0]
    # F1 = 2TP / (support + predicted): neutral 4/(3+2)=4/5, joy 4/(3+3)=2/3, anger 0/(0+1)=0, sadness 0 (0/0)
    # weighted = (3*4/5 + 3*2/3 + 0*0 + 0*0) / 6 = 11/15; accuracy = 4/6
    # macro over the classes seen in labels or predictions (neutral, joy, anger) = (4/5 + 2/3 + 0) / 3 = 22/45
    metrics = compute_erc_metrics(np.array([0, 0, 1, 1, 1, 2, 3]), np.array([0, 0, 0, 1, 1, 1, -100]), labels4)
    assert metrics["confusion_matrix"] == [[2, 1, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert metrics["f1_neutral"] == pytest.approx(4 / 5)
    assert metrics["f1_joy"] == pytest.approx(2 / 3)
    assert metrics["f1_anger"] == 0.0
    assert metrics["f1_sadness"] == 0.0
    assert metrics["weighted_f1"] == pytest.approx(11 / 15)
    assert metrics["macro_f1"] == pytest.approx(22 / 45)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["num_utterances"] == 6
    assert list(metrics) == [
        "weighted_f1",
        "accuracy",
        "macro_f1",
        "f1_neutral",
        "f1_joy",
        "f1_anger",
        "f1_sadness",
        "num_utterances",
        "confusion_matrix",
    ]


def test_no_labelled_utterance_gives_zero_scores():
    metrics = compute_erc_metrics(np.zeros((2, 3, 3)), np.full((2, 3), -100), LABELS)
    assert metrics["confusion_matrix"] == [[0, 0, 0]] * 3
    assert metrics["num_utterances"] == 0
    for name in ("weighted_f1", "accuracy", "macro_f1", "f1_neutral", "f1_joy", "f1_anger"):
        assert metrics[name] == 0.0


def test_metric_module_is_loaded_once_and_kept_in_memory():
    metric = load_erc_metric()
    assert load_erc_metric() is metric
    assert metric.keep_in_memory
    assert metric.name == "erc_metric"
    compute_erc_metrics(PREDICTED_IDS, LABEL_IDS, LABELS)
    assert load_erc_metric.cache_info().currsize == 1


def test_metric_folder_is_a_hub_metric_space():
    folder = Path(erc_metric_path())
    assert {"erc_metric.py", "README.md", "requirements.txt", "app.py"} <= {path.name for path in folder.iterdir()}
    import yaml

    front_matter = yaml.safe_load(folder.joinpath("README.md").read_text(encoding="utf-8").split("---")[1])
    assert {"evaluate", "metric"} <= set(front_matter["tags"])
    assert front_matter["sdk"] == "gradio" and front_matter["app_file"] == "app.py"
    assert "scikit-learn" in folder.joinpath("requirements.txt").read_text()


def test_evaluate_load_by_path_offline_in_a_fresh_process_matches(tmp_path):
    labels = np.array([0, 0, 1, 2, 1, 0, 2, 2, 1])
    predictions = np.array([0, 1, 1, 2, 0, 0, 1, 2, 1])
    script = (
        "import json, sys, evaluate\n"
        "metric = evaluate.load(sys.argv[1])\n"
        "print(json.dumps(metric.compute(predictions=json.loads(sys.argv[2]), references=json.loads(sys.argv[3]),"
        " label_names=json.loads(sys.argv[4]))))\n"
    )
    environment = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        HF_EVALUATE_CACHE=str(tmp_path / "evaluate"),
    )
    arguments = [json.dumps(values) for values in (predictions.tolist(), labels.tolist(), LABELS)]
    completed = subprocess.run(
        [sys.executable, "-c", script, erc_metric_path(), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = compute_erc_metrics(predictions, labels, LABELS)
    assert list(loaded) == list(expected)
    assert loaded["confusion_matrix"] == expected["confusion_matrix"]
    for name, value in expected.items():
        if name != "confusion_matrix":
            assert loaded[name] == pytest.approx(value)


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
    with pytest.raises(ValueError, match=r"A label id is outside \[0, 3\): got values in \[-1, 1\]"):
        compute_erc_metrics(np.array([0, 1]), np.array([-1, 1]), LABELS)
    # The shared metric module is left clean by a failed call: the next one sees only its own inputs.
    assert compute_erc_metrics(PREDICTED_IDS, LABEL_IDS, LABELS)["num_utterances"] == 6


def test_save_confusion_matrix_writes_counts_and_normalised_rates(tmp_path):
    png, path_json = tmp_path / "cm.png", tmp_path / "cm.json"
    save_confusion_matrix([[2, 1, 0], [1, 1, 0], [0, 0, 0]], LABELS, png, path_json)
    content = json.loads(path_json.read_text())
    assert content["labels"] == LABELS
    assert content["counts"] == [[2, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert content["normalized"][0] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert content["normalized"][2] == [0.0, 0.0, 0.0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
