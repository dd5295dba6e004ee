"""What a perfect model could score on a planted-signal release: the Bayes-optimal ceilings.

The generative model of :mod:`hf_erc.data.planted`: within a dialogue each speaker's emotions form
a Markov chain (first turn uniform over the K emotions; each later turn keeps the previous emotion
with probability ``persistence`` and is otherwise a fresh uniform draw), and each modality ``m``
shows a cue that equals the true emotion with probability ``r_m`` and is otherwise one of the other
K-1 emotions, uniformly, independently of everything else given the emotion.

Given that model the posterior of an utterance's emotion is exact:

- per utterance: ``P(y | cues) ∝ prior(y) Π_m P(c_m | y)`` with ``P(c | y) = r`` if ``c = y`` else
  ``(1 - r) / (K - 1)``; the prior is uniform (the chain's stationary distribution);
- with dialogue context: forward-backward over each speaker's turns, the cues of every turn as
  its emissions.

A cue that was not observed (its clip is missing or corrupt) contributes nothing. Predicting the
posterior's argmax maximises expected accuracy; its weighted F1 is reported beside it (the
F1-optimal decision can differ slightly, so that number is the F1 of the Bayes decision). Ties go
to the first emotion in label order. Everything here works on arrays: no ``datasets``, no media.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

__all__ = [
    "CEILING_DESCRIPTIONS",
    "PlantedSplit",
    "UNOBSERVED",
    "ceilings_table",
    "context_posteriors",
    "cue_likelihoods",
    "expected_utterance_accuracy",
    "planted_ceilings",
    "score_predictions",
    "transition_matrix",
    "utterance_posteriors",
]

UNOBSERVED = -1

# Ceiling key -> what it is, in the order a table lists them.
CEILING_DESCRIPTIONS: dict[str, str] = {
    "text": "text cue alone",
    "audio": "audio cue alone",
    "video": "video cue alone",
    "all": "Bayes, all cues of the utterance",
    "text+context": "Bayes, text cues + dialogue context",
    "audio+context": "Bayes, audio cues + dialogue context",
    "video+context": "Bayes, video cues + dialogue context",
    "all+context": "Bayes, all cues + dialogue context",
}


@dataclass
class PlantedSplit:
    """The planted truth of one split, as integer arrays over its utterances in dialogue order.

    Attributes:
        emotions: the release's label names; index ``i`` of every array below means ``emotions[i]``.
        dialogue: ``[N]`` dialogue number of each utterance.
        speaker: ``[N]`` speaker of each utterance (any hashable names).
        emotion: ``[N]`` true emotion index.
        cues: modality -> ``[N]`` cue index, :data:`UNOBSERVED` (-1) where the modality is not observed.
    """

    emotions: tuple[str, ...]
    dialogue: np.ndarray
    speaker: Sequence[str]
    emotion: np.ndarray
    cues: dict[str, np.ndarray]

    @property
    def num_emotions(self) -> int:
        return len(self.emotions)

    def speaker_chains(self) -> list[np.ndarray]:
        """Row indices of each (dialogue, speaker)'s turns, in order: the chains of the context model."""
        chains: dict[tuple, list[int]] = {}
        for index, key in enumerate(zip(self.dialogue.tolist(), self.speaker)):
            chains.setdefault(key, []).append(index)
        return [np.asarray(rows) for rows in chains.values()]


def cue_likelihoods(
    split: PlantedSplit, reliabilities: Mapping[str, float], modalities: Sequence[str] | None = None
) -> np.ndarray:
    """``[N, K]`` likelihood ``Π_m P(c_m | y)`` of each utterance's observed cues of ``modalities`` (default: all)."""
    num_emotions = split.num_emotions
    likelihood = np.ones((len(split.emotion), num_emotions))
    for modality in modalities if modalities is not None else tuple(split.cues):
        reliability = reliabilities[modality]
        cues = split.cues[modality]
        observed = cues != UNOBSERVED
        factor = np.full((len(cues), num_emotions), (1.0 - reliability) / (num_emotions - 1))
        factor[np.flatnonzero(observed), cues[observed]] = reliability
        factor[~observed] = 1.0
        likelihood *= factor
    return likelihood


def utterance_posteriors(
    split: PlantedSplit, reliabilities: Mapping[str, float], modalities: Sequence[str] | None = None
) -> np.ndarray:
    """``[N, K]`` posterior of each utterance's emotion from its own cues of ``modalities``, under a uniform prior."""
    likelihood = cue_likelihoods(split, reliabilities, modalities)
    return likelihood / likelihood.sum(axis=1, keepdims=True)


def transition_matrix(num_emotions: int, persistence: float) -> np.ndarray:
    """``[K, K]`` probability of a speaker's next emotion given the current one: keep it with ``persistence``,
    else redraw uniformly (which may draw it again)."""
    return persistence * np.eye(num_emotions) + (1.0 - persistence) / num_emotions


