"""Evaluation metrics of emotion recognition in conversation.

Weighted F1 is the headline number of the MELD/IEMOCAP literature; accuracy, macro F1,
per-class F1 and the confusion matrix come with it. They are computed by one Hugging Face
``evaluate`` metric module shipped with the package, ``resources/erc_metric`` (scikit-learn
underneath, as the reference code of SDT, TelME and MAGTKD): a class absent from both labels
and predictions is left out of the macro average, and a class with no prediction or no
support has F1 0.

* The module is loaded by local path ([`load_erc_metric`], path [`erc_metric_path`]), so it
  works offline (``HF_HUB_OFFLINE=1``); ``evaluate.load("f1")`` would fetch a script from
  the Hub. It is loaded with ``keep_in_memory=True``: processes under ``accelerate launch``
  compute metrics at the same time and must not share cache files.
* The folder is a complete Hub metric Space (script, metric card, ``requirements.txt``,
  ``app.py``). Publish it by creating a Space (``sdk="gradio"``) and uploading the folder,
  e.g. ``HfApi().upload_folder(folder_path=erc_metric_path(), repo_id=..., repo_type="space")``,
  or with ``evaluate-cli create`` and copying the files in (evaluate 0.4.6's CLI needs
  ``cookiecutter`` and the ``huggingface_hub.Repository`` removed in huggingface_hub 1.0);
  then ``evaluate.load("<namespace>/erc_metric")``.

Scores are fractions in [0, 1], as ``transformers`` metrics are; tables print them as
percentages, the way the papers report them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import evaluate
import numpy as np
from matplotlib.figure import Figure

IGNORE_INDEX = -100


def erc_metric_path() -> str:
    """Local path of the ``evaluate`` metric folder ``hf_erc/resources/erc_metric``."""
    return str(resources.files("hf_erc") / "resources" / "erc_metric")


@functools.lru_cache(maxsize=1)
def load_erc_metric():
    """The ERC ``evaluate`` metric, loaded once by local path (offline) and kept in memory."""
    return evaluate.load(erc_metric_path(), keep_in_memory=True)


def _flatten_predictions(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return 1-d arrays of predicted and true class ids over the labelled positions only.

    ``predictions`` are either logits (``[..., num_labels]``, e.g. ``[B, T, C]`` or ``[N, C]``) or
    class ids with the same shape as ``labels``. Positions labelled ``-100`` (padding turns,
    unlabelled context) are dropped.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape == labels.shape:
        predicted_ids = predictions.astype(np.int64)
    elif predictions.ndim == labels.ndim + 1 and predictions.shape[:-1] == labels.shape:
        predicted_ids = predictions.argmax(axis=-1)
    else:
        raise ValueError(
            f"Predictions of shape {predictions.shape} do not match labels of shape {labels.shape}: expected class "
            "ids of the same shape as the labels, or logits with one more (last) dimension of size num_labels."
        )
    valid = labels != IGNORE_INDEX
    return predicted_ids[valid].reshape(-1), labels[valid].reshape(-1).astype(np.int64)


def confusion_matrix(predicted_ids: np.ndarray, label_ids: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts ``[num_labels, num_labels]``: row = true class, column = predicted class."""
    for name, ids in (("label", label_ids), ("predicted", predicted_ids)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
            raise ValueError(
                f"A {name} id is outside [0, {num_labels}): got values in [{ids.min()}, {ids.max()}]. Check that "
                "label_names matches the dataset's label set (and that unlabelled turns use -100)."
            )
    flat = label_ids * num_labels + predicted_ids
    return np.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def compute_erc_metrics(predictions: Any, labels: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """Weighted F1, accuracy, macro F1, per-class F1 (``f1_<label>``) and the confusion matrix.

    Args:
        predictions: logits ``[B, T, C]``/``[N, C]`` or class ids ``[B, T]``/``[N]``.
        labels: class ids with ``-100`` at padding and unlabelled positions, which are ignored.
        label_names: class names in label-id order.

    Returns:
        ``{"weighted_f1", "accuracy", "macro_f1", "f1_<label>"..., "num_utterances",
        "confusion_matrix"}``; the matrix is a nested list of counts (row = true class).
        Computed by [`load_erc_metric`].
    """
    label_names = [str(name) for name in label_names]
    predicted_ids, label_ids = _flatten_predictions(predictions, labels)
    return load_erc_metric().compute(
        predictions=predicted_ids, references=label_ids, num_labels=len(label_names), label_names=label_names
    )


class ERCMetrics:
    """``compute_metrics`` for [`transformers.Trainer`]: [`compute_erc_metrics`] on an ``EvalPrediction``.

    The Trainer concatenates evaluation batches of different dialogue lengths by padding
    both logits and labels with ``-100``; those positions carry label ``-100`` and are
    ignored. When a model's predictions reach here as a tuple or dict (a Trainer that
    keeps every output), the fused ``logits`` are taken: the dict key ``"logits"``, or the
    first element of a tuple.
    """

    def __init__(self, label_names: Sequence[str]):
        self.label_names = list(label_names)

    @staticmethod
    def _select_logits(predictions: Any) -> Any:
        if isinstance(predictions, Mapping):
            if "logits" not in predictions:
                raise ValueError(f"Predictions are a dict without a 'logits' key (keys: {sorted(predictions)}).")
            return predictions["logits"]
        if isinstance(predictions, (tuple, list)):
            return predictions[0]
        return predictions

    def __call__(self, eval_prediction) -> dict[str, Any]:
        predictions = self._select_logits(eval_prediction.predictions)
        labels = eval_prediction.label_ids
        if isinstance(labels, (tuple, list)):
            labels = labels[0]
        return compute_erc_metrics(predictions, labels, self.label_names)


def save_confusion_matrix(
    matrix: Sequence[Sequence[int]],
    label_names: Sequence[str],
    path_png: str | os.PathLike,
    path_json: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Write a confusion matrix as JSON (counts, row-normalised rates, label names) and as a PNG.

    The PNG has two panels: counts, and the rows normalised by the number of utterances of
    each true class (recall on the diagonal). Drawn on a matplotlib ``Figure`` of its own (no pyplot), so no
    window opens and the program's backend is left alone.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    label_names = list(label_names)
    if counts.shape != (len(label_names), len(label_names)):
        raise ValueError(f"Confusion matrix of shape {counts.shape} does not match {len(label_names)} label names.")
    row_totals = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)

    with open(path_json, "w", encoding="utf-8") as file:
        json.dump(
            {"labels": label_names, "counts": counts.tolist(), "normalized": normalized.round(6).tolist()},
            file,
            indent=2,
        )

    size = 2.0 + 0.6 * len(label_names)
    figure = Figure(figsize=(2 * size + 1.5, size))
    axes = figure.subplots(1, 2)
    for axis, values, panel, fmt in (
        (axes[0], counts, "counts", "d"),
        (axes[1], normalized, "normalised by true class", ".2f"),
    ):
        image = axis.imshow(values, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
        axis.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
        axis.set_yticks(range(len(label_names)), label_names)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(panel)
        threshold = values.max() / 2 if values.size else 0
        for row in range(values.shape[0]):
            for column in range(values.shape[1]):
                axis.text(
                    column,
                    row,
                    format(values[row, column], fmt),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if values[row, column] > threshold else "black",
                )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path_png, dpi=120)
