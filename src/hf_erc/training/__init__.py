"""Training: :func:`train` and :func:`evaluate` (what ``scripts/train.py`` and ``hf-erc train`` run), the ERC Trainer
subclass with teacher distillation, the recipes and stages, losses, metrics and argument dataclasses.

    from hf_erc.training import RunArguments, train

    results = train(RunArguments.from_config("configs/sdt-meld-text.yaml", data_dir="data/meld-features"))

Read top-down: :mod:`.run` (arguments -> recipe -> stage -> train -> results), :mod:`.arguments` (the dataclasses,
a YAML config and its overrides), :mod:`.recipes` (one per model family), :mod:`.stages` (one class per way of
training), :mod:`.trainer` (``ERCTrainer``), :mod:`.losses`, :mod:`.metrics`; helpers: :mod:`.splits` (what
``--data_dir`` holds), :mod:`.processors` (tokenizers and processors of the utterance-level models),
:mod:`.frozen_outputs` (frozen models' outputs, computed once), :mod:`.results` (results, table, checkpoint folder,
model card), :mod:`.resume`. Other training jobs: :mod:`.report` (a config over seeds), :mod:`.finetune` (a text
encoder adapted before feature extraction), :mod:`.teachers` (PEFT text teachers).
"""

from .arguments import (
    DistillationArguments,
    ERCDataArguments,
    ERCModelArguments,
    ERCTrainingArguments,
    RunArguments,
    parse_run_arguments,
)
from .losses import dist_kd_loss, kd_kl_loss, masked_cross_entropy, similarity_kd_loss
from .metrics import ERCMetrics, compute_erc_metrics, erc_metric_path, load_erc_metric, save_confusion_matrix
from .results import TrainingResults
from .run import evaluate, train
from .teachers import TeacherPeftArguments
from .trainer import DialogueLengthGroupedSampler, ERCTrainer

__all__ = [
    "DialogueLengthGroupedSampler",
    "DistillationArguments",
    "ERCDataArguments",
    "ERCMetrics",
    "ERCModelArguments",
    "ERCTrainer",
    "ERCTrainingArguments",
    "RunArguments",
    "TeacherPeftArguments",
    "TrainingResults",
    "compute_erc_metrics",
    "dist_kd_loss",
    "erc_metric_path",
    "evaluate",
    "kd_kl_loss",
    "load_erc_metric",
    "masked_cross_entropy",
    "parse_run_arguments",
    "save_confusion_matrix",
    "similarity_kd_loss",
    "train",
]
