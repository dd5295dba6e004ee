"""ERC metric: weighted F1, macro F1, accuracy, per-class F1 and the confusion matrix.

An ``evaluate`` metric script in the layout of a Hub metric Space, computed with
scikit-learn. ``hf_erc`` loads it by local path (``hf_erc.training.metrics.load_erc_metric``);
the folder can also be published as a Hub metric as it is.
"""

import warnings

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

_DESCRIPTION = """\
Metrics of emotion recognition in conversation (ERC), one call for everything the MELD and
IEMOCAP literature reports: weighted F1 (F1 per class averaged with weights equal to the
number of true utterances of each class, the headline number), macro F1, accuracy, the F1
of every class and the confusion matrix. All are computed with scikit-learn and are
fractions in [0, 1]. A class absent from both references and predictions is left out of
the macro average but still gets a per-class F1 of 0 and a row and column in the matrix.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids, one per labelled utterance.
    references (`list` of `int`): true class ids, one per labelled utterance (drop
        padding and unlabelled turns, e.g. label -100, before calling).
    num_labels (`int`, *optional*): number of classes; ids must lie in [0, num_labels).
        Defaults to `len(label_names)`, else to the largest id plus one.
    label_names (`list` of `str`, *optional*): class names in id order, used for the
        per-class keys `f1_<name>`. Defaults to the ids as strings.

Returns:
    weighted_f1 (`float`): support-weighted mean of the per-class F1.
    accuracy (`float`): fraction of utterances predicted correctly.
    macro_f1 (`float`): unweighted mean of the per-class F1 over the classes that occur
        in references or predictions.
    f1_<name> (`float`): F1 of each class 0..num_labels-1 (0 when it never occurs).
    num_utterances (`int`): number of utterances scored.
    confusion_matrix (`list` of `list` of `int`): counts, row = true class, column =
        predicted class.

Examples:
    >>> erc_metric = evaluate.load("erc_metric")  # or the path of this folder
    >>> results = erc_metric.compute(
    ...     predictions=[0, 1, 1, 2, 0, 0], references=[0, 0, 1, 2, 1, 0],
    ...     label_names=["neutral", "joy", "anger"])
    >>> round(results["weighted_f1"], 4), round(results["macro_f1"], 4)
    (0.6667, 0.7222)
    >>> results["confusion_matrix"]
    [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
"""

_CITATION = """\
@article{scikit-learn,
    title={Scikit-learn: Machine Learning in {P}ython},
    author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V.
           and Thirion, B. and Grisel, O. and Blondel, M. and Prettenhofer, P.
           and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
           Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
    journal={Journal of Machine Learning Research},
    volume={12},
    pages={2825--2830},
    year={2011}
}
@inproceedings{poria-etal-2019-meld,
    title={{MELD}: A Multimodal Multi-Party Dataset for Emotion Recognition in Conversations},
    author={Poria, Soujanya and Hazarika, Devamanyu and Majumder, Navonil and Naik, Gautam
            and Cambria, Erik and Mihalcea, Rada},
    booktitle={Proceedings of the 57th Annual Meeting of the Association for Computational Linguistics},
    pages={527--536},
    year={2019}
}
"""


def _check_ids(name, ids, num_labels):
    if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
        raise ValueError(
            f"A {name} id is outside [0, {num_labels}): got values in [{ids.min()}, {ids.max()}]. Check that "
            "label_names matches the dataset's label set (and that unlabelled turns use -100)."
        )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ErcMetric(evaluate.Metric):
    """Weighted/macro F1, accuracy, per-class F1 and confusion matrix of ERC predictions."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            format="numpy",
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html",
                "https://affective-meld.github.io/",
            ],
        )

    def _compute(self, predictions, references, num_labels=None, label_names=None):
        predicted_ids = np.asarray(predictions, dtype=np.int64).reshape(-1)
        label_ids = np.asarray(references, dtype=np.int64).reshape(-1)
        if label_names is not None:
            label_names = [str(name) for name in label_names]
            if num_labels is None:
                num_labels = len(label_names)
            elif num_labels != len(label_names):
                raise ValueError(f"num_labels={num_labels} but {len(label_names)} label_names were given.")
        if num_labels is None:
            num_labels = int(max(predicted_ids.max(initial=-1), label_ids.max(initial=-1))) + 1
        if label_names is None:
            label_names = [str(index) for index in range(num_labels)]
        _check_ids("label", label_ids, num_labels)
        _check_ids("predicted", predicted_ids, num_labels)

        labels = list(range(num_labels))
        if label_ids.size:
            per_class = f1_score(label_ids, predicted_ids, labels=labels, average=None, zero_division=0)
            weighted_f1 = f1_score(label_ids, predicted_ids, average="weighted", zero_division=0)
            # No ``labels=``: a class absent from both references and predictions stays out of the mean.
            macro_f1 = f1_score(label_ids, predicted_ids, average="macro", zero_division=0)
            accuracy = accuracy_score(label_ids, predicted_ids)
            with warnings.catch_warnings():
                # With num_labels=1 the matrix is 1x1 by design; sklearn warns about that shape.
                warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
                matrix = sklearn_confusion_matrix(label_ids, predicted_ids, labels=labels)
        else:
            per_class = np.zeros(num_labels)
            weighted_f1 = macro_f1 = accuracy = 0.0
            matrix = np.zeros((num_labels, num_labels), dtype=np.int64)

        results = {"weighted_f1": float(weighted_f1), "accuracy": float(accuracy), "macro_f1": float(macro_f1)}
        for name, value in zip(label_names, per_class):
            results[f"f1_{name}"] = float(value)
        results["num_utterances"] = int(label_ids.size)
        results["confusion_matrix"] = np.asarray(matrix, dtype=np.int64).tolist()
        return results
