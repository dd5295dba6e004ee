"""Linear probes: how much of the answer a frozen representation holds, read out by the simplest classifier.

A probe is a multinomial logistic regression fitted on the training split's frozen vectors (a stage model's
``utterance_embeddings``, extracted features, or several of them side by side) and scored on the test split; its
L2 strength is chosen on the validation split, never on test. Beside a trained model it answers "did the model use
what its inputs carry?": a fusion that scores below the probe of its own inputs left information on the table.

:func:`stage_embeddings` gives the frozen stage models' utterance embeddings of a fusion run (TelME, MAGTKD) from
the fusion stage's own cache, so a probe reads exactly the vectors the fusion trained on.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from .arguments import RunArguments
from .recipes import get_recipe

__all__ = ["DEFAULT_STRENGTHS", "ProbeResult", "linear_probe", "stack_vectors", "stage_embeddings"]

# Inverse L2 strengths tried (sklearn's C), the best on validation weighted F1 kept.
DEFAULT_STRENGTHS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


@dataclass
class ProbeResult:
    """Scores (fractions) of a linear probe: on test, and on validation for the chosen ``inverse_l2``."""

    test_weighted_f1: float
    test_accuracy: float
    validation_weighted_f1: float
    inverse_l2: float
    # False when L-BFGS stopped at ``max_iter`` for the chosen strength: the scores are then what the probe reached
    # so far (weak L2 on nearly separable training vectors converges slowly).
    converged: bool = True


def _scores(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    return (
        float(f1_score(truth, predicted, average="weighted", zero_division=0)),
        float(accuracy_score(truth, predicted)),
    )


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    max_iter: int = 500,
) -> ProbeResult:
    """Fit a multinomial logistic regression (L-BFGS, L2) on ``train`` = ``(vectors [N, D], labels [N])`` for each
    inverse strength in ``strengths``, keep the one with the best validation weighted F1 and score it on ``test``.

    Vectors are standardised with the training split's mean and deviation (so one grid of strengths fits any
    encoder's scale). A fit that stops at ``max_iter`` is not warned about once per strength: the result's
    ``converged`` says whether the chosen one converged. Raises ``ValueError`` for mismatched shapes or a training
    split with fewer than two labels.
    """
    (train_x, train_y), (validation_x, validation_y), (test_x, test_y) = (
        (np.asarray(x, dtype=np.float64), np.asarray(y)) for x, y in (train, validation, test)
    )
    for name, x, y in (("train", train_x, train_y), ("validation", validation_x, validation_y), ("test", test_x, test_y)):
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"linear_probe: {name} vectors {x.shape} and labels {y.shape} do not match.")
        if x.shape[1] != train_x.shape[1]:
            raise ValueError(f"linear_probe: {name} vectors have {x.shape[1]} dimensions, train {train_x.shape[1]}.")
    if len(np.unique(train_y)) < 2:
        raise ValueError("linear_probe: the training split has fewer than two labels; nothing to separate.")
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0)
    scale[scale == 0] = 1.0
    train_x, validation_x, test_x = ((x - mean) / scale for x in (train_x, validation_x, test_x))
    best = None
    for strength in strengths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            classifier = LogisticRegression(C=strength, max_iter=max_iter).fit(train_x, train_y)
        converged = not any(issubclass(warning.category, ConvergenceWarning) for warning in caught)
        validation_f1, _ = _scores(validation_y, classifier.predict(validation_x))
        if best is None or validation_f1 > best[0]:
            best = (validation_f1, strength, classifier, converged)
    validation_f1, strength, classifier, converged = best
    test_f1, test_accuracy = _scores(test_y, classifier.predict(test_x))
    return ProbeResult(test_f1, test_accuracy, validation_f1, strength, converged)


def stack_vectors(columns: Mapping[str, Sequence], names: Sequence[str]) -> np.ndarray:
    """``[N, sum of sizes]``: the vectors of ``columns[name]`` for each of ``names``, side by side; a missing vector
    (``None``, an utterance without that medium) is zeros."""
    blocks = []
    for name in names:
        values = list(columns[name])
        present = [vector for vector in values if vector is not None]
        if not present:
            raise ValueError(f"stack_vectors: column {name!r} holds no vector.")
        size = np.asarray(present[0]).size
        blocks.append(
            np.stack([np.zeros(size) if vector is None else np.asarray(vector, dtype=np.float64) for vector in values])
        )
    return np.concatenate(blocks, axis=1)


def stage_embeddings(arguments: RunArguments) -> dict[str, tuple[dict[str, list], np.ndarray]]:
    """The frozen stage models' utterance embeddings that the fusion run ``arguments`` (TelME or MAGTKD, stage
    ``fusion``) trains on: split -> (``{"text": [...], "audio": [...], "video": [...]}`` one vector or ``None`` per
    utterance, emotion labels ``[N]``), in dataset order.

    They come from the fusion stage's setup, i.e. from its embedding cache when that run (or an earlier one with the
    same checkpoints and data) filled it; otherwise they are computed and cached now. Nothing is trained.
    """
    recipe = get_recipe(arguments.model.model_type)
    _, stage = recipe.stage(arguments.model.stage)
    if arguments.model.stage != "fusion":
        raise ValueError(f"stage_embeddings reads a fusion run's inputs; got stage {arguments.model.stage!r}.")
    setup = stage.setup(recipe, arguments)
    result = {}
    for split, dataset in setup.datasets.items():
        columns: dict[str, list] = {}
        if stage.unit == "dialogues":  # MAGTKD: dialogue rows of per-turn lists
            labels = np.asarray([label for row in dataset["emotion"] for label in row])
            for modality in arguments.data.modalities:
                columns[modality] = [vector for row in dataset[f"{modality}_features"] for vector in row]
        else:  # TelME: utterance rows
            labels = np.asarray(dataset["emotion"])
            for modality in arguments.data.modalities:
                columns[modality] = list(dataset[f"{modality}_embeddings"])
        result[split] = (columns, labels)
    return result