def context_posteriors(
    split: PlantedSplit,
    reliabilities: Mapping[str, float],
    persistence: float,
    modalities: Sequence[str] | None = None,
) -> np.ndarray:
    """``[N, K]`` exact posterior of each utterance's emotion given every cue of ``modalities`` in its dialogue.

    Forward-backward over each speaker's chain of turns, all chains at once (padded to the longest),
    normalising at every step.
    """
    likelihood = cue_likelihoods(split, reliabilities, modalities)
    num_emotions = split.num_emotions
    transition = transition_matrix(num_emotions, persistence)
    chains = split.speaker_chains()
    length = max(len(chain) for chain in chains)
    rows = np.zeros((len(chains), length), dtype=np.int64)
    mask = np.zeros((len(chains), length), dtype=bool)
    for index, chain in enumerate(chains):
        rows[index, : len(chain)] = chain
        mask[index, : len(chain)] = True
    emission = np.where(mask[..., None], likelihood[rows], 1.0)  # [chains, length, K]

    forward = np.empty_like(emission)
    forward[:, 0] = emission[:, 0] / num_emotions
    forward[:, 0] /= forward[:, 0].sum(axis=1, keepdims=True)
    for step in range(1, length):
        forward[:, step] = (forward[:, step - 1] @ transition) * emission[:, step]
        forward[:, step] /= forward[:, step].sum(axis=1, keepdims=True)
    backward = np.ones_like(emission)
    for step in range(length - 2, -1, -1):
        message = (emission[:, step + 1] * backward[:, step + 1]) @ transition.T
        message /= message.sum(axis=1, keepdims=True)
        backward[:, step] = np.where(mask[:, step + 1, None], message, 1.0)

    marginal = forward * backward
    marginal /= marginal.sum(axis=2, keepdims=True)
    posterior = np.empty_like(likelihood)
    posterior[rows[mask]] = marginal[mask]
    return posterior


def expected_utterance_accuracy(reliabilities: Mapping[str, float] | Sequence[float], num_emotions: int) -> float:
    """The population value of the per-utterance Bayes ceiling (``"all"``): ``Σ_cues max_y P(y, cues)``.

    Exact, by enumerating the ``K ** M`` cue patterns; a test split's ``"all"`` accuracy scatters around it. (A
    single cue's population accuracy is its reliability.) It shows how much fusing can gain at all: with
    0.6/0.6/0.6 and K=4 it is 0.712, with 0.8/0.7/0.6 0.852, with 0.8/0.6/0.5 only 0.807, since audio and video
    then overrule the text only when they agree against it.
    """
    values = list(reliabilities.values()) if isinstance(reliabilities, Mapping) else list(reliabilities)
    emotions = np.arange(num_emotions)
    total = 0.0
    for pattern in itertools.product(range(num_emotions), repeat=len(values)):
        joint = np.full(num_emotions, 1.0 / num_emotions)
        for cue, reliability in zip(pattern, values):
            joint *= np.where(emotions == cue, reliability, (1.0 - reliability) / (num_emotions - 1))
        total += joint.max()
    return float(total)


def score_predictions(truth: np.ndarray, predicted: np.ndarray, num_emotions: int) -> dict[str, float]:
    """``{"accuracy", "weighted_f1"}`` (fractions in [0, 1]) of ``predicted`` emotion indices against ``truth``."""
    labels = list(range(num_emotions))
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "weighted_f1": float(f1_score(truth, predicted, labels=labels, average="weighted", zero_division=0)),
    }


def planted_ceilings(
    split: PlantedSplit, reliabilities: Mapping[str, float], persistence: float
) -> dict[str, dict[str, float]]:
    """Every ceiling of :data:`CEILING_DESCRIPTIONS` on ``split``: key -> ``{"accuracy", "weighted_f1"}``.

    A single cue's ceiling is the cue itself (with ``r > 1/K`` the cue is its own Bayes decision);
    where a cue is unobserved, the first emotion stands in, as the Bayes decision under a uniform prior.
    """
    truth, num_emotions = split.emotion, split.num_emotions
    modalities = tuple(split.cues)
    ceilings = {}
    for modality in modalities:
        ceilings[modality] = score_predictions(
            truth, utterance_posteriors(split, reliabilities, [modality]).argmax(axis=1), num_emotions
        )
    ceilings["all"] = score_predictions(truth, utterance_posteriors(split, reliabilities).argmax(axis=1), num_emotions)
    for modality in modalities:
        posterior = context_posteriors(split, reliabilities, persistence, [modality])
        ceilings[f"{modality}+context"] = score_predictions(truth, posterior.argmax(axis=1), num_emotions)
    posterior = context_posteriors(split, reliabilities, persistence)
    ceilings["all+context"] = score_predictions(truth, posterior.argmax(axis=1), num_emotions)
    return {key: ceilings[key] for key in CEILING_DESCRIPTIONS if key in ceilings}


def ceilings_table(ceilings: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table of :func:`planted_ceilings`' result, scores in percent."""
    lines = ["| ceiling | accuracy | weighted F1 |", "|---|---:|---:|"]
    for key, scores in ceilings.items():
        name = CEILING_DESCRIPTIONS.get(key, key)
        lines.append(f"| {name} | {100 * scores['accuracy']:.1f} | {100 * scores['weighted_f1']:.1f} |")
    return "\n".join(lines)
