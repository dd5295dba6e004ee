"""Training: the ERC Trainer subclass with teacher distillation, the recipes and stages ``scripts/train.py`` runs,
losses, metrics and argument dataclasses.

Read top-down: :mod:`.run` (parse -> recipe -> stage -> train -> report), :mod:`.recipes` (one per model family),
:mod:`.stages` (one class per way of training), :mod:`.trainer` (``ERCTrainer``), :mod:`.losses`,
:mod:`.metrics`, :mod:`.arguments`; helpers: :mod:`.splits` (what ``--data_dir`` holds), :mod:`.processors`
(tokenizers and processors of the utterance-level models), :mod:`.frozen_outputs` (frozen models' outputs,
computed once), :mod:`.results` (results table, checkpoint folder, model card).
"""

from .arguments import DistillationArguments, ERCDataArguments, ERCModelArguments, ERCTrainingArguments
from .losses import dist_kd_loss, kd_kl_loss, masked_cross_entropy, similarity_kd_loss
from .metrics import ERCMetrics, compute_erc_metrics, erc_metric_path, load_erc_metric, save_confusion_matrix
from .trainer import DialogueLengthGroupedSampler, ERCTrainer

__all__ = [
    "DialogueLengthGroupedSampler",
    "DistillationArguments",
    "ERCDataArguments",
    "ERCMetrics",
    "ERCModelArguments",
    "ERCTrainer",
    "ERCTrainingArguments",
    "compute_erc_metrics",
    "dist_kd_loss",
    "erc_metric_path",
    "kd_kl_loss",
    "load_erc_metric",
    "masked_cross_entropy",
    "save_confusion_matrix",
    "similarity_kd_loss",
]
