"""A training job before feature extraction: adapt a small text encoder to a dataset's emotions.

The papers' feature-level models (SDT, CMATH, MAGTKD's fusion) read text features from an encoder fine-tuned on the
dataset's utterance labels (the community MELD/IEMOCAP pickles come from a fine-tuned RoBERTa), not from a frozen
sentence encoder. :func:`fine_tune_text_encoder` does the same for any ``AutoModel`` text encoder: utterance-level
cross-entropy on the training split through the pooling that extraction uses, then it saves the encoder alone (a plain
``transformers`` folder plus its tokenizer) for ``hf-erc extract-features --text-encoder FOLDER``. Only the
training split's labels are read; validation is evaluated for the record, test never.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from datasets import Dataset, DatasetDict
from torch import nn
from transformers import (
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from ..data.prepare import load_erc_dataset
from ..features.encoders import FINE_TUNING_FILE, pool_hidden_states, resolve_encoder_path, tokenize_utterances
from ..labels import emotion_names
from .metrics import ERCMetrics


@dataclass
class TextFineTuningArguments:
    """How :func:`fine_tune_text_encoder` trains.

    Args:
        text_encoder: Hub id, folder or offline short name (``"minilm"``) of the encoder to adapt.
        pooling: ``"mean"`` or ``"first"``, as extraction will pool (``--text-pooling``).
        max_length: tokens per utterance in training and extraction (MELD's longest utterances are ~90 tokens;
            99 % fit in 48).
        num_train_epochs: passes over the training utterances (two, chosen on MELD validation weighted F1: one
            epoch is 1 point lower; more overfit a 6-layer encoder).
        learning_rate: AdamW peak rate, linear decay after 10 % warm-up (small encoders fine-tune at 1e-4).
        batch_size: utterances per step; batches are grouped by length.
        freeze_word_embeddings: keep the vocabulary embeddings fixed: half of MiniLM's parameters, whose update
            costs optimizer time and which two epochs barely move.
        dropout: on the pooled vector before the classifier.
        seed: initialisation of the classifier and the data order.
    """

    text_encoder: str = "minilm"
    pooling: Literal["mean", "first"] = "mean"
    max_length: int = 48
    num_train_epochs: float = 2.0
    learning_rate: float = 1e-4
    batch_size: int = 32
    freeze_word_embeddings: bool = True
    dropout: float = 0.1
    seed: int = 42


class UtteranceEmotionClassifier(nn.Module):
    """An encoder, the pooling of extraction and a linear classifier: what fine-tuning trains.

    Only ``encoder`` is saved: the classifier exists to give the encoder a task.
    """

    def __init__(self, encoder: PreTrainedModel, num_labels: int, pooling: str, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state
        logits = self.classifier(self.dropout(pool_hidden_states(hidden, attention_mask, self.pooling)))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return {"loss": loss, "logits": logits} if loss is not None else {"logits": logits}


class _TokenizingCollator:
    """A batch of ``{"text", "labels"}`` rows, tokenized as :class:`~hf_erc.features.encoders.TextEncoder` will
    tokenize at extraction."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = tokenize_utterances(self.tokenizer, [row["text"] for row in rows], self.max_length)
        batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.long)
        return dict(batch)


def _utterance_table(name: str, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """``text``, ``labels`` and ``length`` (tokens, for length-grouped batches) of the labelled rows of ``split``."""
    labelled = split.filter(lambda label: label is not None and label >= 0, input_columns="emotion")
    if len(labelled) == 0:
        raise ValueError(f"The {name} split has no labelled utterance: nothing to fine-tune the text encoder on or with.")
    lengths = [len(ids) for ids in tokenizer(list(labelled["text"]), truncation=True, max_length=max_length)["input_ids"]]
    table = labelled.select_columns(["text", "emotion"]).rename_column("emotion", "labels")
    return table.add_column("length", lengths)


def fine_tune_text_encoder(
    dataset_dict: DatasetDict,
    label_names: Sequence[str],
    output_dir: str | os.PathLike,
    args: TextFineTuningArguments | None = None,
) -> dict[str, float]:
    """Fine-tune ``args.text_encoder`` on ``dataset_dict["train"]``'s emotions and save the encoder to ``output_dir``.

    Returns the validation metrics of the utterance classifier (empty without a validation split); they are also
    written to ``output_dir/fine_tuning.json`` with the arguments.
    """
    args = args or TextFineTuningArguments()
    if "train" not in dataset_dict:
        raise ValueError(f"Fine-tuning a text encoder needs a 'train' split; the dataset has {sorted(dataset_dict)}.")
    set_seed(args.seed)
    path = resolve_encoder_path(args.text_encoder)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    encoder = AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True)
    if args.freeze_word_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    model = UtteranceEmotionClassifier(encoder, len(label_names), args.pooling, args.dropout)
    tables = {
        name: _utterance_table(name, split, tokenizer, args.max_length)
        for name, split in dataset_dict.items()
        if name in ("train", "validation")
    }

    output = Path(output_dir)
    trainer = Trainer(
        model=model,
        args=_trainer_arguments(args, output / "trainer", len(tables["train"]), evaluate="validation" in tables),
        train_dataset=tables["train"],
        eval_dataset=tables.get("validation"),
        data_collator=_TokenizingCollator(tokenizer, args.max_length),
        compute_metrics=ERCMetrics(label_names),
    )
    trainer.train()
    # The evaluation at the end of the last epoch (eval_strategy="epoch"): the saved encoder's validation scores.
    evaluations = [entry for entry in trainer.state.log_history if "eval_weighted_f1" in entry]
    metrics = evaluations[-1] if evaluations else {}
    metrics = {
        key.removeprefix("eval_"): value
        for key, value in metrics.items()
        if key.startswith("eval_") and key != "eval_confusion_matrix"
    }

    if trainer.is_world_process_zero():
        encoder.get_input_embeddings().weight.requires_grad_(True)
        encoder.save_pretrained(output, safe_serialization=True)
        tokenizer.save_pretrained(output)
        record = {
            "arguments": asdict(args),
            "base_encoder": args.text_encoder,
            "validation": metrics,
            "num_train_utterances": len(tables["train"]),
            "training_loss": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        }
        (output / FINE_TUNING_FILE).write_text(json.dumps(record, indent=2, default=float) + "\n")
    trainer.accelerator.wait_for_everyone()
    shutil.rmtree(output / "trainer", ignore_errors=True)
    return metrics


def _trainer_arguments(
    args: TextFineTuningArguments, output_dir: Path, num_train_rows: int, evaluate: bool
) -> TrainingArguments:
    """The Trainer's settings: AdamW with linear decay after 10 % warm-up, length-grouped batches, an evaluation per
    epoch (with a validation split), no checkpoint (only the final encoder is kept), bf16 where the GPU has it."""
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate,
        weight_decay=0.01,
        warmup_steps=0.1,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=4 * args.batch_size,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        remove_unused_columns=False,
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="no",
        logging_steps=max(1, min(50, num_train_rows // (4 * args.batch_size))),
        report_to=[],
        seed=args.seed,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )


def fine_tune_text_encoder_on_disk(
    dataset_name: str,
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    args: TextFineTuningArguments | None = None,
) -> dict[str, float]:
    """Load ``dataset_name`` from ``data_dir`` (raw release or ``hf-erc prepare`` output) and fine-tune on it."""
    return fine_tune_text_encoder(load_erc_dataset(dataset_name, data_dir), emotion_names(dataset_name), output, args)
