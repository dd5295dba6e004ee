"""Training: the ERC Trainer subclass with teacher distillation, its losses, metrics and arguments."""

from .arguments import DistillationArguments, ERCDataArguments, ERCModelArguments, ERCTrainingArguments
from .losses import dist_kd_loss, kd_kl_loss, masked_cross_entropy, similarity_kd_loss
from .metrics import ERCMetrics, compute_erc_metrics, save_confusion_matrix
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
    "kd_kl_loss",
    "masked_cross_entropy",
    "save_confusion_matrix",
    "similarity_kd_loss",
]
